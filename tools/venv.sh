#!/usr/bin/env bash
# Create or refresh the project's virtualenv (.venv) with the project and its test tools.
# Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "venv: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.clearsim-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "venv: installing clearsim and its test dependencies"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[test]"
  echo "$want" > "$stamp"
else
  echo "venv: up to date"
fi
