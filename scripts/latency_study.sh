#!/usr/bin/env bash
# The scale-up and verify latencies on the loopback staging stack with the
# production `engine.interval` (15 s) and the default `policy.pending_for`
# (5 s): the real binary in `--auto` against DynamoDB Local, moto, the
# façade (watches) and Prometheus, a flash sale every two minutes, until
# enough scale-ups have been started. Prints p50/p95 of
#   unschedulable → RunInstances  (the oldest triggering pod's
#                                  PodScheduled=False to the scale-up's start)
#   Ready → verified              (the node's Ready to the startup taint's removal,
#                                  for every node and for each operation's last
#                                  node: an operation's nodes are verified together)
# read from the engine's own log lines (one per sample; the histograms on
# /metrics hold the same samples in buckets).
#
#   scripts/latency_study.sh                 # 20 scale-ups, at most 40 min
#   STUDY_SCALE_UPS=30 STUDY_MINUTES=60 scripts/latency_study.sh
#
# A figure, not a test: the machine's load shows in it (a 2-core machine
# building at the same time adds seconds).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
want="${STUDY_SCALE_UPS:-20}"
minutes="${STUDY_MINUTES:-40}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/k3s-autoscaler/target}"
dir="$(mktemp -d /tmp/k3sa-latency.XXXXXX)"
engine_pid=""
cleanup() {
  [ -n "$engine_pid" ] && kill "$engine_pid" 2>/dev/null && wait "$engine_pid" 2>/dev/null
  "$root/tests/stack/down.sh" "$dir/stack" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# Binaries copied out of the target dir: a build while this runs changes
# nothing under it.
if [ -z "${K3SA_BIN:-}" ] || [ -z "${K3SA_SIM_BIN:-}" ]; then
  (cd "$root" && cargo build --quiet --bins)
  mkdir -p "$dir/bin"
  cp "$CARGO_TARGET_DIR/debug/k3s-autoscaler" "$CARGO_TARGET_DIR/debug/k3s-sim" "$dir/bin/"
  export K3SA_BIN="$dir/bin/k3s-autoscaler" K3SA_SIM_BIN="$dir/bin/k3s-sim"
fi

config=$(STACK_SPEED="${STACK_SPEED:-60}" STACK_SCALE="${STACK_SCALE:-0.6}" \
  "$root/tests/stack/up.sh" "$dir/stack")
# The production cadence and the default window; the stack's short
# cooldowns stay, so that every sale is several scale-ups.
sed -i -e 's/^interval = "2s"/interval = "15s"/' \
       -e 's/^pending_for = "10s"/pending_for = "5s"/' "$config"
grep -q '^interval = "15s"' "$config" && grep -q '^pending_for = "5s"' "$config" || {
  echo "latency_study: the stack's config no longer has the lines this script sets" >&2
  exit 1
}
. "$dir/stack/env"
log="$dir/engine.log"
"$K3SA_BIN" -c "$config" --auto --log-format json > "$log" 2>&1 &
engine_pid=$!
echo "latency_study: engine $engine_pid, log $log; waiting for $want scale-ups (at most $minutes min)" >&2
deadline=$(( $(date +%s) + minutes * 60 ))
while [ "$(date +%s)" -lt "$deadline" ]; do
  n=$(grep -c '"scale_up_latency_ms"' "$log" || true)
  [ "$n" -ge "$want" ] && break
  kill -0 "$engine_pid" 2>/dev/null || { echo "latency_study: the engine exited" >&2; tail -20 "$log" >&2; exit 1; }
  sleep 10
done
kill "$engine_pid" 2>/dev/null; wait "$engine_pid" 2>/dev/null || true
engine_pid=""

python3 - "$log" "$want" <<'PY'
import json, sys
log, want = sys.argv[1], int(sys.argv[2])
up, verify, last_ready = [], [], {}
for line in open(log):
    try:
        rec = json.loads(line)
    except ValueError:
        continue
    fields = rec.get("fields", rec)
    if "scale_up_latency_ms" in fields:
        up.append(fields["scale_up_latency_ms"] / 1000)
    if "verify_latency_ms" in fields:
        secs = fields["verify_latency_ms"] / 1000
        verify.append(secs)
        # An operation's nodes are verified together, once the last is
        # Ready: its last node's figure is the engine's own delay.
        op = fields.get("op_id") or str(len(last_ready))
        last_ready[op] = min(last_ready.get(op, secs), secs)

def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    # Nearest rank, as engine/boot.rs's percentile.
    import math
    return xs[min(max(math.ceil(p * len(xs)), 1), len(xs)) - 1]

for name, xs in (
    ("unschedulable -> RunInstances", up),
    ("Ready -> verified, every node", verify),
    ("Ready -> verified, each operation's last node", list(last_ready.values())),
):
    print(f"{name}: n={len(xs)} p50={pct(xs, .5):.1f}s p95={pct(xs, .95):.1f}s max={max(xs, default=float('nan')):.1f}s")
if len(up) < want:
    print(f"latency_study: only {len(up)} scale-ups of {want}", file=sys.stderr)
    sys.exit(1)
PY
