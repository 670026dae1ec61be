#!/usr/bin/env bash
# Install what the tests' real peers need, if missing (idempotent), and the
# helpers that start them. Sourced by scripts/test.sh, tests/stack/up.sh
# and .ci/run.
#   Debian:  tmux, procps, prometheus, systemd (for systemd-analyze)
#   PyPI:    moto[server], in a venv (EC2, and a second DynamoDB)
#   npm:     amplify-dynamodb-simulator, which bundles DynamoDB Local
#            (AWS's own emulator, the state store's peer), run on Java 17
# Everything is installed outside the clone, under ~/.cache/k3s-autoscaler.
set -euo pipefail

K3SA_CACHE="${K3SA_CACHE:-$HOME/.cache/k3s-autoscaler}"
K3SA_VENV="${K3SA_VENV:-$K3SA_CACHE/venv}"
K3SA_DDB_DIR="${K3SA_DDB_DIR:-$K3SA_CACHE/dynamodb-local}"
# The version the README names: DynamoDB Local 1.25.1 inside it.
K3SA_DDB_PACKAGE="amplify-dynamodb-simulator@2.9.30"
export K3SA_CACHE K3SA_VENV K3SA_DDB_DIR

ddb_emulator_dir() {
  echo "$K3SA_DDB_DIR/node_modules/amplify-dynamodb-simulator/emulator"
}

install_peers() {
  local need=()
  command -v tmux >/dev/null 2>&1 || need+=(tmux)
  command -v pgrep >/dev/null 2>&1 || need+=(procps)
  command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
  command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
  if [ "${#need[@]}" -gt 0 ]; then
    if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null 2>&1; then
      echo "peers: need ${need[*]} (apt-get install -y --no-install-recommends ${need[*]}) and cannot install as non-root" >&2
      return 1
    fi
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    echo "peers: installing ${need[*]} from Debian" >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  if [ ! -x "$K3SA_VENV/bin/moto_server" ]; then
    echo "peers: installing moto[server] into $K3SA_VENV" >&2
    python3 -m venv "$K3SA_VENV"
    "$K3SA_VENV/bin/pip" install --quiet --disable-pip-version-check 'moto[server]'
  fi
  install_dynamodb_local
}

install_dynamodb_local() {
  if ! command -v java >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1; then
    echo "peers: DynamoDB Local needs Java 17 or newer, and its loopback launcher a JDK: \`java\` or \`javac\` is not on PATH (Debian: apt-get install -y --no-install-recommends openjdk-17-jdk-headless)" >&2
    return 1
  fi
  if [ -f "$(ddb_emulator_dir)/DynamoDBLocal.jar" ]; then
    return 0
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "peers: DynamoDB Local comes from the npm package $K3SA_DDB_PACKAGE, and \`npm\` is not on PATH (install Node.js 20 with npm)" >&2
    return 1
  fi
  echo "peers: installing $K3SA_DDB_PACKAGE (DynamoDB Local) into $K3SA_DDB_DIR" >&2
  mkdir -p "$K3SA_DDB_DIR"
  (cd "$K3SA_DDB_DIR" && npm install --silent --no-audit --no-fund --no-save "$K3SA_DDB_PACKAGE" >/dev/null)
  if [ ! -f "$(ddb_emulator_dir)/DynamoDBLocal.jar" ]; then
    echo "peers: $K3SA_DDB_PACKAGE installed but $(ddb_emulator_dir)/DynamoDBLocal.jar is missing" >&2
    return 1
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL SECONDS: until the URL answers on loopback (any HTTP status).
wait_http() {
  local url="$1" deadline=$((SECONDS + $2))
  until python3 - "$url" >/dev/null 2>&1 <<'PY'
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass
PY
  do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "peers: $url did not answer within $2 s" >&2
      return 1
    fi
    sleep 0.2
  done
}

# start_moto PORT LOG: moto's server on 127.0.0.1, with the validation EC2
# does and moto leaves off by default (instance types, AMIs, key pairs:
# a made-up id is refused, as on EC2); sets moto_pid.
start_moto() {
  MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION=true MOTO_ENABLE_AMI_VALIDATION=true \
    MOTO_ENABLE_KEYPAIR_VALIDATION=true \
    "$K3SA_VENV/bin/moto_server" -H 127.0.0.1 -p "$1" >"$2" 2>&1 &
  moto_pid=$!
  if ! wait_http "http://127.0.0.1:$1/moto-api/" 30; then
    cat "$2" >&2
    return 1
  fi
}

# start_dynamodb_local PORT LOG: AWS's emulator, in memory, one database
# for every credential and region (-sharedDb), no telemetry, listening on
# 127.0.0.1 only (scripts/DynamoDBLocalLoopback.java: DynamoDB Local itself
# binds every interface); sets ddb_pid. It answers any SigV4-signed request
# (the tests sign with static test keys).
start_dynamodb_local() {
  local emulator classes
  emulator="$(ddb_emulator_dir)"
  # (A command substitution does not inherit `set -e`: check it.)
  classes="$(ddb_launcher_classes "$emulator")" || return 1
  (cd "$emulator" && DDB_LOCAL_TELEMETRY=0 exec java -Xmx384m \
    -Djava.library.path=./DynamoDBLocal_lib -cp "$classes:DynamoDBLocal.jar:DynamoDBLocal_lib/*" \
    DynamoDBLocalLoopback -inMemory -sharedDb -disableTelemetry -port "$1") >"$2" 2>&1 &
  ddb_pid=$!
  if ! wait_http "http://127.0.0.1:$1/" 90; then
    cat "$2" >&2
    return 1
  fi
}

# ddb_launcher_classes EMULATOR_DIR: the directory holding the loopback
# launcher, compiled once per version of its source (Java's source-file
# mode would compile it again at every start, a second of CPU for each of
# the staging stacks). Stacks start side by side: each compiles into a
# directory of its own and the first rename wins.
ddb_launcher_classes() {
  local src sum dir tmp
  src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/DynamoDBLocalLoopback.java"
  # Recompiled when the launcher or the emulator's package changes.
  sum="$( (cat "$src"; echo "$K3SA_DDB_PACKAGE") | sha256sum | cut -c1-16)"
  dir="$K3SA_CACHE/dynamodb-launcher/$sum"
  if [ ! -f "$dir/DynamoDBLocalLoopback.class" ]; then
    tmp="$dir.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    if ! javac --release 17 -nowarn -cp "$1/DynamoDBLocal.jar:$1/DynamoDBLocal_lib/*" \
      -d "$tmp" "$src" >&2; then
      rm -rf "$tmp"
      echo "peers: javac could not compile $src" >&2
      return 1
    fi
    mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
  fi
  echo "$dir"
}

# decompress_model SERVICE OUT: botocore's service model (shipped gzipped
# with moto's botocore) as plain JSON, for the request-constraint tests.
decompress_model() {
  "$K3SA_VENV/bin/python" - "$1" "$2" <<'PY'
import gzip, json, os, sys
import botocore
service, out = sys.argv[1], sys.argv[2]
root = os.path.join(os.path.dirname(botocore.__file__), "data", service)
version = sorted(os.listdir(root))[-1]
path = os.path.join(root, version, "service-2.json.gz")
with gzip.open(path) as f, open(out, "w") as o:
    json.dump(json.load(f), o)
PY
}
