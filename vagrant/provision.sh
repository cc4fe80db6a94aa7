#!/usr/bin/env bash
# Install everything shadownet needs on Debian 12, as root; safe and fast to run again.
#
# Used three ways: `make setup`, the Vagrant box's provisioner, and by hand:
#   sudo bash vagrant/provision.sh [PROJECT_DIR]
# SHADOWNET_DEV=1 also installs what only the test suite needs (vagrant, chromium).
set -euo pipefail

PROJECT_DIR="$(cd "${1:-$(dirname "$0")/..}" && pwd)"
VENV="$PROJECT_DIR/.venv"
PYTHON="${PYTHON:-python3}"

PACKAGES=(
  openvswitch-switch mininet python3-networkx python3-venv python3-dev build-essential
  iperf3 ethtool tcpdump iproute2 iptables iputils-ping curl conntrack dnsutils dnsmasq-base
)
if [[ "${SHADOWNET_DEV:-0}" == 1 ]]; then
  PACKAGES+=(vagrant tshark chromium)
fi

log() { printf 'provision: %s\n' "$*" >&2; }

if [[ $EUID -ne 0 ]]; then
  log "must run as root (it installs Debian packages and starts Open vSwitch)"
  exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "Debian packages present"
fi

# Open vSwitch: the kernel module may be absent, so bridges use the userspace datapath.
if ! ovs-vsctl --timeout=3 show >/dev/null 2>&1; then
  log "starting Open vSwitch"
  /usr/share/openvswitch/scripts/ovs-ctl start >/dev/null 2>&1 || true
  ovs-vsctl --timeout=5 show >/dev/null
fi

# Python environment: rebuilt only when pyproject.toml changed since the last install.
stamp="$VENV/.shadownet-installed"
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating virtualenv in $VENV"
  "$PYTHON" -m venv "$VENV"
fi
if [[ ! -f "$stamp" || "$PROJECT_DIR/pyproject.toml" -nt "$stamp" ]]; then
  log "installing shadownet into $VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e "$PROJECT_DIR[dev]"
  touch "$stamp"
else
  log "virtualenv up to date"
fi
log "ready: $VENV/bin/shadownet-manager, $VENV/bin/shadownet"
