#!/usr/bin/env bash
# The cost of tracing to the program, in one side-by-side run per
# interpreter: the calls per second of bench/workload.py's loop (a tiny
# function called in a loop) untraced, then traced to /dev/null, as "times
# slower"; extra arguments go to lptrace (--no-native: the Python callback).
#   usage: bench/loop_overhead.sh [lptrace options] PYTHON...
set -euo pipefail
cd "$(dirname "$0")/.."
opts=()
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do opts+=("$1"); shift; done
[ $# -gt 0 ] || { echo "usage: $0 [lptrace options] PYTHON..." >&2; exit 2; }
mkdir -p bin
CGO_ENABLED=0 go build -tags urfave_cli_no_docs -o bin/lptrace ./cmd/lptrace
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

mean() { awk '$1 == "rate" {s += $2; n++} END {if (n) printf "%.0f", s / n; else print 0}'; }

for py in "$@"; do
  "$py" bench/workload.py loop > "$work/out" 2>&1 &
  pid=$!
  sleep 1.5
  untraced=$(tail -n 3 "$work/out" | mean)
  bin/lptrace attach -o /dev/null "${opts[@]}" "$pid" 2> "$work/err" &
  lp=$!
  sleep 1.5  # the hook in place, the first turns done
  n=$(wc -l < "$work/out")
  sleep 1.5
  traced=$(tail -n +"$((n + 1))" "$work/out" | mean)
  kill -INT "$lp"; wait "$lp" || true
  kill "$pid"; wait "$pid" 2>/dev/null || true
  dropped=$(grep -o '[0-9]* events were dropped' "$work/err" | cut -d' ' -f1 || true)
  awk -v py="$py" -v u="$untraced" -v t="$traced" -v d="${dropped:-0}" \
    'BEGIN {printf "%-60s untraced %6.1f M calls/s  traced %6.2f M calls/s  %5.2fx  dropped %d\n", py, u / 1e6, t / 1e6, (t ? u / t : 0), d}'
done
