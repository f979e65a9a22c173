#!/usr/bin/env bash
# Installs what cloud-hotplug and its lab need on Debian 12 (idempotent), then builds.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "setup: run as root" >&2; exit 1; }

# librsvg2-bin: the unit tests render the bench's SVG figures with rsvg-convert; man-db: they
# render the manual page with man -l.
pkgs=(cloud-init udev ifupdown isc-dhcp-client dnsmasq-base iproute2 nftables tcpdump util-linux procps psmisc librsvg2-bin man-db)
bash scripts/apt-ensure.sh "${pkgs[@]}"

# NetworkManager for the lab's `--stack nm` flavour. This host has no systemd: a package's init
# script (invoke-rc.d) would start NM here, in the host's own network namespace, where it would
# take over the host's interfaces. A policy-rc.d that answers 101 ("action forbidden") holds every
# service start back during the install (an existing one is kept and restored byte for byte).
if ! dpkg-query -W -f='${Status}' network-manager 2>/dev/null | grep -q 'install ok installed'; then
  prc=/usr/sbin/policy-rc.d saved=""
  if [ -e "$prc" ]; then saved=$(mktemp); cp -p "$prc" "$saved"; fi
  restore() { if [ -n "$saved" ]; then cp -p "$saved" "$prc" && rm -f "$saved"; else rm -f "$prc"; fi; }
  trap restore EXIT
  printf '#!/bin/sh\n# cloud-hotplug setup: no service starts while packages install\nexit 101\n' >"$prc.tmp"
  chmod 755 "$prc.tmp" && mv -f "$prc.tmp" "$prc"
  bash scripts/apt-ensure.sh network-manager
  restore
  trap - EXIT
fi
# Nothing of NetworkManager may run in the host's namespaces (the lab starts its own, inside the instance).
if [ ! -d /run/systemd/system ]; then
  for pid in $(pgrep -x NetworkManager || true); do
    if [ "$(readlink /proc/$pid/ns/net)" = "$(readlink /proc/1/ns/net)" ]; then
      echo "setup: NetworkManager (pid $pid) runs in the host's network namespace: stop it (it manages the host's interfaces)" >&2
      exit 1
    fi
  done
fi

# A node_modules that is a symlink is shared with another checkout (a git worktree): npm ci
# would empty the directory it points to under that checkout's feet, so it is left alone.
if [ -L node_modules ]; then
  echo "setup: node_modules is a symlink to $(readlink node_modules) (shared): not running npm ci" >&2
elif [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
echo "setup: building" >&2
npm run -s build >&2
