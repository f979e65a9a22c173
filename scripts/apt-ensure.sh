#!/usr/bin/env bash
# Installs the Debian packages named as arguments that are not installed yet (idempotent: nothing
# to do = no apt-get at all). Used by scripts/setup.sh and scripts/setup-vm.sh.
#   bash scripts/apt-ensure.sh PKG...
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "apt-ensure: run as root" >&2; exit 1; }
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -gt 0 ] || exit 0
echo "setup: installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
