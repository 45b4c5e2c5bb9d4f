#!/usr/bin/env bash
# The test command of the README: makes .venv, installs riskmap with its test extras, runs the suite.
# Tests that need Kannel, PostgreSQL or Chromium run when those are installed (see .ci/run, which installs
# and starts them); with CI=true a missing component fails its tests instead of skipping them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
.venv/bin/ruff check riskmap tests benchmarks
.venv/bin/mypy riskmap
.venv/bin/python -m pytest "$@"
