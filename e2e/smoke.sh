#!/usr/bin/env bash
# Check that the local control plane does what mailwarden's e2e tests rely on: a
# StatefulSet with a volume claim template spreads over the three zones and goes Ready,
# Deployments, Jobs, PodDisruptionBudgets and NetworkPolicies are accepted and served,
# CRD validation rules (CEL) are enforced, deleting a namespace finishes, released volumes
# return to the pool, and `down` leaves no process behind.
#
# Usage: e2e/smoke.sh [STATE_DIR]   (default: a fresh temporary directory, removed at the end)
set -euo pipefail

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${MAILWARDEN_CACHE:-$HOME/.cache/mailwarden}"
BIN="${MAILWARDEN_K8S_BIN:-$CACHE/current/bin}"
STATE="${1:-}"
OWN_STATE=""
if [ -z "$STATE" ]; then
    STATE="$(mktemp -d /tmp/mailwarden-smoke.XXXXXX)"
    OWN_STATE=1
fi
NS=smoke
PASSED=0
FAILED=0

log() { printf '[smoke %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
k() { "$BIN/kubectl" --kubeconfig "$STATE/kubeconfig" "$@"; }

check() {
    # check DESCRIPTION COMMAND...: records one named result.
    local what="$1"
    shift
    if "$@"; then
        log "ok: $what"
        PASSED=$((PASSED + 1))
    else
        log "FAILED: $what"
        FAILED=$((FAILED + 1))
    fi
}

finish() {
    local rc=$?
    "$E2E_DIR/cluster.sh" down "$STATE" > /dev/null 2>&1 || true
    if [ -n "$OWN_STATE" ] && [ "$FAILED" -eq 0 ] && [ "$rc" -eq 0 ]; then rm -rf "$STATE"; fi
    exit "$rc"
}
trap finish EXIT

workload_yaml() {
    cat <<'EOF'
apiVersion: v1
kind: Namespace
metadata:
  name: smoke
---
apiVersion: v1
kind: Service
metadata: {name: relay, namespace: smoke}
spec:
  clusterIP: None
  selector: {app: relay}
  ports: [{name: smtp, port: 25}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: relay, namespace: smoke}
spec:
  serviceName: relay
  replicas: 3
  selector: {matchLabels: {app: relay}}
  template:
    metadata: {labels: {app: relay}}
    spec:
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            podAffinityTerm:
              topologyKey: topology.kubernetes.io/zone
              labelSelector: {matchLabels: {app: relay}}
      containers:
      - name: relay
        image: example.invalid/relay:smoke
        resources: {requests: {cpu: 100m, memory: 64Mi}}
        volumeMounts: [{name: spool, mountPath: /var/spool/postfix}]
  volumeClaimTemplates:
  - metadata: {name: spool}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: relay, namespace: smoke}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app: relay}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: relay, namespace: smoke}
spec:
  podSelector: {matchLabels: {app: relay}}
  policyTypes: [Ingress]
  ingress:
  - ports: [{port: 25, protocol: TCP}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: smoke}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: example.invalid/web:smoke}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: once, namespace: smoke}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: once, image: example.invalid/once:smoke}]
EOF
}

crd_yaml() {
    cat <<'EOF'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.smoke.mailwarden.dev}
spec:
  group: smoke.mailwarden.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: self.minReplicas <= self.maxReplicas
              message: minReplicas must not exceed maxReplicas
            properties:
              minReplicas: {type: integer}
              maxReplicas: {type: integer}
EOF
}

widget_yaml() {
    printf 'apiVersion: smoke.mailwarden.dev/v1\nkind: Widget\nmetadata: {name: %s, namespace: default}\nspec: {minReplicas: %s, maxReplicas: %s}\n' "$1" "$2" "$3"
}

pods_on_kwok_nodes() {
    local nodes
    nodes="$(k get pods -n "$NS" -l app=relay -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}')"
    [ "$(grep -c '^kwok-zone-' <<< "$nodes")" -eq 3 ]
}

nodes_hold_leases() {
    # Without node leases the node lifecycle controller marks the fake nodes Unknown after
    # 50s and their pods NotReady.
    [ "$(k get lease -n kube-node-lease -o name | wc -l)" -eq 3 ]
}

relay_spread_over_zones() {
    local zones
    zones="$(k get pods -n "$NS" -l app=relay -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort -u | wc -l)"
    [ "$zones" -eq 3 ]
}

pvcs_bound() {
    [ "$(k get pvc -n "$NS" -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | grep -c '^Bound$')" -eq 3 ]
}

cel_accepts_valid() {
    widget_yaml good 1 3 | k apply -f - > /dev/null
}

cel_rejects_invalid() {
    local out
    if out="$(widget_yaml bad 5 1 | k apply -f - 2>&1)"; then return 1; fi
    grep -q 'minReplicas must not exceed maxReplicas' <<< "$out"
}

owned_pods_collected() {
    # Deleting the Deployment leaves its ReplicaSet and pods to the garbage collector.
    k delete deployment web -n "$NS" > /dev/null
    k wait --for=delete pod -l app=web -n "$NS" --timeout=60s > /dev/null
}

namespace_gone() {
    k delete namespace "$NS" --wait=false > /dev/null
    k wait --for=delete "namespace/$NS" --timeout=120s > /dev/null
}

volumes_recycled() {
    # The recycle stage clears the claim of each Released pool volume; all return Available.
    local i
    for ((i = 0; i < 60; i++)); do
        if ! k get pv -l mailwarden.dev/e2e-pool=true \
            -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | grep -qv '^Available$'; then
            return 0
        fi
        sleep 1
    done
    k get pv >&2
    return 1
}

no_process_left() {
    # Every component names the state directory in its arguments.
    if pgrep -f -- "$STATE/" > /dev/null; then
        pgrep -af -- "$STATE/" >&2
        return 1
    fi
    [ -z "$(ls -A "$STATE/pids")" ]
}

main() {
    local t0=$SECONDS t
    "$E2E_DIR/cluster.sh" up "$STATE"
    log "cluster up took $((SECONDS - t0))s"

    t=$SECONDS
    workload_yaml | k apply -f - > /dev/null
    check "statefulset relay rolled out (3/3 Ready)" \
        k rollout status statefulset/relay -n "$NS" --timeout=120s
    log "statefulset Ready after $((SECONDS - t))s"
    check "deployment web available" \
        k wait --for=condition=Available deployment/web -n "$NS" --timeout=60s
    check "pods Ready (kubectl wait)" k wait --for=condition=Ready pod --all -n "$NS" \
        -l 'app in (relay, web)' --timeout=60s
    check "kwok holds a lease for each node" nodes_hold_leases
    check "relay pods run on kwok nodes" pods_on_kwok_nodes
    check "relay pods spread over 3 zones" relay_spread_over_zones
    check "relay PVCs Bound" pvcs_bound
    check "job completes (kwok pod-complete stage)" \
        k wait --for=condition=Complete job/once -n "$NS" --timeout=60s
    check "PDB counts healthy pods" k wait --for=jsonpath='{.status.currentHealthy}'=3 \
        pdb/relay -n "$NS" --timeout=60s
    check "networkpolicy stored" k get networkpolicy relay -n "$NS"

    crd_yaml | k apply -f - > /dev/null
    check "CRD established" k wait --for=condition=Established crd/widgets.smoke.mailwarden.dev --timeout=30s
    check "CEL rule accepts a valid object" cel_accepts_valid
    check "CEL rule rejects an invalid object" cel_rejects_invalid

    t=$SECONDS
    check "garbage collector removes a deleted Deployment's pods" owned_pods_collected
    check "namespace deletion finishes" namespace_gone
    log "namespace deleted after $((SECONDS - t))s"
    check "released volumes return to the pool" volumes_recycled

    "$E2E_DIR/cluster.sh" down "$STATE"
    check "down leaves no process" no_process_left
    log "smoke took $((SECONDS - t0))s"
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}

main "$@"
