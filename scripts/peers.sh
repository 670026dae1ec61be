#!/usr/bin/env bash
# Install what the tests' real peers need, if missing (idempotent):
# Debian's tmux, procps and prometheus; moto's server in a Python venv.
# Sourced by scripts/test.sh and .ci/run.
set -euo pipefail

K3SA_VENV="${K3SA_VENV:-$HOME/.cache/k3s-autoscaler/venv}"
export K3SA_VENV

install_peers() {
  local need=()
  command -v tmux >/dev/null 2>&1 || need+=(tmux)
  command -v pgrep >/dev/null 2>&1 || need+=(procps)
  command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
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
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL SECONDS: until the URL answers on loopback.
wait_http() {
  local url="$1" deadline=$((SECONDS + $2))
  until python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" "$url" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "peers: $url did not answer within $2 s" >&2
      return 1
    fi
    sleep 0.2
  done
}
