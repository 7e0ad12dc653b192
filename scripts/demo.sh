#!/usr/bin/env bash
# make demo: dev stack up, a worker with every role in the background, then the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
segr() { node bin/segr.js "$@"; }
segr dev up
mkdir -p .data/dev
node bin/segr.js worker >.data/dev/demo-worker.log 2>&1 &
worker=$!
trap 'kill -TERM $worker 2>/dev/null; wait $worker 2>/dev/null || true' EXIT
echo "worker started (pid $worker, log .data/dev/demo-worker.log)"
segr check
echo
echo "Web UI: $(segr config | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).temporal.uiUrl))')"
