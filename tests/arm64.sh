#!/usr/bin/env bash
# Runs lptrace's arm64 tests in an emulated arm64 machine (qemu-system-aarch64
# booting Debian 12's arm64 kernel, with Debian's arm64 python3.11: see
# ../../shared/arm64-vm.sh, or $ARM64_VM). The binaries are cross-built here;
# the machine has no Go. Python runs 10-15 times slower there, so the tests'
# timing limits are scaled (LPTRACE_TIME_SCALE), not their assertions.
#
#   tests/arm64.sh           the subset below (about 2-3 minutes; the first run
#                            builds the machine, 20 s more)
#   tests/arm64.sh -run RE   other tests of ./tests (a Go test pattern)
#
# The subset: the engine's tests (./inject: calls into a sleeping process,
# the stop inside a system call, SVE state kept), then ./tests against
# python3.11: exec in every state (sleep, accept, cpu, threads, lock,
# sigpipe), stack, exec with lptrace killed at random instants, tracing
# every thread (-p, on the Python callback: the machine code is x86-64's),
# launch mode, a server idle in epoll_pwait, and a thread in each way the
# standard library blocks.
set -euo pipefail
cd "$(dirname "$0")/.."
vm=${ARM64_VM:-$(cd .. && pwd)/shared/arm64-vm.sh}
[ -f "$vm" ] || vm=/work/shared/arm64-vm.sh
[ -f "$vm" ] || { echo "arm64.sh: no arm64-vm.sh (set ARM64_VM)" >&2; exit 2; }
run='^(TestExecStates|TestStack|TestExecTracerKilled|TestAttachAllThreads|TestLaunch|TestRealEpollServer|TestRealStdlibBlockingCalls)$'
if [ "${1:-}" = -run ] && [ $# -ge 2 ]; then run=$2; fi

mkdir -p bin
CGO_ENABLED=0 GOARCH=arm64 go build -tags urfave_cli_no_docs -o bin/lptrace-arm64 ./cmd/lptrace
CGO_ENABLED=0 GOARCH=arm64 go test -c -o bin/inject-arm64.test ./inject
CGO_ENABLED=0 GOARCH=arm64 go test -c -o bin/tests-arm64.test ./tests
here=$PWD
# One machine for everything (a boot costs 4-5 s, the first one 20 s).
bash "$vm" --share "$here" --timeout 900 \
  --env LPTRACE_BIN="$here/bin/lptrace-arm64" --env LPTRACE_PYTHONS=/usr/bin/python3.11 \
  --env LPTRACE_TIME_SCALE=15 -- sh -c '
set -eo pipefail
echo "== ./inject (arm64)"
cd inject && ../bin/inject-arm64.test -test.count=1 -test.timeout 5m
echo "== ./tests (arm64, python3.11): $1"
cd ../tests && ../bin/tests-arm64.test -test.count=1 -test.timeout 12m -test.v -test.run "$1" 2>&1 |
  grep -E "^\s*--- |^(PASS|FAIL|ok|panic)|^\s+\S+_test.go:"
' arm64.sh "$run"
