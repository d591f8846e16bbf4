#!/usr/bin/env bash
# The package as a user installs it: build a wheel, install it (and its dependencies, from the
# package index) into a fresh virtualenv, and run the demo scenario from outside the
# repository, where nothing but the installed package can be found. One line on success;
# on failure, the failing step's output and a non-zero exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/clearsim-wheel.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log="$tmp/step.log"

step() {   # step "what" command...: run quietly; on failure show its output and stop
  local what=$1
  shift
  if ! "$@" >"$log" 2>&1; then
    echo "wheel-check: $what failed:" >&2
    cat "$log" >&2
    exit 1
  fi
}

# Build from a copy of the files git knows (tracked or new, not ignored): a stale build/
# directory in the working tree must not stand in for files the package forgot.
mkdir "$tmp/src"
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$root" && git ls-files -z --cached --others --exclude-standard \
    | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -C "$tmp/src" -xf -
else
  (cd "$root" && tar --exclude=./.venv --exclude=./build --exclude=./out -cf - .) \
    | tar -C "$tmp/src" -xf -
fi

step "creating a virtualenv" "$PY" -m venv "$tmp/venv"
step "building the wheel" "$tmp/venv/bin/python" -m pip wheel --no-deps -q -w "$tmp/dist" "$tmp/src"
wheel=$(ls "$tmp"/dist/clearsim-*.whl)
step "installing the wheel" "$tmp/venv/bin/python" -m pip install -q "$wheel"
cd "$tmp"
step "clearsim run scenarios/demo.toml (installed wheel)" \
  "$tmp/venv/bin/clearsim" run "$root/scenarios/demo.toml" --out "$tmp/out"
echo "wheel-check: $(basename "$wheel") installed in a clean virtualenv ran scenarios/demo.toml"
