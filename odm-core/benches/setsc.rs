//! The speed and memory targets of the foundation (BENCHMARKS.md has the method and results).
//!
//! Run: `cargo bench -p odm-core --bench setsc` (as root, so the fd limit can be raised for the
//! 100,000-lease case; otherwise it runs with as many as the limit allows and says so).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use odm_core::provider::sim::SimConfig;
use odm_core::socket::{Kind, new_unbound, to_sockaddr};
use odm_core::{
    AddressType, EventKind, Family, ManualClock, PoolConfig, ReleaseRule, SetscOptions, Stack,
    StackBuilder,
};

/// Counts live heap bytes, for the memory-per-lease figure.
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn udp() -> OwnedFd {
    new_unbound(Family::V4, Kind::Datagram).unwrap()
}

/// A stack on a manual clock (no maintenance thread) with an instant network.
fn quiet_stack() -> Stack {
    StackBuilder::new()
        .clock(ManualClock::new(Duration::from_secs(1)))
        .sim(SimConfig {
            latency: Duration::ZERO,
            ..SimConfig::default()
        })
        .build()
        .unwrap()
}

/// Raises the fd limit to hold `want` sockets; returns how many the limit allows.
fn fd_room(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    let target = want + 1_000;
    if lim.rlim_cur < target {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: target.max(lim.rlim_max),
        };
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            let soft = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft) };
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
            return lim.rlim_cur.saturating_sub(1_000).min(want);
        }
    }
    want
}

/// Holds `n` leases of `t` on one address pool (sockets kept open).
fn hold(stack: &Stack, t: AddressType, n: u64) -> Vec<OwnedFd> {
    (0..n)
        .map(|_| {
            let fd = udp();
            stack
                .setsc_fd(fd.as_raw_fd(), t, &SetscOptions::default())
                .unwrap();
            fd
        })
        .collect()
}

/// Pool hit without bind: setsc() on a socket whose type's address is already pooled. Each
/// call replaces the socket's previous lease, so the figure includes ending one lease.
/// 10 and 19,000 leases are held by real sockets; 100,000 real sockets exceed this machine's fd
/// limit (20,000, and no CAP_SYS_RESOURCE to raise it), so that size is measured with leases
/// held by phantom sockets: the same tables at the same size, without the kernel's sockets.
fn pool_hit(c: &mut Criterion) {
    let mut g = c.benchmark_group("setsc_pool_hit");
    let mut measure = |name: String, stack: Stack| {
        let fd = udp();
        g.bench_function(name, |b| {
            b.iter(|| {
                black_box(
                    stack
                        .setsc_fd(
                            fd.as_raw_fd(),
                            AddressType::SessionLasting,
                            &SetscOptions::default(),
                        )
                        .unwrap(),
                )
            })
        });
    };
    for held in [10u64, 19_000] {
        let room = fd_room(held);
        let stack = quiet_stack();
        let holders = hold(&stack, AddressType::SessionLasting, room);
        measure(format!("{room}_leases_held"), stack);
        drop(holders);
    }
    let stack = quiet_stack();
    stack
        .bench_hold_phantom_leases(AddressType::SessionLasting, Family::V4, 100_000)
        .unwrap();
    assert_eq!(stack.stats().leases, 100_000);
    measure("100000_phantom_leases_held".into(), stack);
    g.finish();
}

/// Times `op` on fresh, unbound sockets of `kind`: each chunk of sockets is made before the
/// clock starts and closed after it stops, and the kernel is given a moment to free them, so
/// socket creation and teardown never land in the timed part of either contender.
fn on_fresh_sockets(kind: Kind, iters: u64, mut op: impl FnMut(&OwnedFd)) -> Duration {
    const CHUNK: u64 = 500;
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(CHUNK);
        let fds: Vec<OwnedFd> = (0..n)
            .map(|_| new_unbound(Family::V4, kind).unwrap())
            .collect();
        let start = Instant::now();
        for fd in &fds {
            op(fd);
        }
        total += start.elapsed();
        drop(fds);
        std::thread::sleep(Duration::from_micros(200));
        left -= n;
    }
    total
}

/// setsc() with bind against a plain bind() of the same kind of socket (UDP and TCP), to the
/// same address, port 0; and the floor for any setsc() that checks its socket: the two
/// getsockopt() calls odm makes (SO_DOMAIN for the family, SO_COOKIE for the socket's
/// identity), then the bind.
fn setsc_bind_vs_bind(c: &mut Criterion) {
    let stack = quiet_stack();
    let holders = hold(&stack, AddressType::Nonpersistent, 1);
    let address = stack.lease_of_fd(holders[0].as_raw_fd()).unwrap().address;
    let bind = SetscOptions {
        bind: Some(0),
        ..SetscOptions::default()
    };
    let (sa, len) = to_sockaddr(SocketAddr::new(address, 0));
    let plain_bind = |fd: &OwnedFd| {
        assert_eq!(
            unsafe { libc::bind(fd.as_raw_fd(), (&raw const sa).cast(), len) },
            0
        );
    };
    for (kind, name) in [(Kind::Datagram, "udp"), (Kind::Stream, "tcp")] {
        let mut g = c.benchmark_group(format!("bind_{name}"));
        g.bench_function("setsc_with_bind", |b| {
            b.iter_custom(|iters| {
                on_fresh_sockets(kind, iters, |fd| {
                    stack
                        .setsc_fd(fd.as_raw_fd(), AddressType::Nonpersistent, &bind)
                        .unwrap();
                })
            })
        });
        g.bench_function("plain_bind", |b| {
            b.iter_custom(|iters| on_fresh_sockets(kind, iters, plain_bind))
        });
        g.bench_function("floor_domain_cookie_bind", |b| {
            b.iter_custom(|iters| {
                on_fresh_sockets(kind, iters, |fd| {
                    black_box(odm_core::socket::inspect(fd.as_raw_fd()).unwrap());
                    plain_bind(fd);
                })
            })
        });
        g.finish();
    }
}

/// 1,000 requests of one type at once against a network with 5 ms latency (real clock): the
/// time until the last of them is served, beside the time of one request alone. The requests
/// are non-blocking, so all 1,000 are outstanding together without 1,000 threads.
fn concurrent_misses(c: &mut Criterion) {
    const LATENCY: Duration = Duration::from_millis(5);
    let mut g = c.benchmark_group("misses_5ms_latency");
    g.sample_size(20);
    let stack = StackBuilder::new()
        .sim(SimConfig {
            latency: LATENCY,
            ..SimConfig::default()
        })
        .pool(
            AddressType::Nonpersistent,
            PoolConfig {
                release: ReleaseRule::OnLastClose,
                ..PoolConfig::default_for(AddressType::Nonpersistent)
            },
        )
        .build()
        .unwrap();
    let opts = SetscOptions {
        nonblocking: true,
        ..SetscOptions::default()
    };
    let run = |n: usize| -> Duration {
        let fds: Vec<OwnedFd> = (0..n).map(|_| udp()).collect();
        let start = Instant::now();
        for fd in &fds {
            let e = stack
                .setsc_fd(fd.as_raw_fd(), AddressType::Nonpersistent, &opts)
                .unwrap_err();
            assert_eq!(e.errno(), libc::EINPROGRESS);
        }
        let mut served = 0;
        while served < n {
            match stack.events().try_next() {
                Some(ev) => {
                    assert_eq!(ev.kind, EventKind::RequestComplete);
                    assert!(ev.error.is_none());
                    served += 1;
                }
                None => std::thread::yield_now(),
            }
        }
        let took = start.elapsed();
        for fd in &fds {
            stack.release_fd(fd.as_raw_fd()).unwrap();
        }
        took
    };
    for n in [1usize, 1000] {
        g.bench_function(format!("{n}_requests"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run(n)).sum())
        });
    }
    g.finish();
}

/// A move with 10,000 leases held (5,000 nonpersistent lost, 5,000 graceful-replacement
/// deprecated): the time until every event is queued. Also prints the heap bytes per lease.
fn move_with_10k_leases(c: &mut Criterion) {
    const N: u64 = 10_000;
    fd_room(N);
    let mut g = c.benchmark_group("move");
    g.sample_size(20);
    let before = LIVE.load(Ordering::Relaxed);
    let stack = quiet_stack();
    let mut fds = hold(&stack, AddressType::Nonpersistent, N / 2);
    fds.extend(hold(&stack, AddressType::GracefulReplacement, N / 2));
    let per_lease = (LIVE.load(Ordering::Relaxed) - before) as f64 / N as f64;
    eprintln!(
        "memory: {per_lease:.0} heap bytes per lease (stack state for {N} leases, sockets excluded)"
    );
    drop((stack, fds));
    g.bench_function("10000_leases_all_events_queued", |b| {
        b.iter_batched(
            || {
                let stack = quiet_stack();
                let mut fds = hold(&stack, AddressType::Nonpersistent, N / 2);
                fds.extend(hold(&stack, AddressType::GracefulReplacement, N / 2));
                (stack, fds)
            },
            |(stack, fds)| {
                let report = stack.host_moved().unwrap();
                assert_eq!(stack.events().len() as u64, N);
                assert_eq!((report.lost + report.deprecated) as u64, N);
                (stack, fds)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(
    benches,
    pool_hit,
    setsc_bind_vs_bind,
    concurrent_misses,
    move_with_10k_leases
);
criterion_main!(benches);
