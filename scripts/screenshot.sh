#!/usr/bin/env bash
# Capture the console from a real run under tmux and render it as an SVG:
#   scripts/screenshot.sh assets/console.svg
# Runs the release build on --demo at speed 30, confirms the suggested
# scale-up once the flash sale has pods pending, and captures mid-operation.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-assets/console.svg}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/k3s-autoscaler/target}"
cargo build --release --quiet
bin="$CARGO_TARGET_DIR/release/k3s-autoscaler"
sock="k3sa-shot-$$"
trap 'tmux -L "$sock" kill-server 2>/dev/null || true' EXIT
tmux -L "$sock" new-session -d -s shot -x 120 -y 40 "$bin --demo --speed 30 --seed 1"
for _ in $(seq 1 600); do
  tmux -L "$sock" capture-pane -p -t shot | grep -q "press Enter to apply" && break
  sleep 0.1
done
tmux -L "$sock" send-keys -t shot Enter
sleep 0.5
tmux -L "$sock" send-keys -t shot y
sleep 4
tmux -L "$sock" capture-pane -e -p -t shot | python3 scripts/ansi2svg.py > "$out"
tmux -L "$sock" send-keys -t shot q
echo "wrote $out"
