#!/usr/bin/env bash
# What waiting for a replica costs (REDIS_WAIT_REPLICAS=1 against 0): the local API on a private
# Redis primary with one replica on this machine, the same wrk load on each shape back to back in
# one run: every request a buy (stock 1,000,000), the sold-out herd (every request a 409), and
# joins of a waiting room; then, with WAIT, each reply waiting on its own (REDIS_WAIT_SHARED=false)
# instead of sharing one wait with the replies of the same moment: what that sharing wins back.
# Each process logs in as its ACL user (the same rules as in AWS), so the barrier's WAIT runs
# under them too.
#   usage: bench/wait.sh [connections=50] [seconds=5]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/.." && pwd)
. "$ROOT/infra/local/env.sh"
cd "$ROOT"
C=${1:-50}; D=${2:-5}
PRIMARY=${WAIT_BENCH_PRIMARY_PORT:-7411}; REPLICA=${WAIT_BENCH_REPLICA_PORT:-7412}
PORT=${WAIT_BENCH_API_PORT:-3096}
API="http://127.0.0.1:$PORT"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/flashflow-local"
auth=(-H "authorization: Bearer $OPERATOR_TOKEN" -H 'content-type: application/json')
# POST, failing with the answer's body on any non-2xx.
post() { local out; out=$(curl -s -w '\n%{http_code}' -X POST "$@"); [[ "${out##*$'\n'}" == 2* ]] || die "POST $*: ${out//$'\n'/ }"; }
OUT="$LOG_DIR/bench"; mkdir -p "$OUT"
command -v wrk >/dev/null || die "wrk is missing: run 'make setup'"

say "release build of flashflow-local"
cargo build --release -q -p flashflow-local
dir=$(mktemp -d)
pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap stop EXIT
for port in "$PRIMARY" "$REPLICA"; do
  mkdir -p "$dir/$port"
  extra=(); [ "$port" = "$REPLICA" ] && extra=(--replicaof 127.0.0.1 "$PRIMARY")
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly yes --appendfsync everysec \
    --dir "$dir/$port" "${extra[@]}" >"$dir/redis-$port.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 100); do redis-cli -p "$REPLICA" info replication 2>/dev/null | grep -q master_link_status:up && break; sleep 0.1; done
REDIS_ADMIN_URL="redis://127.0.0.1:$PRIMARY" bash infra/local/redis-users.sh >/dev/null 2>&1

export REDIS_URL="redis://127.0.0.1:$PRIMARY" REDIS_SECRET_ARN=flashflow/redis/api
# A queue of its own (the relay sends every order; nothing settles them), emptied at the end.
export ORDERS_QUEUE=flashflow-bench-wait ORDERS_DLQ=flashflow-bench-wait-dlq ORDERS_TABLE=flashflow-bench-wait
export ORDERS_QUEUE_URL="http://localhost:$LOCALSTACK_PORT/queue/$AWS_REGION/000000000000/$ORDERS_QUEUE"
DYNAMODB_ENDPOINT="$AWS_ENDPOINT_URL_DYNAMODB" bash localstack/init/ready.d/10-flashflow.sh >/dev/null 2>&1
trap 'stop; awslocal sqs purge-queue --queue-url "$ORDERS_QUEUE_URL" >/dev/null 2>&1 || true' EXIT
declare -A rps p50 p99
waits() { redis-cli -p "$PRIMARY" info commandstats | awk -F'[=,]' '/^cmdstat_wait:/ {print $2}'; }
declare -A shared
run() { # name, wait_replicas, url, lua
  local before; before=$(waits); before=${before:-0}
  wrk -t2 -c"$C" -d"${D}s" --latency -s "$4" "$3" >"$OUT/wait-$1-$2.txt"
  rps[$1-$2]=$(awk '/Requests\/sec/ {print $2}' "$OUT/wait-$1-$2.txt")
  p50[$1-$2]=$(awk '$1 == "50%" {print $2}' "$OUT/wait-$1-$2.txt")
  p99[$1-$2]=$(awk '$1 == "99%" {print $2}' "$OUT/wait-$1-$2.txt")
  local after; after=$(waits); after=${after:-0}
  shared[$1-$2]=$((after - before))
  printf '    %-7s WAIT %s: %s req/s, p50 %s, p99 %s; %s; %s WAIT commands\n' "$1" "$2" "${rps[$1-$2]}" \
    "${p50[$1-$2]}" "${p99[$1-$2]}" "$(grep statuses "$OUT/wait-$1-$2.txt")" "${shared[$1-$2]}"
}
for w in 0 1 1s; do
  # 1s: WAIT 1, each reply on its own.
  shared=true; [ "$w" = 1s ] && shared=false
  REDIS_WAIT_REPLICAS=${w%s} REDIS_WAIT_SHARED=$shared LISTEN_ADDR="127.0.0.1:$PORT" TRUST_USER_HEADER=1 RUST_LOG=warn \
    "$BIN" api >"$dir/api-$w.log" 2>&1 &
  api=$!
  pids+=("$api")
  for _ in $(seq 100); do curl -s -o /dev/null "$API/" && break; sleep 0.1; done
  stamp=$(date +%s%N | cut -c1-13)
  post "${auth[@]}" "$API/admin/sales" \
    -d "{\"id\":\"wait-$w-$stamp\",\"name\":\"wait\",\"stock\":1000000,\"per_user_limit\":1}" >/dev/null
  post "${auth[@]}" "$API/admin/sales" \
    -d "{\"id\":\"wait-$w-$stamp-gone\",\"name\":\"wait\",\"stock\":1,\"per_user_limit\":1}" >/dev/null
  post -H 'x-user-id: first' "$API/sales/wait-$w-$stamp-gone/buy"
  opens=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ); now=$(date -u -d '-1 second' +%Y-%m-%dT%H:%M:%SZ)
  post "${auth[@]}" "$API/admin/sales" \
    -d "{\"id\":\"wait-$w-$stamp-room\",\"name\":\"wait\",\"stock\":100,\"per_user_limit\":1,\"opens_at\":\"$opens\",\"waiting_room\":{\"opens_at\":\"$now\",\"admission_seconds\":60}}" >/dev/null
  say "REDIS_WAIT_REPLICAS=${w%s} REDIS_WAIT_SHARED=$shared: wrk -t2 -c$C -d${D}s, each shape"
  run buy "$w" "$API/sales/wait-$w-$stamp/buy" bench/wrk-buy.lua
  run soldout "$w" "$API/sales/wait-$w-$stamp-gone/buy" bench/wrk-buy.lua
  run join "$w" "$API/sales/wait-$w-$stamp-room/queue" bench/wrk-buy.lua
  kill "$api"; wait "$api" 2>/dev/null || true
done
echo
echo "what waiting for a replica costs (wrk -t2 -c$C -d${D}s, a local primary and replica, same run):"
printf '  %-26s %10s %8s %8s %10s %8s %8s %6s %10s %8s %8s %6s\n' "" "no WAIT" "p50" "p99" \
  "WAIT" "p50" "p99" "ratio" "unshared" "p50" "p99" "ratio"
for s in buy soldout join; do
  label=$(case $s in buy) echo "every request a buy" ;; soldout) echo "the sold-out herd (409)" ;; join) echo "joins of a waiting room" ;; esac)
  printf '  %-26s %10s %8s %8s %10s %8s %8s %6s %10s %8s %8s %6s\n' "$label" \
    "${rps[$s-0]}" "${p50[$s-0]}" "${p99[$s-0]}" \
    "${rps[$s-1]}" "${p50[$s-1]}" "${p99[$s-1]}" "$(echo "scale=2; ${rps[$s-1]} / ${rps[$s-0]}" | bc)" \
    "${rps[$s-1s]}" "${p50[$s-1s]}" "${p99[$s-1s]}" "$(echo "scale=2; ${rps[$s-1s]} / ${rps[$s-0]}" | bc)"
done
echo "(req/s; ratio: over no WAIT; WAIT: replies of the same moment share one wait; unshared: each"
echo " reply waits on its own; the replica on the same two cores as everything else)"
echo "(WAIT commands: buys ${shared[buy-1]} shared, ${shared[buy-1s]} unshared, for $(grep -o '202=[0-9]*' "$OUT/wait-buy-1.txt") and $(grep -o '202=[0-9]*' "$OUT/wait-buy-1s.txt"); joins ${shared[join-1]} and ${shared[join-1s]})"
