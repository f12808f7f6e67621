#!/usr/bin/env bash
# The platform test: does halab run, from a fresh clone, on a minimal system of
# another Debian release? (make test-platform DIST=trixie, or DIST=bookworm)
#
# 1. debootstrap --variant=minbase builds that release from the Debian registry
#    into $PLATFORM_DIR/$DIST (kept between runs; FRESH=1 builds it again).
#    minbase is what container images and cloud "minimal" images start from:
#    no procps, no iproute2, no python3; exactly what a course image may lack.
# 2. systemd-nspawn runs it as a container sharing this machine's kernel, with
#    every capability (Mininet creates namespaces, veths and bridges).
# 3. Inside: a fresh `git clone` of this project, then `make demo` (which
#    installs everything through scripts/install-system.sh) and `make unit`,
#    each timed. The exit status is theirs.
#
# The container shares this machine's network namespace, so the demo's
# switches live beside this machine's interfaces: run it only when no other
# lab is running (like every lab, one at a time).
set -euo pipefail

DIST=${1:-${DIST:-}}
if [ -z "$DIST" ]; then
  echo "usage: make test-platform DIST=trixie   (or bookworm: a Debian release debootstrap knows)" >&2
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "test-platform: needs root (debootstrap and systemd-nspawn do)" >&2
  exit 1
fi
MIRROR=${MIRROR:-http://deb.debian.org/debian}
BASE=${PLATFORM_DIR:-/var/tmp/halab-platform}
ROOT=$BASE/$DIST
REPO=$(cd "$(dirname "$0")/.." && pwd)

for tool in debootstrap:debootstrap systemd-nspawn:systemd-container; do
  if ! command -v "${tool%%:*}" >/dev/null; then
    echo "installing ${tool#*:} (for ${tool%%:*})"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${tool#*:}" >/dev/null
  fi
done
if [ -e /run/halab/lock ] && ! flock -n /run/halab/lock true; then
  echo "test-platform: a lab is running here (it holds /run/halab/lock); one lab at a time" >&2
  exit 1
fi

if [ "${FRESH:-0}" = 1 ]; then
  rm -rf --one-file-system "$ROOT"
fi
if [ ! -x "$ROOT/usr/bin/make" ]; then
  mkdir -p "$BASE"
  echo "== debootstrap $DIST (minbase) into $ROOT"
  start=$(date +%s)
  debootstrap --variant=minbase --include=ca-certificates,git,make,sudo "$DIST" "$ROOT" "$MIRROR" > "$BASE/$DIST-debootstrap.log"
  echo "   took $(( $(date +%s) - start )) s"
fi

rm -rf --one-file-system "$ROOT/root/halab"
# a clone of what is committed, as a student gets it (no venv, no run directories)
git -c safe.directory='*' clone -q "$REPO" "$ROOT/root/halab"

# Certificate authorities this machine trusts beyond the distribution's (a network that
# inspects TLS on its way to PyPI has one): the container must trust them too, or pip fails.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$ROOT/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
fi

echo "== in a $DIST container: make demo, then make unit"
systemd-nspawn --quiet --register=no --keep-unit --capability=all --directory="$ROOT" \
  --setenv=DEBIAN_FRONTEND=noninteractive --setenv=LC_ALL=C.UTF-8 \
  /bin/bash -c '
    set -eu
    update-ca-certificates >/dev/null 2>&1 || true
    cd /root/halab
    . /etc/os-release; echo "   $PRETTY_NAME, kernel $(uname -r)"
    t0=$(date +%s.%N)
    make demo
    t1=$(date +%s.%N)
    make unit
    t2=$(date +%s.%N)
    python3 --version
    printf "== %s: make demo %.0f s (installing included), make unit %.0f s\n" "$PRETTY_NAME" \
      "$(python3 -c "print($t1 - $t0)")" \
      "$(python3 -c "print($t2 - $t1)")"
  '
