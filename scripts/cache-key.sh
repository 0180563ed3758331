#!/usr/bin/env bash
# Prints the CI cache key of artifacts/ (see src/sanet_tfjs/cachekey.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
PYTHONPATH=src exec .venv/bin/python -m sanet_tfjs.cachekey "$@"
