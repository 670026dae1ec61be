#!/usr/bin/env bash
# The project's test command (the README's second command; .ci/run calls it).
# Installs missing peers, starts moto's server (EC2, and a second DynamoDB)
# and DynamoDB Local (AWS's own emulator: the state store's peer) on free
# loopback ports for the whole run (tests start their own Prometheus, tmux
# and staging stacks), runs every test, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/peers.sh
install_peers

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/k3s-autoscaler/target}"
# Never let the AWS SDK look for instance metadata: tests talk to 127.0.0.1 only.
export AWS_EC2_METADATA_DISABLED=true
export K3SA_PROMETHEUS_BIN="${K3SA_PROMETHEUS_BIN:-$(command -v prometheus)}"

run_dir=$(mktemp -d "${TMPDIR:-/tmp}/k3sa-test.XXXXXX")
moto_pid=""
ddb_pid=""
staging_pid=""
keep_run_dir=""
cleanup() {
  for pid in "$staging_pid" "$moto_pid" "$ddb_pid"; do
    [ -n "$pid" ] || continue
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$keep_run_dir" ]; then
    echo "test.sh: the tests did not pass; their files (staging stacks' logs, peers' logs) are in $run_dir" >&2
  else
    rm -rf "$run_dir"
  fi
}
trap cleanup EXIT
# Every file a test writes (kubeconfigs, staging stacks and their logs,
# Prometheus' tsdb) goes under the run's directory, removed with it.
export TMPDIR="$run_dir/tmp"
mkdir -p "$TMPDIR"

moto_port=$(free_port)
start_moto "$moto_port" "$run_dir/moto.log"
export K3SA_MOTO_URL="http://127.0.0.1:$moto_port"

ddb_port=$(free_port)
start_dynamodb_local "$ddb_port" "$run_dir/dynamodb-local.log"
export K3SA_DYNAMODB_URL="http://127.0.0.1:$ddb_port"

# botocore's models, for the tests that check every request against the
# service's documented constraints.
decompress_model dynamodb "$run_dir/dynamodb-model.json"
export K3SA_DYNAMODB_MODEL="$run_dir/dynamodb-model.json"

# The failpoints feature adds the crash-recovery tests' kill -9 hooks, the
# harness feature the chaos runner and the fuzz entry points; the variable
# tells the tests that they run under this script (a test that needs a
# feature fails, instead of vanishing, when it is off).
export K3SA_TEST_SCRIPT=1
# --workspace: the engine's and the ports' own tests are in crates/core.
# Kept unless the tests pass (also when the run is interrupted).
keep_run_dir=1
features=(--workspace --features failpoints,harness)
status=0
if [ "$#" -gt 0 ]; then
  # A chosen test or binary (`scripts/test.sh --test staging staging_e2e`).
  cargo test "${features[@]}" "$@" || status=$?
  [ "$status" -ne 0 ] || keep_run_dir=""
  exit "$status"
fi

# Every test. The staging binary waits on real time (stacks starting,
# flash sales at speed, join and drain deadlines) far more than it
# computes: 20-45 % of two cores at two stacks at a time. So it is built
# first and runs beside everything else (the other binaries' build, then
# their tests, which compute), four stacks at a time, and the suite takes
# about as long as its longest chain instead of the sum of everything.
# It is run directly, not through a second cargo, which would wait on
# the first one's lock on the target directory; cargo runs a test binary
# from its package's root, as here.
cargo test "${features[@]}" --test staging --no-run --message-format=json-render-diagnostics \
  > "$run_dir/artifacts.json"
staging_bin=$(python3 - "$run_dir/artifacts.json" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    t = m.get("target", {})
    if m.get("reason") == "compiler-artifact" and t.get("name") == "staging" \
            and "test" in t.get("kind", []) and m.get("executable"):
        print(m["executable"])
PY
)
if [ -z "$staging_bin" ]; then
  echo "test.sh: cargo built no staging test binary" >&2
  exit 1
fi
staging_log="$run_dir/staging.log"
"$staging_bin" --test-threads "${K3SA_STAGING_THREADS:-4}" > "$staging_log" 2>&1 &
staging_pid=$!
echo "test.sh: the staging tests run in the background (their output follows the others')" >&2
others=0
cargo test "${features[@]}" --lib --bins --test console --test harness --test ports \
  || others=$?
cargo test "${features[@]}" --doc || others=$?
staging=0
wait "$staging_pid" || staging=$?
echo "     Running tests/staging/main.rs ($staging_bin, beside the others)"
cat "$staging_log"
staging_pid=""
[ "$others" -eq 0 ] || status=$others
[ "$staging" -eq 0 ] || status=$staging
[ "$status" -ne 0 ] || keep_run_dir=""
exit "$status"
