#!/usr/bin/env bash
# Capture the console from a real run under tmux and render it as SVGs:
#   scripts/screenshot.sh [assets/console.svg [assets/node-detail.svg]]
# Runs the binary on --demo at speed 30, confirms the suggested scale-up
# once the flash sale has pods pending, captures mid-operation (the
# workers table with its SCALE-DOWN column), then opens the selected
# worker's detail view (`d`) once its launch is verified and captures that.
# K3SA_BIN names a binary to use instead of building the release one.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-assets/console.svg}"
detail_out="${2:-assets/node-detail.svg}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/k3s-autoscaler/target}"
bin="${K3SA_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --release --quiet
  bin="$CARGO_TARGET_DIR/release/k3s-autoscaler"
fi
sock="k3sa-shot-$$"
trap 'tmux -L "$sock" kill-server 2>/dev/null || true' EXIT
tmux -L "$sock" new-session -d -s shot -x 120 -y 40 "$bin --demo --speed 30 --seed 1"
capture() { tmux -L "$sock" capture-pane -p -t shot; }
for _ in $(seq 1 600); do
  capture | grep -q "press Enter to apply" && break
  sleep 0.1
done
tmux -L "$sock" send-keys -t shot Enter
sleep 0.5
tmux -L "$sock" send-keys -t shot y
sleep 4
tmux -L "$sock" capture-pane -e -p -t shot | python3 scripts/ansi2svg.py > "$out"
echo "wrote $out"
# Sort by age (youngest first, `s` four times: zone, CPU, pods, age) so
# the newest worker is on top, select it (`k` to the top), and wait for
# its boot to be timed.
for _ in 1 2 3 4; do tmux -L "$sock" send-keys -t shot s; sleep 0.2; done
for _ in $(seq 1 12); do tmux -L "$sock" send-keys -t shot k; done
for _ in $(seq 1 300); do
  tmux -L "$sock" send-keys -t shot d
  sleep 0.5
  if capture | grep -q "verified "; then break; fi
  tmux -L "$sock" send-keys -t shot Escape
  sleep 1
done
tmux -L "$sock" capture-pane -e -p -t shot | python3 scripts/ansi2svg.py > "$detail_out"
echo "wrote $detail_out"
tmux -L "$sock" send-keys -t shot Escape
tmux -L "$sock" send-keys -t shot q
