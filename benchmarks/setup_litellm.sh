#!/usr/bin/env bash
# Create the benchmark-only virtualenv that holds LiteLLM proxy (the comparison
# target) and py-spy (profiler). It lives OUTSIDE the repo and never touches the
# project's own .venv, so LiteLLM's large dependency tree cannot leak into
# pilothouse's environment or lock file.
#
# Usage: bash benchmarks/setup_litellm.sh [VENV_DIR] [LITELLM_VERSION]
# 1.106.2 is the newest release whose pins resolve against the PyPI snapshot
# reachable here (1.108+ needs a certifi release that is not yet mirrored).
set -euo pipefail

VENV="${1:-/work/bench-venv}"
VERSION="${2:-1.106.2}"
PY="${PYTHON:-python3.11}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "litellm[proxy]==${VERSION}" py-spy
"$VENV/bin/python" -c "import importlib.metadata as m; print('litellm', m.version('litellm'))"
