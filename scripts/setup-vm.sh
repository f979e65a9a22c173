#!/usr/bin/env bash
# Installs what the real-VM tier needs on a Debian 12 host (idempotent), then sets up and builds
# the project as scripts/setup.sh does. `npm run test:vm` runs it before the suite; the suite
# itself fails (never skips) with a one-line reason when the host still cannot run it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "setup-vm: run as root (the VM tier needs network namespaces, taps and a chroot)" >&2; exit 1; }

# QEMU and its image tool (qcow2 overlays); mmdebstrap builds the guest's root fs from
# deb.debian.org (once per flavour, cached); e2fsprogs writes it into an ext4 image
# (mkfs.ext4 -d); util-linux runs the chroot in a private mount namespace (unshare); dpkg-deb
# (dpkg, essential) builds the .deb; the cloud side is a network namespace with iproute2,
# dnsmasq-base (DHCP) and the lab's metadata service (node). scripts/vm/preflight.ts checks the
# same commands. genisoimage writes the configdrive cloud's config-2 ISO (as Nova does).
# dpkg-dev and lintian are for scripts/package/verify.sh, by hand.
vm_pkgs=(qemu-system-x86 qemu-utils mmdebstrap e2fsprogs util-linux tar iproute2 dnsmasq-base genisoimage)
bash scripts/apt-ensure.sh "${vm_pkgs[@]}"
# The lab's packages, npm ci and the build (dist/ for the suite, the image's .deb from it).
bash scripts/setup.sh
