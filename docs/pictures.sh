#!/usr/bin/env bash
# Makes the README's pictures from the bundled demo (demo/app.py): a flame
# graph that lptrace record wrote, rendered by a real browser.
#   usage: docs/pictures.sh [PYTHON]    (needs chromium: apt-get install chromium)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-$(command -v python3.12 || command -v python3)}
browser=$(command -v chromium || command -v chromium-browser) || { echo "pictures: no chromium" >&2; exit 1; }
CGO_ENABLED=0 go build -tags urfave_cli_no_docs -o bin/lptrace ./cmd/lptrace
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && timeout -s INT 3 "$OLDPWD/bin/lptrace" record --threads -o flame.html -- "$py" "$OLDPWD/demo/app.py" >/dev/null) || true
height=$(grep -o 'height="[0-9]*" viewBox' "$tmp/flame.html" | grep -o '[0-9]*' | head -1)
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$tmp/profile" \
  --window-size=1200,"$height" --screenshot=docs/images/flamegraph.png "file://$tmp/flame.html#zoom=worker-0$&search=checksum" 2>/dev/null
echo "wrote docs/images/flamegraph.png"
