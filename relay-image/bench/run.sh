#!/usr/bin/env bash
# Benchmark: this relay against Postfix configured as an equivalent relay, with the same load.
#   relay-image/bench/run.sh [PROCESSES] [MESSAGES_1KB] [MESSAGES_100KB]
#
# Both sides: implicit TLS on loopback with a client certificate required (TLS 1.2+), sender
# domain restricted, DKIM signing with an RSA-2048 and an Ed25519 selector (OpenDKIM as Postfix's
# milter), a durable queue (Postfix fsyncs its queue files; the relay fsyncs file and directory),
# delivery with TLS required and verified to the same aiosmtpd sink. The load generator
# (bench/load.py) runs PROCESSES connections, each sending its messages back to back, and reports
# msgs/s and the p99 accept latency (MAIL FROM to the 250 after DATA).
# Needs: postfix, opendkim, openssl (Debian), and the venv from e2e/setup.sh (aiosmtpd).
set -euo pipefail
PROCESSES="${1:-8}"
COUNT_1K="${2:-150}"
COUNT_100K="${3:-40}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PY="${MW_PYTHON:-$HOME/.cache/mailwarden/venv/bin/python}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mailwarden/cargo-target}"

for tool in postfix:postfix opendkim:opendkim openssl:openssl; do
    command -v "${tool%%:*}" > /dev/null || { echo "missing ${tool%%:*}: apt-get install ${tool##*:}"; exit 1; }
done
"$PY" -c 'import aiosmtpd' || { echo "missing aiosmtpd in $PY: run e2e/setup.sh"; exit 1; }

(cd "$REPO" && cargo build --release -q -p mailwarden-relay)
RELAY_BIN="$CARGO_TARGET_DIR/release/mailwarden-relay"

W="$(mktemp -d /tmp/mw-bench.XXXXXX)"
# Postfix's unprivileged daemons must reach their queue inside the work directory.
chmod 755 "$W"
SINK=27025 RELAY465=27465 RELAY587=27587 ADMIN=27090 PF465=28465 MILTER_RSA=28891 MILTER_ED=28892
PIDS=()
cleanup() {
    postfix -c "$W/pf" stop > /dev/null 2>&1 || true
    for pid in "${PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done
}
trap cleanup EXIT

# PKI: a tenant CA, the relays' and the sink's server certificates, a client certificate.
cd "$W"
issue() { # name subject-alt-name extended-key-usage
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" \
        -subj "/CN=$2" -out "$1.csr" 2> /dev/null
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile <(printf 'subjectAltName=DNS:%s\nextendedKeyUsage=%s\n' "$2" "$3") -out "$1.pem" 2> /dev/null
}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
    -subj "/CN=bench tenant CA" -days 2 2> /dev/null
issue server localhost serverAuth
issue sink localhost serverAuth
issue client billing.st-olaf.test clientAuth
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out dkim-rsa.pem 2> /dev/null
openssl genpkey -algorithm ed25519 -out dkim-ed.pem 2> /dev/null
chmod 600 ./*.key dkim-*.pem

mkdir -p sink
"$PY" "$REPO/relay-image/tests/peers/sink.py" "$SINK" sink.pem sink.key "$W/sink" > sink.log 2>&1 &
PIDS+=($!)

sed -e "s#@W@#$W#g" -e "s#@SINK@#$SINK#g" -e "s#@R465@#$RELAY465#g" -e "s#@R587@#$RELAY587#g" \
    -e "s#@ADMIN@#$ADMIN#g" "$HERE/relay.toml.in" > relay.toml

# Postfix instance and OpenDKIM milter.
mkdir -p pf/queue pf/data dkim
sed -e "s#@W@#$W#g" -e "s#@SINK@#$SINK#g" -e "s#@MILTER_RSA@#$MILTER_RSA#g" \
    -e "s#@MILTER_ED@#$MILTER_ED#g" "$HERE/postfix-main.cf.in" > pf/main.cf
sed -e "s#@PF465@#$PF465#g" "$HERE/postfix-master.cf.in" > pf/master.cf
printf 'mail.st-olaf.test OK\n' > pf/senders
# One OpenDKIM instance per algorithm (its SignatureAlgorithm is global), chained as milters.
for spec in "rsa rsa-sha256 mw-rsa-1 $MILTER_RSA" "ed ed25519-sha256 mw-ed-1 $MILTER_ED"; do
    read -r name algorithm selector port <<< "$spec"
    printf '%s mail.st-olaf.test:%s:%s/dkim-%s.pem\n' "$name" "$selector" "$W" "$name" > "dkim/$name.keys"
    printf '*@mail.st-olaf.test %s\n' "$name" > "dkim/$name.signing"
    sed -e "s#@W@#$W#g" -e "s#@MILTER@#$port#g" -e "s#@ALGORITHM@#$algorithm#g" \
        -e "s#@NAME@#$name#g" "$HERE/opendkim.conf.in" > "dkim/$name.conf"
done

wait_port() { for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$1") 2> /dev/null && return 0; sleep 0.1; done; echo "port $1 never opened"; exit 1; }
wait_port "$SINK"

load() { # port size count
    "$PY" "$HERE/load.py" "$1" ca.pem client.pem client.key "$PROCESSES" "$3" "$2"
}

run_relay() { # size count
    rm -rf spool audit.jsonl
    "$RELAY_BIN" run --config relay.toml 2>> relay.log &
    local pid=$!
    wait_port "$RELAY465"
    load "$RELAY465" "$1" "$2"
    kill -TERM "$pid"
    wait "$pid" || true
}

run_postfix() { # size count
    rm -rf pf/queue pf/data
    mkdir -p pf/queue pf/data
    chown postfix: pf/data
    local milters=()
    for name in rsa ed; do
        opendkim -x "dkim/$name.conf" -f >> dkim.log 2>&1 &
        milters+=($!)
        PIDS+=($!)
    done
    wait_port "$MILTER_RSA"
    wait_port "$MILTER_ED"
    postfix -c "$W/pf" start-fg >> postfix.log 2>&1 &
    wait_port "$PF465"
    load "$PF465" "$1" "$2"
    postfix -c "$W/pf" stop > /dev/null 2>&1
    kill "${milters[@]}"
    wait "${milters[@]}" 2> /dev/null || true
}

field() { "$PY" -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

printf '%-10s %-12s %10s %12s %10s\n' size server msgs/s p99-ms failures
for spec in "1024 $COUNT_1K 1KB" "102400 $COUNT_100K 100KB"; do
    read -r size count label <<< "$spec"
    relay_result="$(run_relay "$size" "$count")"
    postfix_result="$(run_postfix "$size" "$count")"
    for pair in "mailwarden $relay_result" "postfix $postfix_result"; do
        name="${pair%% *}" json="${pair#* }"
        printf '%-10s %-12s %10s %12s %10s\n' "$label" "$name" "$(field "$json" msgs_per_s)" \
            "$(field "$json" p99_ms)" "$(field "$json" failures)"
    done
done
# Both sides must have delivered what they signed with both algorithms.
"$PY" - "$W/sink" << 'EOF'
import pathlib, sys
messages = [m.read_bytes() for m in pathlib.Path(sys.argv[1]).glob("*.eml")]
both = sum(1 for m in messages if b"a=rsa-sha256" in m and b"a=ed25519-sha256" in m)
print(f"delivered to the sink: {len(messages)} messages, {both} signed with both algorithms")
EOF
echo "work directory: $W (sink messages, logs)"
