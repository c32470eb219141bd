//! The few socket calls the stack needs: what family a socket is, who it is (so a closed and
//! reused fd is told apart from the socket that held a lease), and binding it.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::{Error, Family, Result};

/// A socket's identity: its fd and the kernel's SO_COOKIE, unique for the life of the boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SocketKey {
    pub fd: RawFd,
    pub cookie: u64,
}

fn getsockopt<T: Copy>(fd: RawFd, level: i32, name: i32) -> io::Result<T> {
    // SAFETY: the out-buffer is a T of the size we pass; T is plain data for these options.
    unsafe {
        let mut value: T = zeroed();
        let mut len = size_of::<T>() as libc::socklen_t;
        if libc::getsockopt(fd, level, name, (&raw mut value).cast(), &mut len) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(value)
    }
}

/// The family and identity of an open IP socket, or the socket API's error for anything else.
pub fn inspect(fd: RawFd) -> Result<(Family, SocketKey)> {
    if fd < 0 {
        return Err(Error::BadSocket(format!(
            "fd {fd} is not a file descriptor"
        )));
    }
    let domain = getsockopt::<libc::c_int>(fd, libc::SOL_SOCKET, libc::SO_DOMAIN).map_err(|e| {
        match e.raw_os_error() {
            Some(libc::ENOTSOCK) => Error::BadSocket(format!("fd {fd} is not a socket")),
            _ => Error::BadSocket(format!("fd {fd}: {e}")),
        }
    })?;
    let family = match domain {
        libc::AF_INET => Family::V4,
        libc::AF_INET6 => Family::V6,
        other => {
            return Err(Error::FamilyNotSupported(format!(
                "fd {fd} is not an IP socket (family {other}); on-demand types apply to AF_INET and AF_INET6"
            )));
        }
    };
    let cookie = getsockopt::<u64>(fd, libc::SOL_SOCKET, libc::SO_COOKIE)?;
    Ok((family, SocketKey { fd, cookie }))
}

/// True while `key.fd` is still the socket that `key` was taken from.
pub fn is_open(key: SocketKey) -> bool {
    getsockopt::<u64>(key.fd, libc::SOL_SOCKET, libc::SO_COOKIE).is_ok_and(|c| c == key.cookie)
}

/// A `SocketAddr` as the kernel takes it.
pub fn to_sockaddr(sa: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data, large and aligned enough for either family.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match sa {
        SocketAddr::V4(v4) => {
            // SAFETY: as above; we write a sockaddr_in at the start of the storage.
            let sin = unsafe { &mut *(&raw mut storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            // SAFETY: as above, for a sockaddr_in6.
            let sin6 = unsafe { &mut *(&raw mut storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            sin6.sin6_flowinfo = v6.flowinfo();
            sin6.sin6_scope_id = v6.scope_id();
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

fn check(rc: libc::c_int) -> Result<()> {
    if rc != 0 {
        return Err(Error::Io(io::Error::last_os_error()));
    }
    Ok(())
}

/// Binds `fd` to `addr:port`. IPv6 sockets get IPV6_FREEBIND first, so an address the host has
/// not configured (the `none` host) still binds.
pub fn bind(fd: RawFd, addr: IpAddr, port: u16) -> Result<()> {
    if addr.is_ipv6() {
        let on: libc::c_int = 1;
        // SAFETY: a c_int option value of its exact size. A failure shows up as bind's error.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_IPV6,
                libc::IPV6_FREEBIND,
                (&raw const on).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }
    let (sa, len) = to_sockaddr(SocketAddr::new(addr, port));
    // SAFETY: sa holds a sockaddr of `len` bytes.
    check(unsafe { libc::bind(fd, (&raw const sa).cast(), len) })
}

/// connect(2) for a socket std cannot connect (one made by [`new_unbound`] and bound by setsc).
pub fn connect(fd: RawFd, to: SocketAddr) -> Result<()> {
    let (sa, len) = to_sockaddr(to);
    // SAFETY: sa holds a sockaddr of `len` bytes.
    check(unsafe { libc::connect(fd, (&raw const sa).cast(), len) })
}

/// listen(2), for the same reason.
pub fn listen(fd: RawFd, backlog: i32) -> Result<()> {
    // SAFETY: plain syscall on an fd.
    check(unsafe { libc::listen(fd, backlog) })
}

/// The socket kinds [`new_unbound`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Stream,
    Datagram,
}

/// A new, unbound IP socket (std has no way to make one): setsc() it, then turn it into a
/// `UdpSocket`, `TcpListener` or `TcpStream` with `From<OwnedFd>`.
pub fn new_unbound(family: Family, kind: Kind) -> io::Result<OwnedFd> {
    let domain = match family {
        Family::V4 => libc::AF_INET,
        Family::V6 => libc::AF_INET6,
    };
    let ty = match kind {
        Kind::Stream => libc::SOCK_STREAM,
        Kind::Datagram => libc::SOCK_DGRAM,
    };
    // SAFETY: socket() returns a new fd we own, or -1.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Random bits from the kernel (for privacy interface identifiers, RFC 8981 style).
pub(crate) fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: buf is writable for its length; getrandom never writes more.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    assert_eq!(n, 8, "getrandom failed");
    u64::from_ne_bytes(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, UdpSocket};
    use std::os::fd::AsRawFd;

    #[test]
    fn inspect_tells_family_and_refuses_what_is_not_an_ip_socket() {
        let v4 = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(inspect(v4.as_raw_fd()).unwrap().0, Family::V4);
        let v6 = TcpListener::bind("[::1]:0").unwrap();
        assert_eq!(inspect(v6.as_raw_fd()).unwrap().0, Family::V6);
        assert_eq!(inspect(-1).unwrap_err().errno(), libc::EBADF);
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        assert_eq!(inspect(file.as_raw_fd()).unwrap_err().errno(), libc::EBADF);
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(
            inspect(a.as_raw_fd()).unwrap_err().errno(),
            libc::EAFNOSUPPORT
        );
    }

    #[test]
    fn a_closed_fd_is_no_longer_the_same_socket() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (_, key) = inspect(s.as_raw_fd()).unwrap();
        assert!(is_open(key));
        drop(s);
        assert!(!is_open(key));
        // The fd number is reused by the next socket, but the cookie differs.
        let again = UdpSocket::bind("127.0.0.1:0").unwrap();
        if again.as_raw_fd() == key.fd {
            assert!(!is_open(key));
        }
    }
}
