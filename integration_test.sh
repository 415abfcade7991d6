#!/usr/bin/env bash
# Runs every lptrace test: static checks, the build for amd64 and arm64, unit
# tests, short fuzzing, and the integration tests against every Python
# interpreter installed on this machine (pyenv's, the system's, and the
# newest releases from ../shared/newest-pythons.sh when that script exists).
#
#   ./integration_test.sh            the default run (a few minutes)
#   ./integration_test.sh --torture  longer kill/fuzz loops
#   ./integration_test.sh --no-arm64 without the arm64 tests (tests/arm64.sh)
set -euo pipefail
cd "$(dirname "$0")"
torture= no_arm64=
for a in "$@"; do
  case $a in
    --torture) torture=1 ;;
    --no-arm64) no_arm64=1 ;;
    *) echo "usage: $0 [--torture] [--no-arm64]" >&2; exit 2 ;;
  esac
done

step() { printf '\n== %s\n' "$*"; }

step "static checks"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt needed: $unformatted"; exit 1; fi
go vet ./...
GOARCH=arm64 go vet ./...

step "build (static, amd64; arm64 must build too)"
mkdir -p bin
CGO_ENABLED=0 go build -tags urfave_cli_no_docs -o bin/lptrace ./cmd/lptrace
CGO_ENABLED=0 GOARCH=arm64 go build -tags urfave_cli_no_docs -o /dev/null ./...
file bin/lptrace 2>/dev/null | grep -q 'statically linked' || { echo "bin/lptrace is not static"; exit 1; }

step "interpreters"
pythons=()
add() { [ -x "$1" ] && "$1" -c pass >/dev/null 2>&1 && pythons+=("$1"); return 0; }
pyroot=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
for p in "$pyroot"/versions/*/bin/python[23].*; do
  [[ $(basename "$p") =~ ^python[0-9]\.[0-9]+$ ]] && add "$p"
done
for p in /usr/bin/python2.7 /usr/bin/python3.[0-9]*; do
  [[ $(basename "$p") =~ ^python[0-9]\.[0-9]+$ ]] && add "$p"
done
if [ -x ../shared/newest-pythons.sh ] || [ -f ../shared/newest-pythons.sh ]; then
  if newest=$(bash ../shared/newest-pythons.sh 2>/tmp/newest-pythons.err); then
    while read -r p; do add "$p"; done <<<"$newest"
  else
    echo "note: newest-pythons.sh failed, 3.14/3.15 not tested: $(tail -1 /tmp/newest-pythons.err)"
  fi
else
  echo "note: ../shared/newest-pythons.sh not found, 3.14/3.15 not tested"
fi
# From ../shared/more-pythons.sh (built from Debian's source the first time,
# about 4 minutes each; cached after): a CPython linked against musl, as on
# Alpine, and the free-threaded 3.13t: both tested like the others.
if [ -f ../shared/more-pythons.sh ]; then
  if more=$(MORE_PYTHONS="${MORE_PYTHONS:-3.13t musl}" bash ../shared/more-pythons.sh 2>/tmp/more-pythons.err); then
    while read -r p; do [[ $(basename "$p") =~ ^python[0-9]\.[0-9]+t?$ ]] && add "$p"; done <<<"$more"
  else
    echo "note: more-pythons.sh failed, the musl and free-threaded builds are not tested: $(tail -1 /tmp/more-pythons.err)"
  fi
fi
if [ ${#pythons[@]} -eq 0 ]; then echo "no Python interpreter found: nothing to test against"; exit 1; fi
printf '  %s\n' "${pythons[@]}"
LPTRACE_PYTHONS=$(IFS=:; echo "${pythons[*]}")
export LPTRACE_PYTHONS

step "unit and integration tests"
[ -n "$torture" ] && export LPTRACE_TORTURE=1
go test -count=1 -timeout 45m ./...

step "fuzzing"
fuzztime=5s
[ -n "$torture" ] && fuzztime=2m
for target in cmd/lptrace:FuzzReorderArgs proc:FuzzParseMaps proc:FuzzParseSyscall symbols:FuzzNewModule termsafe:FuzzEscape trace:FuzzDecode wire:FuzzDump; do
  pkg=${target%%:*} name=${target#*:}
  if grep -q "func $name" "$pkg"/*_test.go 2>/dev/null; then
    log=$(mktemp)
    if ! go test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" "./$pkg" >"$log" 2>&1; then
      tail -40 "$log"
      # A crash found is kept under $pkg/testdata/fuzz/$name/ (plain `go
      # test` replays it): that fails the run. A failure of the fuzzing
      # machinery itself, with no input to show, is reported only.
      found=$(git ls-files --others -- "$pkg/testdata/fuzz/$name")
      if [ -n "$found" ]; then
        for f in $found; do echo "--- $f"; head -c 4000 "$f" | od -c | head -60; done
        rm -f "$log"
        exit 1
      fi
      echo "  $name: WARNING: the fuzzer failed without a failing input (see above)"
    else
      echo "  $name: ok ($fuzztime)"
    fi
    rm -f "$log"
  fi
done

# The arm64 part (tests/arm64.sh: the engine's tests and a subset of
# ./tests against Debian's arm64 python3.11, in qemu's emulated arm64
# machine, about 2-3 minutes). Skipped with a note where that machine's
# script is missing, or with --no-arm64.
step "arm64 (emulated)"
if [ -n "$no_arm64" ]; then
  echo "note: --no-arm64: arm64 not tested"
elif [ -f ../shared/arm64-vm.sh ]; then
  ARM64_VM=$PWD/../shared/arm64-vm.sh tests/arm64.sh
else
  echo "note: ../shared/arm64-vm.sh not found, arm64 not tested"
fi

step "done"
echo "all tests passed against ${#pythons[@]} interpreters"
