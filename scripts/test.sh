#!/usr/bin/env bash
# The test command: set up (apt, npm, build), then every unit and lab integration test.
# Ends with "N passed, N failed" from mocha's own counts.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1

out=$(mktemp)
trap 'rm -f "$out"' EXIT
# Unit tests first (fast, no root effects), then the lab suites.
npx mocha --reporter spec 'dist/test/*.test.js' 'dist/test/integration/*.test.js' "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
passed=$(grep -Eo '^ +[0-9]+ passing' "$out" | grep -Eo '[0-9]+' | tail -1)
failed=$(grep -Eo '^ +[0-9]+ failing' "$out" | grep -Eo '[0-9]+' | tail -1)
echo "${passed:-0} passed, ${failed:-0} failed"
[ "${passed:-0}" -gt 0 ] || rc=1
exit "$rc"
