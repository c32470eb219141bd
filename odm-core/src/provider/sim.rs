//! `sim`: the embedded default, an in-process stand-in for an operator network.
//!
//! IPv4 sockets get addresses of 127.T.G.N (T = type value, G = gateway, N = grant number): every
//! 127/8 address is local on Linux, so they bind and carry real traffic without privileges.
//! IPv6 sockets get a /64 from the ULA prefix fd6f:646d:T:GGNN::/64 ("odm" in hex), bound with
//! IPV6_FREEBIND. Fixed and session-lasting grants are anchored in the network and survive moves;
//! nonpersistent grants belong to the gateway and die with a move; graceful-replacement grants
//! stay valid for `grace` after a move. Faults are drawn from a seeded generator, so a test that
//! injects them sees the same sequence on every run.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Grant, GrantRequest, Lifetimes, MoveInfo, Provider};
use crate::clock::{Clock, Timestamp};
use crate::{AddressType, Error, Family, Result};

/// The largest number of grants of one type one gateway can hold (the N of 127.T.G.N).
pub const MAX_CAPACITY: u16 = 254;

/// What the simulated network offers for one type.
#[derive(Clone, Debug, PartialEq)]
pub struct SimTypeConfig {
    pub lifetimes: Lifetimes,
    /// Overrides the network-wide latency for this type.
    pub latency: Option<Duration>,
    /// Grants of this type one gateway can hold at once (per family), at most [`MAX_CAPACITY`].
    pub capacity: u16,
    /// The network refuses every request of this type.
    pub refuse: bool,
}

impl SimTypeConfig {
    /// Lifetimes like a real operator's (those of the reference Kea configuration).
    pub fn default_for(t: AddressType) -> SimTypeConfig {
        let (preferred, valid) = match t {
            AddressType::Fixed => (86_400, 172_800),
            AddressType::SessionLasting => (3_600, 7_200),
            AddressType::Nonpersistent => (300, 600),
            AddressType::GracefulReplacement | AddressType::Unspecified => (1_800, 3_600),
        };
        SimTypeConfig {
            lifetimes: Lifetimes {
                preferred: Duration::from_secs(preferred),
                valid: Duration::from_secs(valid),
                renew: Duration::from_secs(preferred / 2),
            },
            latency: None,
            capacity: MAX_CAPACITY,
            refuse: false,
        }
    }
}

/// Seeded fault injection: each request draws whether it is dropped, delayed or refused.
#[derive(Clone, Debug, PartialEq)]
pub struct Faults {
    /// Probability that a request gets no answer (the requester times out).
    pub drop: f64,
    /// Probability that an answer comes `delay_by` late.
    pub delay: f64,
    pub delay_by: Duration,
    /// Probability that a request is refused.
    pub refuse: f64,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            drop: 0.0,
            delay: 0.0,
            delay_by: Duration::from_secs(1),
            refuse: 0.0,
        }
    }
}

/// The simulated operator network.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Per type (index = value - 1); `None` means the network does not offer the type.
    pub types: [Option<SimTypeConfig>; 4],
    /// False models a network without on-demand support (RFC 8653 §4.1).
    pub on_demand: bool,
    /// Round-trip time of one request.
    pub latency: Duration,
    /// How long graceful-replacement addresses stay valid after a move.
    pub grace: Duration,
    pub faults: Faults,
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            types: AddressType::ON_DEMAND.map(|t| Some(SimTypeConfig::default_for(t))),
            on_demand: true,
            latency: Duration::from_millis(2),
            grace: Duration::from_secs(30),
            faults: Faults::default(),
            seed: 1,
        }
    }
}

/// What the simulated network has seen, for tests and the demo.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    pub requests: u64,
    pub grants: u64,
    pub renewals: u64,
    pub releases: u64,
    pub refusals: u64,
    pub drops: u64,
    pub moves: u64,
    /// Grants given and neither released nor forgotten by the network.
    pub outstanding: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Slot {
    address_type: AddressType,
    family: Family,
    gateway: u32,
    number: u16,
}

#[derive(Debug)]
struct State {
    gateway: u32,
    rng: u64,
    next_id: u64,
    /// Grant id -> where it sits, and (graceful after a move) when the network forgets it.
    grants: HashMap<u64, (Slot, Option<Timestamp>)>,
    used: HashSet<Slot>,
    stats: SimStats,
}

/// The `sim` provider.
pub struct SimProvider {
    config: SimConfig,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl SimProvider {
    pub fn new(config: SimConfig, clock: Arc<dyn Clock>) -> SimProvider {
        let rng = config.seed ^ 0x9e37_79b9_7f4a_7c15;
        SimProvider {
            config,
            clock,
            state: Mutex::new(State {
                gateway: 1,
                rng,
                next_id: 1,
                grants: HashMap::new(),
                used: HashSet::new(),
                stats: SimStats::default(),
            }),
        }
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    pub fn stats(&self) -> SimStats {
        let st = self.state.lock().unwrap();
        SimStats {
            outstanding: st.grants.len() as u64,
            ..st.stats
        }
    }

    /// The gateway the host is attached to now (1 at start, +1 per move).
    pub fn gateway(&self) -> u32 {
        self.state.lock().unwrap().gateway
    }

    fn wait(&self, until: Timestamp, deadline: Timestamp) -> Result<()> {
        if until > deadline {
            self.clock.sleep_until(deadline);
            return Err(Error::Timeout(deadline.saturating_since(self.clock.now())));
        }
        self.clock.sleep_until(until);
        Ok(())
    }
}

/// splitmix64: small, seedable, good enough for fault draws.
fn next_random(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

enum Draw {
    Answer { extra: Duration },
    Drop,
    Refuse,
}

fn prefix_of(slot: Slot) -> (IpAddr, u8) {
    let t = slot.address_type.value();
    // Gateways cycle through 1..=250 so that G fits one octet.
    let g = ((slot.gateway - 1) % 250 + 1) as u8;
    match slot.family {
        Family::V4 => (IpAddr::V4(Ipv4Addr::new(127, t, g, slot.number as u8)), 32),
        Family::V6 => {
            let net = Ipv6Addr::new(
                0xfd6f,
                0x646d,
                t as u16,
                (g as u16) << 8 | slot.number,
                0,
                0,
                0,
                0,
            );
            (IpAddr::V6(net), 64)
        }
    }
}

impl Provider for SimProvider {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn serves(&self, _family: Family) -> bool {
        true
    }

    fn acquire(&self, req: &GrantRequest) -> Result<Grant> {
        let start = req.issued;
        let t = req.address_type;
        if !self.config.on_demand {
            return Err(Error::NotSupported(
                "the network does not offer on-demand address types (RFC 8653 §4.1)".into(),
            ));
        }
        let offered = t.slot().and_then(|i| self.config.types[i].as_ref());
        let draw = {
            let mut st = self.state.lock().unwrap();
            st.stats.requests += 1;
            let f = &self.config.faults;
            let (a, b, c) = (
                next_random(&mut st.rng),
                next_random(&mut st.rng),
                next_random(&mut st.rng),
            );
            if a < f.drop {
                st.stats.drops += 1;
                Draw::Drop
            } else if b < f.refuse {
                Draw::Refuse
            } else {
                Draw::Answer {
                    extra: if c < f.delay {
                        f.delay_by
                    } else {
                        Duration::ZERO
                    },
                }
            }
        };
        let extra = match draw {
            Draw::Drop => {
                self.clock.sleep_until(req.deadline);
                return Err(Error::Timeout(req.deadline.saturating_since(start)));
            }
            Draw::Refuse => Duration::ZERO,
            Draw::Answer { extra } => extra,
        };
        let latency = offered
            .and_then(|c| c.latency)
            .unwrap_or(self.config.latency)
            + extra;
        self.wait(start + latency, req.deadline)?;

        let mut st = self.state.lock().unwrap();
        let Some(cfg) = offered.filter(|c| !c.refuse && !matches!(draw, Draw::Refuse)) else {
            st.stats.refusals += 1;
            return Err(Error::NetworkRefused(format!(
                "the network refused a {t} address"
            )));
        };
        let gateway = st.gateway;
        let free = (1..=cfg.capacity.min(MAX_CAPACITY))
            .map(|number| Slot {
                address_type: t,
                family: req.family,
                gateway,
                number,
            })
            .find(|s| !st.used.contains(s));
        let Some(slot) = free else {
            st.stats.refusals += 1;
            return Err(Error::NetworkRefused(format!(
                "the network has no {t} {} prefix left (capacity {})",
                req.family, cfg.capacity
            )));
        };
        let id = st.next_id;
        st.next_id += 1;
        st.used.insert(slot);
        st.grants.insert(id, (slot, None));
        st.stats.grants += 1;
        let (prefix, prefix_len) = prefix_of(slot);
        Ok(Grant {
            id,
            address_type: t,
            family: req.family,
            prefix,
            prefix_len,
            lifetimes: cfg.lifetimes,
            server: format!("sim-gw{gateway}"),
        })
    }

    fn renew(&self, grant: &Grant, deadline: Timestamp) -> Result<Lifetimes> {
        let now = self.clock.now();
        self.wait(now + self.config.latency, deadline)?;
        let mut st = self.state.lock().unwrap();
        st.stats.renewals += 1;
        match st.grants.get(&grant.id) {
            Some((_, None)) => Ok(grant
                .address_type
                .slot()
                .and_then(|i| self.config.types[i].as_ref())
                .map_or(grant.lifetimes, |c| c.lifetimes)),
            Some((_, Some(_))) => Err(Error::NetworkRefused(
                "a graceful-replacement grant from an earlier gateway is not renewed".into(),
            )),
            None => Err(Error::NetworkRefused(format!(
                "grant {} is unknown to the network",
                grant.id
            ))),
        }
    }

    fn release(&self, grant: &Grant) {
        let mut st = self.state.lock().unwrap();
        if let Some((slot, _)) = st.grants.remove(&grant.id) {
            st.used.remove(&slot);
            st.stats.releases += 1;
        }
    }

    fn host_moved(&self) -> Result<MoveInfo> {
        let now = self.clock.now();
        let mut st = self.state.lock().unwrap();
        st.gateway += 1;
        st.stats.moves += 1;
        let forget_at = now + self.config.grace;
        let State { grants, used, .. } = &mut *st;
        grants.retain(|_, (slot, until)| match slot.address_type {
            AddressType::Nonpersistent => {
                used.remove(slot);
                false
            }
            AddressType::GracefulReplacement => {
                until.get_or_insert(forget_at);
                true
            }
            _ => true,
        });
        Ok(MoveInfo {
            gateway: st.gateway,
            grace: self.config.grace,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn sim(config: SimConfig) -> (SimProvider, ManualClock) {
        let clock = ManualClock::new(Duration::from_secs(10));
        (SimProvider::new(config, Arc::new(clock.clone())), clock)
    }

    fn req(t: AddressType, family: Family, clock: &ManualClock) -> GrantRequest {
        GrantRequest {
            address_type: t,
            family,
            issued: clock.now(),
            deadline: clock.now() + Duration::from_secs(30),
        }
    }

    #[test]
    fn ipv4_grants_are_per_type_loopback_addresses() {
        let (p, clock) = sim(SimConfig {
            latency: Duration::ZERO,
            ..SimConfig::default()
        });
        for t in AddressType::ON_DEMAND {
            let g = p.acquire(&req(t, Family::V4, &clock)).unwrap();
            assert_eq!(g.prefix, IpAddr::V4(Ipv4Addr::new(127, t.value(), 1, 1)));
            assert_eq!(g.prefix_len, 32);
            let g6 = p.acquire(&req(t, Family::V6, &clock)).unwrap();
            assert_eq!(g6.prefix_len, 64);
            assert!(
                matches!(g6.prefix, IpAddr::V6(a) if a.segments()[0] == 0xfd6f && a.segments()[2] == t.value() as u16)
            );
        }
        assert_eq!(p.stats().grants, 8);
    }

    #[test]
    fn capacity_refusal_and_no_on_demand_are_reported() {
        let mut cfg = SimConfig {
            latency: Duration::ZERO,
            ..SimConfig::default()
        };
        cfg.types[0].as_mut().unwrap().capacity = 1;
        cfg.types[1].as_mut().unwrap().refuse = true;
        cfg.types[2] = None;
        let (p, clock) = sim(cfg.clone());
        p.acquire(&req(AddressType::Fixed, Family::V4, &clock))
            .unwrap();
        let full = p
            .acquire(&req(AddressType::Fixed, Family::V4, &clock))
            .unwrap_err();
        assert_eq!(full.errno(), libc::EADDRNOTAVAIL);
        assert_eq!(
            p.acquire(&req(AddressType::SessionLasting, Family::V4, &clock))
                .unwrap_err()
                .errno(),
            libc::EADDRNOTAVAIL
        );
        assert_eq!(
            p.acquire(&req(AddressType::Nonpersistent, Family::V4, &clock))
                .unwrap_err()
                .errno(),
            libc::EADDRNOTAVAIL
        );

        let (p, clock) = sim(SimConfig {
            on_demand: false,
            ..cfg
        });
        assert_eq!(
            p.acquire(&req(AddressType::Fixed, Family::V4, &clock))
                .unwrap_err()
                .errno(),
            libc::EOPNOTSUPP
        );
    }

    #[test]
    fn a_request_slower_than_its_deadline_times_out_on_the_manual_clock() {
        let (p, clock) = sim(SimConfig {
            latency: Duration::from_secs(5),
            ..SimConfig::default()
        });
        let p = Arc::new(p);
        let r = GrantRequest {
            address_type: AddressType::Fixed,
            family: Family::V4,
            issued: clock.now(),
            deadline: clock.now() + Duration::from_secs(1),
        };
        let p2 = p.clone();
        let h = std::thread::spawn(move || p2.acquire(&r));
        clock.advance(Duration::from_secs(1));
        assert_eq!(h.join().unwrap().unwrap_err().errno(), libc::ETIMEDOUT);
    }

    #[test]
    fn seeded_faults_repeat_exactly() {
        let faults = Faults {
            drop: 0.3,
            refuse: 0.3,
            ..Faults::default()
        };
        let run = || {
            let clock = ManualClock::new(Duration::from_secs(10));
            let cfg = SimConfig {
                latency: Duration::ZERO,
                faults: faults.clone(),
                seed: 42,
                ..SimConfig::default()
            };
            let p = SimProvider::new(cfg, Arc::new(clock.clone()));
            (0..50)
                .map(|_| {
                    // A past deadline makes a dropped request time out at once.
                    let r = GrantRequest {
                        address_type: AddressType::Nonpersistent,
                        family: Family::V6,
                        issued: clock.now(),
                        deadline: clock.now(),
                    };
                    p.acquire(&r).map(|g| p.release(&g)).map_err(|e| e.errno())
                })
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        assert!(a.iter().any(|r| r == &Err(libc::ETIMEDOUT)));
        assert!(a.iter().any(|r| r == &Err(libc::EADDRNOTAVAIL)));
        assert!(a.iter().any(|r| r.is_ok()));
    }

    #[test]
    fn an_injected_delay_holds_the_answer_back_by_delay_by() {
        let faults = Faults {
            delay: 1.0,
            delay_by: Duration::from_secs(5),
            ..Faults::default()
        };
        let (p, clock) = sim(SimConfig {
            latency: Duration::ZERO,
            faults,
            ..SimConfig::default()
        });
        let p = Arc::new(p);
        let r = req(AddressType::Fixed, Family::V4, &clock);
        let p2 = p.clone();
        let h = std::thread::spawn(move || p2.acquire(&r));
        clock.advance(Duration::from_secs(4));
        std::thread::sleep(Duration::from_millis(20));
        assert!(!h.is_finished(), "held back past 4 s");
        clock.advance(Duration::from_secs(1));
        assert!(h.join().unwrap().is_ok());
    }

    #[test]
    fn a_move_forgets_nonpersistent_and_keeps_anchored_grants() {
        let (p, clock) = sim(SimConfig {
            latency: Duration::ZERO,
            ..SimConfig::default()
        });
        let grants: Vec<Grant> = AddressType::ON_DEMAND
            .iter()
            .map(|t| p.acquire(&req(*t, Family::V4, &clock)).unwrap())
            .collect();
        let info = p.host_moved().unwrap();
        assert_eq!(info.gateway, 2);
        let far = clock.now() + Duration::from_secs(1);
        assert!(p.renew(&grants[0], far).is_ok(), "fixed survives a move");
        assert!(
            p.renew(&grants[1], far).is_ok(),
            "session-lasting survives a move"
        );
        assert!(p.renew(&grants[2], far).is_err(), "nonpersistent is lost");
        assert!(
            p.renew(&grants[3], far).is_err(),
            "graceful-replacement is not renewed"
        );
        let np = p
            .acquire(&req(AddressType::Nonpersistent, Family::V4, &clock))
            .unwrap();
        assert_eq!(
            np.prefix,
            IpAddr::V4(Ipv4Addr::new(127, 3, 2, 1)),
            "new gateway, new prefix"
        );
    }
}
