#!/usr/bin/env bash
# What a 202 waits for, and what it costs: the local API answering from the Redis outbox (relay
# mode, BUY_RELAY=true: the message reaches SQS right after) against answering after SendMessage
# (BUY_RELAY=false, as the Lambda does), back to back with the same wrk load on a sale that does
# not sell out. Prints req/s and p50/p99 of each, and the ratio.
#   usage: bench/durability.sh [connections=50] [seconds=5]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/.." && pwd)
. "$ROOT/infra/local/env.sh"
cd "$ROOT"
C=${1:-50}; D=${2:-5}
API="http://127.0.0.1:$API_PORT"
auth=(-H "authorization: Bearer $OPERATOR_TOKEN" -H 'content-type: application/json')
OUT="$LOG_DIR/bench"; mkdir -p "$OUT"
command -v wrk >/dev/null || die "wrk is missing: run 'make setup'"

say "release build of flashflow-local"
cargo build --release -q -p flashflow-local
trap 'bash infra/local/services.sh stop' EXIT

declare -A rps p50 p99
for relay in true false; do
  BUY_RELAY=$relay bash infra/local/services.sh start api >/dev/null
  sale=durability-$relay-$(date +%s%N | cut -c1-13)
  curl -sf "${auth[@]}" -X POST "$API/admin/sales" \
    -d "{\"id\":\"$sale\",\"name\":\"durability\",\"stock\":1000000,\"per_user_limit\":1}" >/dev/null
  say "BUY_RELAY=$relay: wrk -t2 -c$C -d${D}s (sale $sale)"
  wrk -t2 -c"$C" -d"${D}s" --latency -s bench/wrk-buy.lua "$API/sales/$sale/buy" >"$OUT/durability-$relay.txt"
  grep -E "Requests/sec|^ +(50|99)%|statuses" "$OUT/durability-$relay.txt" | sed 's/^/    /'
  rps[$relay]=$(awk '/Requests\/sec/ {print $2}' "$OUT/durability-$relay.txt")
  p50[$relay]=$(awk '$1 == "50%" {print $2}' "$OUT/durability-$relay.txt")
  p99[$relay]=$(awk '$1 == "99%" {print $2}' "$OUT/durability-$relay.txt")
  bash infra/local/services.sh stop api
done
echo
echo "what a 202 waits for (wrk -t2 -c$C -d${D}s, stock 1,000,000, same run):"
printf '  %-44s %10s %10s %10s\n' "" "req/s" "p50" "p99"
printf '  %-44s %10s %10s %10s\n' "the outbox in Redis (AOF everysec), relay" "${rps[true]}" "${p50[true]}" "${p99[true]}"
printf '  %-44s %10s %10s %10s\n' "the message in SQS (SendMessage first)" "${rps[false]}" "${p50[false]}" "${p99[false]}"
printf '  relay / send-first req/s: %s\n' "$(echo "scale=2; ${rps[true]} / ${rps[false]}" | bc)"
