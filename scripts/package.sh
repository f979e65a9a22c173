#!/usr/bin/env bash
# Builds dist-deb/cloud-hotplug_<version>_all.deb with dpkg-deb (no network needed).
#
#   bash scripts/package.sh [--no-build] [--out DIR]
#
# Layout of the package:
#   /usr/lib/cloud-hotplug/{dist/src,dist/bridge,bridge/python,bin,package.json,node_modules}
#   /usr/bin/hotplug                 wrapper: exec /usr/bin/node …/dist/src/cli.js "$@"
#   /usr/share/doc/cloud-hotplug/    copyright, changelog.gz
#   /usr/share/man/man8/hotplug.8.gz generated from the commander definitions (scripts/man/)
# Maintainer scripts (scripts/package/maint/): postinst runs `hotplug install
# --replace-cloud-init-hook`, prerm `hotplug uninstall`, postrm purge removes the state.
#
# Production node_modules: `npm ci --omit=dev --offline` in a staging copy (works once the
# project's own `npm ci` filled the npm cache); if that fails, a copy of the project's
# node_modules pruned to what `npm ls --omit=dev` lists.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/dist-deb
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) BUILD=0 ;;
    --out) OUT=$2; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "package: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
say() { echo "package: $*" >&2; }

command -v dpkg-deb >/dev/null || { say "dpkg-deb missing (apt-get install dpkg)"; exit 1; }
VERSION=$(node -p "require('./package.json').version")
NAME=cloud-hotplug
DEB=$OUT/${NAME}_${VERSION}_all.deb

WORK=$(mktemp -d /tmp/cloud-hotplug-pkg.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
# A clean build of its own (no stale files from ./dist); --no-build packages ./dist as it is.
DIST=$ROOT/dist
if [ "$BUILD" = 1 ]; then
  say "building (tsc into a scratch dir)"
  npx tsc -p scripts/package/tsconfig.json --outDir "$WORK/build"
  DIST=$WORK/build
fi
# The Python bridge is its entry module and the siblings it imports (all of bridge/python/ ships).
for f in "$DIST/src/cli.js" "$DIST/bridge/index.js" bridge/python/{hotplug_bridge,hb_state,hb_files,hb_runtime,hb_metadata,hb_network,hb_ports,hb_netdata,hb_memory}.py; do
  [ -f "$f" ] || { say "$f missing: build first (npx tsc -p tsconfig.json)"; exit 1; }
done
PKG=$WORK/root
LIB=$PKG/usr/lib/$NAME
mkdir -p "$LIB/dist" "$LIB/bridge" "$PKG/usr/bin" "$PKG/usr/share/doc/$NAME" "$PKG/usr/share/man/man8" "$PKG/DEBIAN"

# --- the program ------------------------------------------------------------------------
cp -a "$DIST/src" "$LIB/dist/src"
cp -a "$DIST/bridge" "$LIB/dist/bridge"
cp -a bridge/python "$LIB/bridge/python"
# Programs that are not compiled (the udev program is POSIX sh): bin/ as it is in the tree.
if [ -d bin ]; then cp -a bin "$LIB/bin"; fi
find "$LIB" \( -name '*.map' -o -name '*.d.ts' \) -type f -delete
# --no-build ships ./dist as it is, which can still hold the output of sources moved out of src/
# since (src/validate/ is now test/support/, test-only): a compiled file ships only while its
# .ts source is in the tree.
find "$LIB/dist" -name '*.js' -type f | while read -r f; do
  rel=${f#"$LIB/dist/"}
  [ -f "${rel%.js}.ts" ] || rm -f "$f"
done
find "$LIB/dist" -type d -empty -delete
find "$LIB" -name __pycache__ -type d -prune -exec rm -rf {} +
# package.json carries "type": "module" (the .js files are ESM); drop its scripts/devDependencies.
node -e '
  const p = require("./package.json");
  const keep = { name: p.name, version: p.version, description: p.description, license: p.license,
    type: p.type, private: true, engines: p.engines, bin: p.bin, dependencies: p.dependencies };
  require("fs").writeFileSync(process.argv[1], JSON.stringify(keep, null, 2) + "\n");
' "$LIB/package.json"

# --- production node_modules -------------------------------------------------------------
STAGE=$WORK/npm
mkdir -p "$STAGE"
cp package.json package-lock.json "$STAGE/"
if (cd "$STAGE" && npm ci --omit=dev --offline --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null 2>"$WORK/npm.err"); then
  say "node_modules: npm ci --omit=dev --offline"
  mv "$STAGE/node_modules" "$LIB/node_modules"
else
  say "node_modules: offline npm ci failed ($(grep -m1 -E 'npm (error|ERR!) (code|request)' "$WORK/npm.err" || tail -1 "$WORK/npm.err")); pruning a copy of ./node_modules"
  [ -d node_modules ] || { say "no ./node_modules to prune: run npm ci first"; exit 1; }
  mkdir -p "$LIB/node_modules"
  npm ls --omit=dev --all --parseable 2>/dev/null | tail -n +2 | while read -r dir; do
    rel=${dir#"$ROOT"/}
    case "$rel" in node_modules/*) ;; *) continue ;; esac
    mkdir -p "$LIB/$(dirname "$rel")"
    [ -e "$LIB/$rel" ] || cp -a "$dir" "$LIB/$rel"
  done
fi
rm -rf "$LIB/node_modules/.bin" "$LIB/node_modules/.package-lock.json"
# Byte-code and npm leftovers a developer's tree may hold (Python writes __pycache__ at run time).
find "$LIB" -name __pycache__ -type d -prune -exec rm -rf {} +
find "$LIB" -name .npmignore -type f -delete
for dep in $(node -p "Object.keys(require('./package.json').dependencies).join(' ')"); do
  [ -d "$LIB/node_modules/$dep" ] || { say "dependency $dep missing from the staged node_modules"; exit 1; }
done
for dev in $(node -p "Object.keys(require('./package.json').devDependencies||{}).join(' ')"); do
  [ ! -e "$LIB/node_modules/$dev" ] || { say "devDependency $dev leaked into the package"; exit 1; }
done

# --- manual page ----------------------------------------------------------------------------
# hotplug(8) from the commander tree of the build being packaged (its generator imports that
# build's src/program.js, whose imports resolve from the staged production node_modules).
[ -f "$DIST/scripts/man/cli.js" ] || { say "$DIST/scripts/man/cli.js missing: build first (npm run build)"; exit 1; }
[ "$DIST" = "$ROOT/dist" ] || ln -sfn "$LIB/node_modules" "$DIST/node_modules"
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)} node "$DIST/scripts/man/cli.js" "$WORK/hotplug.8"
gzip -9n <"$WORK/hotplug.8" >"$PKG/usr/share/man/man8/hotplug.8.gz"

# --- wrapper, docs ------------------------------------------------------------------------
cat >"$PKG/usr/bin/hotplug" <<'EOF'
#!/bin/sh
# cloud-hotplug CLI. PYTHON_BIN: the interpreter that has cloud-init (Debian's python3).
PYTHON_BIN=${PYTHON_BIN:-/usr/bin/python3}
export PYTHON_BIN
exec /usr/bin/node /usr/lib/cloud-hotplug/dist/src/cli.js "$@"
EOF
cat >"$PKG/usr/share/doc/$NAME/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: cloud-hotplug

Files: *
Copyright: cloud-hotplug authors
License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.

Files: usr/lib/cloud-hotplug/node_modules/*
Copyright: the authors of each npm package
License: various (MIT, ISC, BSD)
 See the LICENSE file inside each package directory.
EOF
{
  echo "$NAME ($VERSION) unstable; urgency=medium"
  echo
  echo "  * Package built from git $(git rev-parse --short HEAD 2>/dev/null || echo unknown) by scripts/package.sh."
  echo
  echo " -- cloud-hotplug developers <cloud-hotplug@example.org>  $(date -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")"
} | gzip -9n >"$PKG/usr/share/doc/$NAME/changelog.gz"

# --- maintainer scripts, control ------------------------------------------------------------
for s in postinst prerm postrm; do install -m 0755 "scripts/package/maint/$s" "$PKG/DEBIAN/$s"; done

chmod -R u=rwX,go=rX "$PKG"
chmod 0755 "$PKG/usr/bin/hotplug" "$LIB/dist/src/cli.js"
[ ! -d "$LIB/bin" ] || find "$LIB/bin" -type f -exec chmod 0755 {} +
# Scripts with a #! line are executable (lintian: script-not-executable).
find "$LIB/dist" -name '*.js' -type f | while read -r f; do [ "$(head -c2 "$f")" != '#!' ] || chmod 0755 "$f"; done
SIZE=$(du -sk --exclude=DEBIAN "$PKG" | cut -f1)
cat >"$PKG/DEBIAN/control" <<EOF
Package: $NAME
Version: $VERSION
Architecture: all
Maintainer: cloud-hotplug developers <cloud-hotplug@example.org>
Installed-Size: $SIZE
Depends: nodejs (>= 18), cloud-init, iproute2, python3, util-linux (>= 2.25), udev
Section: admin
Priority: optional
Description: network hotplug for cloud instances, driving cloud-init
 A udev rule queues network add/remove events; a worker refreshes the
 instance metadata through the installed cloud-init (Python bridge) and
 applies the new network configuration with cloud-init's own renderer and
 activator, or tears a removed interface down completely.
 .
 Installing the package runs "hotplug install --replace-cloud-init-hook";
 removing it runs "hotplug uninstall".
EOF
(cd "$PKG" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$PKG/DEBIAN/md5sums"
chmod 0644 "$PKG/DEBIAN/md5sums" "$PKG/DEBIAN/control"

mkdir -p "$OUT"
rm -f "$DEB"
dpkg-deb --root-owner-group -Zxz --build "$PKG" "$DEB" >/dev/null
say "built $DEB ($(du -h "$DEB" | cut -f1), installed size ${SIZE} KiB)"
echo "$DEB"
