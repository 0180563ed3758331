#!/usr/bin/env bash
# Measures the shared build cache at full width (docs/cache.md's tables): a local SeaweedFS, then
# clone A builds from nothing and writes, clone B (another path) reads, clone C (web/app.js
# edited) reads; B's sums and site are compared with A's, and B's no-op run is timed. The clones
# are of this checkout's HEAD, under $1 (default /tmp/sanet-cache-measure), and use this
# checkout's .venv and node_modules. Prints each build's wall time; the logs stay under $1.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-/tmp/sanet-cache-measure}
rm -rf "$out" && mkdir -p "$out/deeper"
clone() {
  git clone -q "$repo" "$1" && ln -s "$repo/.venv" "$1/.venv" && ln -s "$repo/node_modules" "$1/node_modules"
}
timed_build() {  # name, clone, env file
  local start rc
  start=$(date +%s.%N)
  (cd "$2" && . "$3" && .venv/bin/doit) > "$out/$1.out" 2> "$out/$1.err"; rc=$?
  echo "$1: rc=$rc wall=$(echo "$(date +%s.%N) - $start" | bc) s"
  grep -E " done in |fetched from the cache|^cache:" "$out/$1.out" "$out/$1.err" | sed 's/^/  /'
}
clone "$out/a"
(cd "$out/a" && bash scripts/cache-server.sh > "$out/server.log" 2>&1) &
server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 60); do [ -f "$out/a/.cache-server/writer.env" ] && break; sleep 1; done
sleep 3
timed_build a "$out/a" "$out/a/.cache-server/writer.env"
clone "$out/deeper/b"
timed_build b "$out/deeper/b" "$out/a/.cache-server/reader.env"
diff -r "$out/a/artifacts/sums" "$out/deeper/b/artifacts/sums" > /dev/null && echo "sums identical"
diff -r "$out/a/artifacts/site" "$out/deeper/b/artifacts/site" > /dev/null && echo "site identical"
(cd "$out/deeper/b" && . "$out/a/.cache-server/reader.env" && .venv/bin/python scripts/bench-noop.py)
clone "$out/c"
echo "// edited for the cache measurement" >> "$out/c/web/app.js"
timed_build c "$out/c" "$out/a/.cache-server/reader.env"
