#!/usr/bin/env bash
# The one test command: installs what the tests need on a fresh machine of this kind
# (Debian 12, Rust by rustup), then runs every suite. Later suites (ctest, pytest) join here.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "tools"
bash tests/setup.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (workspace)"
cargo test --workspace --locked

step "odm demo (the README's main job, release build)"
cargo run --release --locked --bin odm -- demo
