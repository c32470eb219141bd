//! Configuration: the TOML file of DESIGN.md and the typed [`Config`] it becomes. A file is read
//! whole and validated whole: a bad one is refused with its file, line and reason, and nothing
//! of it is applied.
//!
//! ```toml
//! [network]
//! provider = "sim"
//! request_timeout = "30s"
//! [network.sim]
//! latency = "2ms"
//! grace = "30s"
//! [network.sim.nonpersistent]
//! preferred = "5m"
//! valid = "10m"
//! [pool.fixed]
//! release = "linger"
//! linger = "10m"
//! boot = 1
//! [policy]
//! default_type = "session-lasting"
//! [[policy.rule]]
//! app = "*"
//! allow = ["session-lasting", "nonpersistent"]
//! quotas = { nonpersistent = 100 }
//! ```

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::policy::{Policy, Rule};
use crate::pool::{PoolConfig, ReleaseRule};
use crate::provider::sim::{Faults, MAX_CAPACITY, SimConfig};
use crate::{AddressType, Error, Result};

/// Where grants come from.
#[derive(Clone, Debug, PartialEq)]
pub enum ProviderConfig {
    Sim(SimConfig),
}

#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfig {
    pub provider: ProviderConfig,
    /// How long setsc() waits for the network by default.
    pub request_timeout: Duration,
}

/// A whole, valid configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub network: NetworkConfig,
    /// Per type (index = value - 1).
    pub pools: [PoolConfig; 4],
    pub policy: Policy,
    /// The application name policy rules match; default: the process name.
    pub app: Option<String>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            network: NetworkConfig {
                provider: ProviderConfig::Sim(SimConfig::default()),
                request_timeout: Duration::from_secs(30),
            },
            pools: AddressType::ON_DEMAND.map(PoolConfig::default_for),
            policy: Policy::default(),
            app: None,
        }
    }
}

/// The path DESIGN's resolution order picks: `$ODM_CONFIG`, else /etc/odm/odm.toml if it
/// exists; `None` means the built-in defaults.
pub fn resolve_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ODM_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let etc = Path::new("/etc/odm/odm.toml");
    etc.exists().then(|| etc.to_path_buf())
}

impl Config {
    /// Reads and validates a file.
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            file: path.to_path_buf(),
            line: 0,
            reason: format!("cannot read: {e}"),
        })?;
        Config::parse(&text, path)
    }

    /// Validates TOML text; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Config> {
        let fail = |span: Option<Range<usize>>, reason: String| Error::Config {
            file: file.to_path_buf(),
            line: span.map_or(0, |s| line_of(text, s.start)),
            reason,
        };
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| fail(e.span(), e.message().trim().to_owned()))?;
        raw.validate()
            .map_err(|(span, reason)| fail(Some(span), reason))
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

/// A reason and where it points.
type Invalid = (Range<usize>, String);

/// "250ms", "30s", "10m", "2h", "1d"; a bare number is seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        format!("{s:?} is not a duration (like \"500ms\", \"30s\", \"10m\", \"2h\", \"1d\")")
    })?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {s:?} (use ms, s, m, h or d)"
            ));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is out of range"))
}

/// A duration in the file: "30s", "500ms", ... or a number of seconds.
type DurationValue = toml::Value;
/// An address type in the file: its name or its stable number.
type TypeValue = toml::Value;

fn duration(v: &Spanned<DurationValue>) -> std::result::Result<Duration, Invalid> {
    match v.get_ref() {
        toml::Value::String(t) => parse_duration(t),
        toml::Value::Integer(n) => u64::try_from(*n)
            .map(Duration::from_secs)
            .map_err(|_| format!("{n} is not a duration in seconds (0 or more)")),
        toml::Value::Float(n) => Duration::try_from_secs_f64(*n)
            .map_err(|_| format!("{n} is not a duration in seconds (0 or more)")),
        other => Err(format!(
            "expected a duration like \"30s\" or a number of seconds, found {}",
            other.type_str()
        )),
    }
    .map_err(|r| (v.span(), r))
}

fn positive(v: &Spanned<DurationValue>) -> std::result::Result<Duration, Invalid> {
    let d = duration(v)?;
    if d.is_zero() {
        return Err((v.span(), "must be longer than zero".into()));
    }
    Ok(d)
}

fn type_name(v: &Spanned<TypeValue>) -> std::result::Result<AddressType, Invalid> {
    let parsed = match v.get_ref() {
        toml::Value::String(name) => name.parse(),
        toml::Value::Integer(n) => AddressType::try_from(*n),
        other => {
            let found = other.type_str();
            return Err((
                v.span(),
                format!("expected an address type (a name or 0-4), found {found}"),
            ));
        }
    };
    parsed.map_err(|e| match e {
        Error::InvalidArgument(reason) => (v.span(), reason),
        other => (v.span(), other.to_string()),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    network: RawNetwork,
    #[serde(default)]
    host: RawHost,
    #[serde(default)]
    pool: PerType<RawPool>,
    #[serde(default)]
    policy: RawPolicy,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    provider: Option<Spanned<String>>,
    request_timeout: Option<Spanned<DurationValue>>,
    #[serde(default)]
    sim: RawSim,
    dhcpv6: Option<Spanned<toml::Table>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHost {
    configure: Option<Spanned<String>>,
    /// Used by the netlink host; accepted now so configs written for it stay valid.
    #[allow(dead_code)]
    interface: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PerType<T> {
    #[serde(alias = "1")]
    fixed: Option<T>,
    #[serde(rename = "session-lasting", alias = "2")]
    session_lasting: Option<T>,
    #[serde(alias = "3")]
    nonpersistent: Option<T>,
    #[serde(rename = "graceful-replacement", alias = "4")]
    graceful_replacement: Option<T>,
}

impl<T> Default for PerType<T> {
    fn default() -> Self {
        PerType {
            fixed: None,
            session_lasting: None,
            nonpersistent: None,
            graceful_replacement: None,
        }
    }
}

impl<T> PerType<T> {
    fn into_array(self) -> [Option<T>; 4] {
        [
            self.fixed,
            self.session_lasting,
            self.nonpersistent,
            self.graceful_replacement,
        ]
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSim {
    latency: Option<Spanned<DurationValue>>,
    grace: Option<Spanned<DurationValue>>,
    on_demand: Option<bool>,
    seed: Option<u64>,
    /// The types the network offers (default: all four).
    offer: Option<Vec<Spanned<TypeValue>>>,
    #[serde(default)]
    faults: RawFaults,
    #[serde(alias = "1")]
    fixed: Option<RawSimType>,
    #[serde(rename = "session-lasting", alias = "2")]
    session_lasting: Option<RawSimType>,
    #[serde(alias = "3")]
    nonpersistent: Option<RawSimType>,
    #[serde(rename = "graceful-replacement", alias = "4")]
    graceful_replacement: Option<RawSimType>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSimType {
    preferred: Option<Spanned<DurationValue>>,
    valid: Option<Spanned<DurationValue>>,
    renew: Option<Spanned<DurationValue>>,
    latency: Option<Spanned<DurationValue>>,
    capacity: Option<Spanned<i64>>,
    refuse: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFaults {
    drop: Option<Spanned<f64>>,
    delay: Option<Spanned<f64>>,
    delay_by: Option<Spanned<DurationValue>>,
    refuse: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    reuse: Option<bool>,
    release: Option<Spanned<String>>,
    linger: Option<Spanned<DurationValue>>,
    max_age: Option<Spanned<DurationValue>>,
    boot: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    default_type: Option<Spanned<TypeValue>>,
    app: Option<String>,
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    app: String,
    allow: Option<Vec<Spanned<TypeValue>>>,
    /// Per type: the most leases the application may hold at once.
    #[serde(default)]
    quotas: PerType<Spanned<i64>>,
}

fn probability(v: &Option<Spanned<f64>>) -> std::result::Result<f64, Invalid> {
    match v {
        None => Ok(0.0),
        Some(p) if (0.0..=1.0).contains(p.get_ref()) => Ok(*p.get_ref()),
        Some(p) => Err((
            p.span(),
            format!("probability {} is not between 0 and 1", p.get_ref()),
        )),
    }
}

impl RawConfig {
    fn validate(self) -> std::result::Result<Config, Invalid> {
        let mut config = Config::default();
        if let Some(p) = &self.network.provider {
            match p.get_ref().as_str() {
                "sim" => {}
                "dhcpv6" => {
                    return Err((
                        p.span(),
                        "provider \"dhcpv6\" is not available in this version of odm yet".into(),
                    ));
                }
                other => {
                    return Err((
                        p.span(),
                        format!("unknown provider {other:?} (expected \"sim\" or \"dhcpv6\")"),
                    ));
                }
            }
        }
        if let Some(t) = &self.network.dhcpv6 {
            return Err((
                t.span(),
                "[network.dhcpv6] is not available in this version of odm yet".into(),
            ));
        }
        if let Some(c) = &self.host.configure {
            match c.get_ref().as_str() {
                "none" => {}
                "netlink" => {
                    return Err((
                        c.span(),
                        "host \"netlink\" is not available in this version of odm yet".into(),
                    ));
                }
                other => {
                    return Err((
                        c.span(),
                        format!("unknown host {other:?} (expected \"none\" or \"netlink\")"),
                    ));
                }
            }
        }
        if let Some(t) = &self.network.request_timeout {
            config.network.request_timeout = positive(t)?;
        }
        config.network.provider = ProviderConfig::Sim(self.network.sim.validate()?);
        for (i, raw) in self.pool.into_array().into_iter().enumerate() {
            if let Some(raw) = raw {
                config.pools[i] = raw.validate(AddressType::ON_DEMAND[i])?;
            }
        }
        config.policy = self.policy.validate_rules()?;
        config.app = self.policy.app;
        Ok(config)
    }
}

impl RawSim {
    fn validate(self) -> std::result::Result<SimConfig, Invalid> {
        let mut sim = SimConfig::default();
        if let Some(v) = &self.latency {
            sim.latency = duration(v)?;
        }
        if let Some(v) = &self.grace {
            sim.grace = duration(v)?;
        }
        sim.on_demand = self.on_demand.unwrap_or(true);
        sim.seed = self.seed.unwrap_or(sim.seed);
        let defaults = Faults::default();
        sim.faults = Faults {
            drop: probability(&self.faults.drop)?,
            delay: probability(&self.faults.delay)?,
            delay_by: self
                .faults
                .delay_by
                .as_ref()
                .map(duration)
                .transpose()?
                .unwrap_or(defaults.delay_by),
            refuse: probability(&self.faults.refuse)?,
        };
        if let Some(offer) = &self.offer {
            let mut offered = [false; 4];
            for name in offer {
                let t = type_name(name)?;
                let i = t.slot().ok_or_else(|| {
                    (
                        name.span(),
                        "\"unspecified\" is not an address type to offer".to_owned(),
                    )
                })?;
                offered[i] = true;
            }
            for (i, on) in offered.iter().enumerate() {
                if !on {
                    sim.types[i] = None;
                }
            }
        }
        let per_type = [
            self.fixed,
            self.session_lasting,
            self.nonpersistent,
            self.graceful_replacement,
        ];
        for (i, raw) in per_type.into_iter().enumerate() {
            let (Some(raw), Some(cfg)) = (raw, sim.types[i].as_mut()) else {
                continue;
            };
            let l = &mut cfg.lifetimes;
            if let Some(v) = &raw.preferred {
                l.preferred = positive(v)?;
                l.renew = l.preferred / 2;
            }
            if let Some(v) = &raw.valid {
                l.valid = positive(v)?;
                if l.valid < l.preferred {
                    return Err((
                        v.span(),
                        "the valid lifetime must not be shorter than the preferred one".into(),
                    ));
                }
            }
            if let Some(v) = &raw.renew {
                l.renew = positive(v)?;
                if l.renew > l.valid {
                    return Err((
                        v.span(),
                        "renew must come before the valid lifetime ends".into(),
                    ));
                }
            }
            if l.valid < l.preferred {
                let span = raw
                    .preferred
                    .as_ref()
                    .map(Spanned::span)
                    .unwrap_or_default();
                return Err((
                    span,
                    "the preferred lifetime must not be longer than the valid one".into(),
                ));
            }
            cfg.latency = raw.latency.as_ref().map(duration).transpose()?;
            if let Some(c) = &raw.capacity {
                cfg.capacity = u16::try_from(*c.get_ref())
                    .ok()
                    .filter(|n| (1..=MAX_CAPACITY).contains(n))
                    .ok_or_else(|| (c.span(), format!("capacity must be 1-{MAX_CAPACITY}")))?;
            }
            cfg.refuse = raw.refuse.unwrap_or(false);
        }
        Ok(sim)
    }
}

impl RawPool {
    fn validate(self, t: AddressType) -> std::result::Result<PoolConfig, Invalid> {
        let mut pool = PoolConfig::default_for(t);
        pool.reuse = self.reuse.unwrap_or(pool.reuse);
        let linger = self.linger.as_ref().map(duration).transpose()?;
        if let Some(r) = &self.release {
            pool.release = match r.get_ref().as_str() {
                "on-last-close" => ReleaseRule::OnLastClose,
                "never" => ReleaseRule::Never,
                "linger" => ReleaseRule::Linger(linger.unwrap_or(Duration::from_secs(60))),
                other => {
                    return Err((
                        r.span(),
                        format!(
                            "unknown release rule {other:?} (expected \"on-last-close\", \"linger\" or \"never\")"
                        ),
                    ));
                }
            };
        }
        match (linger, pool.release, &self.linger) {
            (Some(d), ReleaseRule::Linger(_), _) => pool.release = ReleaseRule::Linger(d),
            (Some(_), _, Some(l)) => {
                return Err((
                    l.span(),
                    "linger applies only with release = \"linger\"".into(),
                ));
            }
            _ => {}
        }
        pool.max_age = self.max_age.as_ref().map(positive).transpose()?;
        if let Some(b) = &self.boot {
            pool.boot = u32::try_from(*b.get_ref())
                .ok()
                .filter(|&n| n <= u32::from(MAX_CAPACITY))
                .ok_or_else(|| (b.span(), format!("boot must be 0-{MAX_CAPACITY}")))?;
        }
        Ok(pool)
    }
}

impl RawPolicy {
    fn validate_rules(&self) -> std::result::Result<Policy, Invalid> {
        let default_type = match &self.default_type {
            None => None,
            Some(v) => match type_name(v)? {
                AddressType::Unspecified => None,
                t => Some(t),
            },
        };
        let mut rules = Vec::new();
        for raw in &self.rule {
            let allow = match &raw.allow {
                None => None,
                Some(names) => Some(
                    names
                        .iter()
                        .map(|n| match type_name(n)? {
                            AddressType::Unspecified => Err((
                                n.span(),
                                "\"unspecified\" is always allowed: it requests nothing".to_owned(),
                            )),
                            t => Ok(t),
                        })
                        .collect::<std::result::Result<Vec<_>, _>>()?,
                ),
            };
            let mut quotas = [None; 4];
            for (i, m) in raw.quotas_array().into_iter().enumerate() {
                if let Some(m) = m {
                    quotas[i] = Some(
                        u32::try_from(*m.get_ref())
                            .map_err(|_| (m.span(), "a quota must be 0 or more".to_owned()))?,
                    );
                }
            }
            rules.push(Rule {
                app: raw.app.clone(),
                allow,
                quotas,
            });
        }
        Ok(Policy {
            default_type,
            rules,
        })
    }
}

impl RawRule {
    fn quotas_array(&self) -> [Option<&Spanned<i64>>; 4] {
        let m = &self.quotas;
        [
            m.fixed.as_ref(),
            m.session_lasting.as_ref(),
            m.nonpersistent.as_ref(),
            m.graceful_replacement.as_ref(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("odm.toml"))
    }

    fn refused(text: &str) -> (usize, String) {
        match parse(text) {
            Err(Error::Config { file, line, reason }) => {
                assert_eq!(file, Path::new("odm.toml"));
                (line, reason)
            }
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn an_empty_file_is_the_built_in_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn the_design_example_parses() {
        let c = parse(
            r#"
[network]
provider = "sim"
request_timeout = "5s"
[network.sim]
latency = "1ms"
grace = "2s"
offer = ["fixed", "nonpersistent"]
[network.sim.nonpersistent]
preferred = "5m"
valid = "10m"
capacity = 8
[network.sim.faults]
drop = 0.1
[host]
configure = "none"
[pool.fixed]
release = "linger"
linger = "10m"
boot = 1
[pool.nonpersistent]
release = "on-last-close"
max_age = "1h"
[policy]
default_type = "session-lasting"
app = "demo"
[[policy.rule]]
app = "*"
allow = ["session-lasting", "nonpersistent"]
quotas = { nonpersistent = 100 }
"#,
        )
        .unwrap();
        assert_eq!(c.network.request_timeout, Duration::from_secs(5));
        let ProviderConfig::Sim(sim) = &c.network.provider;
        assert_eq!(sim.latency, Duration::from_millis(1));
        assert!(sim.types[1].is_none() && sim.types[3].is_none());
        let np = sim.types[2].as_ref().unwrap();
        assert_eq!(
            (np.lifetimes.preferred, np.lifetimes.valid, np.capacity),
            (Duration::from_secs(300), Duration::from_secs(600), 8)
        );
        assert_eq!(sim.faults.drop, 0.1);
        assert_eq!(
            c.pools[0].release,
            ReleaseRule::Linger(Duration::from_secs(600))
        );
        assert_eq!(c.pools[0].boot, 1);
        assert_eq!(c.pools[2].max_age, Some(Duration::from_secs(3600)));
        assert_eq!(c.policy.default_type, Some(AddressType::SessionLasting));
        assert_eq!(c.policy.rules[0].quotas[2], Some(100));
        assert_eq!(c.app.as_deref(), Some("demo"));
    }

    #[test]
    fn a_bad_file_is_refused_with_line_and_reason() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "[network]\nprovider = \"carrier-pigeon\"\n",
                2,
                "unknown provider",
            ),
            (
                "[network]\nrequest_timeout = \"soon\"\n",
                2,
                "not a duration",
            ),
            (
                "[network]\nrequest_timeout = \"0s\"\n",
                2,
                "longer than zero",
            ),
            ("\n\n[pool.sometimes]\nreuse = true\n", 3, "unknown field"),
            (
                "[pool.fixed]\nrelease = \"whenever\"\n",
                2,
                "unknown release rule",
            ),
            (
                "[pool.fixed]\nrelease = \"never\"\nlinger = \"5s\"\n",
                3,
                "linger applies only",
            ),
            ("[pool.fixed]\nboot = -1\n", 2, "boot must be"),
            (
                "[policy]\ndefault_type = \"teleport\"\n",
                2,
                "unknown address type",
            ),
            (
                "[[policy.rule]]\napp = \"x\"\nallow = [\"fixed\", \"nope\"]\n",
                3,
                "unknown address type",
            ),
            (
                "[network.sim.fixed]\npreferred = \"2d\"\nvalid = \"1d\"\n",
                3,
                "valid lifetime",
            ),
            ("[network.sim.faults]\ndrop = 1.5\n", 2, "between 0 and 1"),
            ("[network.sim.fixed]\ncapacity = 1000\n", 2, "capacity"),
            (
                "[network]\nprovider = \"sim\"\ncolour = \"blue\"\n",
                3,
                "unknown field",
            ),
            ("[network\n", 1, ""),
            ("[host]\nconfigure = \"netlink\"\n", 2, "not available"),
        ];
        for (text, line, reason) in cases {
            let (l, r) = refused(text);
            assert_eq!(l, *line, "{text:?}: {r}");
            assert!(
                r.contains(reason),
                "{text:?}: {r:?} should mention {reason:?}"
            );
        }
    }

    #[test]
    fn types_may_be_named_or_numbered_and_durations_may_be_seconds() {
        let c = parse(
            "[network]\nrequest_timeout = 5\n[pool.3]\nlinger = 1.5\n[policy]\ndefault_type = 2\n\
             [[policy.rule]]\napp = \"*\"\nallow = [1, \"nonpersistent\"]\nquotas = { 1 = 3 }\n",
        )
        .unwrap();
        assert_eq!(c.network.request_timeout, Duration::from_secs(5));
        assert_eq!(
            c.pools[2].release,
            ReleaseRule::Linger(Duration::from_millis(1500))
        );
        assert_eq!(c.policy.default_type, Some(AddressType::SessionLasting));
        assert_eq!(
            c.policy.rules[0].allow,
            Some(vec![AddressType::Fixed, AddressType::Nonpersistent])
        );
        assert_eq!(c.policy.rules[0].quotas[0], Some(3));
        let (line, reason) = refused("[policy]\n\ndefault_type = 9\n");
        assert_eq!((line, reason.as_str()), (3, "address type 9 is not 0-4"));
        let (line, reason) = refused("[network]\nrequest_timeout = true\n");
        assert_eq!(line, 2);
        assert!(reason.contains("found boolean"), "{reason}");
    }

    #[test]
    fn an_unreadable_file_names_the_file() {
        let e = Config::from_file(Path::new("/nonexistent/odm.toml")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/odm.toml:0: cannot read"),
            "{e}"
        );
        assert_eq!(e.errno(), libc::EINVAL);
    }

    #[test]
    fn durations_take_the_usual_units() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }
}
