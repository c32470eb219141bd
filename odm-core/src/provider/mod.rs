//! How grants are obtained from the network. The stack calls a provider only from its own worker
//! and maintenance threads, never under its lock, so a provider may block on the network.

pub mod sim;

use std::net::IpAddr;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::{AddressType, Family, Result};

/// One request to the network: a new prefix or address of one type for one family.
#[derive(Clone, Debug)]
pub struct GrantRequest {
    pub address_type: AddressType,
    pub family: Family,
    /// When the application asked: latency is counted from here, not from when a worker ran.
    pub issued: Timestamp,
    /// The provider must answer by then: a grant, a refusal, or `Error::Timeout`.
    pub deadline: Timestamp,
}

/// The lifetimes of a grant, counted from when it was given (or renewed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetimes {
    pub preferred: Duration,
    pub valid: Duration,
    /// When to renew (RFC 8415 T1).
    pub renew: Duration,
}

/// What the network gives for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Unique among this provider's grants.
    pub id: u64,
    pub address_type: AddressType,
    pub family: Family,
    /// A prefix, or one address when `prefix_len` is the family's full length.
    pub prefix: IpAddr,
    pub prefix_len: u8,
    pub lifetimes: Lifetimes,
    /// Which server or gateway gave it.
    pub server: String,
}

/// What a move to another point of attachment did to the network's grants (RFC 8653 §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MoveInfo {
    /// The gateway the host is attached to now.
    pub gateway: u32,
    /// How long graceful-replacement addresses stay valid after the move.
    pub grace: Duration,
}

/// A source of grants: the simulated operator network or a real DHCPv6 server.
pub trait Provider: Send + Sync + 'static {
    /// "sim" or "dhcpv6".
    fn name(&self) -> &'static str;
    /// The families this provider can serve.
    fn serves(&self, family: Family) -> bool;
    /// Asks for a new grant; blocks until it comes, is refused, or `req.deadline` passes.
    fn acquire(&self, req: &GrantRequest) -> Result<Grant>;
    /// Extends a grant the host still uses; returns its new lifetimes.
    fn renew(&self, grant: &Grant, deadline: Timestamp) -> Result<Lifetimes>;
    /// Gives a grant back to the network.
    fn release(&self, grant: &Grant);
    /// The host moved to another point of attachment: the network updates its grants.
    fn host_moved(&self) -> Result<MoveInfo>;
}
