#!/usr/bin/env bash
# Footprint: peak RSS and average CPU of
#   1. the headless engine on a simulated cluster of 1 000 workers, in real
#      time, for SECONDS (default 600);
#   2. the console left idle on --demo for 60 s.
#   scripts/footprint.sh [SECONDS]
# Peak RSS from /usr/bin/time -v (headless) and /proc/PID/status VmHWM
# (console); CPU from /proc/PID/stat (utime + stime) over wall time.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/k3s-autoscaler/target}"
if [ ! -x /usr/bin/time ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends time >/dev/null
fi
cargo build --release --quiet
bin="$CARGO_TARGET_DIR/release/k3s-autoscaler"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# 1. headless, 1 000 workers (max_workers raised so the engine may act)
cat > "$work/big.toml" <<TOML
[policy]
max_workers = 1500
max_scale_up_batch = 50
TOML
/usr/bin/time -v -o "$work/time.txt" "$bin" --demo --auto --workers 1000 --scenario diurnal-flash \
  -c "$work/big.toml" >"$work/headless.log" 2>&1 &
sleep 1
pid=$(pgrep -P $! -f "k3s-autoscaler --demo --auto --workers 1000" || true)
[ -n "$pid" ] || pid=$(pgrep -n -f "release/k3s-autoscaler --demo --auto --workers 1000")
t0=$(cpu_ticks "$pid"); w0=$(date +%s.%N)
sleep "$secs"
t1=$(cpu_ticks "$pid"); w1=$(date +%s.%N)
kill -TERM "$pid"
wait || true
rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
decisions=$(grep -c "decision:" "$work/headless.log" || true)
awk -v t0="$t0" -v t1="$t1" -v w0="$w0" -v w1="$w1" -v hz="$hz" -v rss="$rss_kb" -v d="$decisions" \
  'BEGIN { printf "headless --auto, 1000 simulated workers, %.0f s: peak RSS %.1f MB, CPU %.2f %% of a core (%d decisions)\n", w1 - w0, rss / 1024, 100 * (t1 - t0) / hz / (w1 - w0), d }'

# 2. the console, idle on --demo
sock="k3sa-footprint-$$"
tmux -L "$sock" new-session -d -s idle -x 120 -y 40 "exec $bin --demo"
sleep 2
cpid=$(tmux -L "$sock" display -p -t idle '#{pane_pid}')
t0=$(cpu_ticks "$cpid"); w0=$(date +%s.%N)
sleep 60
t1=$(cpu_ticks "$cpid"); w1=$(date +%s.%N)
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$cpid/status")
tmux -L "$sock" send-keys -t idle q
sleep 1
tmux -L "$sock" kill-server 2>/dev/null || true
awk -v t0="$t0" -v t1="$t1" -v w0="$w0" -v w1="$w1" -v hz="$hz" -v rss="$rss_kb" \
  'BEGIN { printf "console idle on --demo, %.0f s: peak RSS %.1f MB, CPU %.2f %% of a core\n", w1 - w0, rss / 1024, 100 * (t1 - t0) / hz / (w1 - w0) }'
