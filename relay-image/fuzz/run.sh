#!/usr/bin/env bash
# Bounded fuzz run of the relay's command and data path: relay-image/fuzz/run.sh SECONDS
# Needs cargo-fuzz (e2e/setup.sh installs it; installed here too if missing); stable Rust runs it with
# RUSTC_BOOTSTRAP=1, since cargo fuzz uses sanitizer flags that are nightly-only.
set -euo pipefail
SECONDS_TO_RUN="${1:?usage: run.sh SECONDS}"
cd "$(dirname "${BASH_SOURCE[0]}")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mailwarden/cargo-target}/fuzz"
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version > /dev/null 2>&1; then
    echo "cargo-fuzz missing: installing it (cargo install --locked cargo-fuzz)"
    cargo install --locked cargo-fuzz
fi
mkdir -p corpus/smtp_input
# Seeds: a whole submission and the smuggling sequences.
printf 'EHLO a.test\r\nMAIL FROM:<a@b.test> SIZE=10 SMTPUTF8\r\nRCPT TO:<c@d.test>\r\nDATA\r\nSubject: x\r\n\r\n..dot\r\n.\r\nQUIT\r\n' > corpus/smtp_input/seed-session
printf 'a\n.\nMAIL FROM:<x@y.test>\r\n\r.\r\r\n.\n\r\n.\r\n' > corpus/smtp_input/seed-smuggle
cargo fuzz run smtp_input corpus/smtp_input -- -max_total_time="$SECONDS_TO_RUN" -max_len=4096
