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

# lptrace top in a terminal (tmux), drawn as a terminal would.
"$py" demo/app.py >/dev/null &
demo=$!
sleep 1
sock=lptrace-pictures-$$
tmux -L "$sock" new-session -d -s top -x 150 -y 24 "bin/lptrace top $demo"
sleep 4
tmux -L "$sock" capture-pane -p -t top > "$tmp/top.txt"
tmux -L "$sock" send-keys -t top q
sleep 1
tmux -L "$sock" kill-server 2>/dev/null || true
kill $demo
{
  echo '<!DOCTYPE html><meta charset="utf-8"><body style="margin:0;background:#1e1e1e">'
  echo '<pre style="margin:0;padding:10px;color:#e0e0e0;font:13px/1.3 DejaVu Sans Mono,monospace">'
  sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g' "$tmp/top.txt"
  echo '</pre>'
} > "$tmp/top.html"
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$tmp/profile" \
  --window-size=1300,420 --screenshot=docs/images/top.png "file://$tmp/top.html" 2>/dev/null
echo "wrote docs/images/top.png"
