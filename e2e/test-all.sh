#!/usr/bin/env bash
# Every test of mailwarden, in the order a failure is cheapest to find:
#   1. set-up of a fresh machine (skips what is installed or built): e2e/setup.sh
#   2. formatting and lints: cargo fmt --check, cargo clippy -D warnings
#   3. unit tests and the DNS integration tests (Knot with RFC 2136, the Cloudflare contract
#      server, dkimpy), and the check that crds/ matches the Rust types
#   4. the relay against real SMTP peers, testssl.sh, kill -9 under load, a bounded fuzz run:
#      relay-image/test.sh
#   5. the operator on a real local control plane: e2e/with-operator.sh + the e2e crate
#
# Usage: e2e/test-all.sh            (run as root on Debian 12; see README.md)
# Env:   FUZZ_SECONDS (default 60), MAILWARDEN_CACHE, CARGO_TARGET_DIR
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export MAILWARDEN_CACHE="${MAILWARDEN_CACHE:-$HOME/.cache/mailwarden}"
# Built artefacts live outside the clone, so a fresh checkout reuses them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$MAILWARDEN_CACHE/cargo-target}"

step() { printf '\n==> [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

step "set-up (skips what exists)"
e2e/setup.sh

step "formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "unit tests, DNS integration tests, CRD drift"
cargo test --workspace --exclude mailwarden-e2e --exclude mailwarden-relay --exclude mailwarden-relay-config

step "relay tests (real peers, TLS scan, crash test, fuzzing)"
relay-image/test.sh

step "end-to-end tests on a local control plane"
e2e/with-operator.sh cargo test -p mailwarden-e2e -- --nocapture

step "all tests passed"
