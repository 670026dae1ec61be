#!/usr/bin/env bash
# Average CPU of the console left idle on --demo (release build) for
# SECONDS (default 60), from /proc/PID/stat: utime + stime over wall time.
#   scripts/console-idle-cpu.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/k3s-autoscaler/target}"
cargo build --release --quiet
bin="$CARGO_TARGET_DIR/release/k3s-autoscaler"
sock="k3sa-idle-$$"
trap 'tmux -L "$sock" kill-server 2>/dev/null || true' EXIT
tmux -L "$sock" new-session -d -s idle -x 120 -y 40 "exec $bin --demo"
sleep 2
pid=$(tmux -L "$sock" display -p -t idle '#{pane_pid}')
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
start_ticks=$(ticks); start=$(date +%s.%N)
sleep "$secs"
end_ticks=$(ticks); end=$(date +%s.%N)
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
awk -v t0="$start_ticks" -v t1="$end_ticks" -v w0="$start" -v w1="$end" -v hz="$hz" -v rss="$rss_kb" \
  'BEGIN { printf "console idle on --demo: %.2f %% of a core over %.0f s (peak RSS %.1f MB)\n", 100 * (t1 - t0) / hz / (w1 - w0), w1 - w0, rss / 1024 }'
tmux -L "$sock" send-keys -t idle q
