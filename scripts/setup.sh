#!/usr/bin/env bash
# Installs what cloud-hotplug and its lab need on Debian 12 (idempotent), then builds.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "setup: run as root" >&2; exit 1; }

# librsvg2-bin: the unit tests render the bench's SVG figures with rsvg-convert; man-db: they
# render the manual page with man -l.
pkgs=(cloud-init udev ifupdown isc-dhcp-client dnsmasq-base iproute2 nftables tcpdump util-linux procps psmisc librsvg2-bin man-db)
bash scripts/apt-ensure.sh "${pkgs[@]}"

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
