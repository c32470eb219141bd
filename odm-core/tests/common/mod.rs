//! Helpers shared by the integration tests: a stack on a manual clock and sockets to lease.
#![allow(dead_code)]

use std::net::UdpSocket;
use std::os::fd::OwnedFd;
use std::time::Duration;

use odm_core::provider::sim::SimConfig;
use odm_core::socket::{Kind, new_unbound};
use odm_core::{Family, ManualClock, Stack, StackBuilder};

pub const START: Duration = Duration::from_secs(1_000);

/// A sim network that answers at once, so blocking calls never wait for the manual clock.
pub fn instant_sim() -> SimConfig {
    SimConfig {
        latency: Duration::ZERO,
        ..SimConfig::default()
    }
}

pub fn builder(sim: SimConfig) -> (StackBuilder, ManualClock) {
    let clock = ManualClock::new(START);
    (
        Stack::builder().clock(clock.clone()).sim(sim).app("test"),
        clock,
    )
}

pub fn stack() -> (Stack, ManualClock) {
    let (b, clock) = builder(instant_sim());
    (b.build().unwrap(), clock)
}

pub fn udp(family: Family) -> OwnedFd {
    new_unbound(family, Kind::Datagram).unwrap()
}

pub fn tcp(family: Family) -> OwnedFd {
    new_unbound(family, Kind::Stream).unwrap()
}

pub fn udp_socket(fd: OwnedFd) -> UdpSocket {
    UdpSocket::from(fd)
}

/// Waits (for real, briefly) until `cond` holds: for threads the test cannot join yet.
pub fn eventually(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..20_000 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("timed out waiting until {what}");
}

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};

use odm_core::Result;
use odm_core::clock::Timestamp;
use odm_core::provider::sim::SimProvider;
use odm_core::provider::{Grant, GrantRequest, Lifetimes, MoveInfo, Provider};

/// Where a paused grant is shown to the test, and where the test says go.
type Pause = (SyncSender<Grant>, Receiver<()>);

/// The sim network, shared with the test, which can make it misbehave: stop renewing grants,
/// or hold its next grant back on its way to the stack until the test says go (to move the host
/// at exactly that moment).
#[derive(Clone)]
pub struct TestNet {
    pub sim: Arc<SimProvider>,
    refuse_renewals: Arc<AtomicBool>,
    pause: Arc<Mutex<Option<Pause>>>,
}

impl TestNet {
    pub fn new(config: SimConfig, clock: &ManualClock) -> TestNet {
        TestNet {
            sim: Arc::new(SimProvider::new(config, Arc::new(clock.clone()))),
            refuse_renewals: Arc::default(),
            pause: Arc::default(),
        }
    }

    pub fn stop_renewing(&self) {
        self.refuse_renewals.store(true, Ordering::SeqCst);
    }

    /// The next grant is sent to the returned receiver and then waits for a message on the
    /// returned sender before it reaches the stack.
    pub fn pause_next_grant(&self) -> (Receiver<Grant>, Sender<()>) {
        let (granted_tx, granted) = sync_channel(1);
        let (go, go_rx) = channel();
        *self.pause.lock().unwrap() = Some((granted_tx, go_rx));
        (granted, go)
    }
}

impl Provider for TestNet {
    fn name(&self) -> &'static str {
        "test-sim"
    }
    fn serves(&self, family: Family) -> bool {
        self.sim.serves(family)
    }
    fn acquire(&self, req: &GrantRequest) -> Result<Grant> {
        let grant = self.sim.acquire(req)?;
        if let Some((granted, go)) = self.pause.lock().unwrap().take() {
            granted.send(grant.clone()).unwrap();
            go.recv().unwrap();
        }
        Ok(grant)
    }
    fn renew(&self, grant: &Grant, deadline: Timestamp) -> Result<Lifetimes> {
        if self.refuse_renewals.load(Ordering::SeqCst) {
            return Err(odm_core::Error::NetworkRefused(
                "renewals refused by the test".into(),
            ));
        }
        self.sim.renew(grant, deadline)
    }
    fn release(&self, grant: &Grant) {
        self.sim.release(grant)
    }
    fn host_moved(&self) -> Result<MoveInfo> {
        self.sim.host_moved()
    }
}
