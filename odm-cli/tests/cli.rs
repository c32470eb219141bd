//! The `odm` command as a user runs it.

use std::process::Command;

use serde_json::Value;

fn odm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_odm"))
        .args(args)
        .env_remove("ODM_CONFIG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn demo_json_shows_each_application_living_through_the_move() {
    let (ok, out, err) = odm(&["demo", "--json"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let apps = v["apps"].as_array().unwrap();
    let by_type = |t: &str| {
        apps.iter()
            .find(|a| a["type"] == t)
            .unwrap_or_else(|| panic!("no {t} app"))
    };
    let fixed = by_type("fixed");
    assert_eq!(fixed["address_before"], fixed["address_after"]);
    let session = by_type("session-lasting");
    assert_eq!(session["address_before"], session["address_after"]);
    let np = by_type("nonpersistent");
    assert_ne!(np["address_before"], np["address_after"]);
    assert_eq!(np["event"]["kind"], "address-lost");
    let gr = by_type("graceful-replacement");
    assert_eq!(gr["event"]["kind"], "address-deprecated");
    assert_eq!(gr["event"]["replacement"], gr["address_after"]);
    assert!(gr["event"]["deadline_in_ms"].as_u64().unwrap() > 0);
    assert_eq!(v["move"]["old_graceful_address_gone_after_grace"], true);
    let pooling = &v["pooling"];
    assert!(
        pooling["setsc_calls"].as_u64().unwrap()
            > pooling["network_requests"].as_u64().unwrap() * 3
    );
}

#[test]
fn demo_table_is_for_people() {
    let (ok, out, err) = odm(&["demo"]);
    assert!(ok, "{err}");
    for word in [
        "server",
        "browser",
        "dns",
        "streaming",
        "pooling:",
        "setsc() calls",
        "network requests",
    ] {
        assert!(out.contains(word), "{word:?} missing from\n{out}");
    }
}

#[test]
fn request_leases_and_reports_pool_hits() {
    let (ok, out, err) = odm(&["request", "nonpersistent", "--count", "3", "--json"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["leases"].as_array().unwrap().len(), 3);
    assert_eq!(v["network_requests"], 1);
    assert_eq!(v["pool_hits"], 2);
    assert!(
        v["leases"][0]["address"]
            .as_str()
            .unwrap()
            .starts_with("127.3.")
    );
}

#[test]
fn failures_exit_non_zero_with_a_one_line_reason() {
    for args in [
        &["request", "teleport"][..],
        &["request", "fixed", "--count", "0"],
        &["request"],
        &["frobnicate"],
        &[],
        &["demo", "--yaml"],
    ] {
        let (ok, out, err) = odm(args);
        assert!(!ok, "{args:?} should fail");
        assert!(out.is_empty(), "{args:?} printed to stdout: {out}");
        assert!(err.starts_with("odm: "), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line, not {err}");
    }
}

#[test]
fn a_bad_config_file_is_refused_with_file_and_line() {
    let path = std::env::temp_dir().join(format!("odm-cli-test-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[network]\nprovider = \"sim\"\nrequest_timeout = \"never\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_odm"))
        .args(["status"])
        .env("ODM_CONFIG", &path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with(&format!("odm: {}:3: ", path.display())),
        "{err}"
    );
}

#[test]
fn status_shows_the_boot_time_set_from_the_config() {
    let path = std::env::temp_dir().join(format!("odm-cli-status-{}.toml", std::process::id()));
    std::fs::write(&path, "[pool.fixed]\nboot = 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_odm"))
        .args(["status", "--json"])
        .env("ODM_CONFIG", &path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let addrs = v["addresses"].as_array().unwrap();
    assert_eq!(addrs.len(), 2, "one per family");
    assert!(
        addrs
            .iter()
            .all(|a| a["type"] == "fixed" && a["boot"] == true)
    );
}
