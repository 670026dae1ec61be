#!/usr/bin/env bash
# The project's test command (the README's second command; .ci/run calls it).
# Runs every test on this machine, against peers on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/k3s-autoscaler/target}"
export AWS_EC2_METADATA_DISABLED=true
cargo test
