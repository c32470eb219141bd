//! How an address is made usable on the machine. `none` leaves the kernel alone (the sim's
//! loopback and FREEBIND addresses need nothing); `netlink` arrives with the real network.

use std::net::IpAddr;

use crate::Result;
use crate::clock::Timestamp;

/// One address as the host should configure it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostAddress {
    pub address: IpAddr,
    pub prefix_len: u8,
    pub preferred_until: Timestamp,
    pub valid_until: Timestamp,
}

pub trait Host: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Adds the address, or updates its lifetimes (preferred in the past = deprecated).
    fn configure(&self, address: &HostAddress) -> Result<()>;
    /// Removes the address.
    fn remove(&self, address: &HostAddress);
}

/// The `none` host: addresses are used as they are.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHost;

impl Host for NoHost {
    fn name(&self) -> &'static str {
        "none"
    }
    fn configure(&self, _address: &HostAddress) -> Result<()> {
        Ok(())
    }
    fn remove(&self, _address: &HostAddress) {}
}
