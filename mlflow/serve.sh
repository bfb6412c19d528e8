#!/usr/bin/env bash
# Start the MLflow UI / tracking server over sopforecast's local store, on 127.0.0.1 only.
#   mlflow/serve.sh [WORKDIR] [PORT] [MLFLOW SERVER OPTIONS...]
# WORKDIR defaults to $SOPFORECAST_HOME, else ./sopforecast-work; PORT to 5000; further
# options go to `mlflow server` (e.g. --workers 1).
# No activated virtual environment needed: MLflow runs as `PYTHON -m mlflow` with the first
# Python that can import it among $SOPFORECAST_PYTHON, $VIRTUAL_ENV, the repository's .venv
# or venv, python3/python on PATH, and the Python of the `sopforecast` or `mlflow` command.
set -euo pipefail
WD="$(realpath -m "${1:-${SOPFORECAST_HOME:-./sopforecast-work}}")"
PORT="${2:-5000}"
shift $(($# < 2 ? $# : 2))
if [ ! -f "$WD/mlflow/mlflow.db" ]; then
    echo "no MLflow store at $WD/mlflow/mlflow.db; run 'sopforecast demo' or a pipeline first" >&2
    exit 2
fi

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# the interpreter named on the first line of a console script (pip writes #!/path/python)
shebang_python() {
    local script line
    script="$(command -v "$1" 2>/dev/null)" || return 0
    IFS= read -r line <"$script" || return 0
    case "$line" in
        "#!/"*python*) line="${line#\#!}"; echo "${line%% *}" ;;
    esac
}

find_python() {
    local candidate
    for candidate in \
        "${SOPFORECAST_PYTHON:-}" \
        "${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/python}" \
        "$REPO/.venv/bin/python" \
        "$REPO/venv/bin/python" \
        "$(command -v python3 2>/dev/null || true)" \
        "$(command -v python 2>/dev/null || true)" \
        "$(shebang_python sopforecast)" \
        "$(shebang_python mlflow)"; do
        # from / so that a folder named mlflow here (this one) does not pass for the package
        if [ -n "$candidate" ] && [ -x "$candidate" ] && (cd / && "$candidate" -c "import mlflow.server") 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

if ! PYTHON="$(find_python)"; then
    echo "cannot find a Python with MLflow (looked in \$SOPFORECAST_PYTHON, \$VIRTUAL_ENV, $REPO/.venv," \
        "$REPO/venv and python3/python on PATH); set SOPFORECAST_PYTHON to the python of the" \
        "environment where sopforecast is installed, e.g. SOPFORECAST_PYTHON=~/venvs/sop/bin/python" >&2
    exit 2
fi

echo "MLflow UI on http://127.0.0.1:$PORT over $WD/mlflow, run by $PYTHON (Ctrl-C stops it)"
# runs logged offline keep their artifacts in $WD/mlflow/artifacts; new experiments created
# through this server store theirs there too
exec "$PYTHON" -m mlflow server \
    --backend-store-uri "sqlite:///$WD/mlflow/mlflow.db" \
    --default-artifact-root "$WD/mlflow/artifacts" \
    --host 127.0.0.1 --port "$PORT" "$@"
