#!/usr/bin/env bash
# Start a local Prefect server, deploy prefect.yaml to a process work pool and run a worker.
# Ctrl-C stops the worker and the server.
set -euo pipefail
HOST="${HOST:-127.0.0.1}"
PORT="${PREFECT_PORT:-4200}"
export PREFECT_API_URL="http://${HOST}:${PORT}/api"
export LANDCOVER_REPO="${LANDCOVER_REPO:-$(pwd)}"

prefect server start --host "$HOST" --port "$PORT" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 60); do
  curl -fsS "$PREFECT_API_URL/health" >/dev/null 2>&1 && break
  sleep 1
done
prefect work-pool inspect landcover-process >/dev/null 2>&1 || prefect work-pool create landcover-process --type process
prefect --no-prompt deploy --all
echo "Prefect UI: http://${HOST}:${PORT} (deployments: training-pipeline, batch-inference, validate-tiles)"
prefect worker start --pool landcover-process
