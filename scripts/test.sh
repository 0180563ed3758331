#!/usr/bin/env bash
# Installs what the tests need (first run only), then runs lint and the test suite.
# Extra arguments go to pytest, e.g.: bash scripts/test.sh -k fetch (they come last, so they win)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# Two workers (pytest-xdist; the machines this runs on have 2 cores). Each holds one test besides
# the one it runs (`--dist load --maxschedchunk 1`), so they take the tests in the order
# tests/conftest.py gives them: the longest first. `-n 0` runs in one process.
exec .venv/bin/pytest -n 2 --dist load --maxschedchunk 1 --durations=20 "$@"
