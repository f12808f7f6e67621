#!/usr/bin/env bash
# Install the distribution packages halab needs (Debian 12, Ubuntu 22.04/24.04).
# Only missing packages are installed, so a second run is quick and quiet.
# Daemons that a package starts by itself (nginx, haproxy, keepalived, varnish, sshd) are
# stopped and disabled again when this script installed them: halab starts
# its own copies inside the lab's hosts and needs nothing listening outside.
set -euo pipefail

# lab/net/commands.py lists the program each package brings; tests/unit/test_commands.py keeps them in step
PACKAGES=(
  mininet bridge-utils net-tools iproute2 iputils-ping curl tcpdump nftables conntrack ipvsadm psmisc ethtool procps iperf util-linux coreutils
  python3 python3-venv python3-pip bash
  haproxy nginx-light keepalived wrk squid openssl varnish gcc libc6-dev openssh-client openssh-server
)
DAEMONS=(nginx-light:nginx haproxy:haproxy keepalived:keepalived squid:squid varnish:varnish openssh-server:ssh)  # package:service

if [ "$(id -u)" -ne 0 ]; then
  echo "install-system.sh: needs root (run 'sudo make demo' or 'sudo make test')" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "install-system.sh: this machine has no apt-get; install these yourself: ${PACKAGES[*]}" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

if [ -d /run/systemd/system ]; then
  for entry in "${DAEMONS[@]}"; do
    if printf '%s\n' "${missing[@]}" | grep -qx "${entry%%:*}"; then
      systemctl disable --now "${entry#*:}" >/dev/null 2>&1 || true
    fi
  done
fi
