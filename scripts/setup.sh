#!/usr/bin/env bash
# Create .venv and install stylegan with everything its tests, demo, metrics and videos use.
# Idempotent: a second run only checks. TORCH_SPEC overrides the torch requirement (default: the
# CPU build 2.13.0 this project is developed against; any torch>=2.4 works for users).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
stamp=.venv/.stylegan-installed
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
"$VPY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
"$VPY" -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
"$VPY" -m pip install -q -e ".[test,video,data,metrics,onnx,explore,explore-test,lsun,tensorboard]"
echo "$want" > "$stamp"
