//! Many threads on one stack at once: the invariants hold and nothing leaks.

mod common;

use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use common::*;
use odm_core::provider::sim::SimConfig;
use odm_core::{AddressType, Family, SetscOptions, Stack};

/// xorshift: each thread's own reproducible operation sequence.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn type_of(a: IpAddr) -> u8 {
    match a {
        IpAddr::V4(a) => a.octets()[1],
        IpAddr::V6(a) => a.segments()[2] as u8,
    }
}

#[test]
fn eight_threads_of_ten_thousand_random_operations_keep_the_invariants() {
    // The real clock and the maintenance thread run too: renewals, sweeps and closed-socket
    // checks race with the requests.
    let stack = Stack::builder()
        .sim(SimConfig {
            latency: Duration::ZERO,
            ..SimConfig::default()
        })
        .build()
        .unwrap();
    let threads: Vec<_> = (0..8u64)
        .map(|n| {
            let stack = stack.clone();
            std::thread::spawn(move || {
                let mut rng = 0x2545_f491_4f6c_dd1d ^ (n + 1);
                let mut held: Vec<(OwnedFd, AddressType)> = Vec::new();
                for _ in 0..10_000 {
                    match next(&mut rng) % 10 {
                        0..=4 => {
                            let t = AddressType::ON_DEMAND[(next(&mut rng) % 4) as usize];
                            let family = if next(&mut rng) % 2 == 0 {
                                Family::V4
                            } else {
                                Family::V6
                            };
                            let fresh = next(&mut rng) % 20 == 0;
                            let fd = udp(family);
                            match stack.setsc_fd(
                                fd.as_raw_fd(),
                                t,
                                &SetscOptions {
                                    fresh,
                                    ..SetscOptions::default()
                                },
                            ) {
                                Ok(info) => {
                                    assert_eq!(type_of(info.address), t.value());
                                    held.push((fd, t));
                                }
                                // The network may run out of prefixes: the documented refusal.
                                Err(e) => assert_eq!(e.errno(), libc::EADDRNOTAVAIL, "{e}"),
                            }
                        }
                        5..=6 if !held.is_empty() => {
                            let i = (next(&mut rng) as usize) % held.len();
                            let (fd, _) = held.swap_remove(i);
                            stack.release_fd(fd.as_raw_fd()).unwrap();
                        }
                        7 if !held.is_empty() => {
                            let i = (next(&mut rng) as usize) % held.len();
                            drop(held.swap_remove(i)); // closed without a release
                        }
                        8 if n == 0 && next(&mut rng) % 50 == 0 => {
                            stack.host_moved().unwrap();
                        }
                        _ => {
                            if next(&mut rng) % 16 == 0 {
                                stack.check_invariants().unwrap();
                            }
                            for (fd, t) in &held {
                                if let Some(info) = stack.lease_of_fd(fd.as_raw_fd()) {
                                    assert_eq!(info.address_type, *t);
                                }
                            }
                        }
                    }
                }
                held.len()
            })
        })
        .collect();
    let still_held: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    // Every socket is closed now (dropped with its thread); the stack notices all of them.
    stack.tick();
    let s = stack.stats();
    assert_eq!(
        s.leases, 0,
        "{still_held} sockets were closed without a release; none leaked"
    );
    assert!(stack.addresses().iter().all(|a| a.leases == 0));
    stack.check_invariants().unwrap();
    assert!(s.setsc_calls > 30_000);
}

#[test]
fn setsc_and_release_from_many_threads_on_their_own_sockets() {
    let (stack, _clock) = stack();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let stack = stack.clone();
            std::thread::spawn(move || {
                let t = AddressType::ON_DEMAND[i % 4];
                // One long-lived socket per thread keeps each address in use, so the short
                // ones are pool hits whatever the type's release rule.
                let anchor = udp(Family::V4);
                let _held = stack.setsc(&anchor, t, &SetscOptions::default()).unwrap();
                for _ in 0..2_000 {
                    let fd = udp(Family::V4);
                    let lease = stack.setsc(&fd, t, &SetscOptions::default()).unwrap();
                    assert_eq!(lease.address_type(), t);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(stack.stats().leases, 0);
    assert!(
        stack.stats().network_requests <= 8,
        "pool hits, not a request per call"
    );
}
