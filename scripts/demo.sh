#!/usr/bin/env bash
# The demo command of the README: makes .venv, installs riskmap, runs one cycle on the embedded demo county.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
exec .venv/bin/riskmap demo "$@"
