#!/usr/bin/env bash
# Time a fresh clone's first `make run`, from `git clone` to the gateway answering /healthz
# (docs/benchmarks.md, "First run"). The server is stopped once it answers.
#   usage: benchmarks/first_run.sh [cold|warm] [REF]
#   cold: an empty pip cache (a new machine); warm: this user's pip cache as it is.
#   KEEP=1 keeps the clone (and its .venv) and prints where it is; PORT (default 4077).
#   A REF whose Makefile predates RUN_ARGS serves on 4000: run it with PORT=4000.
set -euo pipefail
mode=${1:-cold}
ref=${2:-HEAD}
repo=$(git rev-parse --show-toplevel)
sha=$(git -C "$repo" rev-parse "$ref")
port=${PORT:-4077}
work=$(mktemp -d)
if [ "$mode" = cold ]; then
  PIP_CACHE_DIR=$(mktemp -d)
  export PIP_CACHE_DIR
fi
start=$(date +%s.%N)
git clone -q "$repo" "$work/src"
git -C "$work/src" checkout -q "$sha"
cd "$work/src"
setsid make run RUN_ARGS="--port $port" >"$work/run.log" 2>&1 &
pid=$!
until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do
  if ! kill -0 "$pid" 2>/dev/null; then
    tail -20 "$work/run.log"
    exit 1
  fi
  sleep 0.5
done
end=$(date +%s.%N)
kill -TERM -- "-$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
secs=$(echo "$end - $start" | bc)
printf 'first make run (%s pip cache, %s): %.0f s to /healthz on %s, %s cores, %s\n' \
  "$mode" "${sha:0:7}" "$secs" "$(uname -m)" "$(nproc)" "$(date -u +%Y-%m-%d)"
if [ "${KEEP:-}" = 1 ]; then
  echo "kept: $work/src"
else
  rm -rf "$work"
fi
[ "$mode" = cold ] && rm -rf "$PIP_CACHE_DIR"
exit 0
