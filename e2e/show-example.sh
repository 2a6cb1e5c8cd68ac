#!/usr/bin/env bash
# Applies examples/ to the cluster in KUBECONFIG and shows the tenant's objects and status.
# Run through e2e/demo.sh, which starts the cluster and the operator first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NS=tenant-st-olaf
show() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

show kubectl apply -f "$ROOT/examples/"
show kubectl -n "$NS" wait --for=condition=Ready mailtenant/st-olaf --timeout=180s
show kubectl get mailwarden --all-namespaces
show kubectl -n "$NS" get statefulsets,pods,persistentvolumeclaims,services,networkpolicies,poddisruptionbudgets,configmaps,secrets -l mailwarden.io/tenant=st-olaf -o wide
show kubectl -n "$NS" get mailtenant st-olaf -o yaml
# The domain uses the Manual provider: it lists the records to publish once its DKIM keys exist
# and the tenant has its sending address. It stays unverified here, since nothing serves them.
printf '\nwaiting for the sending domain to list its records'
for _ in $(seq 1 120); do
    [ -n "$(kubectl -n "$NS" get sendingdomain st-olaf-health -o jsonpath='{.status.records[0].name}')" ] && break
    printf '.'
    sleep 1
done
echo
show kubectl -n "$NS" get sendingdomain st-olaf-health -o jsonpath='{range .status.records[*]}{.purpose}{"\t"}{.name}{"\t"}{.type}{"\t"}{.value}{"\t"}{.verification}{"\n"}{end}'
show kubectl -n "$NS" get sendingdomain st-olaf-health -o jsonpath='{range .status.conditions[*]}{.type}{"\t"}{.status}{"\t"}{.reason}{"\t"}{.message}{"\n"}{end}'
show kubectl -n "$NS" get configmap st-olaf-relay-config -o jsonpath='{.data.relay\.toml}'
show kubectl -n "$NS" get events --sort-by=.lastTimestamp
