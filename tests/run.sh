#!/usr/bin/env bash
# The one test command: installs what the tests need on a fresh machine of this kind
# (Debian 12, Rust by rustup), then runs every suite. Later suites (ctest, pytest) join here.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT

step "tools"
bash tests/setup.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (workspace)"
cargo test --workspace --locked 2>&1 | tee "$log"

step "odm demo (the README's main job, release build)"
cargo run --release --locked --bin odm -- demo

# One closing line for every suite together: "N passed, N failed".
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\ntests: %d passed, %d failed\n", p, f; if (p == 0 || f > 0) exit 1 }' "$log"
