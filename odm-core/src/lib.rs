//! odm-core: RFC 8653 On-Demand Mobility Management for Linux hosts.
//!
//! An application says, per socket, which kind of address it needs ([`AddressType`]); the
//! [`Stack`] serves one from its pool or asks the network (a [`provider::Provider`]) for a new
//! one, and the socket is bound to it. Start with [`Stack::builder`] or [`default_stack`].
//!
//! ```no_run
//! use odm_core::{AddressType, SetscOptions, Stack};
//! let stack = Stack::builder().build()?;
//! // Any socket that is `AsFd` will do (std, socket2, tokio ...); this one is unbound yet.
//! let sock = odm_core::socket::new_unbound(odm_core::Family::V4, odm_core::socket::Kind::Datagram)?;
//! let lease = stack.setsc(&sock, AddressType::Nonpersistent, &SetscOptions { bind: Some(0), ..Default::default() })?;
//! println!("bound to {}", lease.address());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod clock;
pub mod config;
mod error;
pub mod event;
pub mod host;
pub mod policy;
pub mod pool;
pub mod provider;
pub mod socket;
mod stack;
mod types;

use std::sync::OnceLock;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use config::Config;
pub use error::{Error, Result};
pub use event::{Event, EventKind, EventQueue};
pub use pool::{AddressState, PoolConfig, ReleaseRule};
pub use stack::{
    AddressInfo, Lease, LeaseId, LeaseInfo, MoveReport, SetscOptions, Stack, StackBuilder, Stats,
};
pub use types::{AddressType, Family};

static DEFAULT: OnceLock<Stack> = OnceLock::new();

/// The process's stack, built on first use from the configuration DESIGN's resolution order
/// finds: `$ODM_CONFIG`, else /etc/odm/odm.toml, else the built-in sim defaults.
pub fn default_stack() -> Result<&'static Stack> {
    init_default(config::resolve_path().as_deref())
}

/// Builds the process's stack from `path` (or the resolution order if `None`). Returns the
/// existing stack if there is one already; a bad file is refused and builds nothing.
pub fn init_default(path: Option<&std::path::Path>) -> Result<&'static Stack> {
    if let Some(s) = DEFAULT.get() {
        return Ok(s);
    }
    let path = path
        .map(std::path::Path::to_path_buf)
        .or_else(config::resolve_path);
    let config = match path {
        Some(p) => Config::from_file(&p)?,
        None => Config::default(),
    };
    let stack = StackBuilder::from_config(config).build()?;
    // Two threads may race here; one stack wins and the other is dropped (releasing its grants).
    Ok(DEFAULT.get_or_init(|| stack))
}

/// The README's Rust tour, compiled and run as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeTour;
