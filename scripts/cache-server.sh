#!/usr/bin/env bash
# A local shared build cache (docs/cache.md): SeaweedFS's S3 server on 127.0.0.1 only, bucket
# `sanet-cache`, data in .cache-server/ (git-ignored). It writes .cache-server/writer.env and
# reader.env (the cache settings and the keys of a writing and a read-only identity, made on
# the first run) for a build to source:
#   bash scripts/cache-server.sh &                              # start it (Ctrl+C or kill stops it)
#   (. .cache-server/writer.env && bash scripts/pipeline.sh)     # build against it, uploading
# S3_PORT=9000 picks another port (the server's other listeners take weed's defaults).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/weed ]; then
  echo "cache-server: .venv/bin/weed is missing; run bash scripts/setup.sh first" >&2
  exit 1
fi
dir=.cache-server
port=${S3_PORT:-8333}
mkdir -p "$dir/data"
if [ ! -f "$dir/identities.json" ]; then
  writer=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  reader=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  cat > "$dir/identities.json" <<JSON
{"identities": [
  {"name": "writer", "credentials": [{"accessKey": "cachewriter", "secretKey": "$writer"}],
   "actions": ["Read:sanet-cache", "Write:sanet-cache", "List:sanet-cache"]},
  {"name": "reader", "credentials": [{"accessKey": "cachereader", "secretKey": "$reader"}],
   "actions": ["Read:sanet-cache", "List:sanet-cache"]}
]}
JSON
  for who in writer reader; do
    secret=$([ "$who" = writer ] && echo "$writer" || echo "$reader")
    {
      echo "export SANET_CACHE_URL=s3://sanet-cache/sanet-tfjs"
      echo "export SANET_CACHE_ENDPOINT=http://127.0.0.1:$port"
      echo "export SANET_CACHE_WRITE=$([ "$who" = writer ] && echo 1 || echo 0)"
      echo "export AWS_ACCESS_KEY_ID=cache$who"
      echo "export AWS_SECRET_ACCESS_KEY=$secret"
      echo "export AWS_DEFAULT_REGION=us-east-1"
    } > "$dir/$who.env"
  done
  chmod 600 "$dir"/*.env "$dir/identities.json"
fi
exec .venv/bin/weed mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.port="$port" \
  -s3.config="$dir/identities.json" -bucket=sanet-cache -webdav=false -admin.ui=false
