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
show kubectl -n "$NS" get sendingdomain st-olaf-health -o jsonpath='{range .status.records[*]}{.purpose}{"\t"}{.name}{"\t"}{.type}{"\t"}{.value}{"\n"}{end}'
show kubectl -n "$NS" get configmap st-olaf-relay-config -o jsonpath='{.data.relay\.toml}'
show kubectl -n "$NS" get events --field-selector involvedObject.kind=MailTenant --sort-by=.lastTimestamp
