#!/usr/bin/env bash
# The project's test command (the README's second command; .ci/run calls it).
# Installs missing peers, starts moto's server on a free loopback port for
# the whole run (tests start their own Prometheus and tmux), runs every
# test, and stops what it started.
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
cleanup() {
  if [ -n "$moto_pid" ]; then
    kill "$moto_pid" 2>/dev/null || true
    wait "$moto_pid" 2>/dev/null || true
  fi
  rm -rf "$run_dir"
}
trap cleanup EXIT

moto_port=$(free_port)
"$K3SA_VENV/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$run_dir/moto.log" 2>&1 &
moto_pid=$!
if ! wait_http "http://127.0.0.1:$moto_port/moto-api/" 30; then
  cat "$run_dir/moto.log" >&2
  exit 1
fi
export K3SA_MOTO_URL="http://127.0.0.1:$moto_port"

# The failpoints feature adds the crash-recovery tests' kill -9 hooks.
cargo test --features failpoints "$@"
