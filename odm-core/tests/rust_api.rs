//! The Rust API as an application uses it: any `AsFd` socket, a `Lease` that ends on drop.

mod common;

use std::net::SocketAddr;

use common::*;
use odm_core::{AddressState, AddressType, SetscOptions};
use socket2::{Domain, Socket, Type};

#[test]
fn a_socket2_socket_is_leased_bound_and_released_on_drop() {
    let (stack, _clock) = stack();
    let sock = Socket::new(Domain::IPV6, Type::DGRAM, None).unwrap();
    let lease = stack
        .setsc(
            &sock,
            AddressType::GracefulReplacement,
            &SetscOptions {
                bind: Some(0),
                ..SetscOptions::default()
            },
        )
        .unwrap();
    let local: SocketAddr = sock.local_addr().unwrap().as_socket().unwrap();
    assert_eq!(local.ip(), lease.address());
    assert_eq!(stack.stats().leases, 1);
    drop(lease);
    assert_eq!(
        stack.stats().leases,
        0,
        "the lease ends with its owner's handle"
    );
}

#[test]
fn a_std_listener_serves_from_its_fixed_address() {
    let (stack, _clock) = stack();
    let fd = tcp(odm_core::Family::V4);
    let lease = stack
        .setsc(
            &fd,
            AddressType::Fixed,
            &SetscOptions {
                bind: Some(0),
                ..SetscOptions::default()
            },
        )
        .unwrap();
    odm_core::socket::listen(std::os::fd::AsRawFd::as_raw_fd(&fd), 4).unwrap();
    let listener = std::net::TcpListener::from(fd);
    let addr = listener.local_addr().unwrap();
    assert_eq!(addr.ip(), lease.address());
    let _client = std::net::TcpStream::connect(addr).unwrap();
    let (_conn, _) = listener.accept().unwrap();
}

#[test]
fn a_lease_reports_what_happened_to_its_address() {
    let (stack, _clock) = stack();
    let fd = udp(odm_core::Family::V4);
    let lease = stack
        .setsc(&fd, AddressType::Nonpersistent, &SetscOptions::default())
        .unwrap();
    assert_eq!(lease.info().state, AddressState::Preferred);
    stack.host_moved().unwrap();
    assert_eq!(lease.info().state, AddressState::Gone);
    lease.release();
    assert_eq!(stack.stats().leases, 0);
}
