#!/usr/bin/env bash
# The HTTP benchmark in one command: installs what it needs (wrk, redis-server, taskset)
# when missing, builds in release and runs every server, path, client load and backend.
#
#   throttle/benches/http.sh           # the full run: 3 rounds of 4 s (about 13 min),
#                                      # the table on stdout, the chart in benchmarks/http.svg
#   throttle/benches/http.sh --quick   # a smoke test: 1 round of 1 s, chart in the temp dir
#
# Every THROTTLE_HTTP_* variable of throttle/benches/http/main.rs passes through.
set -euo pipefail

if [[ "${1:-}" == "--quick" ]]; then
    export THROTTLE_HTTP_QUICK=1
fi

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v taskset >/dev/null || missing+=(util-linux)
if ((${#missing[@]})); then
    sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" apt-get install -y -q "${missing[@]}"
fi

cd "$(dirname "$0")/../.."
exec cargo bench -p throttle --features redis --bench http
