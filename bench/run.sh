#!/usr/bin/env bash
# Builds lptrace and runs the benchmark suite (bench/main.go): attach and
# detach latency against the gdb way, tracing overhead per Python,
# throughput, lptrace's CPU and memory. Prints a table, writes
# bench/results.json.
#   usage: bench/run.sh [-quick] [-runs N] [-pythons A:B] [-only latency,overhead,throughput]
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
CGO_ENABLED=0 go build -tags urfave_cli_no_docs -o bin/lptrace ./cmd/lptrace
# Debian compiles a Python's standard library when the package is installed
# (py3compile); ../shared/newest-pythons.sh unpacks 3.14 and 3.15 without
# that step, so every import in a target would compile its module from
# source (14 ms for array's on 3.15, which the hook imports). Compiled once
# here, as on a real install.
if [ -f ../shared/newest-pythons.sh ] && newest=$(bash ../shared/newest-pythons.sh 2>/dev/null); then
  while read -r py; do
    [ -x "$py" ] || continue
    lib=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
    [ -d "$lib/__pycache__" ] || PYTHONDONTWRITEBYTECODE= "$py" -m compileall -q -j0 "$lib" >/dev/null 2>&1 || true
  done <<<"$newest"
fi
exec go run ./bench "$@"
