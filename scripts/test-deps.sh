#!/usr/bin/env bash
# System programs the test suite needs beyond Python: Debian's chromium (browser tests),
# prometheus (promtool and the scrape test) and haproxy (the multi-replica topology test).
# As root with apt-get: installs what is missing. Otherwise: says what is missing, and fails
# when PILOTHOUSE_REQUIRE_SERVICES=1 (as CI sets it), since those tests would then fail.
set -euo pipefail
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v promtool >/dev/null || need+=(prometheus)
command -v haproxy >/dev/null || need+=(haproxy)
[ "${#need[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "installing test prerequisites: ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  exit 0
fi
echo "missing test prerequisites: ${need[*]} (install them: apt-get install ${need[*]})" >&2
if [ "${PILOTHOUSE_REQUIRE_SERVICES:-}" = "1" ]; then
  exit 1
fi
echo "the tests that need them will be skipped" >&2
