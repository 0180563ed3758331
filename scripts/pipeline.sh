#!/usr/bin/env bash
# Installs what the pipeline needs (first run only), then runs the doit build.
# Extra arguments go to doit, e.g.: bash scripts/pipeline.sh list
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/doit "$@"
