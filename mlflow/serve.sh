#!/usr/bin/env bash
# Start the MLflow UI / tracking server over sopforecast's local store, on 127.0.0.1 only.
#   mlflow/serve.sh [WORKDIR] [PORT]
# WORKDIR defaults to $SOPFORECAST_HOME, else ./sopforecast-work; PORT to 5000.
set -euo pipefail
WD="$(realpath -m "${1:-${SOPFORECAST_HOME:-./sopforecast-work}}")"
PORT="${2:-5000}"
if [ ! -f "$WD/mlflow/mlflow.db" ]; then
    echo "no MLflow store at $WD/mlflow/mlflow.db; run 'sopforecast demo' or a pipeline first" >&2
    exit 2
fi
echo "MLflow UI on http://127.0.0.1:$PORT over $WD/mlflow (Ctrl-C stops it)"
# runs logged offline keep their artifacts in $WD/mlflow/artifacts; new experiments created
# through this server store theirs there too
exec mlflow server \
    --backend-store-uri "sqlite:///$WD/mlflow/mlflow.db" \
    --default-artifact-root "$WD/mlflow/artifacts" \
    --host 127.0.0.1 --port "$PORT"
