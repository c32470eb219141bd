//! The pool (RFC 8653 §3.4): per type and family, the addresses the host holds, how many leases
//! each has, and their lifecycle. Pure logic: every method takes `now`; the stack does the I/O
//! (provider calls, host configuration) that the returned actions ask for.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::clock::Timestamp;
use crate::provider::{Grant, Lifetimes};
use crate::{AddressType, Family};

/// What happens when the last lease on an address ends (§3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseRule {
    /// Release it to the network at once.
    OnLastClose,
    /// Keep it this long for future sockets, then release it.
    Linger(Duration),
    /// Keep it (renewing it) for as long as the network lets us.
    Never,
}

/// How the pool treats one address type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// New sockets may share an address already leased (else each request is FRESH).
    pub reuse: bool,
    pub release: ReleaseRule,
    /// Rotation (§5): past this age an address is not handed to new sockets.
    pub max_age: Option<Duration>,
    /// The boot-time set (§3.4): this many addresses per family acquired at start and kept.
    pub boot: u32,
}

impl PoolConfig {
    /// Defaults per type: what each type promises, at the least cost to the network.
    pub fn default_for(t: AddressType) -> PoolConfig {
        let release = match t {
            AddressType::Fixed => ReleaseRule::Linger(Duration::from_secs(600)),
            AddressType::SessionLasting => ReleaseRule::OnLastClose,
            AddressType::Nonpersistent => ReleaseRule::Linger(Duration::from_secs(30)),
            AddressType::GracefulReplacement | AddressType::Unspecified => {
                ReleaseRule::Linger(Duration::from_secs(60))
            }
        };
        PoolConfig {
            reuse: true,
            release,
            max_age: None,
            boot: 0,
        }
    }
}

/// The life of an address: `tentative -> preferred -> deprecated -> gone`. The `none` host makes
/// an address usable as soon as it is granted, so the pool holds no tentative addresses yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressState {
    Tentative,
    /// Usable, and handed to new sockets.
    Preferred,
    /// Still valid for the sockets holding it, never handed to new ones.
    Deprecated,
    Gone,
}

impl AddressState {
    pub fn name(self) -> &'static str {
        match self {
            AddressState::Tentative => "tentative",
            AddressState::Preferred => "preferred",
            AddressState::Deprecated => "deprecated",
            AddressState::Gone => "gone",
        }
    }
}

/// An address in the pool.
#[derive(Clone, Debug)]
pub struct Entry {
    pub address: IpAddr,
    pub grant: Grant,
    pub acquired: Timestamp,
    pub preferred_until: Timestamp,
    pub valid_until: Timestamp,
    pub renew_at: Timestamp,
    pub leases: u32,
    /// Part of the boot-time set, or of a type whose rule is `never`: kept while idle.
    pub pinned: bool,
    /// When an idle entry is released; `None` while leased or pinned.
    pub release_at: Option<Timestamp>,
    /// A renewal is under way (the stack is talking to the provider).
    pub renewing: bool,
    /// Deprecated by a move: the network will not renew it.
    pub moved: bool,
    /// Its sockets have been told it is deprecated.
    pub deprecation_told: bool,
}

impl Entry {
    pub fn state(&self, now: Timestamp) -> AddressState {
        if now >= self.valid_until {
            AddressState::Gone
        } else if now >= self.preferred_until {
            AddressState::Deprecated
        } else {
            AddressState::Preferred
        }
    }

    fn set_lifetimes(&mut self, now: Timestamp, l: Lifetimes) {
        self.preferred_until = now + l.preferred;
        self.valid_until = now + l.valid;
        self.renew_at = now + l.renew;
    }
}

/// The index of an entry in the pool (stable while the entry lives).
pub type AddrId = u32;

/// What a sweep of the pool asks the stack to do.
#[derive(Debug, Default)]
pub struct Sweep {
    /// Entries removed from the pool: release their grants and remove them from the host.
    pub released: Vec<Entry>,
    /// Entries gone while sockets held them: their leases are lost (and the grant released).
    pub lost: Vec<(AddrId, Entry)>,
    /// Entries to renew now.
    pub renew: Vec<(AddrId, Grant)>,
    /// Leased entries that just became deprecated.
    pub deprecated: Vec<AddrId>,
}

/// The addresses the host holds, per type and family.
#[derive(Debug)]
pub struct Pool {
    entries: Vec<Option<Entry>>,
    free: Vec<AddrId>,
    by_kind: [[Vec<AddrId>; 2]; 4],
    config: [PoolConfig; 4],
}

fn slot(t: AddressType) -> usize {
    t.slot().expect("the pool holds on-demand types only")
}

/// An address from a grant: the prefix itself when it is one address, else the prefix with a
/// random interface identifier (a new one per address, for privacy).
pub fn address_from(grant: &Grant, random: u64) -> IpAddr {
    match grant.prefix {
        IpAddr::V4(p) => {
            let host_bits = 32 - u32::from(grant.prefix_len.min(32));
            let mask = if host_bits == 0 {
                0
            } else {
                u32::MAX >> (32 - host_bits)
            };
            let host = (random as u32 & mask).max(u32::from(mask != 0));
            IpAddr::V4(Ipv4Addr::from(u32::from(p) | host))
        }
        IpAddr::V6(p) => {
            let host_bits = 128 - u32::from(grant.prefix_len.min(128));
            let mask = if host_bits == 0 {
                0
            } else {
                u128::MAX >> (128 - host_bits)
            };
            let host = (u128::from(random) & mask).max(u128::from(mask != 0));
            IpAddr::V6(Ipv6Addr::from(u128::from(p) | host))
        }
    }
}

impl Pool {
    pub fn new(config: [PoolConfig; 4]) -> Pool {
        Pool {
            entries: Vec::new(),
            free: Vec::new(),
            by_kind: Default::default(),
            config,
        }
    }

    pub fn config(&self, t: AddressType) -> &PoolConfig {
        &self.config[slot(t)]
    }

    pub fn get(&self, id: AddrId) -> Option<&Entry> {
        self.entries.get(id as usize).and_then(Option::as_ref)
    }

    fn entry_mut(&mut self, id: AddrId) -> &mut Entry {
        self.entries[id as usize].as_mut().expect("live pool entry")
    }

    pub fn iter(&self) -> impl Iterator<Item = (AddrId, &Entry)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((i as AddrId, e.as_ref()?)))
    }

    pub fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn rotated(&self, e: &Entry, now: Timestamp) -> bool {
        self.config(e.grant.address_type)
            .max_age
            .is_some_and(|age| now >= e.acquired + age)
    }

    /// A pool hit (§3.4): a preferred address of this type and family that may be reused.
    pub fn find_reusable(&self, t: AddressType, family: Family, now: Timestamp) -> Option<AddrId> {
        if !self.config(t).reuse {
            return None;
        }
        self.by_kind[slot(t)][family.slot()]
            .iter()
            .copied()
            .find(|&id| {
                let e = self.get(id).expect("indexed entry");
                e.state(now) == AddressState::Preferred && !self.rotated(e, now)
            })
    }

    /// Adds a granted address, idle. `pinned` marks the boot-time set.
    pub fn insert(
        &mut self,
        grant: Grant,
        address: IpAddr,
        now: Timestamp,
        pinned: bool,
    ) -> AddrId {
        let t = grant.address_type;
        let family = grant.family;
        let pinned = pinned || self.config(t).release == ReleaseRule::Never;
        let mut e = Entry {
            address,
            acquired: now,
            preferred_until: now,
            valid_until: now,
            renew_at: now,
            leases: 0,
            pinned,
            release_at: None,
            renewing: false,
            moved: false,
            deprecation_told: false,
            grant,
        };
        e.set_lifetimes(now, e.grant.lifetimes);
        let id = match self.free.pop() {
            Some(id) => {
                self.entries[id as usize] = Some(e);
                id
            }
            None => {
                self.entries.push(Some(e));
                (self.entries.len() - 1) as AddrId
            }
        };
        self.by_kind[slot(t)][family.slot()].push(id);
        id
    }

    fn remove(&mut self, id: AddrId) -> Entry {
        let e = self.entries[id as usize].take().expect("live pool entry");
        self.by_kind[slot(e.grant.address_type)][e.grant.family.slot()].retain(|&x| x != id);
        self.free.push(id);
        e
    }

    /// One more socket holds the address.
    pub fn attach(&mut self, id: AddrId) {
        let e = self.entry_mut(id);
        e.leases += 1;
        e.release_at = None;
    }

    /// A socket let go of the address. When it was the last, the type's release rule applies;
    /// returns the entry if it leaves the pool now.
    pub fn detach(&mut self, id: AddrId, now: Timestamp) -> Option<Entry> {
        let e = self.entry_mut(id);
        e.leases -= 1;
        if e.leases > 0 {
            return None;
        }
        self.idle(id, now, None)
    }

    /// The entry has no leases: decide when it goes. `keep_until` holds it at least that long
    /// (a replacement waiting for the sockets that will migrate to it).
    pub fn idle(
        &mut self,
        id: AddrId,
        now: Timestamp,
        keep_until: Option<Timestamp>,
    ) -> Option<Entry> {
        let usable = {
            let e = self.get(id).expect("live pool entry");
            e.state(now) == AddressState::Preferred && !self.rotated(e, now)
        };
        let rule = self
            .config(self.get(id).expect("live pool entry").grant.address_type)
            .release;
        let e = self.entry_mut(id);
        if e.pinned && usable {
            e.release_at = None;
            return None;
        }
        let release_at = match rule {
            _ if !usable => now,
            ReleaseRule::OnLastClose | ReleaseRule::Never => now,
            ReleaseRule::Linger(d) => now + d,
        };
        let release_at = keep_until.map_or(release_at, |k| release_at.max(k));
        if release_at <= now {
            return Some(self.remove(id));
        }
        e.release_at = Some(release_at);
        None
    }

    /// Time passes: gone addresses leave, idle ones past their linger are released, held ones
    /// are renewed before they lapse (§3.4: a fixed or session-lasting address never expires
    /// under its sockets while the network renews it).
    pub fn sweep(&mut self, now: Timestamp) -> Sweep {
        let mut out = Sweep::default();
        let ids: Vec<AddrId> = self.iter().map(|(id, _)| id).collect();
        for id in ids {
            let (state, leases, rotated) = {
                let e = self.get(id).expect("live pool entry");
                (e.state(now), e.leases, self.rotated(e, now))
            };
            let e = self.entry_mut(id);
            if state == AddressState::Gone {
                let e = self.remove(id);
                if leases > 0 {
                    out.lost.push((id, e));
                } else {
                    out.released.push(e);
                }
                continue;
            }
            let idle_over = match (e.pinned, e.release_at) {
                _ if leases > 0 => false,
                (true, _) => rotated,
                (false, Some(at)) => at <= now,
                (false, None) => true,
            };
            if idle_over {
                out.released.push(self.remove(id));
                continue;
            }
            if (leases > 0 || e.pinned) && !e.moved && !e.renewing && now >= e.renew_at {
                e.renewing = true;
                out.renew.push((id, e.grant.clone()));
            }
            if leases > 0 && state == AddressState::Deprecated && !e.deprecation_told {
                e.deprecation_told = true;
                out.deprecated.push(id);
            }
        }
        out
    }

    /// Boot-time addresses missing (§3.4), per type and family.
    pub fn boot_deficit(&self, now: Timestamp) -> Vec<(AddressType, Family, u32)> {
        let mut out = Vec::new();
        for t in AddressType::ON_DEMAND {
            let want = self.config(t).boot;
            for family in [Family::V4, Family::V6] {
                let have = self.by_kind[slot(t)][family.slot()]
                    .iter()
                    .filter(|&&id| {
                        let e = self.get(id).expect("indexed entry");
                        e.pinned && e.state(now) == AddressState::Preferred
                    })
                    .count() as u32;
                if have < want {
                    out.push((t, family, want - have));
                }
            }
        }
        out
    }

    /// The network answered a renewal: new lifetimes from now, or a failure (try again later,
    /// until the address's valid lifetime ends).
    pub fn renewed(&mut self, id: AddrId, now: Timestamp, result: Option<Lifetimes>) {
        let Some(e) = self.entries.get_mut(id as usize).and_then(Option::as_mut) else {
            return;
        };
        e.renewing = false;
        match result {
            Some(l) => {
                e.set_lifetimes(now, l);
                e.grant.lifetimes = l;
                e.deprecation_told = false;
            }
            None => {
                let left = e.valid_until.saturating_since(now);
                e.renew_at = now + (left / 4).max(Duration::from_secs(1));
            }
        }
    }

    /// The host moved to another gateway (§3.2): nonpersistent addresses are gone; graceful-
    /// replacement ones are deprecated and stay valid for `grace`; the others stay.
    /// Returns the lost entries that had leases, the released idle ones, and the deprecated
    /// graceful-replacement entries that have leases.
    pub fn host_moved(
        &mut self,
        now: Timestamp,
        grace: Duration,
    ) -> (Vec<(AddrId, Entry)>, Vec<Entry>, Vec<AddrId>) {
        let mut lost = Vec::new();
        let mut released = Vec::new();
        let mut deprecated = Vec::new();
        for family in [Family::V4, Family::V6] {
            for id in self.by_kind[slot(AddressType::Nonpersistent)][family.slot()].clone() {
                let e = self.remove(id);
                if e.leases > 0 {
                    lost.push((id, e))
                } else {
                    released.push(e)
                }
            }
            for id in self.by_kind[slot(AddressType::GracefulReplacement)][family.slot()].clone() {
                let e = self.entry_mut(id);
                e.moved = true;
                e.preferred_until = e.preferred_until.min(now);
                e.valid_until = e.valid_until.min(now + grace);
                if e.leases > 0 {
                    e.deprecation_told = true;
                    deprecated.push(id);
                } else {
                    released.push(self.remove(id));
                }
            }
        }
        (lost, released, deprecated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AddressType::*;

    const T0: Timestamp = Timestamp::from_duration(Duration::from_secs(100));

    fn grant(t: AddressType, family: Family, id: u64) -> Grant {
        Grant {
            id,
            address_type: t,
            family,
            prefix: match family {
                Family::V4 => IpAddr::V4(Ipv4Addr::new(127, t.value(), 1, id as u8)),
                Family::V6 => IpAddr::V6(Ipv6Addr::new(
                    0xfd6f,
                    0x646d,
                    t.value() as u16,
                    id as u16,
                    0,
                    0,
                    0,
                    0,
                )),
            },
            prefix_len: if family == Family::V4 { 32 } else { 64 },
            lifetimes: Lifetimes {
                preferred: Duration::from_secs(60),
                valid: Duration::from_secs(120),
                renew: Duration::from_secs(30),
            },
            server: "test".into(),
        }
    }

    fn pool() -> Pool {
        Pool::new(AddressType::ON_DEMAND.map(PoolConfig::default_for))
    }

    fn add(p: &mut Pool, t: AddressType, id: u64) -> AddrId {
        let g = grant(t, Family::V4, id);
        let a = address_from(&g, 7);
        p.insert(g, a, T0, false)
    }

    #[test]
    fn addresses_are_built_from_the_grant() {
        let g4 = grant(Fixed, Family::V4, 5);
        assert_eq!(address_from(&g4, 12345), g4.prefix);
        let g6 = grant(Fixed, Family::V6, 5);
        let a = address_from(&g6, 0xdead_beef);
        let IpAddr::V6(a) = a else { panic!() };
        assert_eq!(a.segments()[..4], [0xfd6f, 0x646d, 1, 5]);
        assert_eq!(u128::from(a) as u64, 0xdead_beef);
        assert_ne!(
            address_from(&g6, 0),
            g6.prefix,
            "never the subnet-router anycast address"
        );
    }

    #[test]
    fn lifecycle_goes_preferred_deprecated_gone() {
        let mut p = pool();
        let id = add(&mut p, Fixed, 1);
        let e = p.get(id).unwrap();
        assert_eq!(e.state(T0), AddressState::Preferred);
        assert_eq!(
            e.state(T0 + Duration::from_secs(60)),
            AddressState::Deprecated
        );
        assert_eq!(e.state(T0 + Duration::from_secs(120)), AddressState::Gone);
        assert_eq!(p.find_reusable(Fixed, Family::V4, T0), Some(id));
        assert_eq!(
            p.find_reusable(Fixed, Family::V4, T0 + Duration::from_secs(60)),
            None,
            "deprecated: never to new sockets"
        );
        assert_eq!(p.find_reusable(Fixed, Family::V6, T0), None);
    }

    #[test]
    fn rfc8653_s3_4_release_rules_on_last_close_linger_never() {
        let mut p = Pool::new([
            PoolConfig {
                release: ReleaseRule::Never,
                ..PoolConfig::default_for(Fixed)
            },
            PoolConfig {
                release: ReleaseRule::OnLastClose,
                ..PoolConfig::default_for(SessionLasting)
            },
            PoolConfig {
                release: ReleaseRule::Linger(Duration::from_secs(10)),
                ..PoolConfig::default_for(Nonpersistent)
            },
            PoolConfig::default_for(GracefulReplacement),
        ]);
        let (f, s, n) = (
            add(&mut p, Fixed, 1),
            add(&mut p, SessionLasting, 2),
            add(&mut p, Nonpersistent, 3),
        );
        for id in [f, s, n] {
            p.attach(id);
            p.attach(id);
            assert!(p.detach(id, T0).is_none(), "one lease left");
        }
        assert!(p.detach(f, T0).is_none(), "never: kept");
        assert_eq!(
            p.detach(s, T0).unwrap().grant.id,
            2,
            "on-last-close: released at once"
        );
        assert!(p.detach(n, T0).is_none(), "linger: kept for now");
        assert!(p.sweep(T0 + Duration::from_secs(9)).released.is_empty());
        let swept = p.sweep(T0 + Duration::from_secs(10));
        assert_eq!(
            swept
                .released
                .iter()
                .map(|e| e.grant.id)
                .collect::<Vec<_>>(),
            [3]
        );
        assert!(p.get(f).is_some());
    }

    #[test]
    fn rfc8653_s5_rotation_after_max_age_stops_reuse_but_keeps_holders() {
        let mut p = Pool::new(AddressType::ON_DEMAND.map(|t| PoolConfig {
            max_age: Some(Duration::from_secs(20)),
            ..PoolConfig::default_for(t)
        }));
        let id = add(&mut p, Nonpersistent, 1);
        p.attach(id);
        assert_eq!(
            p.find_reusable(Nonpersistent, Family::V4, T0 + Duration::from_secs(19)),
            Some(id)
        );
        let later = T0 + Duration::from_secs(20);
        assert_eq!(
            p.find_reusable(Nonpersistent, Family::V4, later),
            None,
            "rotated: new requests miss"
        );
        assert!(p.sweep(later).released.is_empty(), "the holder keeps it");
        assert!(
            p.detach(id, later).is_some(),
            "released with its last lease, whatever the linger"
        );
    }

    #[test]
    fn held_addresses_are_renewed_and_failed_renewals_retry() {
        let mut p = pool();
        let id = add(&mut p, SessionLasting, 1);
        p.attach(id);
        let t1 = T0 + Duration::from_secs(30);
        let s = p.sweep(t1);
        assert_eq!(s.renew.len(), 1);
        assert!(p.sweep(t1).renew.is_empty(), "one renewal at a time");
        p.renewed(id, t1, None);
        assert!(p.get(id).unwrap().renew_at > t1);
        let l = p.get(id).unwrap().grant.lifetimes;
        p.renewed(id, t1, Some(l));
        assert_eq!(
            p.get(id).unwrap().valid_until,
            t1 + Duration::from_secs(120)
        );
    }

    #[test]
    fn a_leased_address_past_its_valid_lifetime_is_lost() {
        let mut p = pool();
        let id = add(&mut p, SessionLasting, 1);
        p.attach(id);
        let s = p.sweep(T0 + Duration::from_secs(61));
        assert_eq!(s.deprecated, [id]);
        let s = p.sweep(T0 + Duration::from_secs(120));
        assert_eq!(s.lost.len(), 1);
        assert!(p.is_empty());
    }

    #[test]
    fn rfc8653_s3_2_move_loses_nonpersistent_and_deprecates_graceful() {
        let mut p = pool();
        let ids = AddressType::ON_DEMAND.map(|t| add(&mut p, t, t.value() as u64));
        for id in ids {
            p.attach(id);
        }
        let (lost, released, deprecated) = p.host_moved(T0, Duration::from_secs(5));
        assert_eq!(lost.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [ids[2]]);
        assert!(released.is_empty());
        assert_eq!(deprecated, [ids[3]]);
        let g = p.get(ids[3]).unwrap();
        assert_eq!(g.state(T0), AddressState::Deprecated);
        assert_eq!(g.valid_until, T0 + Duration::from_secs(5));
        assert_eq!(p.get(ids[0]).unwrap().state(T0), AddressState::Preferred);
        assert_eq!(p.get(ids[1]).unwrap().state(T0), AddressState::Preferred);
        assert!(
            p.sweep(T0 + Duration::from_secs(31))
                .renew
                .iter()
                .all(|(id, _)| *id != ids[3]),
            "a moved address is not renewed"
        );
    }

    #[test]
    fn rfc8653_s3_4_boot_time_set_is_kept_idle_and_refilled() {
        let mut p = Pool::new(AddressType::ON_DEMAND.map(|t| PoolConfig {
            boot: u32::from(t == Fixed),
            ..PoolConfig::default_for(t)
        }));
        assert_eq!(
            p.boot_deficit(T0),
            [(Fixed, Family::V4, 1), (Fixed, Family::V6, 1)]
        );
        let g = grant(Fixed, Family::V4, 1);
        let id = p.insert(g.clone(), g.prefix, T0, true);
        p.attach(id);
        assert!(
            p.detach(id, T0).is_none(),
            "boot-time addresses stay when idle"
        );
        assert_eq!(
            p.boot_deficit(T0 + Duration::from_secs(10)),
            [(Fixed, Family::V6, 1)]
        );
        // Never renewed here (no provider), it lapses and leaves; the set must be refilled.
        assert_eq!(p.sweep(T0 + Duration::from_secs(120)).released.len(), 1);
        assert_eq!(
            p.boot_deficit(T0 + Duration::from_secs(120)),
            [(Fixed, Family::V4, 1), (Fixed, Family::V6, 1)]
        );
    }
}
