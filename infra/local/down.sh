#!/usr/bin/env bash
# Stop what up.sh started in the background (LocalStack, DynamoDB Local, localstripe, the local API),
# and the dockerd make sam-local started. Redis and
# PostgreSQL are left running: they are shared machine services.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/env.sh"
for name in api settle reconcile expire localstack dynamodb localstripe dockerd; do
  f="$RUN_DIR/$name.pid"
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    say "stopping $name ($pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
done
say "local stack down"
