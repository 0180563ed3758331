#!/usr/bin/env bash
# Builds .venv from requirements.lock: exact pins, installed with --no-deps (no resolution).
# Does nothing when .venv already matches the lock. Idempotent; safe to run every time.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's Chromium for the browser stage and tests (a tool's own browser download fails here).
if [ ! -x /usr/bin/chromium ]; then
  echo "setup: installing Debian's chromium" >&2
  sudo_cmd=$([ "$(id -u)" -eq 0 ] && echo "" || echo "sudo")
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >/dev/null
fi

# JavaScript packages (TensorFlow.js for the Node parity check), exactly as package-lock.json says.
npm_stamp=node_modules/.installed-lock-sha256
npm_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$npm_stamp" ] || [ "$(cat "$npm_stamp")" != "$npm_sum" ]; then
  echo "setup: installing the pinned npm packages into node_modules" >&2
  npm ci --no-audit --no-fund --loglevel=error
  echo "$npm_sum" > "$npm_stamp"
fi

lock_sum=$(cat requirements.lock requirements-hashed.lock | sha256sum | cut -d' ' -f1)
stamp=.venv/.installed-lock-sha256
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_sum" ]; then
  exit 0
fi

echo "setup: installing the pinned Python environment into .venv (first run takes a few minutes)" >&2
python3 -m venv .venv
log=.venv/install.log
if ! .venv/bin/python -m pip install --no-deps -r requirements.lock >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "setup: pip install failed; full log in $log" >&2
  exit 1
fi
if ! .venv/bin/python -m pip install --no-deps --require-hashes -r requirements-hashed.lock >>"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "setup: pip install of requirements-hashed.lock failed; full log in $log" >&2
  exit 1
fi
.venv/bin/python -m pip check
echo "$lock_sum" > "$stamp"
