#!/usr/bin/env bash
# Run a command against a fresh local control plane with mailwarden installed: starts the
# cluster (e2e/cluster.sh), applies the CRDs from crds/, starts the operator binary as a local
# process with the admin kubeconfig, runs the command, then stops the operator and the cluster
# by pid. When the command fails, the tails of the operator's and the control plane's logs are
# printed.
#
# Usage: e2e/with-operator.sh COMMAND [ARGS...]
# The command sees: KUBECONFIG, MAILWARDEN_E2E_STATE (logs in $MAILWARDEN_E2E_STATE/logs),
# MAILWARDEN_OPERATOR_ADMIN (host:port of /healthz, /readyz, /metrics), MAILWARDEN_OPERATOR_BIN,
# MAILWARDEN_RELAY_BIN, MAILWARDEN_KUBECTL, and PATH with kubectl and helm first.
# Env: MAILWARDEN_KEEP_CLUSTER=1 leaves the cluster and the operator running at the end.
set -euo pipefail

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$E2E_DIR/.." && pwd)"
CACHE="${MAILWARDEN_CACHE:-$HOME/.cache/mailwarden}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/cargo-target}"
STATE="$(mktemp -d /tmp/mailwarden-cluster.XXXXXX)"
OPERATOR_PID=""

log() { printf '[mailwarden %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

print_logs() {
    local file
    for file in "$STATE"/logs/*.log; do
        [ -f "$file" ] || continue
        echo "----- last 40 lines of $file"
        tail -n 40 "$file"
    done
}

stop_all() {
    local rc=$?
    if [ "$rc" -ne 0 ]; then
        log "failed (exit $rc); logs follow"
        print_logs
    fi
    if [ "${MAILWARDEN_KEEP_CLUSTER:-}" = 1 ] && [ "$rc" -eq 0 ]; then
        log "left running: source $STATE/env; operator pid $OPERATOR_PID"
        log "stop with: kill $OPERATOR_PID; $E2E_DIR/cluster.sh down $STATE; rm -rf $STATE"
        return
    fi
    if [ -n "$OPERATOR_PID" ] && kill -0 "$OPERATOR_PID" 2> /dev/null; then
        kill "$OPERATOR_PID" 2> /dev/null || true
        wait "$OPERATOR_PID" 2> /dev/null || true
    fi
    "$E2E_DIR/cluster.sh" down "$STATE" > /dev/null || true
    if [ "$rc" -eq 0 ]; then rm -rf "$STATE"; else log "state kept in $STATE"; fi
}
trap stop_all EXIT

log "building the operator and the relay"
cargo build --quiet -p mailwarden-operator -p mailwarden-relay --manifest-path "$ROOT/Cargo.toml"
OPERATOR_BIN="$CARGO_TARGET_DIR/debug/mailwarden-operator"

"$E2E_DIR/cluster.sh" up "$STATE"
# shellcheck source=/dev/null
source "$STATE/env"
KUBECTL="$MAILWARDEN_K8S_BIN/kubectl"

log "installing the CRDs"
"$KUBECTL" apply --server-side -f "$ROOT/crds/" > /dev/null
"$KUBECTL" wait --for=condition=Established crd --all --timeout=60s > /dev/null
"$KUBECTL" create namespace mailwarden-system > /dev/null

ADMIN="127.0.0.1:$(free_port)"
log "starting the operator (admin endpoint http://$ADMIN, log $STATE/logs/operator.log)"
RUST_LOG="${RUST_LOG:-info,kube=warn}" "$OPERATOR_BIN" run --admin-address "$ADMIN" \
    --identity local-operator > "$STATE/logs/operator.log" 2>&1 &
OPERATOR_PID=$!
for _ in $(seq 1 120); do
    curl -fs "http://$ADMIN/readyz" > /dev/null 2>&1 && break
    kill -0 "$OPERATOR_PID" 2> /dev/null || { log "the operator exited"; exit 1; }
    sleep 0.5
done
curl -fs "http://$ADMIN/readyz" > /dev/null || { log "the operator never became ready"; exit 1; }

export MAILWARDEN_OPERATOR_ADMIN="$ADMIN" MAILWARDEN_OPERATOR_BIN="$OPERATOR_BIN" MAILWARDEN_KUBECTL="$KUBECTL"
export MAILWARDEN_RELAY_BIN="$CARGO_TARGET_DIR/debug/mailwarden-relay"
"$@"
