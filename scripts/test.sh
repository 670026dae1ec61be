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
keep_run_dir=""
cleanup() {
  for pid in "$moto_pid" "$ddb_pid"; do
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
status=0
cargo test --workspace --features failpoints,harness "$@" || status=$?
[ "$status" -ne 0 ] || keep_run_dir=""
exit "$status"
