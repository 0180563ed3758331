#!/usr/bin/env bash
# Regenerates the figure tables of README.md and docs/ from their reports (src/sanet_tfjs/figures.py).
# A benchmark report newer than docs/reports/bench.json (artifacts/bench/bench.json, written by
# `doit bench`) is copied in first. Extra arguments go to the module, e.g. --check.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
args=()
if [ -f artifacts/bench/bench.json ] && [ artifacts/bench/bench.json -nt docs/reports/bench.json ]; then
  args+=(--bench artifacts/bench/bench.json)
fi
PYTHONPATH=src exec .venv/bin/python -m sanet_tfjs.figures "${args[@]}" "$@"
