#!/usr/bin/env bash
# libFuzzer on the hostile-input entry points (config parser, Prometheus
# answers, Kubernetes objects), SECONDS per target (default 60):
#   scripts/fuzz.sh [SECONDS]
# cargo-fuzz needs nightly features; this machine has one stable toolchain,
# so RUSTC_BOOTSTRAP=1 unlocks them. No sanitizer (the code is safe Rust;
# libFuzzer's coverage is what matters) and an unoptimised build: an
# optimised, instrumented aws-sdk-ec2 alone takes over 10 GB and 15 minutes.
# The working corpus fuzz/corpus/<target>/ (git-ignored) starts from the
# committed seeds in fuzz/seeds/<target>/; scripts/test.sh replays both
# (tests/harness/hostile_input.rs, built with --features harness).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/k3s-autoscaler/target}-fuzz"
for target in config prometheus kube_objects; do
  echo "fuzz: $target for ${secs}s"
  mkdir -p "fuzz/corpus/$target"
  cp -n fuzz/seeds/"$target"/* "fuzz/corpus/$target/" 2>/dev/null || true
  cargo fuzz run --sanitizer none --dev "$target" "fuzz/corpus/$target" -- -max_total_time="$secs" -rss_limit_mb=2048 \
    >"fuzz/$target.log" 2>&1 || { tail -30 "fuzz/$target.log"; exit 1; }
  grep -E "^(#[0-9]+.*DONE|Done)" "fuzz/$target.log" | tail -2
  # Keep the corpus small: only inputs that add coverage.
  cargo fuzz cmin --sanitizer none --dev "$target" "fuzz/corpus/$target" >/dev/null 2>&1 || true
done
