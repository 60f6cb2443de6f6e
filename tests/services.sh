#!/usr/bin/env bash
# Start (and if needed install) what the tests talk to: PostgreSQL, Prometheus, Chromium, and
# the MLflow tracking server (in its own virtualenv: full mlflow pins packages Driftwatch also pins).
# Idempotent; safe to run on a machine where everything is already up.
set -euo pipefail

pg_ready() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }

if ! pg_ready; then
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
  pg_ready || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
fi

missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v promtool >/dev/null || missing+=(prometheus)
command -v chromium >/dev/null || missing+=(chromium)
if ((${#missing[@]})); then
  echo "installing ${missing[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
fi
# mlflow-tracing, which mlflow pins to its own version, lags the mlflow releases on PyPI mirrors.
MLFLOW_VERSION=3.17.2
MLFLOW_VENV="${MLFLOW_VENV:-/tmp/mlflow-venv}"
mlflow_installed() {
  "$MLFLOW_VENV/bin/python" -c "import importlib.metadata as m; print(m.version('mlflow'))" 2>/dev/null
}
if [[ "$(mlflow_installed)" != "$MLFLOW_VERSION" ]]; then
  echo "installing mlflow $MLFLOW_VERSION into $MLFLOW_VENV"
  "$(command -v python3.11 || command -v python3)" -m venv "$MLFLOW_VENV"
  "$MLFLOW_VENV/bin/pip" install -q "mlflow==$MLFLOW_VERSION"
fi

echo "services ready: postgresql $(pg_isready -h 127.0.0.1 -p 5432 | cut -d- -f2), prometheus, chromium, mlflow $(mlflow_installed)"
