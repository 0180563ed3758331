#!/usr/bin/env bash
# Installs what the tests need (first run only), then runs lint and the test suite.
# Extra arguments go to pytest, e.g.: bash scripts/test.sh -k fetch
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/pytest --durations=20 "$@"
