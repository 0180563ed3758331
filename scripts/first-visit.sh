#!/usr/bin/env bash
# A first visit to the built site in headless Chromium: auto's choice, the first stylization
# against wasm's, the model download (src/sanet_tfjs/first_visit.py). Prints figures.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHONPATH=src exec .venv/bin/python -m sanet_tfjs.first_visit "$@"
