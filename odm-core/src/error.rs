//! One error type for the whole stack. Each variant is a situation of RFC 8653 or of the socket
//! API, and maps to exactly one errno, so every binding translates it with one match.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in odm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bad argument: type out of range, unknown flag bits, a too-small buffer (EINVAL).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The fd is not an open socket (EBADF).
    #[error("bad socket: {0}")]
    BadSocket(String),
    /// The socket's family is one the provider does not serve (EAFNOSUPPORT).
    #[error("address family not supported: {0}")]
    FamilyNotSupported(String),
    /// The socket has no lease to release (EINVAL).
    #[error("socket has no lease")]
    NoLease,
    /// Policy does not allow this application this type (EACCES, §3.4).
    #[error("not authorized: {0}")]
    NotAuthorized(String),
    /// Policy allows the type but the application is at its quota (EDQUOT).
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// The network refused to grant an address of the type (EADDRNOTAVAIL, §3.1).
    #[error("network refused: {0}")]
    NetworkRefused(String),
    /// The network does not support on-demand address types (EOPNOTSUPP, §4.1).
    #[error("not supported by the network: {0}")]
    NotSupported(String),
    /// The network did not answer within the request timeout (ETIMEDOUT).
    #[error("request timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// A non-blocking request was started; the outcome arrives as an event (EINPROGRESS).
    #[error("request in progress")]
    InProgress,
    /// A configuration file was refused; nothing of it was applied (EINVAL).
    #[error("{}:{line}: {reason}", file.display())]
    Config {
        file: PathBuf,
        line: usize,
        reason: String,
    },
    /// An operating-system call failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl Error {
    /// The errno a socket-API caller sees for this error.
    pub fn errno(&self) -> i32 {
        match self {
            Error::InvalidArgument(_) | Error::NoLease | Error::Config { .. } => libc::EINVAL,
            Error::BadSocket(_) => libc::EBADF,
            Error::FamilyNotSupported(_) => libc::EAFNOSUPPORT,
            Error::NotAuthorized(_) => libc::EACCES,
            Error::QuotaExceeded(_) => libc::EDQUOT,
            Error::NetworkRefused(_) => libc::EADDRNOTAVAIL,
            Error::NotSupported(_) => libc::EOPNOTSUPP,
            Error::Timeout(_) => libc::ETIMEDOUT,
            Error::InProgress => libc::EINPROGRESS,
            Error::Io(e) => e.raw_os_error().unwrap_or(libc::EIO),
        }
    }
}

/// A request's outcome is shared by every waiter of one network request, so it must be cloneable;
/// `io::Error` is not, hence this by-hand copy.
impl Clone for Error {
    fn clone(&self) -> Self {
        match self {
            Error::InvalidArgument(s) => Error::InvalidArgument(s.clone()),
            Error::BadSocket(s) => Error::BadSocket(s.clone()),
            Error::FamilyNotSupported(s) => Error::FamilyNotSupported(s.clone()),
            Error::NoLease => Error::NoLease,
            Error::NotAuthorized(s) => Error::NotAuthorized(s.clone()),
            Error::QuotaExceeded(s) => Error::QuotaExceeded(s.clone()),
            Error::NetworkRefused(s) => Error::NetworkRefused(s.clone()),
            Error::NotSupported(s) => Error::NotSupported(s.clone()),
            Error::Timeout(d) => Error::Timeout(*d),
            Error::InProgress => Error::InProgress,
            Error::Config { file, line, reason } => Error::Config {
                file: file.clone(),
                line: *line,
                reason: reason.clone(),
            },
            Error::Io(e) => Error::Io(match e.raw_os_error() {
                Some(code) => io::Error::from_raw_os_error(code),
                None => io::Error::new(e.kind(), e.to_string()),
            }),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rfc_situation_has_its_socket_api_errno() {
        let d = std::time::Duration::from_secs(1);
        let cases = [
            (Error::InvalidArgument(String::new()), libc::EINVAL),
            (Error::BadSocket(String::new()), libc::EBADF),
            (Error::FamilyNotSupported(String::new()), libc::EAFNOSUPPORT),
            (Error::NoLease, libc::EINVAL),
            (Error::NotAuthorized(String::new()), libc::EACCES),
            (Error::QuotaExceeded(String::new()), libc::EDQUOT),
            (Error::NetworkRefused(String::new()), libc::EADDRNOTAVAIL),
            (Error::NotSupported(String::new()), libc::EOPNOTSUPP),
            (Error::Timeout(d), libc::ETIMEDOUT),
            (Error::InProgress, libc::EINPROGRESS),
            (
                Error::Io(io::Error::from_raw_os_error(libc::ENOMEM)),
                libc::ENOMEM,
            ),
        ];
        for (e, errno) in cases {
            assert_eq!(e.errno(), errno, "{e}");
            assert_eq!(e.clone().errno(), errno, "clone of {e}");
        }
    }
}
