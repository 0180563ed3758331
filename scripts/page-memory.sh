#!/usr/bin/env bash
# Page memory over a long visit to the built site (artifacts/site; build it first: doit page):
# the time and Chromium's page memory after each run (src/sanet_tfjs/page_memory.py). Prints
# figures. Example: bash scripts/page-memory.sh --sizes 256,384,512 --runs 12
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
PYTHONPATH=src exec .venv/bin/python -m sanet_tfjs.page_memory "$@"
