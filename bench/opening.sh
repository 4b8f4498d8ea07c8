#!/usr/bin/env bash
# `make bench-opening`: the opening of a sale as an arrival rate (k6 ramping-arrival-rate,
# bench/opening.js), first against the ceiling server, then against FlashFlow (stock 1,000), at the
# same RATE. FlashFlow's thresholds: no dropped arrivals, under 1% failures, p99 at most 3x the
# ceiling's p99 of the same run. Writes k6's HTML reports to bench/reports/ (ignored by git).
#   usage: bench/opening.sh [rate=1500] [hold=3s]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd); cd "$ROOT"
. infra/local/env.sh
RATE=${1:-1500}; HOLD=${2:-3s}; STOCK=${STOCK:-1000}; CEILING_PORT=${CEILING_PORT:-3001}
# VUs made before the start, for both servers: a VU made mid-run costs k6 a JS runtime while the
# arrivals wait (enough for RATE x 100 ms).
VUS=${VUS:-$(( RATE / 10 > 200 ? RATE / 10 : 200 ))}
API="http://127.0.0.1:$API_PORT"; BENCH="$ROOT/target/release/flashflow-bench"
REPORTS="$ROOT/bench/reports"; OUT="$LOG_DIR/bench"; mkdir -p "$REPORTS" "$OUT"
auth=(-H "authorization: Bearer $OPERATOR_TOKEN" -H 'content-type: application/json')
cargo build --release -q -p flashflow-local -p flashflow-bench
cleanup() { bash infra/local/services.sh stop; [ -n "${CEIL_PID:-}" ] && kill "$CEIL_PID" 2>/dev/null || true; }
trap cleanup EXIT

k6run() { # name url sale p99-threshold
  say "k6 ramping-arrival-rate to $RATE/s, hold $HOLD: $1"
  K6_WEB_DASHBOARD=true K6_WEB_DASHBOARD_EXPORT="$REPORTS/opening-$1.html" K6_WEB_DASHBOARD_PORT=-1 K6_WEB_DASHBOARD_PERIOD=1s \
    k6 run --quiet -e API="$2" -e SALE="$3" -e RATE="$RATE" -e HOLD="$HOLD" -e P99_MS="$4" -e VUS="$VUS" \
    -e SUMMARY="$OUT/opening-$1.json" bench/opening.js >"$OUT/opening-$1.txt" 2>&1 || true
}
stat() { # name jq-path
  jq -r "$2 // 0" "$OUT/opening-$1.json"
}
line() {
  printf '  %-10s rate %5s/s  requests %6s  dropped %5s  failed %6.4f  p50 %7.2f ms  p99 %8.2f ms  max %8.2f ms\n' "$1" "$RATE" \
    "$(stat "$1" .metrics.http_reqs.values.count)" "$(stat "$1" .metrics.dropped_iterations.values.count)" \
    "$(stat "$1" .metrics.http_req_failed.values.rate)" "$(stat "$1" '.metrics.http_req_duration.values.med')" \
    "$(stat "$1" '.metrics.http_req_duration.values["p(99)"]')" "$(stat "$1" .metrics.http_req_duration.values.max)"
}

RUST_LOG=warn "$BENCH" ceiling --listen "127.0.0.1:$CEILING_PORT" >"$LOG_DIR/ceiling.log" 2>&1 &
CEIL_PID=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$CEILING_PORT/" && break; sleep 0.1; done
k6run ceiling "http://127.0.0.1:$CEILING_PORT" x 100000
kill "$CEIL_PID"; wait "$CEIL_PID" 2>/dev/null || true; CEIL_PID=
ceiling_p99=$(stat ceiling '.metrics.http_req_duration.values["p(99)"]')
limit=$(echo "3 * $ceiling_p99" | bc -l)

bash infra/local/services.sh start api settle reconcile >/dev/null
SALE=open-$(date +%s)
curl -sf "${auth[@]}" -X POST "$API/admin/sales" \
  -d "{\"id\":\"$SALE\",\"name\":\"opening\",\"stock\":$STOCK,\"per_user_limit\":1}" >/dev/null
k6run flashflow "$API" "$SALE" "$limit"

echo
echo "The opening as an arrival rate (k6 ramping-arrival-rate, same run, stock $STOCK for FlashFlow):"
line ceiling
line flashflow
echo "  FlashFlow accepted $(stat flashflow .metrics.buy_accepted.values.count), sold out $(stat flashflow .metrics.buy_sold_out.values.count)"
printf '  FlashFlow p99 / ceiling p99 = %.2fx (threshold p99 < %.2f ms: %s)\n' \
  "$(echo "$(stat flashflow '.metrics.http_req_duration.values["p(99)"]') / $ceiling_p99" | bc -l)" "$limit" \
  "$(grep -q 'thresholds on metrics .* have been crossed\|✗' "$OUT/opening-flashflow.txt" && echo "crossed" || echo "met")"
echo "  HTML reports: bench/reports/opening-ceiling.html, bench/reports/opening-flashflow.html"
