#!/usr/bin/env bash
# Installs what the tests need and the machine lacks. Idempotent: a second run changes nothing.
set -euo pipefail

need_component() {
    # rustfmt and clippy come with rustup's default profile; add them where a minimal one lacks them.
    if ! cargo "$1" --version >/dev/null 2>&1; then
        rustup component add "$2"
    fi
}

command -v cargo >/dev/null || { echo "setup: cargo not found: install Rust with rustup first" >&2; exit 1; }
need_component fmt rustfmt
need_component clippy clippy
echo "setup: $(cargo --version), $(cargo fmt --version), $(cargo clippy --version)"
