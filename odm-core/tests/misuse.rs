//! Every bad input gets its documented error, and nothing leaks.

mod common;

use std::os::fd::AsRawFd;
use std::path::Path;

use common::*;
use odm_core::{AddressType, Config, Family, SetscOptions};

fn no_leak(stack: &odm_core::Stack) {
    let s = stack.stats();
    assert_eq!(s.leases, 0, "no lease left behind");
}

#[test]
fn type_99_is_einval() {
    assert_eq!(AddressType::try_from(99).unwrap_err().errno(), libc::EINVAL);
    assert_eq!(
        "99".parse::<AddressType>().unwrap_err().errno(),
        libc::EINVAL
    );
}

#[test]
fn fd_minus_one_is_ebadf() {
    let (stack, _clock) = stack();
    let e = stack
        .setsc_fd(-1, AddressType::Fixed, &SetscOptions::default())
        .unwrap_err();
    assert_eq!(e.errno(), libc::EBADF);
    assert_eq!(stack.release_fd(-1).unwrap_err().errno(), libc::EBADF);
    no_leak(&stack);
}

#[test]
fn a_closed_fd_is_ebadf() {
    let (stack, _clock) = stack();
    let fd = udp(Family::V4);
    let raw = fd.as_raw_fd();
    drop(fd);
    let e = stack
        .setsc_fd(raw, AddressType::Fixed, &SetscOptions::default())
        .unwrap_err();
    assert_eq!(e.errno(), libc::EBADF);
    no_leak(&stack);
}

#[test]
fn a_file_is_not_a_socket_ebadf() {
    let (stack, _clock) = stack();
    let f = std::fs::File::open("/proc/self/stat").unwrap();
    let e = stack
        .setsc_fd(f.as_raw_fd(), AddressType::Fixed, &SetscOptions::default())
        .unwrap_err();
    assert_eq!(e.errno(), libc::EBADF);
}

#[test]
fn a_socket_of_the_wrong_family_is_eafnosupport() {
    let (stack, _clock) = stack();
    let (a, _b) = std::os::unix::net::UnixDatagram::pair().unwrap();
    let e = stack
        .setsc(&a, AddressType::SessionLasting, &SetscOptions::default())
        .unwrap_err();
    assert_eq!(e.errno(), libc::EAFNOSUPPORT);
    no_leak(&stack);
    assert_eq!(stack.stats().network_requests, 0);
}

#[test]
fn releasing_a_socket_that_never_had_a_lease_is_einval() {
    let (stack, _clock) = stack();
    let fd = udp(Family::V4);
    assert_eq!(
        stack.release_fd(fd.as_raw_fd()).unwrap_err().errno(),
        libc::EINVAL
    );
}

#[test]
fn releasing_twice_is_einval_the_second_time() {
    let (stack, _clock) = stack();
    let fd = udp(Family::V4);
    let info = stack
        .setsc_fd(fd.as_raw_fd(), AddressType::Fixed, &SetscOptions::default())
        .unwrap();
    stack.release_fd(fd.as_raw_fd()).unwrap();
    assert_eq!(
        stack.release_fd(fd.as_raw_fd()).unwrap_err().errno(),
        libc::EINVAL
    );
    assert_eq!(stack.release(info.id).unwrap_err().errno(), libc::EINVAL);
    no_leak(&stack);
}

#[test]
fn a_nonblocking_request_cannot_return_a_rust_lease() {
    let (stack, _clock) = stack();
    let fd = udp(Family::V4);
    let opts = SetscOptions {
        nonblocking: true,
        ..SetscOptions::default()
    };
    assert_eq!(
        stack
            .setsc(&fd, AddressType::Fixed, &opts)
            .unwrap_err()
            .errno(),
        libc::EINVAL
    );
    no_leak(&stack);
}

#[test]
fn a_bind_that_fails_returns_its_errno_and_keeps_no_lease() {
    let (stack, _clock) = stack();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let e = stack
        .setsc(
            &sock,
            AddressType::Nonpersistent,
            &SetscOptions {
                bind: Some(0),
                ..SetscOptions::default()
            },
        )
        .unwrap_err();
    assert_eq!(
        e.errno(),
        libc::EINVAL,
        "already bound: the kernel's EINVAL"
    );
    no_leak(&stack);
}

#[test]
fn a_bad_config_builds_nothing() {
    let dir = std::env::temp_dir().join(format!("odm-misuse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("odm.toml");
    std::fs::write(
        &path,
        "[network]\nrequest_timeout = \"30s\"\n\n[pool.fixed]\nrelease = \"sometimes\"\n",
    )
    .unwrap();
    let e = Config::from_file(&path).unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL);
    assert_eq!(
        e.to_string(),
        format!(
            "{}:5: unknown release rule \"sometimes\" (expected \"on-last-close\", \"linger\" or \"never\")",
            path.display()
        )
    );
    assert!(
        Config::from_file(Path::new(&dir)).is_err(),
        "a directory is not a config file"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
