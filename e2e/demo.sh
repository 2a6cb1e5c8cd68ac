#!/usr/bin/env bash
# The main job on the embedded default: build what is missing, start a local Kubernetes
# control plane, install the CRDs, run the operator, apply the examples from examples/, wait
# for the tenant to be Ready and show what it got.
#
# Usage: e2e/demo.sh          tear everything down at the end
#        e2e/demo.sh --keep   leave the cluster and the operator running to explore
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export MAILWARDEN_CACHE="${MAILWARDEN_CACHE:-$HOME/.cache/mailwarden}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$MAILWARDEN_CACHE/cargo-target}"
if [ "${1:-}" = "--keep" ]; then export MAILWARDEN_KEEP_CLUSTER=1; fi

"$ROOT/e2e/setup.sh"
exec "$ROOT/e2e/with-operator.sh" "$ROOT/e2e/show-example.sh"
