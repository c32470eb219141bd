//! `odm`: RFC 8653 on-demand address types, from the command line.
//!
//! ```text
//! odm demo [--json]                                 the four applications of RFC 8653 §3.2
//! odm request TYPE [--count N] [--fresh] [--ipv6] [--json]
//! odm status [--json]
//! ```

mod demo;

use std::os::fd::AsRawFd;
use std::process::ExitCode;

use odm_core::socket::{Kind, new_unbound};
use odm_core::{AddressType, Family, SetscOptions, Stack};
use serde_json::json;

const USAGE: &str = "usage: odm demo [--json]
       odm request TYPE [--count N] [--fresh] [--ipv6] [--json]
       odm status [--json]
TYPE: fixed, session-lasting, nonpersistent, graceful-replacement, unspecified (or 0-4)";

fn main() -> ExitCode {
    // Like any Unix filter: `odm demo --json | head` ends quietly when the reader goes.
    // SAFETY: restoring the default disposition of one signal at start-up, before any thread.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("odm: {reason}");
            ExitCode::FAILURE
        }
    }
}

/// Flags after the subcommand: `--name` or `--name VALUE`.
struct Flags<'a> {
    args: &'a [String],
}

impl<'a> Flags<'a> {
    fn has(&self, name: &str) -> bool {
        self.args.iter().any(|a| a == name)
    }

    fn value(&self, name: &str) -> Result<Option<&'a str>, String> {
        match self.args.iter().position(|a| a == name) {
            None => Ok(None),
            Some(i) => self
                .args
                .get(i + 1)
                .map(|v| Some(v.as_str()))
                .ok_or(format!("{name} needs a value")),
        }
    }

    /// Refuses anything that is not one of `known` (or the value of one that takes a value).
    fn only(&self, known: &[&str], with_value: &[&str]) -> Result<(), String> {
        let mut i = 0;
        while i < self.args.len() {
            let a = self.args[i].as_str();
            if with_value.contains(&a) {
                i += 2;
            } else if known.contains(&a) {
                i += 1;
            } else {
                return Err(format!("unexpected argument {a:?} (see odm --help)"));
            }
        }
        Ok(())
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let Some(command) = args.first() else {
        return Err("no command (see odm --help)".into());
    };
    match command.as_str() {
        "demo" => {
            let flags = Flags { args: &args[1..] };
            flags.only(&["--json"], &[])?;
            demo::run(flags.has("--json"))
        }
        "request" => {
            let Some(t) = args.get(1) else {
                return Err("request needs a TYPE (see odm --help)".into());
            };
            let t: AddressType = t.parse().map_err(|e: odm_core::Error| e.to_string())?;
            let flags = Flags { args: &args[2..] };
            flags.only(&["--fresh", "--ipv6", "--json"], &["--count"])?;
            let count = match flags.value("--count")? {
                None => 1,
                Some(n) => n
                    .parse::<u32>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(format!("--count takes a number above 0, not {n:?}"))?,
            };
            let family = if flags.has("--ipv6") {
                Family::V6
            } else {
                Family::V4
            };
            request(t, count, flags.has("--fresh"), family, flags.has("--json"))
        }
        "status" => {
            let flags = Flags { args: &args[1..] };
            flags.only(&["--json"], &[])?;
            status(flags.has("--json"))
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?} (see odm --help)")),
    }
}

fn stack() -> Result<&'static Stack, String> {
    odm_core::default_stack().map_err(|e| e.to_string())
}

/// `odm request`: COUNT sockets ask for TYPE; each is bound and shown.
fn request(
    t: AddressType,
    count: u32,
    fresh: bool,
    family: Family,
    as_json: bool,
) -> Result<(), String> {
    let stack = stack()?;
    let mut sockets = Vec::new();
    let mut rows = Vec::new();
    for _ in 0..count {
        let before = stack.stats().network_requests;
        let fd = new_unbound(family, Kind::Datagram).map_err(|e| format!("socket: {e}"))?;
        let opts = SetscOptions {
            fresh,
            bind: Some(0),
            ..SetscOptions::default()
        };
        let info = stack
            .setsc_fd(fd.as_raw_fd(), t, &opts)
            .map_err(|e| format!("setsc({t}): {e}"))?;
        let from_network = stack.stats().network_requests > before;
        rows.push((info, from_network));
        sockets.push(fd);
    }
    let s = stack.stats();
    if as_json {
        let leases: Vec<_> = rows
            .iter()
            .map(|(i, net)| json!({"type": i.address_type.name(), "address": i.address.to_string(), "state": i.state.name(), "from_network": net}))
            .collect();
        let out = json!({"leases": leases, "setsc_calls": s.setsc_calls, "network_requests": s.network_requests, "pool_hits": s.pool_hits});
        println!("{out:#}");
    } else {
        for (i, net) in &rows {
            let source = match (i.address_type, net) {
                (AddressType::Unspecified, _) => "legacy: no request, the kernel picks",
                (_, true) => "network request",
                (_, false) => "pool hit",
            };
            println!("{:<22} {:<40} {source}", i.address_type.name(), i.address);
        }
        println!(
            "{} setsc() calls, {} network requests, {} pool hits",
            s.setsc_calls, s.network_requests, s.pool_hits
        );
    }
    Ok(())
}

/// `odm status`: the stack's provider and pool (its boot-time set, in a fresh process).
fn status(as_json: bool) -> Result<(), String> {
    let stack = stack()?;
    let config = odm_core::config::resolve_path()
        .map_or("built-in defaults".to_owned(), |p| p.display().to_string());
    let now = stack.clock().now();
    let addresses = stack.addresses();
    let s = stack.stats();
    if as_json {
        let addrs: Vec<_> = addresses
            .iter()
            .map(|a| {
                json!({
                    "address": a.address.to_string(), "type": a.address_type.name(), "family": a.family.to_string(),
                    "state": a.state.name(), "leases": a.leases, "boot": a.boot, "server": a.server,
                    "preferred_for_s": a.preferred_until.saturating_since(now).as_secs(),
                    "valid_for_s": a.valid_until.saturating_since(now).as_secs(),
                })
            })
            .collect();
        let out = json!({"provider": stack.provider_name(), "config": config, "addresses": addrs,
                         "leases": s.leases, "network_requests": s.network_requests});
        println!("{out:#}");
    } else {
        println!("provider: {}  config: {config}", stack.provider_name());
        if addresses.is_empty() {
            println!("pool: empty (no boot-time set configured)");
        }
        for a in &addresses {
            println!(
                "{:<22} {:<40} {:<10} leases {:<3} valid {}s{}",
                a.address_type.name(),
                a.address,
                a.state.name(),
                a.leases,
                a.valid_until.saturating_since(now).as_secs(),
                if a.boot { "  (boot-time set)" } else { "" }
            );
        }
    }
    Ok(())
}
