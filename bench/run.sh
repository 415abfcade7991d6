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
exec go run ./bench "$@"
