#!/usr/bin/env bash
# Shows lptrace at work on a bundled demo program (demo/app.py): starts it,
# looks inside it from outside, changes a setting, and stops it.
#   usage: demo/run.sh [PYTHON]      (default: the newest python3 found)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-}
if [ -z "$py" ]; then
  for c in python3.15 python3.14 python3.13 python3.12 python3.11 python3.10 python3.9 python3.8 python3.7 python3.6 python3 python2.7; do
    if "$c" -c pass >/dev/null 2>&1; then py=$(command -v "$c"); break; fi
  done
fi
[ -n "$py" ] || { echo "demo: no Python interpreter found; pass one: demo/run.sh /path/to/python3" >&2; exit 1; }
mkdir -p bin
CGO_ENABLED=0 go build -tags urfave_cli_no_docs -o bin/lptrace ./cmd/lptrace

"$py" demo/app.py &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
sleep 1

run() { printf '\n$ %s\n' "$*"; "$@"; }
echo "demo/app.py runs as process $pid ($("$py" --version 2>&1))"
printf '\n$ bin/lptrace attach --duration 0.5s %s 2>&1 | head -12\n' "$pid"
bin/lptrace attach --duration 0.5s "$pid" 2>&1 | head -12 || true
printf '\n$ bin/lptrace -p %s --duration 0.5s -T --ret --indent -e handle -e parse -e checksum 2>&1 | head -8\n' "$pid"
bin/lptrace -p "$pid" --duration 0.5s -T --ret --indent -e handle -e parse -e checksum 2>&1 | head -8 || true
run bin/lptrace -p "$pid" --duration 1s -c -e handle -e parse -e checksum
run bin/lptrace exec "$pid" 'import sys; sys.version'
run bin/lptrace exec "$pid" 'done["count"], jobs.qsize()'
run bin/lptrace exec "$pid" '
import sys, threading, traceback
names = dict((t.ident, t.name) for t in threading.enumerate())
for ident, frame in sys._current_frames().items():
    print("--- %s" % names.get(ident, ident))
    print("".join(traceback.format_stack(frame, 3)).rstrip())'
run bin/lptrace exec "$pid" 'SETTINGS["slow_down"] = 0.05; print("workers slowed down")'
sleep 1
run bin/lptrace exec "$pid" 'jobs.qsize()'
run bin/lptrace exec "$pid" 'handle("1,2,x")' || true
echo
echo "The program ran on throughout: $(bin/lptrace exec "$pid" 'done["count"]') jobs done."
