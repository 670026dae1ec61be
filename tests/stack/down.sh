#!/usr/bin/env bash
# Stop everything tests/stack/up.sh started in DIR (logs stay in DIR).
set -uo pipefail
dir="${1:?usage: tests/stack/down.sh DIR}"
for name in prometheus sim moto dynamodb; do
  pidfile="$dir/$name.pid"
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
  rm -f "$pidfile"
done
exit 0
