#!/usr/bin/env bash
# Writes hook/precompiled/X.Y.bin, the tracing hook compiled by each Python
# version installed here (pyenv's first, then the system's and
# ../shared/newest-pythons.sh's), one file per version. Run it after any
# change to the parts below: `go test ./hook` fails while a file is stale,
# and lptrace falls back to sending the source (slower to attach).
#
#   hook/precompile.sh              every version found
#   hook/precompile.sh PYTHON...    these interpreters only
set -euo pipefail
cd "$(dirname "$0")"
parts=(common.py values.py filter.py threads.py native_code.py native.py trace.py load.py)
pythons=("$@")
if [ ${#pythons[@]} -eq 0 ]; then
  pyroot=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  for p in "$pyroot"/versions/*/bin/python[23].* /usr/bin/python2.7 /usr/bin/python3.[0-9]*; do
    [[ $(basename "$p") =~ ^python[0-9]\.[0-9]+$ ]] && [ -x "$p" ] && pythons+=("$p")
  done
  if [ -f ../../shared/newest-pythons.sh ] && newest=$(bash ../../shared/newest-pythons.sh 2>/dev/null); then
    while read -r p; do pythons+=("$p"); done <<<"$newest"
  fi
fi
mkdir -p precompiled
declare -A done
for p in "${pythons[@]}"; do
  v=$("$p" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || continue
  [ -n "${done[$v]:-}" ] && continue
  "$p" precompile.py "precompiled/$v.bin" "${parts[@]}"
  done[$v]=1
  echo "precompiled/$v.bin  ($p)"
done
[ ${#done[@]} -gt 0 ] || { echo "precompile.sh: no Python interpreter found" >&2; exit 1; }
