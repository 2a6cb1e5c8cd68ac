#!/usr/bin/env bash
# Run a real Kubernetes control plane as plain processes on 127.0.0.1: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and kwok (which plays the kubelet of three fake
# nodes). Binaries come from e2e/build-control-plane.sh.
#
# Usage: e2e/cluster.sh up STATE_DIR     start a cluster; prints how to use it
#        e2e/cluster.sh down STATE_DIR   stop every process of that cluster, by pid
#        e2e/cluster.sh status STATE_DIR say which processes are alive
#
# Every port is picked free at start, so two clusters with two state directories can run at
# once. STATE_DIR holds: kubeconfig, env (source it), ports, pki/, logs/<component>.log,
# pids/<component>.pid, etcd/ (data), kwok.yaml (stages).
# Env: MAILWARDEN_CACHE (default $HOME/.cache/mailwarden), MAILWARDEN_K8S_BIN (default
#      $MAILWARDEN_CACHE/current/bin), MAILWARDEN_PV_COUNT (default 20),
#      MAILWARDEN_VOLUME_BINDING_MODE (default WaitForFirstConsumer).
set -euo pipefail

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${MAILWARDEN_CACHE:-$HOME/.cache/mailwarden}"
BIN="${MAILWARDEN_K8S_BIN:-$CACHE/current/bin}"
STAGES="${MAILWARDEN_KWOK_STAGES:-$BIN/../kwok-stages}"
PV_COUNT="${MAILWARDEN_PV_COUNT:-20}"
BINDING_MODE="${MAILWARDEN_VOLUME_BINDING_MODE:-WaitForFirstConsumer}"
SERVICE_CIDR="10.96.0.0/16"
POD_CIDR="10.244.0.0/16"
ZONES=(zone-a zone-b zone-c)
# Stopped in this order by `down`; started in the reverse one.
COMPONENTS=(kwok kube-scheduler kube-controller-manager kube-apiserver etcd)

log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }

usage() {
    echo "usage: $0 up|down|status STATE_DIR" >&2
    exit 2
}

# --- processes ---------------------------------------------------------------------------

# A pid file is trusted only while its process still names the state directory in its
# command line, so a recycled pid of an unrelated process is never signalled.
live_pid() {
    local name="$1" pid
    [ -f "$STATE/pids/$name.pid" ] || return 1
    pid="$(cat "$STATE/pids/$name.pid")"
    [ -n "$pid" ] && kill -0 "$pid" 2> /dev/null || return 1
    # /proc/PID/cmdline reads empty while the process is in the middle of an exec.
    local cmdline="" i
    for ((i = 0; i < 20; i++)); do
        cmdline="$(tr '\0' ' ' < "/proc/$pid/cmdline" 2> /dev/null || true)"
        [ -z "$cmdline" ] || break
        sleep 0.05
    done
    [[ "$cmdline" == *"$STATE"* ]] || return 1
    echo "$pid"
}

# Starts a component detached from the caller: its own session (a Ctrl-C or a test harness
# killing the caller's process group does not take it down) and no inherited stdin/stdout/
# stderr (a caller reading our output through a pipe would otherwise wait for it forever).
start() {
    local name="$1"
    shift
    log "starting $name"
    setsid "$@" < /dev/null > "$STATE/logs/$name.log" 2>&1 &
    local pid=$! binary i
    echo "$pid" > "$STATE/pids/$name.pid"
    STARTED+=("$name")
    # The background child is a subshell that execs setsid, which execs the component (no
    # job control here, so the child leads no process group and setsid need not fork): the
    # recorded pid becomes the component. Wait for that exec, so that what is read from
    # /proc/PID from now on is the component's.
    binary="$(readlink -f "$1")"
    for ((i = 0; i < 100; i++)); do
        [ "$(readlink "/proc/$pid/exe" 2> /dev/null)" != "$binary" ] || return 0
        kill -0 "$pid" 2> /dev/null || return 0
        sleep 0.02
    done
    die "$name (pid $pid) did not start $binary"
}

# Stops the named components: SIGTERM to all at once (each takes ~2s to shut down, so one
# by one would add up), SIGKILL to any still alive after 10s, and waits until all are gone.
stop_components() {
    local name pid i pids=() alive=()
    for name in "$@"; do
        if pid="$(live_pid "$name")"; then
            kill -TERM "$pid" 2> /dev/null || true
            pids+=("$pid")
            log "stopping $name (pid $pid)"
        fi
        rm -f "$STATE/pids/$name.pid"
    done
    [ ${#pids[@]} -gt 0 ] || return 0
    for ((i = 0; i < 150; i++)); do
        alive=()
        for pid in "${pids[@]}"; do
            if kill -0 "$pid" 2> /dev/null; then alive+=("$pid"); fi
        done
        [ ${#alive[@]} -gt 0 ] || return 0
        if [ "$i" -eq 100 ]; then
            log "pids ${alive[*]} ignored SIGTERM for 10s, sending SIGKILL"
            kill -KILL "${alive[@]}" 2> /dev/null || true
        fi
        sleep 0.1
    done
    die "pids ${alive[*]} survived SIGKILL"
}

# Waits until CHECK (a command) succeeds, failing early when the component has exited.
wait_for() {
    local name="$1" timeout="$2" i
    shift 2
    for ((i = 0; i < timeout * 5; i++)); do
        if "$@" > /dev/null 2>&1; then return 0; fi
        live_pid "$name" > /dev/null || die "$name exited while starting (see $STATE/logs/$name.log)"
        sleep 0.2
    done
    die "$name not ready after ${timeout}s (see $STATE/logs/$name.log)"
}

# --- ports -------------------------------------------------------------------------------

# Asks the kernel for N free loopback ports at once (all sockets held open together, so
# the N are distinct), then releases them for the components to bind.
free_ports() {
    local n="$1"
    if command -v python3 > /dev/null; then
        python3 - "$n" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
    else
        local ports=() p
        while [ ${#ports[@]} -lt "$n" ]; do
            p=$((20000 + RANDOM % 30000))
            if ! ss -Htln "sport = :$p" | grep -q . && [[ " ${ports[*]} " != *" $p "* ]]; then
                ports+=("$p")
            fi
        done
        echo "${ports[*]}"
    fi
}

# --- certificates ------------------------------------------------------------------------

issue_cert() {
    # issue_cert NAME SUBJECT EXTENSIONS: a key and a certificate signed by the cluster CA.
    local name="$1" subject="$2" ext="$3" pki="$STATE/pki"
    openssl req -new -newkey rsa:2048 -nodes -keyout "$pki/$name.key" -subj "$subject" \
        -out "$pki/$name.csr" 2> /dev/null
    printf '%s\n' "$ext" > "$pki/$name.ext"
    openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
        -CAcreateserial -days 365 -sha256 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2> /dev/null
    rm -f "$pki/$name.csr" "$pki/$name.ext"
}

make_pki() {
    local pki="$STATE/pki"
    mkdir -p "$pki"
    openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$pki/ca.key" -out "$pki/ca.crt" \
        -days 365 -sha256 -subj "/CN=mailwarden-e2e-ca" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2> /dev/null
    # The names a client inside the cluster would use are included too, so a certificate
    # check succeeds however a test addresses the API server.
    issue_cert apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    issue_cert admin "/O=system:masters/CN=mailwarden-e2e-admin" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
    openssl genrsa -out "$pki/sa.key" 2048 2> /dev/null
    openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2> /dev/null
    chmod 600 "$pki"/*.key
}

write_kubeconfig() {
    local pki="$STATE/pki"
    cat > "$STATE/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: mailwarden-e2e
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 < "$pki/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(base64 -w0 < "$pki/admin.crt")
    client-key-data: $(base64 -w0 < "$pki/admin.key")
contexts:
- name: mailwarden-e2e
  context:
    cluster: mailwarden-e2e
    user: admin
current-context: mailwarden-e2e
EOF
    chmod 600 "$STATE/kubeconfig"
}

# --- cluster objects ---------------------------------------------------------------------

kubectl_() { "$BIN/kubectl" --kubeconfig "$STATE/kubeconfig" "$@"; }

# Three fake nodes, one per zone. kwok manages nodes carrying the annotation; the status
# given here survives creation and kwok's node-initialize stage keeps its allocatable.
nodes_yaml() {
    local zone node
    for zone in "${ZONES[@]}"; do
        node="kwok-${zone}"
        cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: $node
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: $node
    topology.kubernetes.io/zone: $zone
    topology.kubernetes.io/region: local
status:
  allocatable: {cpu: "32", memory: 128Gi, pods: "110", ephemeral-storage: 500Gi}
  capacity: {cpu: "32", memory: 128Gi, pods: "110", ephemeral-storage: 500Gi}
EOF
    done
}

# A default StorageClass without a provisioner, and a pool of pre-made hostPath volumes for
# it. Nothing is ever mounted (no kubelet runs), so the paths need not exist.
storage_yaml() {
    local sizes=(1 1 2 5 10) i size
    cat <<EOF
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/no-provisioner
reclaimPolicy: Retain
volumeBindingMode: $BINDING_MODE
EOF
    for ((i = 0; i < PV_COUNT; i++)); do
        size="${sizes[i % ${#sizes[@]}]}"
        cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: e2e-pv-$(printf '%02d' "$i")
  labels:
    mailwarden.dev/e2e-pool: "true"
spec:
  capacity: {storage: ${size}Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: standard
  volumeMode: Filesystem
  hostPath: {path: "/var/lib/mailwarden-e2e/pv-$i", type: ""}
EOF
    done
}

write_kwok_config() {
    local f
    : > "$STATE/kwok.yaml"
    for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
        pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
        [ -f "$STAGES/$f" ] || die "kwok stage $STAGES/$f missing: run e2e/build-control-plane.sh"
        { echo "---"; cat "$STAGES/$f"; } >> "$STATE/kwok.yaml"
    done
    { echo "---"; cat "$E2E_DIR/kwok/pv-recycle.yaml"; } >> "$STATE/kwok.yaml"
}

# --- up / down ---------------------------------------------------------------------------

on_up_exit() {
    local rc=$? name
    [ "$rc" -eq 0 ] && return 0
    log "cluster failed to come up (exit $rc); last lines of each log:" >&2
    for name in "${COMPONENTS[@]}"; do
        if [ -s "$STATE/logs/$name.log" ]; then
            echo "----- $STATE/logs/$name.log" >&2
            tail -n 25 "$STATE/logs/$name.log" >&2
        fi
    done
    # Only what this invocation started is stopped.
    stop_components "${STARTED[@]}"
    exit "$rc"
}

cmd_up() {
    local t0=$SECONDS name pki="$STATE/pki"
    for name in "${COMPONENTS[@]}"; do
        if live_pid "$name" > /dev/null; then
            die "$name of a cluster in $STATE is still running: run '$0 down $STATE' first"
        fi
    done
    for name in etcd kube-apiserver kube-controller-manager kube-scheduler kwok kubectl; do
        [ -x "$BIN/$name" ] || die "$BIN/$name missing: run e2e/build-control-plane.sh"
    done

    STARTED=()
    trap on_up_exit EXIT
    # A previous cluster's state is replaced; only the entries this script creates are removed.
    rm -rf "$STATE/etcd" "$STATE/pki" "$STATE/logs" "$STATE/pids" "$STATE/kubeconfig" \
        "$STATE/env" "$STATE/ports" "$STATE/kwok.yaml" "$STATE/run"
    mkdir -p "$STATE/logs" "$STATE/pids" "$STATE/run"
    make_pki

    read -r ETCD_PORT ETCD_PEER_PORT APISERVER_PORT KCM_PORT SCHEDULER_PORT <<< "$(free_ports 5)"
    cat > "$STATE/ports" <<EOF
etcd=$ETCD_PORT
etcd_peer=$ETCD_PEER_PORT
kube_apiserver=$APISERVER_PORT
kube_controller_manager=$KCM_PORT
kube_scheduler=$SCHEDULER_PORT
EOF
    write_kubeconfig
    write_kwok_config

    start etcd "$BIN/etcd" --name e2e --data-dir "$STATE/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
        --unsafe-no-fsync --log-level warn
    wait_for etcd 30 curl -fsS "http://127.0.0.1:$ETCD_PORT/health"

    start kube-apiserver "$BIN/kube-apiserver" \
        --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
        --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
        --cert-dir "$STATE/run/apiserver" \
        --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
        --client-ca-file "$pki/ca.crt" \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-account-key-file "$pki/sa.pub" \
        --service-account-signing-key-file "$pki/sa.key" \
        --service-cluster-ip-range "$SERVICE_CIDR" \
        --authorization-mode RBAC --allow-privileged \
        --endpoint-reconciler-type none --profiling=false
    wait_for kube-apiserver 90 curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" \
        --key "$pki/admin.key" "https://127.0.0.1:$APISERVER_PORT/readyz"

    start kube-controller-manager "$BIN/kube-controller-manager" \
        --kubeconfig "$STATE/kubeconfig" \
        --authentication-kubeconfig "$STATE/kubeconfig" \
        --authorization-kubeconfig "$STATE/kubeconfig" \
        --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --cert-dir "$STATE/run/kcm" \
        --leader-elect=false \
        --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
        --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
        --service-cluster-ip-range "$SERVICE_CIDR" --profiling=false
    start kube-scheduler "$BIN/kube-scheduler" \
        --kubeconfig "$STATE/kubeconfig" \
        --authentication-kubeconfig "$STATE/kubeconfig" \
        --authorization-kubeconfig "$STATE/kubeconfig" \
        --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --cert-dir "$STATE/run/scheduler" \
        --leader-elect=false --profiling=false
    # kwok documents a default node lease of 40s, but with --config and no
    # KwokConfiguration in it, no lease is kept: the node lifecycle controller then marks
    # the nodes Unknown after 50s, kwok's node-initialize stage marks them Ready again, and
    # pods on them flap to NotReady. Hence the explicit flag.
    start kwok "$BIN/kwok" --kubeconfig "$STATE/kubeconfig" --config "$STATE/kwok.yaml" \
        --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
        --node-lease-duration-seconds 40 \
        --cidr "$POD_CIDR" --node-ip 127.0.0.1
    wait_for kube-controller-manager 60 curl -fsSk "https://127.0.0.1:$KCM_PORT/healthz"
    wait_for kube-scheduler 60 curl -fsSk "https://127.0.0.1:$SCHEDULER_PORT/healthz"

    nodes_yaml | kubectl_ apply -f - > /dev/null
    storage_yaml | kubectl_ apply -f - > /dev/null
    kubectl_ wait --for=condition=Ready node --all --timeout=60s > /dev/null \
        || die "kwok did not mark the nodes Ready (see $STATE/logs/kwok.log)"
    # The service account controller making "default" shows that the controller manager's
    # controllers run, not just its health endpoint.
    wait_for kube-controller-manager 60 kubectl_ get serviceaccount default -n default

    cat > "$STATE/env" <<EOF
export KUBECONFIG="$STATE/kubeconfig"
export MAILWARDEN_E2E_STATE="$STATE"
export MAILWARDEN_K8S_BIN="$BIN"
export PATH="$BIN:\$PATH"
EOF
    trap - EXIT
    log "cluster up in $((SECONDS - t0))s: https://127.0.0.1:$APISERVER_PORT, $(kubectl_ version -o json | jq -r .serverVersion.gitVersion)"
    log "use it with: source $STATE/env   (logs in $STATE/logs, stop with: $0 down $STATE)"
}

cmd_down() {
    local name
    [ -d "$STATE/pids" ] || { log "no cluster state in $STATE"; return 0; }
    stop_components "${COMPONENTS[@]}"
    log "cluster in $STATE stopped"
}

cmd_status() {
    local name pid rc=0
    for name in "${COMPONENTS[@]}"; do
        if pid="$(live_pid "$name")"; then
            echo "$name: running (pid $pid)"
        else
            echo "$name: stopped"
            rc=1
        fi
    done
    return "$rc"
}

main() {
    [ $# -eq 2 ] || usage
    local action="$1"
    mkdir -p "$2"
    STATE="$(cd "$2" && pwd)"
    case "$action" in
        up) cmd_up ;;
        down) cmd_down ;;
        status) cmd_status ;;
        *) usage ;;
    esac
}

main "$@"
