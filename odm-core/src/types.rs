//! The four address types of RFC 8653 §3.2 and the address families odm serves.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// The kind of IP address a socket asks for (RFC 8653 §3.2). The numbers are stable: the same
/// in C, Python, the config file, the CLI and on the wire (DHCPv6 option value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum AddressType {
    /// No type asked: legacy behaviour (§4.2: no on-demand request is made).
    Unspecified = 0,
    /// Valid for a very long time, across moves, even unused: continuity and reachability.
    Fixed = 1,
    /// Valid while any socket using it is open, across moves.
    SessionLasting = 2,
    /// No continuity: lost when the host moves to another gateway; lowest latency.
    Nonpersistent = 3,
    /// After a move, stays valid for a grace period beside its replacement.
    GracefulReplacement = 4,
}

impl AddressType {
    /// Every type, in value order.
    pub const ALL: [AddressType; 5] = [
        AddressType::Unspecified,
        AddressType::Fixed,
        AddressType::SessionLasting,
        AddressType::Nonpersistent,
        AddressType::GracefulReplacement,
    ];
    /// The four types that name an on-demand request (everything but `Unspecified`).
    pub const ON_DEMAND: [AddressType; 4] = [
        AddressType::Fixed,
        AddressType::SessionLasting,
        AddressType::Nonpersistent,
        AddressType::GracefulReplacement,
    ];

    /// The type with this stable value; `None` outside 0..=4.
    pub fn from_value(value: i64) -> Option<AddressType> {
        usize::try_from(value)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
    }

    /// The stable value (0..=4).
    pub fn value(self) -> u8 {
        self as u8
    }

    /// The text name used by the config file, the CLI and JSON output.
    pub fn name(self) -> &'static str {
        match self {
            AddressType::Unspecified => "unspecified",
            AddressType::Fixed => "fixed",
            AddressType::SessionLasting => "session-lasting",
            AddressType::Nonpersistent => "nonpersistent",
            AddressType::GracefulReplacement => "graceful-replacement",
        }
    }

    /// Index 0..4 of an on-demand type, for per-type arrays; `None` for `Unspecified`.
    pub(crate) fn slot(self) -> Option<usize> {
        (self as usize).checked_sub(1)
    }
}

impl fmt::Display for AddressType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AddressType {
    type Err = Error;

    /// Accepts the text name or the stable number.
    fn from_str(s: &str) -> Result<Self, Error> {
        if let Some(t) = Self::ALL.iter().find(|t| t.name() == s) {
            return Ok(*t);
        }
        s.parse::<i64>()
            .ok()
            .and_then(AddressType::from_value)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "unknown address type {s:?} (expected one of unspecified, fixed, \
                     session-lasting, nonpersistent, graceful-replacement, or 0-4)"
                ))
            })
    }
}

impl TryFrom<i64> for AddressType {
    type Error = Error;

    fn try_from(value: i64) -> Result<Self, Error> {
        AddressType::from_value(value)
            .ok_or_else(|| Error::InvalidArgument(format!("address type {value} is not 0-4")))
    }
}

/// The IP family of a socket, and so of the address it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub(crate) fn slot(self) -> usize {
        match self {
            Family::V4 => 0,
            Family::V6 => 1,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_values_and_names_round_trip() {
        let expected = [
            (0, "unspecified"),
            (1, "fixed"),
            (2, "session-lasting"),
            (3, "nonpersistent"),
            (4, "graceful-replacement"),
        ];
        for (value, name) in expected {
            let t = AddressType::from_value(value).unwrap();
            assert_eq!(t.value() as i64, value);
            assert_eq!(t.to_string(), name);
            assert_eq!(name.parse::<AddressType>().unwrap(), t);
            assert_eq!(value.to_string().parse::<AddressType>().unwrap(), t);
        }
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for bad in [-1, 5, 99, i64::MAX] {
            assert!(AddressType::from_value(bad).is_none());
            assert_eq!(
                AddressType::try_from(bad).unwrap_err().errno(),
                libc::EINVAL
            );
        }
        assert!("Fixed".parse::<AddressType>().is_err());
        assert!("".parse::<AddressType>().is_err());
    }
}
