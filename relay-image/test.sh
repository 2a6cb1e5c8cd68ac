#!/usr/bin/env bash
# Every relay test: unit tests, the tests against real peers on loopback (swaks, smtplib, an
# aiosmtpd sink, dkimpy, testssl.sh, kill -9 under load), and a bounded fuzz run.
#   relay-image/test.sh            (FUZZ_SECONDS=60 by default)
# Needs the packages installed by e2e/setup.sh; a missing tool fails its test with the package
# to install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mailwarden/cargo-target}"
cargo test -p mailwarden-relay-config -p mailwarden-relay
relay-image/fuzz/run.sh "${FUZZ_SECONDS:-60}"
