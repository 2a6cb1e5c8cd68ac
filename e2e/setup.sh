#!/usr/bin/env bash
# Install everything mailwarden's end-to-end tests need on a fresh Debian 12 machine, then
# build the local control plane. Safe to run again: each step is skipped when done.
#
#   1. Debian packages (mail and DNS tools the tests drive as local processes)
#   2. a Python venv at $MAILWARDEN_CACHE/venv with dkimpy, dnspython and pytest
#   3. cargo-fuzz, for the relay's bounded fuzz run
#   4. e2e/build-control-plane.sh (Kubernetes, etcd, kwok, kubectl, helm)
#
# Runs as root (apt-get). Env: MAILWARDEN_CACHE (default $HOME/.cache/mailwarden).
set -euo pipefail

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${MAILWARDEN_CACHE:-$HOME/.cache/mailwarden}"
VENV="$CACHE/venv"
APT_PACKAGES=(
    swaks libnet-ssleay-perl libio-socket-ssl-perl knot knot-dnsutils bind9-dnsutils
    opendkim opendkim-tools testssl.sh postfix openssl curl jq ca-certificates python3
    python3-venv shellcheck
)
PY_PACKAGES=(dkimpy pynacl dnspython pytest aiosmtpd)
# Packages whose Debian install starts a daemon; the tests run their own instances.
SYSTEM_SERVICES=(postfix knot)

log() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

missing_apt_packages() {
    local pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f '${Status}\n' "$pkg" 2> /dev/null | grep -q '^install ok installed$' \
            || echo "$pkg"
    done
}

install_apt_packages() {
    local missing
    mapfile -t missing < <(missing_apt_packages)
    if [ ${#missing[@]} -eq 0 ]; then
        log "apt packages present, skipping"
        return 0
    fi
    log "installing apt packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Postfix would otherwise ask which kind of mail server this is; "No configuration"
    # leaves /etc/postfix/main.cf absent, so the system instance cannot start by accident.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    # No daemon is started while packages install (the Debian policy-rc.d convention);
    # a policy file the machine already has is left alone.
    local own_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        own_policy=1
    fi
    # Another apt-get may hold the dpkg lock (other setup steps run concurrently): wait.
    local apt=(apt-get -y -q -o DPkg::Lock::Timeout=600)
    if ! "${apt[@]}" install --no-install-recommends "${missing[@]}"; then
        log "install failed, refreshing the package lists and retrying"
        "${apt[@]}" update
        "${apt[@]}" install --no-install-recommends "${missing[@]}"
    fi
    if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
}

# The tests start postfix and knotd themselves, with their own configuration and ports;
# a system instance would hold port 25/53 and answer in their place.
disable_system_services() {
    local svc
    for svc in "${SYSTEM_SERVICES[@]}"; do
        # /run/systemd/system exists only when systemd is the running init.
        if [ -d /run/systemd/system ]; then
            if systemctl is-enabled --quiet "$svc" 2> /dev/null || systemctl is-active --quiet "$svc" 2> /dev/null; then
                log "disabling system service $svc"
                systemctl disable --now "$svc" > /dev/null 2>&1 || true
            fi
        elif [ -x "/etc/init.d/$svc" ]; then
            update-rc.d "$svc" disable > /dev/null 2>&1 || true
            # Postfix's init script reports success even when stopped; its system instance is
            # checked below by its configuration directory instead.
            if [ "$svc" != postfix ] && service "$svc" status > /dev/null 2>&1; then
                log "stopping system service $svc"
                service "$svc" stop > /dev/null 2>&1 || true
            fi
        fi
    done
    # The system postfix is identified by its default configuration directory, so a
    # test's own postfix instance (another config directory) is not touched.
    if command -v postfix > /dev/null && postfix -c /etc/postfix status > /dev/null 2>&1; then
        log "stopping the system postfix instance"
        postfix -c /etc/postfix stop > /dev/null 2>&1 || true
    fi
}

setup_venv() {
    local python=/usr/bin/python3 stamp="$VENV/.mailwarden-packages"
    [ -x "$python" ] || python=python3
    # The stamp records what was installed, so adding a package here reinstalls.
    if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2> /dev/null)" = "${PY_PACKAGES[*]}" ]; then
        log "python venv $VENV present, skipping"
        return 0
    fi
    log "creating python venv $VENV with ${PY_PACKAGES[*]}"
    mkdir -p "$CACHE"
    [ -x "$VENV/bin/python" ] || "$python" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}"
    echo "${PY_PACKAGES[*]}" > "$stamp"
}

install_cargo_fuzz() {
    if cargo fuzz --version > /dev/null 2>&1; then
        log "cargo-fuzz present, skipping"
        return 0
    fi
    log "installing cargo-fuzz from crates.io (~2 min)"
    cargo install --quiet --locked cargo-fuzz
}

main() {
    local t0=$SECONDS
    [ "$(id -u)" -eq 0 ] || { log "ERROR: run as root (apt-get)"; exit 1; }
    command -v go > /dev/null || { log "ERROR: Go (1.26 or newer) must be on PATH"; exit 1; }
    command -v cargo > /dev/null || { log "ERROR: Rust (cargo 1.95) must be on PATH"; exit 1; }
    install_apt_packages
    disable_system_services
    setup_venv
    install_cargo_fuzz
    "$E2E_DIR/build-control-plane.sh"
    log "setup done in $((SECONDS - t0))s"
}

main "$@"
