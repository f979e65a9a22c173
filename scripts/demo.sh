#!/usr/bin/env bash
# The demo command: install what is needed (idempotent), build, then boot a lab cloud,
# hot-attach a NIC and show it configured. Pass --keep to leave the lab running.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node dist/scripts/demo.js "$@"
