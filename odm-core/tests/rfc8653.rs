//! One test per RFC 8653 rule the stack implements, named for the rule and its section.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use AddressType::*;
use common::*;
use odm_core::policy::{Policy, Rule};
use odm_core::provider::sim::SimConfig;
use odm_core::{
    AddressState, AddressType, Clock, EventKind, Family, PoolConfig, ReleaseRule, SetscOptions,
};

/// A socket that stays open for the rest of the test process.
fn keep(fd: std::os::fd::OwnedFd) -> &'static std::os::fd::OwnedFd {
    Box::leak(Box::new(fd))
}

fn bind() -> SetscOptions {
    SetscOptions {
        bind: Some(0),
        ..SetscOptions::default()
    }
}

#[test]
fn rfc8653_s3_1_setsc_serves_each_type_from_its_own_range_and_the_socket_carries_traffic() {
    let (stack, _clock) = stack();
    for t in AddressType::ON_DEMAND {
        let fd = udp(Family::V4);
        let lease = stack.setsc(&fd, t, &bind()).unwrap();
        assert_eq!(lease.address_type(), t);
        let IpAddr::V4(a) = lease.address() else {
            panic!("an IPv4 socket gets an IPv4 address")
        };
        assert_eq!(
            a.octets()[..2],
            [127, t.value()],
            "{t} comes from 127.{}.0.0/16",
            t.value()
        );
        let sock = udp_socket(fd);
        assert_eq!(
            sock.local_addr().unwrap().ip(),
            lease.address(),
            "bound to the leased address"
        );
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.send_to(b"ping", peer.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 4];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(
            (&buf[..n], from.ip()),
            (&b"ping"[..], lease.address()),
            "traffic leaves from it"
        );

        let fd6 = udp(Family::V6);
        let lease6 = stack.setsc(&fd6, t, &bind()).unwrap();
        let IpAddr::V6(a6) = lease6.address() else {
            panic!("an IPv6 socket gets an IPv6 address")
        };
        assert_eq!(a6.segments()[..3], [0xfd6f, 0x646d, t.value() as u16]);
        assert_eq!(udp_socket(fd6).local_addr().unwrap().ip(), lease6.address());
    }
}

#[test]
fn rfc8653_s3_1_setsc_without_bind_leaves_the_socket_to_the_application() {
    let (stack, _clock) = stack();
    let fd = udp(Family::V4);
    let info = stack
        .setsc_fd(fd.as_raw_fd(), Fixed, &SetscOptions::default())
        .unwrap();
    let sock = udp_socket(fd);
    assert_eq!(
        sock.local_addr().unwrap().ip(),
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "not bound by setsc()"
    );
    assert_eq!(
        stack.lease_of_fd(sock.as_raw_fd()).unwrap().address,
        info.address
    );
}

#[test]
fn rfc8653_s4_2_unspecified_makes_no_on_demand_request() {
    let (stack, _clock) = stack();
    let fd = udp(Family::V4);
    let lease = stack.setsc(&fd, Unspecified, &bind()).unwrap();
    assert_eq!(lease.address_type(), Unspecified);
    assert!(
        lease.address().is_unspecified(),
        "the kernel picks the source, as for any legacy socket"
    );
    let s = stack.stats();
    assert_eq!((s.legacy, s.network_requests, s.leases), (1, 0, 0));
    assert_eq!(stack.sim().unwrap().stats().requests, 0);
}

#[test]
fn rfc8653_s4_2_policy_may_give_legacy_requests_a_default_type() {
    let (b, _clock) = builder(instant_sim());
    let stack = b
        .policy(Policy {
            default_type: Some(SessionLasting),
            rules: vec![],
        })
        .build()
        .unwrap();
    let fd = udp(Family::V4);
    let lease = stack
        .setsc(&fd, Unspecified, &SetscOptions::default())
        .unwrap();
    assert_eq!(lease.address_type(), SessionLasting);
}

#[test]
fn rfc8653_s3_4_policy_refuses_types_not_allowed_with_eacces() {
    let (b, _clock) = builder(instant_sim());
    let rule = Rule {
        app: "test".into(),
        allow: Some(vec![Nonpersistent]),
        ..Rule::default()
    };
    let stack = b
        .policy(Policy {
            default_type: None,
            rules: vec![rule],
        })
        .build()
        .unwrap();
    let e = stack
        .setsc(keep(udp(Family::V4)), Fixed, &SetscOptions::default())
        .unwrap_err();
    assert_eq!(e.errno(), libc::EACCES);
    assert!(
        stack
            .setsc(
                keep(udp(Family::V4)),
                Nonpersistent,
                &SetscOptions::default()
            )
            .is_ok()
    );
    assert_eq!(
        stack.stats().network_requests,
        1,
        "a refused request never reaches the network"
    );
}

#[test]
fn rfc8653_s3_4_quota_refuses_the_lease_past_the_limit_with_edquot() {
    let (b, _clock) = builder(instant_sim());
    let rule = Rule {
        app: "*".into(),
        allow: None,
        quotas: [Some(2), None, None, None],
    };
    let stack = b
        .policy(Policy {
            default_type: None,
            rules: vec![rule],
        })
        .build()
        .unwrap();
    let (a, c) = (udp(Family::V4), udp(Family::V4));
    let first = stack.setsc(&a, Fixed, &SetscOptions::default()).unwrap();
    let _second = stack.setsc(&c, Fixed, &SetscOptions::default()).unwrap();
    let e = stack
        .setsc(keep(udp(Family::V4)), Fixed, &SetscOptions::default())
        .unwrap_err();
    assert_eq!(e.errno(), libc::EDQUOT);
    drop(first);
    assert!(
        stack
            .setsc(keep(udp(Family::V4)), Fixed, &SetscOptions::default())
            .is_ok(),
        "a released lease frees quota"
    );
}

#[test]
fn rfc8653_s3_4_pool_hit_shares_a_preferred_address_without_asking_the_network() {
    let (stack, _clock) = stack();
    let (a, b) = (udp(Family::V4), udp(Family::V4));
    let la = stack
        .setsc(&a, SessionLasting, &SetscOptions::default())
        .unwrap();
    let lb = stack
        .setsc(&b, SessionLasting, &SetscOptions::default())
        .unwrap();
    assert_eq!(la.address(), lb.address());
    let s = stack.stats();
    assert_eq!(
        (s.setsc_calls, s.pool_hits, s.network_requests, s.leases),
        (2, 1, 1, 2)
    );
}

#[test]
fn rfc8653_s3_4_fresh_request_gets_its_own_address_and_network_request() {
    let (stack, _clock) = stack();
    let (a, b) = (udp(Family::V4), udp(Family::V4));
    let la = stack
        .setsc(&a, Nonpersistent, &SetscOptions::default())
        .unwrap();
    let lb = stack
        .setsc(
            &b,
            Nonpersistent,
            &SetscOptions {
                fresh: true,
                ..SetscOptions::default()
            },
        )
        .unwrap();
    assert_ne!(la.address(), lb.address());
    assert_eq!(stack.sim().unwrap().stats().requests, 2);
}

#[test]
fn rfc8653_s3_4_concurrent_misses_of_one_type_share_one_network_request() {
    let (b, clock) = builder(SimConfig {
        latency: Duration::from_millis(5),
        ..SimConfig::default()
    });
    let stack = b.build().unwrap();
    const N: usize = 1000;
    let threads: Vec<_> = (0..N)
        .map(|_| {
            let stack = stack.clone();
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    let fd = udp(Family::V4);
                    stack
                        .setsc_fd(
                            fd.as_raw_fd(),
                            GracefulReplacement,
                            &SetscOptions::default(),
                        )
                        .map(|i| (i.address, fd))
                })
                .unwrap()
        })
        .collect();
    eventually("every request waits on the network", || {
        stack.stats().misses == N as u64
    });
    clock.advance(Duration::from_millis(5));
    let addresses: Vec<IpAddr> = threads
        .into_iter()
        .map(|t| t.join().unwrap().unwrap().0)
        .collect();
    assert!(
        addresses.iter().all(|a| *a == addresses[0]),
        "every waiter gets the same outcome"
    );
    assert_eq!(
        stack.sim().unwrap().stats().requests,
        1,
        "exactly one network request"
    );
    assert_eq!(stack.stats().network_requests, 1);
}

#[test]
fn rfc8653_s3_1_no_answer_in_time_fails_every_waiter_with_etimedout() {
    let (b, clock) = builder(SimConfig {
        latency: Duration::from_secs(60),
        ..SimConfig::default()
    });
    let stack = b.request_timeout(Duration::from_secs(2)).build().unwrap();
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let stack = stack.clone();
            std::thread::spawn(move || {
                let fd = udp(Family::V6);
                stack
                    .setsc_fd(fd.as_raw_fd(), Fixed, &SetscOptions::default())
                    .map(drop)
            })
        })
        .collect();
    eventually("the three requests wait", || stack.stats().misses == 3);
    clock.advance(Duration::from_secs(2));
    for w in waiters {
        assert_eq!(w.join().unwrap().unwrap_err().errno(), libc::ETIMEDOUT);
    }
    let s = stack.stats();
    assert_eq!(
        (s.network_requests, s.leases, s.addresses),
        (1, 0, 0),
        "nothing left behind"
    );
}

#[test]
fn rfc8653_s3_1_a_network_refusal_is_eaddrnotavail() {
    let mut sim = instant_sim();
    sim.types[1].as_mut().unwrap().refuse = true;
    let (b, _clock) = builder(sim);
    let stack = b.build().unwrap();
    let e = stack
        .setsc(
            keep(udp(Family::V4)),
            SessionLasting,
            &SetscOptions::default(),
        )
        .unwrap_err();
    assert_eq!(e.errno(), libc::EADDRNOTAVAIL);
    assert_eq!(stack.stats().leases, 0);
}

#[test]
fn rfc8653_s4_1_a_network_without_on_demand_support_is_eopnotsupp() {
    let (b, _clock) = builder(SimConfig {
        on_demand: false,
        ..instant_sim()
    });
    let stack = b.build().unwrap();
    let e = stack
        .setsc(keep(udp(Family::V4)), Fixed, &SetscOptions::default())
        .unwrap_err();
    assert_eq!(e.errno(), libc::EOPNOTSUPP);
    // Legacy sockets still work on such a network.
    assert!(
        stack
            .setsc(keep(udp(Family::V4)), Unspecified, &SetscOptions::default())
            .is_ok()
    );
}

fn with_release(rule: ReleaseRule) -> (odm_core::Stack, odm_core::ManualClock) {
    let (b, clock) = builder(instant_sim());
    let pool = PoolConfig {
        release: rule,
        ..PoolConfig::default_for(SessionLasting)
    };
    (b.pool(SessionLasting, pool).build().unwrap(), clock)
}

#[test]
fn rfc8653_s3_4_release_on_last_close_gives_the_address_back_at_once() {
    let (stack, _clock) = with_release(ReleaseRule::OnLastClose);
    let (a, b) = (udp(Family::V4), udp(Family::V4));
    let la = stack
        .setsc(&a, SessionLasting, &SetscOptions::default())
        .unwrap();
    let lb = stack
        .setsc(&b, SessionLasting, &SetscOptions::default())
        .unwrap();
    drop(la);
    assert_eq!(
        stack.sim().unwrap().stats().outstanding,
        1,
        "still held by the other socket"
    );
    drop(lb);
    assert_eq!(stack.sim().unwrap().stats().outstanding, 0);
    assert_eq!(stack.stats().addresses, 0);
}

#[test]
fn rfc8653_s3_4_release_linger_keeps_the_address_for_later_sockets() {
    let (stack, clock) = with_release(ReleaseRule::Linger(Duration::from_secs(30)));
    let first = stack
        .setsc(
            keep(udp(Family::V4)),
            SessionLasting,
            &SetscOptions::default(),
        )
        .unwrap()
        .address();
    clock.advance(Duration::from_secs(29));
    stack.tick();
    let again = stack
        .setsc(
            keep(udp(Family::V4)),
            SessionLasting,
            &SetscOptions::default(),
        )
        .unwrap();
    assert_eq!(again.address(), first, "reused within the linger");
    drop(again);
    clock.advance(Duration::from_secs(30));
    stack.tick();
    assert_eq!(
        stack.sim().unwrap().stats().outstanding,
        0,
        "released after the linger"
    );
    assert_eq!(stack.stats().network_requests, 1);
}

#[test]
fn rfc8653_s3_4_release_never_keeps_the_address_idle() {
    let (stack, clock) = with_release(ReleaseRule::Never);
    drop(
        stack
            .setsc(
                keep(udp(Family::V4)),
                SessionLasting,
                &SetscOptions::default(),
            )
            .unwrap(),
    );
    for _ in 0..10 {
        clock.advance(Duration::from_secs(3600));
        stack.tick();
    }
    assert_eq!(stack.stats().addresses, 1, "kept, and renewed, though idle");
    assert_eq!(stack.addresses()[0].state, AddressState::Preferred);
}

#[test]
fn rfc8653_s3_4_boot_time_set_is_acquired_at_start_and_served_without_a_request() {
    let (b, _clock) = builder(instant_sim());
    let stack = b
        .pool(
            Fixed,
            PoolConfig {
                boot: 2,
                ..PoolConfig::default_for(Fixed)
            },
        )
        .build()
        .unwrap();
    assert_eq!(stack.stats().addresses, 4, "two per family");
    assert!(
        stack
            .addresses()
            .iter()
            .all(|a| a.boot && a.address_type == Fixed)
    );
    let before = stack.sim().unwrap().stats().requests;
    let lease = stack
        .setsc(keep(udp(Family::V4)), Fixed, &SetscOptions::default())
        .unwrap();
    assert_eq!(stack.sim().unwrap().stats().requests, before, "a pool hit");
    drop(lease);
    stack.tick();
    assert_eq!(stack.stats().addresses, 4, "the boot-time set stays");
}

#[test]
fn rfc8653_s5_rotation_gives_new_requests_a_new_address_and_keeps_existing_sockets() {
    let (b, clock) = builder(instant_sim());
    let pool = PoolConfig {
        max_age: Some(Duration::from_secs(60)),
        ..PoolConfig::default_for(Nonpersistent)
    };
    let stack = b.pool(Nonpersistent, pool).build().unwrap();
    let old = stack
        .setsc(
            keep(udp(Family::V4)),
            Nonpersistent,
            &SetscOptions::default(),
        )
        .unwrap();
    clock.advance(Duration::from_secs(61));
    stack.tick();
    let new = stack
        .setsc(
            keep(udp(Family::V4)),
            Nonpersistent,
            &SetscOptions::default(),
        )
        .unwrap();
    assert_ne!(new.address(), old.address(), "rotated");
    assert_eq!(
        old.info().state,
        AddressState::Preferred,
        "the existing socket keeps its address"
    );
    drop(old);
    stack.tick();
    assert_eq!(
        stack.stats().addresses,
        1,
        "the rotated address leaves with its last socket"
    );
}

#[test]
fn rfc8653_s3_2_held_fixed_and_session_lasting_addresses_never_expire_under_their_sockets() {
    let (stack, clock) = stack();
    let fixed = stack
        .setsc(keep(udp(Family::V4)), Fixed, &SetscOptions::default())
        .unwrap();
    let session = stack
        .setsc(
            keep(udp(Family::V6)),
            SessionLasting,
            &SetscOptions::default(),
        )
        .unwrap();
    // Four days in one-minute steps: far past every lifetime the network gave.
    for _ in 0..(4 * 24 * 60) {
        clock.advance(Duration::from_secs(60));
        stack.tick();
    }
    assert_eq!(fixed.info().state, AddressState::Preferred);
    assert_eq!(session.info().state, AddressState::Preferred);
    assert!(stack.stats().renewals > 4);
    assert!(stack.events().is_empty(), "nothing to report");
}

#[test]
fn a_held_address_the_network_stops_renewing_is_deprecated_then_lost() {
    let clock = odm_core::ManualClock::new(START);
    let net = TestNet::new(instant_sim(), &clock);
    let stack = odm_core::Stack::builder()
        .clock(clock.clone())
        .provider(net.clone())
        .build()
        .unwrap();
    let fd = udp(Family::V4);
    let info = stack
        .setsc_fd(fd.as_raw_fd(), SessionLasting, &SetscOptions::default())
        .unwrap();
    net.stop_renewing();
    // session-lasting: preferred 1 h, valid 2 h, renew at 30 min.
    for _ in 0..60 {
        clock.advance(Duration::from_secs(60));
        stack.tick();
    }
    let ev = stack.events().try_next().expect("a deprecation event");
    assert_eq!(
        (ev.kind, ev.address),
        (EventKind::AddressDeprecated, Some(info.address))
    );
    assert_eq!(
        ev.deadline,
        Some(odm_core::Timestamp::from_duration(
            START + Duration::from_secs(7200)
        ))
    );
    assert_eq!(
        stack.lease_of_fd(fd.as_raw_fd()).unwrap().state,
        AddressState::Deprecated
    );
    for _ in 0..60 {
        clock.advance(Duration::from_secs(60));
        stack.tick();
    }
    let ev = stack.events().try_next().expect("a loss event");
    assert_eq!(
        (ev.kind, ev.fd),
        (EventKind::AddressLost, Some(fd.as_raw_fd()))
    );
    assert_eq!(
        stack.lease_of_fd(fd.as_raw_fd()).unwrap().state,
        AddressState::Gone
    );
    assert_eq!(stack.stats().leases, 0, "a lost lease is not live");
    assert!(
        stack.release_fd(fd.as_raw_fd()).is_ok(),
        "and the application may still release it"
    );
}

#[test]
fn rfc8653_s3_2_a_move_keeps_anchored_loses_nonpersistent_and_deprecates_graceful() {
    let (stack, clock) = stack();
    let fds: Vec<_> = AddressType::ON_DEMAND
        .iter()
        .map(|_| udp(Family::V4))
        .collect();
    let infos: Vec<_> = AddressType::ON_DEMAND
        .iter()
        .zip(&fds)
        .map(|(t, fd)| {
            stack
                .setsc_fd(fd.as_raw_fd(), *t, &SetscOptions::default())
                .unwrap()
        })
        .collect();
    let report = stack.host_moved().unwrap();
    assert_eq!((report.gateway, report.lost, report.deprecated), (2, 1, 1));
    let events: Vec<_> = stack.events().collect();
    assert_eq!(events.len(), 2);
    let lost = &events[0];
    assert_eq!(
        (lost.kind, lost.fd, lost.address),
        (
            EventKind::AddressLost,
            Some(fds[2].as_raw_fd()),
            Some(infos[2].address)
        )
    );
    let dep = &events[1];
    assert_eq!(dep.kind, EventKind::AddressDeprecated);
    assert_eq!(dep.fd, Some(fds[3].as_raw_fd()));
    assert_eq!(dep.deadline, Some(clock.now() + report.grace));
    let replacement = dep.replacement.expect("a replacement address");
    assert_ne!(replacement, infos[3].address);
    assert_eq!(report.replacements, [replacement]);
    // Fixed and session-lasting: untouched.
    for i in [0, 1] {
        assert_eq!(
            stack.lease_of_fd(fds[i].as_raw_fd()).unwrap().state,
            AddressState::Preferred
        );
    }
    // The graceful socket still holds its address until the deadline, and a new socket of
    // that type gets the replacement.
    assert_eq!(
        stack.lease_of_fd(fds[3].as_raw_fd()).unwrap().state,
        AddressState::Deprecated
    );
    let migrated = stack
        .setsc(
            keep(udp(Family::V4)),
            GracefulReplacement,
            &SetscOptions::default(),
        )
        .unwrap();
    assert_eq!(migrated.address(), replacement);
    // A new nonpersistent socket gets an address from the new gateway.
    let np = stack
        .setsc(
            keep(udp(Family::V4)),
            Nonpersistent,
            &SetscOptions::default(),
        )
        .unwrap();
    assert!(matches!(np.address(), IpAddr::V4(a) if a.octets()[2] == 2));
    // At the deadline the old graceful address is gone and its socket hears of it.
    clock.advance(report.grace);
    stack.tick();
    let ev: Vec<_> = stack.events().collect();
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0].kind, ev[0].address),
        (EventKind::AddressLost, Some(infos[3].address))
    );
}

#[test]
fn a_socket_closed_without_a_release_loses_its_lease_at_the_next_tick() {
    let (stack, _clock) = with_release(ReleaseRule::OnLastClose);
    let fd = udp(Family::V4);
    let info = stack
        .setsc_fd(fd.as_raw_fd(), SessionLasting, &SetscOptions::default())
        .unwrap();
    assert_eq!(stack.stats().leases, 1);
    drop(fd);
    stack.tick();
    assert_eq!(stack.stats().leases, 0);
    assert!(stack.lease_info(info.id).is_none());
    assert_eq!(
        stack.sim().unwrap().stats().outstanding,
        0,
        "its address went back to the network"
    );
}

#[test]
fn a_reused_fd_number_does_not_inherit_the_closed_sockets_lease() {
    let (stack, _clock) = stack();
    let fd = udp(Family::V4);
    let raw = fd.as_raw_fd();
    let old = stack
        .setsc_fd(raw, Fixed, &SetscOptions::default())
        .unwrap();
    drop(fd);
    let again = udp(Family::V4);
    if again.as_raw_fd() == raw {
        assert_eq!(
            stack.release_fd(raw).unwrap_err().errno(),
            libc::EINVAL,
            "the new socket has no lease"
        );
        assert!(stack.lease_info(old.id).is_none(), "the stale lease ended");
    }
}

#[test]
fn a_socket_closed_mid_request_ends_its_pending_lease_and_leaks_nothing() {
    let (b, clock) = builder(SimConfig {
        latency: Duration::from_secs(1),
        ..SimConfig::default()
    });
    let stack = b
        .pool(
            Nonpersistent,
            PoolConfig {
                release: ReleaseRule::OnLastClose,
                ..PoolConfig::default_for(Nonpersistent)
            },
        )
        .build()
        .unwrap();
    let fd = udp(Family::V4);
    let e = stack
        .setsc_fd(
            fd.as_raw_fd(),
            Nonpersistent,
            &SetscOptions {
                nonblocking: true,
                ..SetscOptions::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.errno(), libc::EINPROGRESS);
    drop(fd);
    stack.tick();
    assert_eq!(stack.stats().leases, 0);
    clock.advance(Duration::from_secs(1));
    eventually("the request completes", || stack.requests_in_flight() == 0);
    assert_eq!(
        stack.stats().addresses,
        0,
        "the grant nobody waits for goes back"
    );
    assert_eq!(stack.sim().unwrap().stats().outstanding, 0);
}

#[test]
fn a_nonblocking_setsc_completes_as_an_event_with_the_socket_bound() {
    let (b, clock) = builder(SimConfig {
        latency: Duration::from_millis(10),
        ..SimConfig::default()
    });
    let stack = b.build().unwrap();
    let fd = udp(Family::V4);
    let opts = SetscOptions {
        nonblocking: true,
        bind: Some(0),
        ..SetscOptions::default()
    };
    assert_eq!(
        stack
            .setsc_fd(fd.as_raw_fd(), Fixed, &opts)
            .unwrap_err()
            .errno(),
        libc::EINPROGRESS
    );
    assert!(stack.events().is_empty());
    clock.advance(Duration::from_millis(10));
    eventually("the completion event", || !stack.events().is_empty());
    let ev = stack.events().try_next().unwrap();
    assert_eq!(
        (ev.kind, ev.fd, ev.error.is_none()),
        (EventKind::RequestComplete, Some(fd.as_raw_fd()), true)
    );
    assert_eq!(
        udp_socket(fd).local_addr().unwrap().ip(),
        ev.address.unwrap()
    );
}

#[test]
fn a_stack_gives_every_grant_back_when_it_is_dropped() {
    let clock = odm_core::ManualClock::new(START);
    let net = TestNet::new(instant_sim(), &clock);
    let stack = odm_core::Stack::builder()
        .clock(clock.clone())
        .provider(net.clone())
        .build()
        .unwrap();
    let fds: Vec<_> = (0..3).map(|_| udp(Family::V4)).collect();
    for (fd, t) in fds.iter().zip([Fixed, Nonpersistent, GracefulReplacement]) {
        stack
            .setsc_fd(fd.as_raw_fd(), t, &SetscOptions::default())
            .unwrap();
    }
    assert_eq!(net.sim.stats().outstanding, 3);
    drop(stack);
    assert_eq!(net.sim.stats().outstanding, 0);
}

#[test]
fn rfc8653_s3_2_a_nonpersistent_grant_overtaken_by_a_move_is_not_handed_out() {
    let clock = odm_core::ManualClock::new(START);
    let net = TestNet::new(instant_sim(), &clock);
    let (granted, go) = net.pause_next_grant();
    let stack = odm_core::Stack::builder()
        .clock(clock.clone())
        .provider(net.clone())
        .build()
        .unwrap();
    let requester = {
        let stack = stack.clone();
        std::thread::spawn(move || {
            let fd = udp(Family::V4);
            stack
                .setsc_fd(fd.as_raw_fd(), Nonpersistent, &SetscOptions::default())
                .map(|i| (i.address, fd))
        })
    };
    let first = granted.recv().unwrap();
    assert_eq!(
        first.prefix,
        IpAddr::V4(Ipv4Addr::new(127, 3, 1, 1)),
        "granted by gateway 1"
    );
    stack.host_moved().unwrap(); // the move overtakes the grant on its way to the stack
    go.send(()).unwrap();
    let (address, _fd) = requester.join().unwrap().unwrap();
    assert_eq!(
        address,
        IpAddr::V4(Ipv4Addr::new(127, 3, 2, 1)),
        "asked again, from gateway 2"
    );
    assert_eq!(net.sim.stats().requests, 2);
    assert_eq!(
        net.sim.stats().outstanding,
        1,
        "only the good grant is held"
    );
    assert!(
        stack.events().is_empty(),
        "no socket ever held the stale address"
    );
}

#[test]
fn a_socket_closed_while_its_setsc_blocks_gets_ebadf_and_leaks_nothing() {
    let (b, clock) = builder(SimConfig {
        latency: Duration::from_secs(1),
        ..SimConfig::default()
    });
    let stack = b
        .pool(
            SessionLasting,
            PoolConfig {
                release: ReleaseRule::OnLastClose,
                ..PoolConfig::default_for(SessionLasting)
            },
        )
        .build()
        .unwrap();
    let fd = udp(Family::V6);
    let raw = fd.as_raw_fd();
    let blocked = {
        let stack = stack.clone();
        std::thread::spawn(move || stack.setsc_fd(raw, SessionLasting, &SetscOptions::default()))
    };
    eventually("the request waits on the network", || {
        stack.stats().misses == 1
    });
    drop(fd); // another thread of the application closes the socket
    stack.tick();
    clock.advance(Duration::from_secs(1));
    assert_eq!(blocked.join().unwrap().unwrap_err().errno(), libc::EBADF);
    assert_eq!(stack.stats().leases, 0);
    assert_eq!(
        stack.sim().unwrap().stats().outstanding,
        0,
        "the grant nobody holds went back"
    );
}
