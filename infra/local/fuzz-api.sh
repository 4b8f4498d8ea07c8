#!/usr/bin/env bash
# schemathesis (an outside client, pinned by setup.sh) against the local API with the API's own
# OpenAPI document: every operation, valid and invalid inputs, every check (infra/local/
# schemathesis.toml says what it is handed and the few exceptions). Fails on any 5xx, any answer
# the document does not describe, any answer slower than the bound.
#
# A world of its own, fresh on every run, so it re-runs on a dirty machine beside the other
# levels: database flashflow_fuzz, Redis database 12, its own queues and table; an API and a
# settle process (the debug build) on FUZZ_API_PORT (3091). The sale the document's example
# names (drop-42) exists, so generated buys reach the reservation script.
# usage: fuzz-api.sh [extra `st run` options, e.g. --seed 42]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/../.." && pwd)
. "$HERE/env.sh"
BIN="${FLASHFLOW_LOCAL_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/flashflow-local}"
[ -x "$BIN" ] || die "$BIN is missing: cargo build -p flashflow-local"
[ -x "$FUZZ_VENV/bin/st" ] || die "schemathesis is missing: make setup"
PORT=${FUZZ_API_PORT:-3091}
API="http://127.0.0.1:$PORT"

export REDIS_URL="${FUZZ_REDIS_URL:-redis://127.0.0.1:6379/12}"
export DATABASE_URL="${DATABASE_URL%/*}/flashflow_fuzz"
export ORDERS_QUEUE=flashflow-fuzz-orders ORDERS_DLQ=flashflow-fuzz-orders-dlq ORDERS_TABLE=flashflow-fuzz-orders
export ORDERS_QUEUE_URL="http://localhost:$LOCALSTACK_PORT/queue/$AWS_REGION/000000000000/$ORDERS_QUEUE"
export ORDERS_DLQ_URL="http://localhost:$LOCALSTACK_PORT/queue/$AWS_REGION/000000000000/$ORDERS_DLQ"

psql -q "${DATABASE_URL%/*}/postgres" -c "DROP DATABASE IF EXISTS flashflow_fuzz WITH (FORCE)" \
  -c "CREATE DATABASE flashflow_fuzz" >/dev/null
redis-cli -u "$REDIS_URL" FLUSHDB >/dev/null
DYNAMODB_ENDPOINT="$AWS_ENDPOINT_URL_DYNAMODB" bash "$ROOT/localstack/init/ready.d/10-flashflow.sh" >/dev/null 2>&1 \
  || die "creating the fuzz queues and table failed"
awslocal sqs purge-queue --queue-url "$ORDERS_QUEUE_URL" >/dev/null 2>&1 || true

logs=$(mktemp -d)
pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap stop EXIT
start() {
  REDIS_SECRET_ARN="flashflow/redis/$2" LISTEN_ADDR="127.0.0.1:$PORT" TRUST_USER_HEADER=1 \
    RUST_LOG="${RUST_LOG:-warn}" EVENT_SOURCE_POLL_WAIT_MS=1000 "$BIN" "$1" >"$logs/$1.log" 2>&1 &
  pids+=($!)
}
start api api
start settle settle
for _ in $(seq 100); do curl -s -o /dev/null "$API/openapi.json" && break; sleep 0.1; done
curl -sf -o /dev/null -X POST "$API/admin/sales" -H "authorization: Bearer $OPERATOR_TOKEN" \
  -H 'content-type: application/json' \
  -d '{"id":"drop-42","name":"Fuzz drop","stock":1000000,"per_user_limit":100,
       "checkout":{"hold_seconds":600,"price":1500,"currency":"eur"}}' \
  || { cat "$logs/api.log" >&2; die "the fuzz API did not create its sale"; }

rc=0
( cd "$logs" && PYTHONPATH="$HERE" SCHEMATHESIS_HOOKS=schemathesis_hooks \
    "$FUZZ_VENV/bin/st" --config-file "$HERE/schemathesis.toml" run "$API/openapi.json" \
    --no-color "$@" ) || rc=$?
if [ "$rc" -eq 0 ]; then
  echo "fuzz: 1 passed, 0 failed"
else
  echo "--- api log (last 40 lines)"; tail -n 40 "$logs/api.log"
  echo "fuzz: 0 passed, 1 failed"
fi
[ -n "${FUZZ_KEEP_LOGS:-}" ] && cp "$logs"/*.log /tmp/ ; rm -rf "$logs"
exit "$rc"
