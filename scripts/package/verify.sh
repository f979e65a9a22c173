#!/usr/bin/env bash
# Checks the .deb: contents, lintian (if installed), and install + purge in a Debian 12
# chroot (no systemd running there) leaving the file tree exactly as it was.
#
#   bash scripts/package/verify.sh [DEB] [--base TAR] [--no-lintian]
#
# The chroot is the VM tier's cached mmdebstrap base (`vm build --base-only`, built if absent:
# ~2-4 min once). It runs in a private mount namespace, so its /proc mount cannot outlive it.
# Before installing, cloud-init's own hotplug rule is planted so the test also proves that
# install moves it aside and purge restores it. Runtime state (queue, log, config, Python
# byte-code) is created between install and purge, the way a running system would.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DEB=""
BASE=""
LINTIAN=1
while [ $# -gt 0 ]; do
  case "$1" in
    --base) BASE=$2; shift ;;
    --no-lintian) LINTIAN=0 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) DEB=$1 ;;
  esac
  shift
done
say() { echo "verify: $*" >&2; }
[ "$(id -u)" = 0 ] || { say "run as root (chroot)"; exit 1; }
[ -n "$DEB" ] || DEB=$(ls -t dist-deb/cloud-hotplug_*_all.deb 2>/dev/null | head -1)
[ -f "$DEB" ] || { say "no .deb (run scripts/package.sh)"; exit 1; }
DEB=$(readlink -f "$DEB")

say "contents of $(basename "$DEB"):"
dpkg-deb -I "$DEB" | sed -n '/Package:/,/Description:/p' >&2
dpkg-deb -c "$DEB" | awk '{print $6}' | grep -v '/node_modules/.' | sed 's/^/  /' >&2
say "  + $(dpkg-deb -c "$DEB" | grep -c '/node_modules/.') entries under usr/lib/cloud-hotplug/node_modules/"

if [ "$LINTIAN" = 1 ]; then
  if command -v lintian >/dev/null; then
    lout=$(lintian --tag-display-limit 0 "$DEB" 2>&1 || true)
    say "lintian: $(grep -c '^E:' <<<"$lout" || true) errors, $(grep -c '^W:' <<<"$lout" || true) warnings (by tag:)"
    grep -E '^[EWI]:' <<<"$lout" | awk '{print $1, $3}' | sort | uniq -c | sort -rn | sed 's/^/  /' >&2 || true
  else
    say "lintian not installed (apt-get install lintian); skipped"
  fi
fi

if [ -z "$BASE" ]; then
  [ -f dist/scripts/vm/cli.js ] || npx tsc -p tsconfig.json
  BASE=$(node dist/scripts/vm/cli.js build --base-only)
fi
[ -f "$BASE" ] || { say "no base tarball $BASE"; exit 1; }

CH=$(mktemp -d /var/tmp/cloud-hotplug-verify.XXXXXX)
cleanup() {
  if grep -q " $CH" /proc/self/mounts; then say "mounts left under $CH; not removing it"; return; fi
  rm -rf "$CH"
}
trap cleanup EXIT
say "unpacking $(basename "$BASE") into $CH"
tar --numeric-owner --xattrs --xattrs-include='*' -xpf "$BASE" -C "$CH"
cp "$DEB" "$CH/tmp/cloud-hotplug.deb"
cat >"$CH/tmp/verify-inside.sh" <<'EOF'
set -eu
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive
snap() {
  find / -xdev \( -path /tmp -o -path /proc -o -path /var/cache/debconf -o -path /var/lib/dpkg/triggers \) -prune -o \
    \( -path /var/log/dpkg.log -o -path /var/log/apt -o -path /var/lib/dpkg/status-old -o -path /var/lib/dpkg/lock \) -prune -o \
    -printf '%p %y %m %u\n' | sort
}
# cloud-init's own hotplug hook, as cc_install_hotplug writes it when user-data enables hotplug
mkdir -p /etc/udev/rules.d
printf '# Installed by cloud-init due to network hotplug userdata\nACTION!="add|remove", GOTO="cloudinit_end"\nLABEL="cloudinit_hook"\nSUBSYSTEM=="net", RUN+="/usr/lib/cloud-init/hook-hotplug"\nLABEL="cloudinit_end"\n' \
  >/etc/udev/rules.d/10-cloud-init-hook-hotplug.rules
snap >/tmp/before
echo "== dpkg -i"
dpkg -i /tmp/cloud-hotplug.deb
snap >/tmp/installed
echo "== what the install added or changed (besides the package's own files under /usr):"
diff /tmp/before /tmp/installed | grep '^[<>]' | grep -v -E '^> /usr/(lib/cloud-hotplug|share/doc/cloud-hotplug|share/man/man8/hotplug\.8\.gz|bin/hotplug)' | grep -v ' /var/lib/dpkg/info/' || true
echo "== the udev rule's programs exist and are executable:"
for f in $(sed -n 's/^RUN+="\(.*\)"$/\1/p' /etc/udev/rules.d/90-cloud-hotplug.rules); do
  case "$f" in /*) if [ -x "$f" ] || [ -f "$f" ]; then echo "  ok $f"; else echo "  MISSING $f"; exit 4; fi ;; esac
done
echo "== node $(node --version); hotplug --version: $(hotplug --version)"
echo "== hotplug status --json (no cloud-init cache in a chroot):"
hotplug status --json || echo "(exit $?)"
echo "== runtime state, as a running system would leave it"
mkdir -p /run/cloud-hotplug/queue /etc/cloud-hotplug
echo '{}' >/run/cloud-hotplug/last-apply.json
echo 'retry: {budget_seconds: 30}' >/etc/cloud-hotplug/config.yaml
echo '{"action":"add"}' >/var/log/cloud-hotplug.log
python3 -c 'import py_compile,glob; [py_compile.compile(f) for f in glob.glob("/usr/lib/cloud-hotplug/**/*.py", recursive=True)]'
find /usr/lib/cloud-hotplug -name __pycache__ | sed 's/^/  /'
echo "== dpkg --purge"
dpkg --purge cloud-hotplug
snap >/tmp/after
echo "== diff before-install vs after-purge:"
if diff /tmp/before /tmp/after; then echo "IDENTICAL: purge left nothing and restored cloud-init's rule"; else echo "DIFFERENT"; exit 3; fi
EOF
say "install + purge in the chroot"
unshare --mount --propagation private -- sh -c 'mount -t proc proc "$1/proc" && exec chroot "$1" /bin/sh /tmp/verify-inside.sh' sh "$CH"
