#!/usr/bin/env bash
# Installs everything the tests need into ./.venv, then runs lint, type checks and the tests.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first and pinned: it takes the CPU build on disk; an unpinned torch pulls a CUDA build of GBs.
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e '.[dev,torch,report]'
if [ -x scripts/install-backends.sh ]; then bash scripts/install-backends.sh; fi
echo "== ruff"; .venv/bin/ruff check routerscope tests benchmarks examples dashboards
echo "== dashboards up to date"; .venv/bin/python -m dashboards.generate --check
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/python -m pytest "$@"
