//! The stack: pool + policy + provider + host + events, and the setsc() request state machine
//! (RFC 8653 §3.1, §3.4, Appendix A).
//!
//! ```text
//!  setsc(fd, type) ──validate──> legacy? ──yes──> no request (§4.2)
//!        │                          │no
//!        │                     policy: EACCES / EDQUOT
//!        │                          │
//!        │                pool hit? ──yes──> lease (fast path: one short lock, no I/O)
//!        │                          │no
//!        │        flight of this type open and not FRESH? ──yes──> join it
//!        │                          │no
//!        │                  start a flight: one worker thread asks the provider
//!        │                          │
//!        └── wait (or EINPROGRESS) <── grant -> host -> every waiter leased at once
//!                                       refusal / no on-demand / timeout -> every waiter fails
//! ```
//! All state sits behind one mutex held only for bookkeeping; provider and host calls happen
//! outside it, on the worker, maintenance or caller thread.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use crate::clock::{Clock, SystemClock, Timestamp};
use crate::config::{Config, ProviderConfig};
use crate::event::{Event, EventKind, EventQueue};
use crate::host::{Host, HostAddress, NoHost};
use crate::policy::Policy;
use crate::pool::{AddrId, AddressState, Entry, Pool, PoolConfig, address_from};
use crate::provider::sim::SimProvider;
use crate::provider::{Grant, GrantRequest, Provider};
use crate::socket::{self, SocketKey};
use crate::{AddressType, Error, Family, Result};

/// Names one lease: its slot and the slot's generation, so a stale id never names a newer lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(u64);

impl LeaseId {
    /// The id of a legacy request's result: no lease was taken.
    pub const NONE: LeaseId = LeaseId(0);

    pub fn from_raw(raw: u64) -> LeaseId {
        LeaseId(raw)
    }
    pub fn raw(self) -> u64 {
        self.0
    }
    fn new(index: u32, generation: u32) -> LeaseId {
        LeaseId(u64::from(generation) << 32 | u64::from(index))
    }
    fn parts(self) -> (u32, u32) {
        (self.0 as u32, (self.0 >> 32) as u32)
    }
}

/// How one setsc() call behaves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetscOptions {
    /// How long to wait for the network; `None` takes the stack's `request_timeout`.
    pub timeout: Option<Duration>,
    /// A new address, never one already leased (its own network request).
    pub fresh: bool,
    /// Bind the socket to the address and this port (0: any).
    pub bind: Option<u16>,
    /// Do not wait: a miss returns `Error::InProgress` and the outcome arrives as a
    /// `RequestComplete` event.
    pub nonblocking: bool,
}

/// What a socket holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseInfo {
    pub id: LeaseId,
    /// The type served (a legacy request served by policy has the policy's default type).
    pub address_type: AddressType,
    pub family: Family,
    /// For a legacy request, the unspecified address: the kernel picks the source.
    pub address: IpAddr,
    pub state: AddressState,
    /// When a deprecated address is gone.
    pub deadline: Option<Timestamp>,
}

impl LeaseInfo {
    fn legacy(family: Family) -> LeaseInfo {
        LeaseInfo {
            id: LeaseId::NONE,
            address_type: AddressType::Unspecified,
            family,
            address: match family {
                Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            },
            state: AddressState::Preferred,
            deadline: None,
        }
    }
}

/// One address as `odm status` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressInfo {
    pub address: IpAddr,
    pub address_type: AddressType,
    pub family: Family,
    pub state: AddressState,
    pub leases: u32,
    pub boot: bool,
    pub preferred_until: Timestamp,
    pub valid_until: Timestamp,
    pub server: String,
}

/// The pooling figures: how many setsc() calls needed the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub setsc_calls: u64,
    pub legacy: u64,
    pub pool_hits: u64,
    /// Requests that waited for the network (started a flight or joined one).
    pub misses: u64,
    /// Grants asked of the provider (flights, boot-time set, replacements after moves).
    pub network_requests: u64,
    pub failures: u64,
    pub renewals: u64,
    pub releases: u64,
    pub moves: u64,
    /// Leases live now (pending or held).
    pub leases: u64,
    /// Addresses in the pool now.
    pub addresses: u64,
}

/// What a move did (RFC 8653 §3.2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MoveReport {
    pub gateway: u32,
    pub grace: Duration,
    /// Leases on addresses that were lost.
    pub lost: usize,
    /// Leases on addresses that were deprecated.
    pub deprecated: usize,
    /// The new graceful-replacement addresses the deprecated ones point to.
    pub replacements: Vec<IpAddr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiter {
    /// A thread blocks in setsc() and collects the outcome.
    Thread,
    /// Non-blocking: the outcome is an event (and a bind, if asked).
    Event { bind: Option<u16> },
}

#[derive(Debug)]
enum Status {
    Pending { flight: u64 },
    Held { addr: AddrId, address: IpAddr },
    Lost { address: IpAddr },
    Failed(Error),
}

#[derive(Debug)]
struct LeaseEntry {
    address_type: AddressType,
    family: Family,
    socket: Option<SocketKey>,
    waiter: Waiter,
    status: Status,
}

#[derive(Debug, Default)]
struct LeaseSlot {
    generation: u32,
    entry: Option<LeaseEntry>,
}

/// One network request and who waits for it.
#[derive(Default)]
struct Flight {
    done: Mutex<bool>,
    cv: Condvar,
}

impl Flight {
    fn finish(&self) {
        *self.done.lock().unwrap() = true;
        self.cv.notify_all();
    }
    fn wait(&self) {
        let mut done = self.done.lock().unwrap();
        while !*done {
            done = self.cv.wait(done).unwrap();
        }
    }
}

struct FlightEntry {
    flight: Arc<Flight>,
    address_type: AddressType,
    family: Family,
    waiters: Vec<LeaseId>,
    /// The number of moves when the network was asked: a grant that a move may have taken
    /// back on its way here is not handed out.
    moves: u64,
}

/// Socket fd -> its lease. fds are small integers, so a vector indexed by fd is cheaper than a
/// hash map on the pool-hit path.
#[derive(Default)]
struct FdTable {
    slots: Vec<LeaseId>,
}

impl FdTable {
    fn get(&self, fd: RawFd) -> Option<LeaseId> {
        let id = *self.slots.get(usize::try_from(fd).ok()?)?;
        (id != LeaseId::NONE).then_some(id)
    }

    fn insert(&mut self, fd: RawFd, id: LeaseId) {
        let i = usize::try_from(fd).expect("inspected fds are not negative");
        if i >= self.slots.len() {
            self.slots
                .resize((i + 1).next_power_of_two().max(64), LeaseId::NONE);
        }
        self.slots[i] = id;
    }

    fn remove(&mut self, fd: RawFd) {
        if let Some(slot) = usize::try_from(fd).ok().and_then(|i| self.slots.get_mut(i)) {
            *slot = LeaseId::NONE;
        }
    }

    fn leases(&self) -> impl Iterator<Item = LeaseId> + '_ {
        self.slots.iter().copied().filter(|&id| id != LeaseId::NONE)
    }
}

struct State {
    pool: Pool,
    leases: Vec<LeaseSlot>,
    free_leases: Vec<u32>,
    sockets: FdTable,
    flights: HashMap<u64, FlightEntry>,
    /// The open flight a non-FRESH miss of this type and family joins (single-flight).
    joinable: HashMap<(AddressType, Family), u64>,
    next_flight: u64,
    /// Live (pending or held) leases per type, for quotas.
    live: [u32; 4],
    stats: Stats,
}

fn live_slot(t: AddressType) -> usize {
    t.slot().expect("leases are of on-demand types")
}

impl State {
    fn lease(&self, id: LeaseId) -> Option<&LeaseEntry> {
        let (index, generation) = id.parts();
        let slot = self.leases.get(index as usize)?;
        if slot.generation != generation {
            None
        } else {
            slot.entry.as_ref()
        }
    }

    fn lease_mut(&mut self, id: LeaseId) -> Option<&mut LeaseEntry> {
        let (index, generation) = id.parts();
        let slot = self.leases.get_mut(index as usize)?;
        if slot.generation != generation {
            None
        } else {
            slot.entry.as_mut()
        }
    }

    fn new_lease(&mut self, entry: LeaseEntry) -> LeaseId {
        self.live[live_slot(entry.address_type)] += 1;
        let socket = entry.socket;
        let index = match self.free_leases.pop() {
            Some(i) => i,
            None => {
                self.leases.push(LeaseSlot::default());
                (self.leases.len() - 1) as u32
            }
        };
        let slot = &mut self.leases[index as usize];
        slot.generation = slot.generation.wrapping_add(1).max(1);
        slot.entry = Some(entry);
        let id = LeaseId::new(index, slot.generation);
        if let Some(key) = socket {
            self.sockets.insert(key.fd, id);
        }
        id
    }

    /// The lease stops counting for quotas (it failed or its address is gone).
    fn set_dead(&mut self, id: LeaseId, status: Status) {
        let Some(e) = self.lease_mut(id) else { return };
        let was_live = matches!(e.status, Status::Pending { .. } | Status::Held { .. });
        let t = e.address_type;
        e.status = status;
        if was_live {
            self.live[live_slot(t)] -= 1;
        }
    }

    /// Ends a lease; returns the pool entry to release if it was the address's last lease.
    fn end_lease(&mut self, id: LeaseId, now: Timestamp) -> Option<Entry> {
        let (index, _) = id.parts();
        self.lease(id)?;
        let e = self.leases[index as usize]
            .entry
            .take()
            .expect("checked above");
        self.free_leases.push(index);
        if let Some(key) = e.socket
            && self.sockets.get(key.fd) == Some(id)
        {
            self.sockets.remove(key.fd);
        }
        match e.status {
            Status::Pending { .. } => {
                self.live[live_slot(e.address_type)] -= 1;
                None
            }
            Status::Held { addr, .. } => {
                self.live[live_slot(e.address_type)] -= 1;
                self.pool.detach(addr, now)
            }
            Status::Lost { .. } | Status::Failed(_) => None,
        }
    }

    fn info(&self, id: LeaseId, now: Timestamp) -> Option<LeaseInfo> {
        let e = self.lease(id)?;
        let (address, state, deadline) = match &e.status {
            Status::Held { addr, address } => {
                let p = self.pool.get(*addr).expect("held address is pooled");
                let state = p.state(now);
                (
                    *address,
                    state,
                    (state == AddressState::Deprecated).then_some(p.valid_until),
                )
            }
            Status::Lost { address } => (*address, AddressState::Gone, None),
            Status::Pending { .. } | Status::Failed(_) => return None,
        };
        Some(LeaseInfo {
            id,
            address_type: e.address_type,
            family: e.family,
            address,
            state,
            deadline,
        })
    }

    /// The addresses left the pool while sockets held them: their leases are lost (they stop
    /// counting for quotas but stay until released); returns an `AddressLost` event for each.
    fn lose(&mut self, gone: &[(AddrId, Entry)]) -> Vec<Event> {
        let ids: Vec<AddrId> = gone.iter().map(|(id, _)| *id).collect();
        let mut events = Vec::new();
        for id in self.leases_on(&ids) {
            if let Some(Status::Held { address, .. }) = self.lease(id).map(|e| &e.status) {
                let address = *address;
                self.set_dead(id, Status::Lost { address });
                events.push(self.event(EventKind::AddressLost, id));
            }
        }
        events
    }

    /// Every live lease on one of `addrs`.
    fn leases_on(&self, addrs: &[AddrId]) -> Vec<LeaseId> {
        self.leases
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| match &slot.entry {
                Some(LeaseEntry {
                    status: Status::Held { addr, .. },
                    ..
                }) if addrs.contains(addr) => Some(LeaseId::new(i as u32, slot.generation)),
                _ => None,
            })
            .collect()
    }

    fn event(&self, kind: EventKind, id: LeaseId) -> Event {
        let e = self.lease(id).expect("live lease");
        let address = match &e.status {
            Status::Held { address, .. } | Status::Lost { address } => Some(*address),
            Status::Pending { .. } | Status::Failed(_) => None,
        };
        Event {
            kind,
            lease: id,
            fd: e.socket.map(|k| k.fd),
            address_type: e.address_type,
            address,
            deadline: None,
            replacement: None,
            error: None,
        }
    }
}

struct Inner {
    app: String,
    clock: Arc<dyn Clock>,
    provider: Arc<dyn Provider>,
    sim: Option<Arc<SimProvider>>,
    host: Arc<dyn Host>,
    policy: Policy,
    request_timeout: Duration,
    events: EventQueue,
    state: Mutex<State>,
}

/// An odm stack. Cheap to clone (a handle); safe to use from many threads at once.
#[derive(Clone)]
pub struct Stack {
    inner: Arc<Inner>,
}

/// A socket's hold on an address, released when dropped (RAII form of setsc()).
pub struct Lease {
    stack: Stack,
    info: LeaseInfo,
}

impl Lease {
    pub fn id(&self) -> LeaseId {
        self.info.id
    }
    pub fn address(&self) -> IpAddr {
        self.info.address
    }
    pub fn address_type(&self) -> AddressType {
        self.info.address_type
    }
    /// The lease as it is now (its address may have been deprecated or lost since).
    pub fn info(&self) -> LeaseInfo {
        self.stack.lease_info(self.info.id).unwrap_or(LeaseInfo {
            state: AddressState::Gone,
            ..self.info
        })
    }
    /// Ends the lease now (dropping it does the same).
    pub fn release(self) {}
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.info.id != LeaseId::NONE {
            let _ = self.stack.release(self.info.id);
        }
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Lease").field(&self.info).finish()
    }
}

/// Builds a [`Stack`] from a [`Config`] and, for tests and embedders, a clock, provider or host
/// of one's own.
pub struct StackBuilder {
    config: Config,
    clock: Option<Arc<dyn Clock>>,
    provider: Option<Arc<dyn Provider>>,
    host: Option<Arc<dyn Host>>,
    maintenance: Option<bool>,
}

impl Default for StackBuilder {
    fn default() -> Self {
        StackBuilder::new()
    }
}

impl StackBuilder {
    /// The built-in defaults: the sim network, no host configuration, default pools and policy.
    pub fn new() -> StackBuilder {
        StackBuilder::from_config(Config::default())
    }

    pub fn from_config(config: Config) -> StackBuilder {
        StackBuilder {
            config,
            clock: None,
            provider: None,
            host: None,
            maintenance: None,
        }
    }

    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// A provider of one's own instead of the configured one.
    pub fn provider(mut self, provider: impl Provider) -> Self {
        self.provider = Some(Arc::new(provider));
        self
    }

    pub fn host(mut self, host: impl Host) -> Self {
        self.host = Some(Arc::new(host));
        self
    }

    pub fn sim(mut self, sim: crate::provider::sim::SimConfig) -> Self {
        self.config.network.provider = ProviderConfig::Sim(sim);
        self
    }

    pub fn pool(mut self, t: AddressType, pool: PoolConfig) -> Self {
        if let Some(i) = t.slot() {
            self.config.pools[i] = pool;
        }
        self
    }

    pub fn policy(mut self, policy: Policy) -> Self {
        self.config.policy = policy;
        self
    }

    pub fn app(mut self, app: impl Into<String>) -> Self {
        self.config.app = Some(app.into());
        self
    }

    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.network.request_timeout = timeout;
        self
    }

    /// Run the maintenance thread, which calls [`Stack::tick`] four times a second (renewals,
    /// expiry, linger, closed sockets). On by default with the system clock, off with a manual
    /// one, where tests call `tick` themselves after moving the clock.
    pub fn maintenance(mut self, on: bool) -> Self {
        self.maintenance = Some(on);
        self
    }

    /// Builds the stack and acquires its boot-time set; fails, with nothing kept, if that fails.
    pub fn build(self) -> Result<Stack> {
        let clock: Arc<dyn Clock> = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let (provider, sim): (Arc<dyn Provider>, _) =
            match (self.provider, &self.config.network.provider) {
                (Some(p), _) => (p, None),
                (None, ProviderConfig::Sim(cfg)) => {
                    let sim = Arc::new(SimProvider::new(cfg.clone(), clock.clone()));
                    (sim.clone(), Some(sim))
                }
            };
        let app = self.config.app.clone().unwrap_or_else(process_name);
        let maintenance = self.maintenance.unwrap_or(!clock.is_manual());
        let inner = Arc::new(Inner {
            app,
            clock,
            provider,
            sim,
            host: self.host.unwrap_or_else(|| Arc::new(NoHost)),
            policy: self.config.policy.clone(),
            request_timeout: self.config.network.request_timeout,
            events: EventQueue::new()?,
            state: Mutex::new(State {
                pool: Pool::new(self.config.pools),
                leases: Vec::with_capacity(1024),
                free_leases: Vec::new(),
                sockets: FdTable::default(),
                flights: HashMap::new(),
                joinable: HashMap::new(),
                next_flight: 1,
                live: [0; 4],
                stats: Stats::default(),
            }),
        });
        let stack = Stack { inner };
        stack.refill_boot_set(true)?;
        if maintenance {
            spawn_maintenance(Arc::downgrade(&stack.inner));
        }
        Ok(stack)
    }
}

fn process_name() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

const MAINTENANCE_PERIOD: Duration = Duration::from_millis(250);

fn spawn_maintenance(stack: Weak<Inner>) {
    let _ = std::thread::Builder::new()
        .name("odm-maintenance".into())
        .spawn(move || {
            loop {
                std::thread::sleep(MAINTENANCE_PERIOD);
                let Some(inner) = stack.upgrade() else { return };
                Stack { inner }.tick();
            }
        });
}

impl Drop for Inner {
    /// The stack goes: every grant it holds goes back to the network.
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        for (_, e) in state.pool.iter() {
            self.host.remove(&host_address(e));
            self.provider.release(&e.grant);
        }
    }
}

fn host_address(e: &Entry) -> HostAddress {
    HostAddress {
        address: e.address,
        prefix_len: e.grant.prefix_len,
        preferred_until: e.preferred_until,
        valid_until: e.valid_until,
    }
}

/// How a network answer ended: its waiters have their outcome and the flight is to be
/// finished, or the grant came too late (a move overtook it) and must be asked for again.
enum Completion {
    Done(Arc<Flight>),
    Stale(Grant, IpAddr),
}

/// What the locked part of a request decided.
enum Next {
    Done(LeaseInfo),
    Wait(Arc<Flight>, LeaseId),
    Start(Arc<Flight>, LeaseId, u64, GrantRequest),
}

impl Stack {
    pub fn builder() -> StackBuilder {
        StackBuilder::new()
    }

    /// RFC 8653 setsc() for a Rust socket: the returned [`Lease`] holds the address until it is
    /// dropped. Blocks until the network answers (a non-blocking option is refused here: use
    /// [`Stack::setsc_fd`]).
    pub fn setsc<S: AsFd>(&self, sock: &S, t: AddressType, opts: &SetscOptions) -> Result<Lease> {
        if opts.nonblocking {
            return Err(Error::InvalidArgument(
                "a Lease is returned only by a blocking setsc()".into(),
            ));
        }
        let info = self.setsc_fd(sock.as_fd().as_raw_fd(), t, opts)?;
        Ok(Lease {
            stack: self.clone(),
            info,
        })
    }

    /// RFC 8653 setsc() by fd (for the C and Python bindings): the lease lives until
    /// [`Stack::release_fd`], another setsc() on the socket, or the socket's close.
    pub fn setsc_fd(&self, fd: RawFd, t: AddressType, opts: &SetscOptions) -> Result<LeaseInfo> {
        let (family, key) = socket::inspect(fd)?;
        if !self.inner.provider.serves(family) {
            return Err(Error::FamilyNotSupported(format!(
                "the {} provider does not serve {family} sockets",
                self.inner.provider.name()
            )));
        }
        let info = self.request(key, family, t, opts)?;
        if let (Some(port), false) = (opts.bind, opts.nonblocking)
            && let Err(e) = socket::bind(fd, info.address, port)
        {
            if info.id != LeaseId::NONE {
                let _ = self.release(info.id);
            }
            return Err(e);
        }
        Ok(info)
    }

    fn request(
        &self,
        key: SocketKey,
        family: Family,
        requested: AddressType,
        opts: &SetscOptions,
    ) -> Result<LeaseInfo> {
        // A move can take a fresh grant back before its waiter wakes; then the waiter asks
        // again rather than return an address that is already gone.
        const ATTEMPTS: usize = 3;
        for attempt in 0..ATTEMPTS {
            if let Some(info) = self.attempt(key, family, requested, opts, attempt == 0)? {
                return Ok(info);
            }
        }
        Err(Error::NetworkRefused(format!(
            "the network took back {ATTEMPTS} {requested} addresses in a row as they were granted"
        )))
    }

    /// One pass through the state machine; `None` when the address was lost before the
    /// caller could see it.
    fn attempt(
        &self,
        key: SocketKey,
        family: Family,
        requested: AddressType,
        opts: &SetscOptions,
        first: bool,
    ) -> Result<Option<LeaseInfo>> {
        let inner = &*self.inner;
        let now = inner.clock.now();
        let mut released = Vec::new();
        let next = {
            let mut st = inner.state.lock().unwrap();
            st.stats.setsc_calls += u64::from(first);
            // A socket has one lease: setsc() again replaces it; an entry for a closed socket
            // whose fd number came back is stale and ends too.
            if let Some(old) = st.sockets.get(key.fd) {
                released.extend(st.end_lease(old, now));
            }
            self.decide(&mut st, key, family, requested, opts, now)
        };
        self.release_entries(released);
        match next? {
            Next::Done(info) => Ok(Some(info)),
            Next::Start(flight, id, flight_id, req) => {
                let stack = self.clone();
                let spawned = std::thread::Builder::new()
                    .name("odm-request".into())
                    .spawn(move || {
                        let done = stack.run_flight(flight_id, req);
                        // Let go of the stack before the waiters wake, so that a caller who drops
                        // its last handle right after setsc() returns really drops the stack.
                        drop(stack);
                        done.finish();
                    });
                if let Err(e) = spawned {
                    match self.complete_flight(flight_id, Err(Error::Io(e))) {
                        Completion::Done(done) => done.finish(),
                        Completion::Stale(..) => unreachable!("an error is never stale"),
                    }
                }
                self.await_flight(flight, id, opts)
            }
            Next::Wait(flight, id) => self.await_flight(flight, id, opts),
        }
    }

    fn decide(
        &self,
        st: &mut State,
        key: SocketKey,
        family: Family,
        requested: AddressType,
        opts: &SetscOptions,
        now: Timestamp,
    ) -> Result<Next> {
        let inner = &*self.inner;
        let Some(t) = inner.policy.effective_type(requested) else {
            st.stats.legacy += 1;
            return Ok(Next::Done(LeaseInfo::legacy(family)));
        };
        inner.policy.check(&inner.app, t, st.live[live_slot(t)])?;
        let waiter = if opts.nonblocking {
            Waiter::Event { bind: opts.bind }
        } else {
            Waiter::Thread
        };
        let lease = |status| LeaseEntry {
            address_type: t,
            family,
            socket: Some(key),
            waiter,
            status,
        };

        if !opts.fresh
            && let Some(addr) = st.pool.find_reusable(t, family, now)
        {
            st.stats.pool_hits += 1;
            st.pool.attach(addr);
            let address = st.pool.get(addr).expect("found above").address;
            let id = st.new_lease(lease(Status::Held { addr, address }));
            return Ok(Next::Done(LeaseInfo {
                id,
                address_type: t,
                family,
                address,
                state: AddressState::Preferred,
                deadline: None,
            }));
        }
        st.stats.misses += 1;
        let joinable = if opts.fresh {
            None
        } else {
            st.joinable.get(&(t, family)).copied()
        };
        if let Some(flight_id) = joinable {
            let id = st.new_lease(lease(Status::Pending { flight: flight_id }));
            let f = st
                .flights
                .get_mut(&flight_id)
                .expect("joinable flights are open");
            f.waiters.push(id);
            return Ok(Next::Wait(f.flight.clone(), id));
        }
        let flight_id = st.next_flight;
        st.next_flight += 1;
        st.stats.network_requests += 1;
        let id = st.new_lease(lease(Status::Pending { flight: flight_id }));
        let flight = Arc::new(Flight::default());
        st.flights.insert(
            flight_id,
            FlightEntry {
                flight: flight.clone(),
                address_type: t,
                family,
                waiters: vec![id],
                moves: st.stats.moves,
            },
        );
        if !opts.fresh {
            st.joinable.insert((t, family), flight_id);
        }
        let timeout = opts.timeout.unwrap_or(inner.request_timeout);
        let req = GrantRequest {
            address_type: t,
            family,
            issued: now,
            deadline: now + timeout,
        };
        Ok(Next::Start(flight, id, flight_id, req))
    }

    fn await_flight(
        &self,
        flight: Arc<Flight>,
        id: LeaseId,
        opts: &SetscOptions,
    ) -> Result<Option<LeaseInfo>> {
        if opts.nonblocking {
            return Err(Error::InProgress);
        }
        flight.wait();
        let now = self.inner.clock.now();
        let mut st = self.inner.state.lock().unwrap();
        match st.lease(id).map(|e| &e.status) {
            None => Err(Error::BadSocket(
                "the socket was closed or released during the request".into(),
            )),
            Some(Status::Held { .. }) => Ok(st.info(id, now)),
            Some(Status::Failed(e)) => {
                let e = e.clone();
                st.end_lease(id, now);
                Err(e)
            }
            Some(Status::Lost { .. }) => {
                st.end_lease(id, now);
                Ok(None)
            }
            Some(Status::Pending { .. }) => {
                unreachable!("a finished flight leaves no waiter pending")
            }
        }
    }

    /// A worker thread: one network request for every waiter of a flight. Returns the flight
    /// for the caller to finish (wake its waiters).
    fn run_flight(&self, flight_id: u64, mut req: GrantRequest) -> Arc<Flight> {
        let inner = &*self.inner;
        loop {
            let result = inner.provider.acquire(&req).and_then(|grant| {
                let now = inner.clock.now();
                if now > req.deadline {
                    inner.provider.release(&grant);
                    return Err(Error::Timeout(now.saturating_since(req.deadline)));
                }
                self.configure(grant)
            });
            let (grant, address) = match self.complete_flight(flight_id, result) {
                Completion::Done(flight) => return flight,
                Completion::Stale(grant, address) => (grant, address),
            };
            // The host moved while the grant was on its way: it may belong to the old
            // gateway. Give it back and ask again, within the same deadline.
            let now = inner.clock.now();
            let ha = HostAddress {
                address,
                prefix_len: grant.prefix_len,
                preferred_until: now,
                valid_until: now,
            };
            inner.host.remove(&ha);
            inner.provider.release(&grant);
            req.issued = now;
        }
    }

    /// Builds the address from a grant and configures it on the host.
    fn configure(&self, grant: Grant) -> Result<(Grant, IpAddr)> {
        let inner = &*self.inner;
        let now = inner.clock.now();
        let address = address_from(&grant, socket::random_u64());
        let ha = HostAddress {
            address,
            prefix_len: grant.prefix_len,
            preferred_until: now + grant.lifetimes.preferred,
            valid_until: now + grant.lifetimes.valid,
        };
        if let Err(e) = inner.host.configure(&ha) {
            inner.provider.release(&grant);
            return Err(e);
        }
        Ok((grant, address))
    }

    /// The network answered: every waiter gets the same outcome (DESIGN step 5). A grant of a
    /// type that moves take back (nonpersistent, graceful-replacement) that arrives after a move
    /// since the request began is returned instead, for the worker to ask again.
    fn complete_flight(&self, flight_id: u64, result: Result<(Grant, IpAddr)>) -> Completion {
        let inner = &*self.inner;
        let now = inner.clock.now();
        let mut events = Vec::new();
        let mut binds = Vec::new();
        let mut released = Vec::new();
        let flight = {
            let mut st = inner.state.lock().unwrap();
            let moves = st.stats.moves;
            let fe = st.flights.get_mut(&flight_id).expect("an open flight");
            if let Ok((grant, _)) = &result
                && fe.moves != moves
                && matches!(
                    grant.address_type,
                    AddressType::Nonpersistent | AddressType::GracefulReplacement
                )
            {
                fe.moves = moves;
                let (grant, address) = result.expect("matched Ok above");
                return Completion::Stale(grant, address);
            }
            let fe = st
                .flights
                .remove(&flight_id)
                .expect("a flight completes once");
            if st.joinable.get(&(fe.address_type, fe.family)) == Some(&flight_id) {
                st.joinable.remove(&(fe.address_type, fe.family));
            }
            let waiting: Vec<LeaseId> = fe
                .waiters
                .iter()
                .copied()
                .filter(|&id| matches!(st.lease(id), Some(LeaseEntry { status: Status::Pending { flight }, .. }) if *flight == flight_id))
                .collect();
            match result {
                Ok((grant, address)) => {
                    let addr = st.pool.insert(grant, address, now, false);
                    for &id in &waiting {
                        st.pool.attach(addr);
                        let e = st.lease_mut(id).expect("filtered above");
                        e.status = Status::Held { addr, address };
                        if let Waiter::Event { bind } = e.waiter {
                            match (bind, e.socket) {
                                (Some(port), Some(key)) => binds.push((id, key, address, port)),
                                _ => events.push(st.event(EventKind::RequestComplete, id)),
                            }
                        }
                    }
                    if waiting.is_empty() {
                        released.extend(st.pool.idle(addr, now, None));
                    }
                }
                Err(error) => {
                    st.stats.failures += 1;
                    for &id in &waiting {
                        let e = st.lease(id).expect("filtered above");
                        if e.waiter == Waiter::Thread {
                            st.set_dead(id, Status::Failed(error.clone()));
                        } else {
                            let mut ev = st.event(EventKind::RequestComplete, id);
                            ev.error = Some(error.clone());
                            events.push(ev);
                            st.end_lease(id, now);
                        }
                    }
                }
            }
            fe.flight
        };
        // Non-blocking requests that asked for a bind are bound before they hear of it.
        for (id, key, address, port) in binds {
            let bound = if socket::is_open(key) {
                socket::bind(key.fd, address, port)
            } else {
                Err(Error::BadSocket(
                    "the socket was closed during the request".into(),
                ))
            };
            let mut st = inner.state.lock().unwrap();
            if st.lease(id).is_none() {
                continue;
            }
            let mut ev = st.event(EventKind::RequestComplete, id);
            if let Err(e) = bound {
                ev.error = Some(e);
                released.extend(st.end_lease(id, now));
            }
            events.push(ev);
        }
        self.release_entries(released);
        inner.events.push_all(events);
        Completion::Done(flight)
    }

    /// Gives addresses that left the pool back to the host and the network.
    fn release_entries(&self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        for e in &entries {
            self.inner.host.remove(&host_address(e));
            self.inner.provider.release(&e.grant);
        }
        self.inner.state.lock().unwrap().stats.releases += entries.len() as u64;
    }

    /// Ends a lease by id.
    pub fn release(&self, id: LeaseId) -> Result<()> {
        let now = self.inner.clock.now();
        let released = {
            let mut st = self.inner.state.lock().unwrap();
            if st.lease(id).is_none() {
                return Err(Error::NoLease);
            }
            st.end_lease(id, now)
        };
        self.release_entries(released.into_iter().collect());
        Ok(())
    }

    /// Ends the lease of the socket `fd`: EBADF if `fd` is not an open socket, EINVAL if it
    /// holds no lease.
    pub fn release_fd(&self, fd: RawFd) -> Result<()> {
        let (_, key) = socket::inspect(fd)?;
        let now = self.inner.clock.now();
        let (released, result) = {
            let mut st = self.inner.state.lock().unwrap();
            match st.sockets.get(fd) {
                Some(id) if st.lease(id).is_some_and(|e| e.socket == Some(key)) => {
                    (st.end_lease(id, now), Ok(()))
                }
                // The lease of an earlier socket with this fd number: it is over.
                Some(id) => (st.end_lease(id, now), Err(Error::NoLease)),
                None => (None, Err(Error::NoLease)),
            }
        };
        self.release_entries(released.into_iter().collect());
        result
    }

    /// What the socket `fd` holds now, if anything.
    pub fn lease_of_fd(&self, fd: RawFd) -> Option<LeaseInfo> {
        let st = self.inner.state.lock().unwrap();
        let id = st.sockets.get(fd)?;
        st.info(id, self.inner.clock.now())
    }

    pub fn lease_info(&self, id: LeaseId) -> Option<LeaseInfo> {
        self.inner
            .state
            .lock()
            .unwrap()
            .info(id, self.inner.clock.now())
    }

    /// The event queue: iterate it, or poll its fd.
    pub fn events(&self) -> &EventQueue {
        &self.inner.events
    }

    pub fn clock(&self) -> &dyn Clock {
        &*self.inner.clock
    }

    pub fn provider_name(&self) -> &'static str {
        self.inner.provider.name()
    }

    /// The sim provider, when the stack runs on it (for its figures and for tests).
    pub fn sim(&self) -> Option<&SimProvider> {
        self.inner.sim.as_deref()
    }

    pub fn stats(&self) -> Stats {
        let st = self.inner.state.lock().unwrap();
        Stats {
            leases: st.live.iter().map(|&n| u64::from(n)).sum(),
            addresses: st.pool.len() as u64,
            ..st.stats
        }
    }

    /// Every address in the pool.
    pub fn addresses(&self) -> Vec<AddressInfo> {
        let now = self.inner.clock.now();
        let st = self.inner.state.lock().unwrap();
        st.pool
            .iter()
            .map(|(_, e)| AddressInfo {
                address: e.address,
                address_type: e.grant.address_type,
                family: e.grant.family,
                state: e.state(now),
                leases: e.leases,
                boot: e.pinned,
                preferred_until: e.preferred_until,
                valid_until: e.valid_until,
                server: e.grant.server.clone(),
            })
            .collect()
    }

    /// Housekeeping, run by the maintenance thread (or by tests after moving a manual clock):
    /// ends the leases of closed sockets, renews held addresses before they lapse, tells sockets
    /// of deprecated and lost addresses, releases idle addresses past their linger, and keeps
    /// the boot-time set full.
    pub fn tick(&self) {
        let inner = &*self.inner;
        self.end_closed_sockets();
        let now = inner.clock.now();
        let (sweep, events) = {
            let mut st = inner.state.lock().unwrap();
            let sweep = st.pool.sweep(now);
            let mut events = st.lose(&sweep.lost);
            for id in st.leases_on(&sweep.deprecated) {
                let mut ev = st.event(EventKind::AddressDeprecated, id);
                if let Some(Status::Held { addr, .. }) = st.lease(id).map(|e| &e.status) {
                    ev.deadline = st.pool.get(*addr).map(|e| e.valid_until);
                }
                events.push(ev);
            }
            (sweep, events)
        };
        inner.events.push_all(events);
        let mut released = sweep.released;
        released.extend(sweep.lost.into_iter().map(|(_, e)| e));
        self.release_entries(released);
        for (addr, grant) in sweep.renew {
            let result = inner
                .provider
                .renew(&grant, inner.clock.now() + inner.request_timeout);
            let now = inner.clock.now();
            let mut st = inner.state.lock().unwrap();
            st.stats.renewals += 1;
            // The entry may have left the pool (and its slot been reused) meanwhile.
            if st.pool.get(addr).is_some_and(|e| e.grant.id == grant.id) {
                st.pool.renewed(addr, now, result.ok());
            }
        }
        let _ = self.refill_boot_set(false);
    }

    /// Acquires what the boot-time set lacks (§3.4). At build, any failure is returned.
    fn refill_boot_set(&self, strict: bool) -> Result<()> {
        let inner = &*self.inner;
        let missing = {
            let st = inner.state.lock().unwrap();
            let mut deficit = st.pool.boot_deficit(inner.clock.now());
            deficit.retain(|(_, family, _)| inner.provider.serves(*family));
            deficit
        };
        for (t, family, n) in missing {
            for _ in 0..n {
                match self.acquire_idle(t, family, true, None) {
                    Ok(_) => {}
                    Err(e) if strict => {
                        return Err(Error::InvalidArgument(format!(
                            "the boot-time set of {t} {family} addresses: {e}"
                        )));
                    }
                    Err(_) => break,
                }
            }
        }
        Ok(())
    }

    /// Asks the network for an address no socket waits for yet (boot-time set, replacement).
    fn acquire_idle(
        &self,
        t: AddressType,
        family: Family,
        boot: bool,
        keep_until: Option<Timestamp>,
    ) -> Result<IpAddr> {
        let inner = &*self.inner;
        let issued = inner.clock.now();
        let deadline = issued + inner.request_timeout;
        inner.state.lock().unwrap().stats.network_requests += 1;
        let (grant, address) = inner
            .provider
            .acquire(&GrantRequest {
                address_type: t,
                family,
                issued,
                deadline,
            })
            .and_then(|g| self.configure(g))?;
        let now = inner.clock.now();
        let released = {
            let mut st = inner.state.lock().unwrap();
            let id = st.pool.insert(grant, address, now, boot);
            if boot {
                None
            } else {
                st.pool.idle(id, now, keep_until)
            }
        };
        self.release_entries(released.into_iter().collect());
        Ok(address)
    }

    /// Ends the leases of sockets closed without a release (and of fds since reused).
    fn end_closed_sockets(&self) {
        let inner = &*self.inner;
        let held: Vec<(LeaseId, SocketKey)> = {
            let st = inner.state.lock().unwrap();
            st.sockets
                .leases()
                .filter_map(|id| Some((id, st.lease(id)?.socket?)))
                .collect()
        };
        let closed: Vec<LeaseId> = held
            .into_iter()
            .filter(|(_, key)| !socket::is_open(*key))
            .map(|(id, _)| id)
            .collect();
        if closed.is_empty() {
            return;
        }
        let now = inner.clock.now();
        let released: Vec<Entry> = {
            let mut st = inner.state.lock().unwrap();
            closed
                .into_iter()
                .filter_map(|id| st.end_lease(id, now))
                .collect()
        };
        self.release_entries(released);
    }

    /// The host moved to another point of attachment (§3.2). Fixed and session-lasting
    /// addresses stay; nonpersistent ones are lost (`AddressLost` for each lease); graceful-
    /// replacement ones are deprecated until the grace period ends, and a replacement is
    /// acquired so that each lease's `AddressDeprecated` event can name it.
    pub fn host_moved(&self) -> Result<MoveReport> {
        let inner = &*self.inner;
        let info = inner.provider.host_moved()?;
        let now = inner.clock.now();
        let mut report = MoveReport {
            gateway: info.gateway,
            grace: info.grace,
            ..MoveReport::default()
        };
        let (deprecated, deadline) = {
            let mut st = inner.state.lock().unwrap();
            st.stats.moves += 1;
            let (lost, released, deprecated) = st.pool.host_moved(now, info.grace);
            let events = st.lose(&lost);
            report.lost = events.len();
            drop(st);
            inner.events.push_all(events);
            let mut gone = released;
            gone.extend(lost.into_iter().map(|(_, e)| e));
            self.release_entries(gone);
            (deprecated, now + info.grace)
        };
        let families: Vec<Family> = {
            let st = inner.state.lock().unwrap();
            let mut f: Vec<Family> = deprecated
                .iter()
                .filter_map(|&id| st.pool.get(id).map(|e| e.grant.family))
                .collect();
            f.sort();
            f.dedup();
            f
        };
        let mut replacement = HashMap::new();
        for family in families {
            let r = self.acquire_idle(
                AddressType::GracefulReplacement,
                family,
                false,
                Some(deadline),
            );
            if let Ok(address) = r {
                report.replacements.push(address);
            }
            replacement.insert(family, r);
        }
        let st = inner.state.lock().unwrap();
        let mut events = Vec::new();
        for id in st.leases_on(&deprecated) {
            let mut ev = st.event(EventKind::AddressDeprecated, id);
            ev.deadline = Some(deadline);
            let family = st.lease(id).map(|e| e.family).expect("live lease");
            match replacement.get(&family) {
                Some(Ok(address)) => ev.replacement = Some(*address),
                Some(Err(e)) => ev.error = Some(e.clone()),
                None => {}
            }
            events.push(ev);
        }
        report.deprecated = events.len();
        drop(st);
        inner.events.push_all(events);
        Ok(report)
    }

    /// Checks the bookkeeping under one lock: every address's lease count matches the leases
    /// that hold it, quota counts match the live leases, the fd table points at live leases of
    /// those fds, and every pending lease waits on an open flight. For tests.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> std::result::Result<(), String> {
        let st = self.inner.state.lock().unwrap();
        let mut held: HashMap<AddrId, u32> = HashMap::new();
        let mut live = [0u32; 4];
        for slot in &st.leases {
            let Some(e) = &slot.entry else { continue };
            match &e.status {
                Status::Held { addr, address } => {
                    let p = st
                        .pool
                        .get(*addr)
                        .ok_or("a lease holds an address not in the pool")?;
                    if p.address != *address || p.grant.address_type != e.address_type {
                        return Err(format!(
                            "lease on {address} ({}) but the pool has {} ({})",
                            e.address_type, p.address, p.grant.address_type
                        ));
                    }
                    *held.entry(*addr).or_default() += 1;
                    live[live_slot(e.address_type)] += 1;
                }
                Status::Pending { flight } => {
                    if !st.flights.contains_key(flight) {
                        return Err(format!(
                            "a lease waits on flight {flight}, which is not open"
                        ));
                    }
                    live[live_slot(e.address_type)] += 1;
                }
                Status::Lost { .. } | Status::Failed(_) => {}
            }
        }
        for (id, e) in st.pool.iter() {
            let n = held.get(&id).copied().unwrap_or(0);
            if e.leases != n {
                return Err(format!(
                    "{} counts {} leases, {n} hold it",
                    e.address, e.leases
                ));
            }
        }
        if live != st.live {
            return Err(format!("quota counts {:?}, live leases {live:?}", st.live));
        }
        for id in st.sockets.leases() {
            let e = st.lease(id).ok_or("the fd table names an ended lease")?;
            let fd = e
                .socket
                .ok_or("the fd table names a lease without a socket")?
                .fd;
            if st.sockets.get(fd) != Some(id) {
                return Err(format!("fd {fd}'s lease is filed under another fd"));
            }
        }
        for flight in st.joinable.values() {
            if !st.flights.contains_key(flight) {
                return Err(format!("flight {flight} is joinable but not open"));
            }
        }
        Ok(())
    }

    /// For benchmarks only: `n` leases of `t` held by sockets that do not exist (fd numbers
    /// past any fd limit), so the tables can be measured at sizes the process's fd limit does
    /// not allow with real sockets. The next `tick` ends them all, as it would for closed sockets.
    #[doc(hidden)]
    pub fn bench_hold_phantom_leases(&self, t: AddressType, family: Family, n: u32) -> Result<()> {
        let anchor = socket::new_unbound(family, socket::Kind::Datagram)?;
        let info = self.setsc_fd(anchor.as_raw_fd(), t, &SetscOptions::default())?;
        let now = self.inner.clock.now();
        let mut st = self.inner.state.lock().unwrap();
        let Some(Status::Held { addr, address }) = st.lease(info.id).map(|e| &e.status) else {
            return Err(Error::InvalidArgument("no address to hold".into()));
        };
        let (addr, address) = (*addr, *address);
        for i in 0..n {
            let key = SocketKey {
                fd: 1 << 24 | i as RawFd,
                cookie: u64::MAX - u64::from(i),
            };
            st.pool.attach(addr);
            st.new_lease(LeaseEntry {
                address_type: t,
                family,
                socket: Some(key),
                waiter: Waiter::Thread,
                status: Status::Held { addr, address },
            });
        }
        st.end_lease(info.id, now);
        Ok(())
    }

    /// Network requests under way now.
    pub fn requests_in_flight(&self) -> usize {
        self.inner.state.lock().unwrap().flights.len()
    }
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("provider", &self.inner.provider.name())
            .field("stats", &self.stats())
            .finish()
    }
}

const _: () = {
    const fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<Stack>();
    is_send_sync::<Lease>();
};
