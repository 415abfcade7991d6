#!/usr/bin/env bash
# Measures `lptrace exec PID CODE` end to end (process start to exit) against
# the gdb way of running the same code (gdb -p PID -batch with calls to
# PyGILState_Ensure / PyRun_SimpleString / PyGILState_Release), side by side
# in one run, on an idle target (sleeping) and a busy one (CPU-bound).
#   usage: bench/exec_latency.sh [PYTHON] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-$(command -v python3)}
runs=${2:-20}
mkdir -p bin
CGO_ENABLED=0 go build -tags urfave_cli_no_docs -o bin/lptrace ./cmd/lptrace

ms() { echo "scale=2; ($2 - $1) / 1000000" | bc; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

measure() { # label, command...
  local label=$1; shift
  local t=()
  for _ in $(seq "$runs"); do
    local s=$(date +%s%N)
    "$@" >/dev/null 2>&1 || { echo "$label: failed: $*" >&2; return 1; }
    t+=("$(ms "$s" "$(date +%s%N)")")
  done
  printf '%s\n' "${t[@]}" | median
}

printf '%-8s %-12s %12s %12s %9s\n' target tool "median ms" "" ""
for mode in sleep cpu; do
  if [ $mode = sleep ]; then code='import time
while True: time.sleep(0.1)'; else code='
def f(n): return n + 1
i = 0
while True: i = f(i)'; fi
  "$py" -c "$code" & pid=$!
  sleep 0.5
  l=$(measure lptrace bin/lptrace exec "$pid" 'x = 1')
  g=-
  if command -v gdb >/dev/null; then
    g=$(measure gdb gdb -p "$pid" -batch -nx -ex 'call (void*)PyGILState_Ensure()' \
        -ex 'call (int)PyRun_SimpleString("x = 1")' -ex 'call (void)PyGILState_Release($1)' || echo -)
  fi
  kill $pid
  printf '%-8s lptrace %10s ms   gdb %10s ms   speed-up %s\n' "$mode" "$l" "$g" \
    "$( [ "$g" != - ] && echo "scale=0; $g / $l" | bc || echo -)x"
done
