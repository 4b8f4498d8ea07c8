#!/usr/bin/env bash
# `make bench-opening`: the opening of a sale as an arrival rate (k6 ramping-arrival-rate,
# bench/opening.js), first against the ceiling server, then against FlashFlow (stock 1,000), at the
# same RATE. FlashFlow's thresholds: no dropped arrivals, under 1% failures, p99 at most 2x the
# ceiling's p99 of the same run. Writes k6's HTML reports to bench/reports/ (ignored by git).
# Two modes, each a ceiling-then-FlashFlow pair (PIN_MODES, both by default):
#   unpinned  every process anywhere on the machine's cores
#   pinned    the load generator and the emulators (LocalStack, DynamoDB Local, localstripe) on
#             CPU 0; FlashFlow's processes, the ceiling and the data stores (Redis, Postgres) on
#             the other CPUs (taskset, every thread): production has no emulator and no load
#             generator on FlashFlow's cores. The pinning is printed, and undone at the end.
# The load generator (LOADGEN_UNPINNED, k6 by default; LOADGEN_PINNED, rust by default): k6, or
# `flashflow-bench arrivals` (rust: the same arrival shape without a JavaScript runtime, timed
# from each arrival's due time). Pinned to one core beside the emulators, k6 alone dropped
# arrivals against the ceiling (148-803 a run): the pinned figures then measured k6, not FlashFlow.
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
ALL_CPUS=0-$(( $(nproc) - 1 )); LOAD_CPUS=0; SUT_CPUS=1-$(( $(nproc) - 1 ))
[ "$(nproc)" -ge 2 ] || die "pinning needs 2 CPUs"
tree() { # a process and its descendants
  echo "$1"; local c; for c in $(pgrep -P "$1"); do tree "$c"; done
}
pin() { # cpus pid...: every thread of each process tree
  local cpus=$1 p t; shift
  for p in "$@"; do for t in $(tree "$p"); do taskset -a -p -c "$cpus" "$t" >/dev/null 2>&1 || true; done; done
}
redis_pid() { redis-cli -u "$REDIS_URL" info server | tr -d '\r' | awk -F: '$1 == "process_id" {print $2}'; }
pg_pid() { head -1 "$(psql "$DATABASE_URL" -tAc "SELECT current_setting('data_directory')")/postmaster.pid"; }
emulators() { cat "$RUN_DIR/localstack.pid" "$RUN_DIR/dynamodb.pid" "$RUN_DIR/localstripe.pid"; }
MODE=unpinned
on_cpus() { # the CPUs a process of this group runs on in the current mode: load|sut
  if [ "$MODE" = pinned ]; then [ "$1" = load ] && echo "$LOAD_CPUS" || echo "$SUT_CPUS"; else echo "$ALL_CPUS"; fi
}
renice_all() { # niceness pid...: every thread of each process tree
  local n=$1 p t; shift
  for p in "$@"; do for t in $(tree "$p"); do
    for t in /proc/"$t"/task/*; do renice -n "$n" -p "${t##*/}" >/dev/null 2>&1 || true; done
  done; done
}
cleanup() {
  bash infra/local/services.sh stop; [ -n "${CEIL_PID:-}" ] && kill "$CEIL_PID" 2>/dev/null || true
  pin "$ALL_CPUS" $(emulators) "$(redis_pid)" "$(pg_pid)"; renice_all 0 $(emulators)
}
trap cleanup EXIT

loadgen() { # the load generator of the current mode
  if [ "$MODE" = pinned ]; then echo "${LOADGEN_PINNED:-rust}"; else echo "${LOADGEN_UNPINNED:-k6}"; fi
}
rustrun() { # name url sale p99-threshold: flashflow-bench arrivals, its summary shaped as k6's
  say "flashflow-bench arrivals to $RATE/s, hold $HOLD: $1"
  local hold_ms; hold_ms=$(( ${HOLD%s} * 1000 ))
  taskset -c "$(on_cpus load)" env RUST_LOG=warn "$BENCH" arrivals "$2/sales/$3/buy" --rate "$RATE" --hold-ms "$hold_ms" \
    --max-in-flight "${MAX_VUS:-1000}" --summary "$OUT/opening-$1.json" >"$OUT/opening-$1.txt" 2>&1 || true
  # k6's thresholds, judged the same way
  jq -e --argjson p99 "$4" '.metrics.dropped_iterations.values.count < 1 and .metrics.http_req_failed.values.rate < 0.01
    and .metrics.http_req_duration.values["p(99)"] < $p99' "$OUT/opening-$1.json" >/dev/null \
    || echo "✗ thresholds on metrics crossed" >>"$OUT/opening-$1.txt"
}
loadrun() { # name url sale p99-threshold
  if [ "$(loadgen)" = rust ]; then rustrun "$@"; else k6run "$@"; fi
}
k6run() { # name url sale p99-threshold
  say "k6 ramping-arrival-rate to $RATE/s, hold $HOLD: $1"
  K6_WEB_DASHBOARD=true K6_WEB_DASHBOARD_EXPORT="$REPORTS/opening-$1.html" K6_WEB_DASHBOARD_PORT=-1 K6_WEB_DASHBOARD_PERIOD=1s \
    taskset -c "$(on_cpus load)" k6 run --quiet -e API="$2" -e SALE="$3" -e RATE="$RATE" -e HOLD="$HOLD" -e P99_MS="$4" -e VUS="$VUS" \
    -e SUMMARY="$OUT/opening-$1.json" bench/opening.js >"$OUT/opening-$1.txt" 2>&1 || true
}
stat() { # name jq-path
  jq -r "$2 // 0" "$OUT/opening-$1.json"
}
line() { # label name
  printf '  %-10s rate %5s/s  requests %6s  dropped %5s  failed %6.4f  p50 %7.2f ms  p99 %8.2f ms  max %8.2f ms\n' "$1" "$RATE" \
    "$(stat "$2" .metrics.http_reqs.values.count)" "$(stat "$2" .metrics.dropped_iterations.values.count)" \
    "$(stat "$2" .metrics.http_req_failed.values.rate)" "$(stat "$2" '.metrics.http_req_duration.values.med')" \
    "$(stat "$2" '.metrics.http_req_duration.values["p(99)"]')" "$(stat "$2" .metrics.http_req_duration.values.max)"
}

opening() { # mode: a ceiling-then-FlashFlow pair; prints its lines
  MODE=$1
  pin "$(on_cpus load)" $(emulators)
  pin "$(on_cpus sut)" "$(redis_pid)" "$(pg_pid)"
  # Pinned, the emulators yield their core to the load generator (nice 19): their work (the first
  # 1,000 orders cost LocalStack ~1.4 s of CPU) is off the buyer's path, and a starved generator
  # sends late and times its own lag against the server.
  if [ "$MODE" = pinned ]; then renice_all 19 $(emulators); else renice_all 0 $(emulators); fi
  if [ "$MODE" = pinned ]; then
    say "pinned: the load generator ($(loadgen)), LocalStack, DynamoDB Local, localstripe on CPU $LOAD_CPUS, the emulators at nice 19; the ceiling, FlashFlow's processes, Redis, Postgres on CPU $SUT_CPUS"
  fi
  taskset -c "$(on_cpus sut)" env RUST_LOG=warn "$BENCH" ceiling --listen "127.0.0.1:$CEILING_PORT" >"$LOG_DIR/ceiling.log" 2>&1 &
  CEIL_PID=$!
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$CEILING_PORT/" && break; sleep 0.1; done
  loadrun "ceiling-$MODE" "http://127.0.0.1:$CEILING_PORT" x 100000
  kill "$CEIL_PID"; wait "$CEIL_PID" 2>/dev/null || true; CEIL_PID=
  local ceiling_p99 limit sale s
  ceiling_p99=$(stat "ceiling-$MODE" '.metrics.http_req_duration.values["p(99)"]')
  limit=$(echo "2 * $ceiling_p99" | bc -l)

  bash infra/local/services.sh start api settle reconcile >/dev/null
  for s in api settle reconcile; do pin "$(on_cpus sut)" "$(cat "$RUN_DIR/$s.pid")"; done
  sale=open-$MODE-$(date +%s)
  curl -sf "${auth[@]}" -X POST "$API/admin/sales" \
    -d "{\"id\":\"$sale\",\"name\":\"opening\",\"stock\":$STOCK,\"per_user_limit\":1}" >/dev/null
  loadrun "flashflow-$MODE" "$API" "$sale" "$limit"
  bash infra/local/services.sh stop >/dev/null
  {
    echo
    if [ "$(loadgen)" = rust ]; then gen="flashflow-bench arrivals, latency from each arrival's due time"; else gen="k6 ramping-arrival-rate"; fi
    echo "The opening as an arrival rate, $MODE ($gen, same run, stock $STOCK for FlashFlow):"
    line ceiling "ceiling-$MODE"
    line FlashFlow "flashflow-$MODE"
    echo "  FlashFlow accepted $(stat "flashflow-$MODE" .metrics.buy_accepted.values.count), sold out $(stat "flashflow-$MODE" .metrics.buy_sold_out.values.count)"
    printf '  FlashFlow p99 / ceiling p99 = %.2fx (threshold p99 < %.2f ms: %s)\n' \
      "$(echo "$(stat "flashflow-$MODE" '.metrics.http_req_duration.values["p(99)"]') / $ceiling_p99" | bc -l)" "$limit" \
      "$(grep -q 'thresholds on metrics .* have been crossed\|✗' "$OUT/opening-flashflow-$MODE.txt" && echo "crossed" || echo "met")"
    [ "$(loadgen)" = rust ] || echo "  HTML reports: bench/reports/opening-ceiling-$MODE.html, bench/reports/opening-flashflow-$MODE.html"
  } >>"$OUT/opening-summary.txt"
}

rm -f "$OUT/opening-summary.txt"
for mode in ${PIN_MODES:-unpinned pinned}; do
  case $mode in unpinned|pinned) opening "$mode" ;; *) die "unknown mode $mode (unpinned, pinned)" ;; esac
done
cat "$OUT/opening-summary.txt"
