//! Property tests: random sequences of setsc / release / close / move / clock advance on one
//! stack, with the stack's invariants checked after every step.

mod common;

use std::collections::HashSet;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use common::*;
use odm_core::{AddressState, AddressType, Family, PoolConfig, SetscOptions, Stack};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Setsc {
        slot: usize,
        t: usize,
        v6: bool,
        fresh: bool,
    },
    Release {
        slot: usize,
    },
    Close {
        slot: usize,
    },
    Move,
    Advance {
        secs: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..12usize, 0..5usize, any::<bool>(), proptest::bool::weighted(0.2))
            .prop_map(|(slot, t, v6, fresh)| Op::Setsc { slot, t, v6, fresh }),
        2 => (0..12usize).prop_map(|slot| Op::Release { slot }),
        2 => (0..12usize).prop_map(|slot| Op::Close { slot }),
        1 => Just(Op::Move),
        3 => (1..900u64).prop_map(|secs| Op::Advance { secs }),
    ]
}

/// The type an address of the sim network belongs to: 127.T.x.x or fd6f:646d:T::.
fn type_of(a: IpAddr) -> u8 {
    match a {
        IpAddr::V4(a) => a.octets()[1],
        IpAddr::V6(a) => a.segments()[2] as u8,
    }
}

const BOOT: u32 = 1;

fn test_stack() -> (Stack, odm_core::ManualClock) {
    let (b, clock) = builder(instant_sim());
    let b = b
        .pool(
            AddressType::Fixed,
            PoolConfig {
                boot: BOOT,
                ..PoolConfig::default_for(AddressType::Fixed)
            },
        )
        .pool(
            AddressType::Nonpersistent,
            PoolConfig {
                max_age: Some(Duration::from_secs(600)),
                ..PoolConfig::default_for(AddressType::Nonpersistent)
            },
        );
    (b.build().unwrap(), clock)
}

fn check(stack: &Stack, sockets: &[Option<(OwnedFd, AddressType)>]) -> Result<(), TestCaseError> {
    let addresses = stack.addresses();
    let pooled: HashSet<IpAddr> = addresses.iter().map(|a| a.address).collect();
    let mut live = 0;
    for (fd, t) in sockets.iter().flatten() {
        let Some(info) = stack.lease_of_fd(fd.as_raw_fd()) else {
            continue;
        };
        prop_assert_eq!(
            info.address_type,
            *t,
            "a lease's address is of the type asked for"
        );
        prop_assert_eq!(type_of(info.address), t.value());
        if info.state != AddressState::Gone {
            live += 1;
            prop_assert!(
                pooled.contains(&info.address),
                "a live lease's address is in the pool"
            );
        }
    }
    if let Err(broken) = stack.check_invariants() {
        return Err(TestCaseError::fail(broken));
    }
    let stats = stack.stats();
    prop_assert_eq!(stats.leases, live, "lease count equals the live leases");
    let held: u64 = addresses.iter().map(|a| u64::from(a.leases)).sum();
    prop_assert_eq!(held, live, "per-address lease counts add up");
    for a in &addresses {
        prop_assert!(
            a.state != AddressState::Gone,
            "no gone address stays in the pool"
        );
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (stack, clock) = test_stack();
    let mut sockets: Vec<Option<(OwnedFd, AddressType)>> = (0..12).map(|_| None).collect();
    for op in ops {
        match op {
            Op::Setsc { slot, t, v6, fresh } => {
                if sockets[slot].take().is_some() {
                    stack.tick(); // the slot's old socket is closed without a release
                }
                let t = AddressType::ALL[t];
                let fd = udp(if v6 { Family::V6 } else { Family::V4 });
                let opts = SetscOptions {
                    fresh,
                    ..SetscOptions::default()
                };
                let info = stack.setsc_fd(fd.as_raw_fd(), t, &opts);
                let info = info.map_err(|e| TestCaseError::fail(format!("setsc {t}: {e}")))?;
                if t == AddressType::Unspecified {
                    prop_assert!(info.address.is_unspecified());
                    sockets[slot] = None;
                } else {
                    prop_assert_eq!(
                        info.state,
                        AddressState::Preferred,
                        "never a deprecated or gone address to a new socket"
                    );
                    let now = stack.clock().now();
                    let pooled = stack
                        .addresses()
                        .into_iter()
                        .find(|a| a.address == info.address)
                        .unwrap();
                    prop_assert!(pooled.preferred_until > now);
                    sockets[slot] = Some((fd, t));
                }
            }
            Op::Release { slot } => {
                if let Some((fd, _)) = &sockets[slot] {
                    let _ = stack.release_fd(fd.as_raw_fd());
                    sockets[slot] = None;
                }
            }
            Op::Close { slot } => {
                sockets[slot] = None; // closed without a release: the stack must notice
                stack.tick();
            }
            Op::Move => {
                stack.host_moved().unwrap();
            }
            Op::Advance { secs } => {
                clock.advance(Duration::from_secs(secs));
                stack.tick();
            }
        }
        check(&stack, &sockets)?;
    }
    // Everything released, linger passed: back to the boot-time set, all else given back.
    sockets.clear();
    stack.tick();
    clock.advance(Duration::from_secs(3600));
    stack.tick();
    let boot = 2 * BOOT as u64;
    prop_assert_eq!(stack.stats().leases, 0);
    prop_assert_eq!(stack.stats().addresses, boot);
    prop_assert!(stack.addresses().iter().all(|a| a.boot));
    let sim = stack.sim().unwrap().stats();
    prop_assert_eq!(
        sim.outstanding,
        boot,
        "every other grant went back to the network"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn invariants_hold_after_every_step(ops in proptest::collection::vec(op(), 1..80)) {
        run(ops)?;
    }
}
