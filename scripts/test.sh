#!/usr/bin/env bash
# Installs what the tests need (first run only), then runs lint and the test suite.
# Extra arguments go to pytest, e.g.: bash scripts/test.sh -k fetch (they come last, so they win)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# Two workers (pytest-xdist; the machines this runs on have 2 cores), each taking the next test
# as it finishes one; `-n 0` runs in one process.
exec .venv/bin/pytest -n 2 --dist worksteal --durations=20 "$@"
