#!/usr/bin/env bash
# `make bench`: FlashFlow, the seed design (../shared/bench/seed-baseline: Express + Redis Lua +
# RabbitMQ + Postgres) and a ceiling server (the same hyper server, one EVALSHA of a trivial script
# per request: flashflow-bench ceiling), back to back with the same tool (wrk -t2), in two flash-sale
# shapes (the stock-100 one also against the HTTP limit: the same server answering a constant 409
# without Redis, flashflow-bench http-limit):
#   stock 100        almost every answer is "sold out" (the seed's own test)
#   large stock      every request is a successful buy (LARGE_STOCK, 1,000,000)
# Prints one table (req/s, p50, p99, sold, errors, ratios), then the large sale's drain (last 202 to
# last CONFIRMED) beside the emulator's own SQS rate, and the API's peak RSS.
# Also writes the table as bench/reports/bench.tsv and draws it as bench/reports/bench.svg
# (bench/chart.py). SCENARIOS="small" runs only the stock-100 shape.
#   usage: bench/run.sh [connections=100] [seconds=5]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd); cd "$ROOT"
. infra/local/env.sh
C=${1:-100}; D=${2:-5}; LARGE=${LARGE_STOCK:-1000000}
BASELINE=${BASELINE:-$ROOT/../shared/bench/seed-baseline/run.sh}
SEED_DIR=${SEED_BASELINE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/seed-baseline}
CEILING_PORT=${CEILING_PORT:-3001}; LIMIT_PORT=${LIMIT_PORT:-3002}
for tool in wrk bc jq; do command -v "$tool" >/dev/null || die "$tool is missing: run 'make setup'"; done
[ -f "$BASELINE" ] || die "baseline not found at $BASELINE"
API="http://127.0.0.1:$API_PORT"
auth=(-H "authorization: Bearer $OPERATOR_TOKEN" -H 'content-type: application/json')
OUT="$LOG_DIR/bench"; mkdir -p "$OUT"; rm -f "$OUT"/*.txt
# Settlement as the template configures the event source: batches of up to 1,000 gathered for at
# most 1 s, 5 at once.
export EVENT_SOURCE_BATCH_SIZE=${EVENT_SOURCE_BATCH_SIZE:-1000} EVENT_SOURCE_BATCHING_WINDOW_MS=${EVENT_SOURCE_BATCHING_WINDOW_MS:-1000} \
  EVENT_SOURCE_MAX_CONCURRENCY=${EVENT_SOURCE_MAX_CONCURRENCY:-5}
BENCH="$ROOT/target/release/flashflow-bench"

say "release build of flashflow-local and flashflow-bench"
cargo build --release -q -p flashflow-local -p flashflow-bench
cleanup() { bash infra/local/services.sh stop; [ -n "${CEIL_PID:-}" ] && kill "$CEIL_PID" 2>/dev/null || true; }
trap cleanup EXIT

wrk_run() { # name url file
  say "$1: wrk -t2 -c$C -d${D}s"
  wrk -t2 -c"$C" -d"${D}s" --latency -s bench/wrk-buy.lua "$2" >"$3"
  grep -E "Requests/sec|^ +99%|statuses" "$3" | sed 's/^/    /'
}

ceiling() { # file
  REDIS_URL="$REDIS_URL" RUST_LOG=warn "$BENCH" ceiling --listen "127.0.0.1:$CEILING_PORT" >"$LOG_DIR/ceiling.log" 2>&1 &
  CEIL_PID=$!
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$CEILING_PORT/" && break; sleep 0.1; done
  wrk_run "ceiling (axum + fred EVALSHA)" "http://127.0.0.1:$CEILING_PORT/sales/x/buy" "$1"
  kill "$CEIL_PID"; wait "$CEIL_PID" 2>/dev/null || true; CEIL_PID=
}

http_limit() { # file: the same server answering a constant 409, no Redis (the sold-out answer's limit)
  RUST_LOG=warn "$BENCH" http-limit --listen "127.0.0.1:$LIMIT_PORT" >"$LOG_DIR/http-limit.log" 2>&1 &
  CEIL_PID=$!
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$LIMIT_PORT/" && break; sleep 0.1; done
  wrk_run "HTTP limit (the same server, a constant 409)" "http://127.0.0.1:$LIMIT_PORT/sales/x/buy" "$1"
  kill "$CEIL_PID"; wait "$CEIL_PID" 2>/dev/null || true; CEIL_PID=
}

confirmed() { psql "$DATABASE_URL" -qtAc "SELECT count(*) FROM orders WHERE sale_id='$1' AND status='CONFIRMED'"; }

flashflow() { # stock file -> sets FF_SOLD, FF_DRAIN
  bash infra/local/services.sh start api settle reconcile >/dev/null
  local sale; sale=bench-$(date +%s%N | cut -c1-13)
  curl -sf "${auth[@]}" -X POST "$API/admin/sales" \
    -d "{\"id\":\"$sale\",\"name\":\"bench\",\"stock\":$1,\"per_user_limit\":1}" >/dev/null
  wrk_run "FlashFlow (sale $sale, stock $1)" "$API/sales/$sale/buy" "$2"
  local t_end accepted reserved n=0 show; t_end=$(date +%s.%N)
  accepted=$(grep -oE '202=[0-9]+' "$2" | cut -d= -f2)
  # Every reservation (the 202s wrk counted, and those in flight when it stopped) must end
  # CONFIRMED: wait until the outbox is empty and Postgres confirmed what Redis reserved.
  for _ in $(seq 1800); do
    show=$(curl -sf "${auth[@]}" "$API/admin/sales/$sale")
    reserved=$(jq -r '.reserved' <<<"$show")
    n=$(confirmed "$sale")
    [ "$(jq -r '.pending' <<<"$show")" = 0 ] && [ "$n" -ge "$reserved" ] && break; sleep 0.5
  done
  FF_DRAIN=$(echo "$(date +%s.%N) - $t_end" | bc)
  FF_SOLD=$n; FF_ACCEPTED=$accepted; FF_RESERVED=$reserved
  FF_RSS=$(awk '/VmHWM/ {print $2}' "/proc/$(cat "$RUN_DIR/api.pid")/status")
  bash infra/local/services.sh stop >/dev/null
}

seed() { # stock file -> sets SEED_SOLD
  # Its worker may still hold a backlog from an earlier run (it answers before it writes, and the
  # harness counts 2 s after the load): start from an empty queue, or those rows count as sold.
  rabbitmqctl purge_queue orders >/dev/null 2>&1 || true
  say "seed design: TOOL=wrk $BASELINE $C $D $1"
  env -u DATABASE_URL -u REDIS_URL TOOL=wrk bash "$BASELINE" "$C" "$D" "$1" >"$OUT/seed-run.txt" 2>&1
  cp "$SEED_DIR/wrk.txt" "$2"
  SEED_SOLD=$(grep -oE 'sold in postgres = [0-9]+' "$OUT/seed-run.txt" | grep -oE '[0-9]+$')
  grep -E "Requests/sec|^ +99%" "$2" | sed 's/^/    /'
}

rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
pct() { awk -v p="$2" '$1 == p {print $2}' "$1"; }
ms() { # wrk latency (us/ms/s) -> ms
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /[0-9]s$/ && v !~ /ms$/) n *= 1000; printf "%.2f", n }'
}
errors() { # 5xx + socket errors (FlashFlow, ceiling: counted by wrk-buy.lua; seed: wrk's socket errors)
  if grep -q '^statuses' "$1"; then
    grep -oE '5xx=[0-9]+|socket_errors=[0-9]+' "$1" | cut -d= -f2 | paste -sd+ | bc
  else
    grep -oE 'Socket errors: .*' "$1" | grep -oE '[0-9]+' | paste -sd+ | bc 2>/dev/null || echo 0
  fi
}
row() { # label file sold
  printf '| %-28s | %10s | %8s | %9s | %9s | %6s |\n' "$1" "$(rps "$2")" "$(ms "$(pct "$2" 50%)")" \
    "$(ms "$(pct "$2" 99%)")" "$3" "$(errors "$2")"
}
ratio() { echo "scale=1; $1 / $2" | bc; }

declare -A sold drain accepted reserved rss seed_sold
SCENARIOS=${SCENARIOS:-small large}
for scenario in $SCENARIOS; do
  if [ $scenario = small ]; then stock=100; else stock=$LARGE; fi
  ceiling "$OUT/$scenario-ceiling.txt"
  [ $scenario = small ] && http_limit "$OUT/small-limit.txt"
  flashflow "$stock" "$OUT/$scenario-flashflow.txt"
  sold[$scenario]=$FF_SOLD; drain[$scenario]=$FF_DRAIN; accepted[$scenario]=$FF_ACCEPTED
  reserved[$scenario]=$FF_RESERVED; rss[$scenario]=$FF_RSS
  seed "$stock" "$OUT/$scenario-seed.txt"
  seed_sold[$scenario]=$SEED_SOLD
done

say "emulator: LocalStack's own SQS rate (SendMessageBatch of 10, 16 in flight; receive + delete)"
"$BENCH" sqs-rate 20000 | tee "$OUT/sqs-rate.txt" | sed 's/^/    /'

echo
echo "wrk -t2 -c$C -d${D}s, same machine (2 cores shared by wrk, the server, settlement and the emulators), same run:"
echo
printf '| %-28s | %10s | %8s | %9s | %9s | %6s |\n' scenario req/s "p50 ms" "p99 ms" sold errors
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
REPORTS="$ROOT/bench/reports"; mkdir -p "$REPORTS"
printf 'scenario\tserver\treq/s\tp50 ms\tp99 ms\n' >"$REPORTS/bench.tsv"
for s in $SCENARIOS; do
  if [ "$s" = small ]; then label="stock 100"; else label="stock $LARGE"; fi
  row "$label: ceiling" "$OUT/$s-ceiling.txt" "-"
  [ "$s" = small ] && row "$label: HTTP limit (409)" "$OUT/small-limit.txt" "-"
  row "$label: FlashFlow" "$OUT/$s-flashflow.txt" "${sold[$s]}"
  row "$label: seed design" "$OUT/$s-seed.txt" "${seed_sold[$s]}"
  for server in ceiling flashflow seed; do
    f="$OUT/$s-$server.txt"
    case $server in ceiling) name=ceiling ;; flashflow) name=FlashFlow ;; seed) name="seed design" ;; esac
    printf '%s\t%s\t%s\t%s\t%s\n' "$label" "$name" "$(rps "$f")" "$(ms "$(pct "$f" 50%)")" "$(ms "$(pct "$f" 99%)")" >>"$REPORTS/bench.tsv"
  done
done
echo
for s in $SCENARIOS; do
  ff=$(rps "$OUT/$s-flashflow.txt"); sd=$(rps "$OUT/$s-seed.txt")
  p99ff=$(ms "$(pct "$OUT/$s-flashflow.txt" 99%)"); p99c=$(ms "$(pct "$OUT/$s-ceiling.txt" 99%)")
  echo "$s: FlashFlow / seed req/s = $(ratio "$ff" "$sd")x;  FlashFlow p99 / ceiling p99 = $(ratio "$p99ff" "$p99c")x"
done
for s in $SCENARIOS; do
  ff=$(rps "$OUT/$s-flashflow.txt"); c=$(rps "$OUT/$s-ceiling.txt")
  echo "$s: FlashFlow / ceiling req/s = $(echo "scale=2; $ff / $c" | bc)x"
  if [ "$s" = small ]; then
    l=$(rps "$OUT/small-limit.txt")
    echo "small: FlashFlow / HTTP limit req/s = $(echo "scale=2; $ff / $l" | bc)x;  FlashFlow p99 / HTTP limit p99 = $(ratio "$(ms "$(pct "$OUT/small-flashflow.txt" 99%)")" "$(ms "$(pct "$OUT/small-limit.txt" 99%)")")x"
  fi
done
python3 bench/chart.py "$REPORTS/bench.tsv" "$REPORTS/bench.svg" "make bench, $(date -u +%Y-%m-%d): wrk -t2 -c$C -d${D}s, 2 shared cores"
echo "chart: bench/reports/bench.svg (table: bench/reports/bench.tsv)"
[[ " $SCENARIOS " == *" large "* ]] || exit 0
echo "large sale: ${accepted[large]} 202s counted by wrk, ${reserved[large]} reserved in Redis (wrk stops with up to $C requests in flight), ${sold[large]} CONFIRMED in Postgres"
echo "  drain (last 202 -> last CONFIRMED): $(printf %.1f "${drain[large]}") s = $(echo "scale=0; ${sold[large]} / ${drain[large]}" | bc) orders/s (settlement runs during the load too)"
echo "emulator: $(tr '\n' ' ' < "$OUT/sqs-rate.txt")"
echo "local API peak RSS: stock 100 run ${rss[small]} kB, large run ${rss[large]} kB"
