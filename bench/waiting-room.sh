#!/usr/bin/env bash
# `make bench-waiting-room`: the waiting room, side by side with the ceiling server in one run.
#   1. joins     a burst of distinct buyers joining (k6 constant arrival rate, each of RATES),
#                the ceiling's route at the same rates: dropped arrivals, p50/p99
#   2. polls     wrk on status polls of a POLL_PLACES-place queue (100,000), wrk on the ceiling's
#                GET (one Redis round trip each): req/s, p99, and Redis commands per poll
#                (INFO commandstats before and after)
#   3. buys      wrk buys with an admission token against the same buys of a sale without a
#                waiting room (distinct buyers, stock 1,000,000), alternated twice: req/s, p99
#   4. the race  5,000 people arriving over 2 s after the opening and a bot on 50 connections
#                from 2 s before: without a waiting room (a fresh made-up id per request), through
#                one (1,000 made-up ids joining the pre-queue), and through one asking a proof of
#                work (POW_BITS, 12: the people's work is done on these cores too): who got the
#                units (stock 1,000)
#   5. the opening  OPENING_PEOPLE (20,000) joining in the 4 s before the opening, then polling
#                every second and buying once admitted (stock 1,000): time from the opening to
#                the last unit, admitted, bought, p99 of each step
#   6. the cost  COST_PLACES (1,000,000) places joined straight through the store: Redis bytes
#                per place (MEMORY USAGE of each queue key) and the draw's table in a process
# Release builds; the API (with settle) as `make services` runs it. Reports in $LOG_DIR/bench.
#   usage: bench/waiting-room.sh            (SECTIONS="3 5" runs only those)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd); cd "$ROOT"
. infra/local/env.sh
for tool in wrk k6 jq bc; do command -v "$tool" >/dev/null || die "$tool is missing: run 'make setup'"; done
RATES=${RATES:-"5000 10000"}; POLL_PLACES=${POLL_PLACES:-100000}; POW_BITS=${POW_BITS:-12}
OPENING_PEOPLE=${OPENING_PEOPLE:-20000}; COST_PLACES=${COST_PLACES:-1000000}; SECTIONS=${SECTIONS:-"1 2 3 4 5 6"}; C=${C:-100}; D=${D:-5}; CEILING_PORT=${CEILING_PORT:-3001}
API="http://127.0.0.1:$API_PORT"; BENCH="$ROOT/target/release/flashflow-bench"
OUT="$LOG_DIR/bench"; mkdir -p "$OUT"
auth=(-H "authorization: Bearer $OPERATOR_TOKEN" -H 'content-type: application/json')
say "release build of flashflow-local and flashflow-bench"
cargo build --release -q -p flashflow-local -p flashflow-bench
cleanup() { bash infra/local/services.sh stop; [ -n "${CEIL_PID:-}" ] && kill "$CEIL_PID" 2>/dev/null || true; }
trap cleanup EXIT

now_ms() { date +%s%3N; }
iso() { date -u -d "@$(( $1 / 1000 ))" +%Y-%m-%dT%H:%M:%SZ; }
# A sale: id stock limit [opens_ms queue_opens_ms pow_bits] (no opening: no waiting room).
sale() {
  local body="{\"id\":\"$1\",\"name\":\"bench\",\"stock\":$2,\"per_user_limit\":$3"
  if [ -n "${4:-}" ]; then
    body+=",\"opens_at\":\"$(iso "$4")\",\"waiting_room\":{\"opens_at\":\"$(iso "$5")\",\"admission_seconds\":600,\"pow_bits\":${6:-0}}"
  fi
  curl -sf "${auth[@]}" -X POST "$API/admin/sales" -d "$body}" >/dev/null || die "creating sale $1"
}
ceiling_start() {
  RUST_LOG=warn "$BENCH" ceiling --listen "127.0.0.1:$CEILING_PORT" >"$LOG_DIR/ceiling.log" 2>&1 &
  CEIL_PID=$!
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$CEILING_PORT/" && break; sleep 0.1; done
}
ceiling_stop() { kill "$CEIL_PID"; wait "$CEIL_PID" 2>/dev/null || true; CEIL_PID=; }
evalsha_calls() { redis-cli -u "$REDIS_URL" info commandstats | grep -oE '^cmdstat_(evalsha|eval|hget|hmget|get):calls=[0-9]+' | cut -d= -f2 | paste -sd+ | bc; }
wrk_lines() { # name url mode prefix lines file [offset]
  MODE=$3 PATH_PREFIX=$4 LINES=$5 OFFSET=${7:-0} wrk -t2 -c"$C" -d"${D}s" --latency -s bench/wrk-lines.lua "$2" >"$6"
  printf '  %-34s %9s req/s  p50 %8s  p99 %8s  %s\n' "$1" "$(grep -oE 'Requests/sec: +[0-9.]+' "$6" | awk '{print $2}')" \
    "$(awk '$1=="50%"{print $2}' "$6")" "$(awk '$1=="99%"{print $2}' "$6")" "$(grep statuses "$6")"
}
k6_join() { # name url rate
  k6 run --quiet -e URL="$2" -e RATE="$3" -e SUMMARY="$OUT/join-$1-$3.json" bench/queue-join.js >"$OUT/join-$1-$3.txt" 2>&1 || true
  local j="$OUT/join-$1-$3.json"
  printf '  %-12s %6s/s  requests %6s  dropped %5s  failed %.4f  p50 %7.2f ms  p99 %8.2f ms\n' "$1" "$3" \
    "$(jq '.metrics.http_reqs.values.count' "$j")" "$(jq '.metrics.dropped_iterations.values.count // 0' "$j")" \
    "$(jq '.metrics.http_req_failed.values.rate' "$j")" "$(jq '.metrics.http_req_duration.values.med' "$j")" \
    "$(jq '.metrics.http_req_duration.values["p(99)"]' "$j")"
}

bash infra/local/services.sh start api settle >/dev/null
RUN=$(date +%s)
section() { [[ " $SECTIONS " == *" $1 "* ]]; }

if section 1; then
echo; echo "1. Joins: a burst of distinct buyers (k6 constant-arrival-rate, 3 s), the ceiling at the same rate"
for rate in $RATES; do
  ceiling_start; k6_join ceiling "http://127.0.0.1:$CEILING_PORT/sales/x/buy" "$rate"; ceiling_stop
  S=wr-join-$RUN-$rate; t=$(now_ms); sale "$S" 1000 1 $(( t + 3600000 )) $(( t - 1000 ))
  k6_join flashflow "$API/sales/$S/queue" "$rate"
done

fi

if section 2; then
echo; echo "2. Polls of a $POLL_PLACES-place queue (wrk -t2 -c$C -d${D}s), the ceiling's GET (one Redis round trip)"
S=wr-poll-$RUN; t=$(now_ms); sale "$S" 1000 1 $(( t + 3600000 )) $(( t - 1000 ))
"$BENCH" waiting-room fill "$S" "$POLL_PLACES" --out "$OUT/places.txt"
ceiling_start
wrk_lines "ceiling GET" "http://127.0.0.1:$CEILING_PORT" poll "/sales/x/queue/" "$OUT/places.txt" "$OUT/poll-ceiling.txt"
ceiling_stop
before=$(evalsha_calls)
wrk_lines "FlashFlow polls" "$API" poll "/sales/$S/queue/" "$OUT/places.txt" "$OUT/poll-flashflow.txt"
after=$(evalsha_calls)
polls=$(grep -oE '[0-9]+ requests in' "$OUT/poll-flashflow.txt" | awk '{print $1}')
printf '  Redis commands during the polls: %s for %s polls (%.5f per poll)\n' "$(( after - before ))" "$polls" \
  "$(echo "($after - $before) / $polls" | bc -l)"

fi

if section 3; then
echo; echo "3. Buys with an admission token vs the same buys without a waiting room (wrk -t2 -c$C -d${D}s, stock 1,000,000)"
SP=wr-plain-$RUN; ST=wr-token-$RUN; t=$(now_ms)
sale "$SP" 1000000 1; sale "$ST" 1000000 1 $(( t + 2000 )) $(( t - 1000 ))
"$BENCH" waiting-room tokens "$ST" 400000 --out "$OUT/tokens.txt"
sleep 2.5
plain() { wrk_lines "buys, no waiting room ($1)" "$API" plain "/sales/$SP/buy" "$OUT/tokens.txt" "$OUT/buy-plain-$1.txt" $(( ($1 - 1) * 150000 )); }
token() { wrk_lines "buys with an admission token ($1)" "$API" token "/sales/$ST/buy" "$OUT/tokens.txt" "$OUT/buy-token-$1.txt" $(( ($1 - 1) * 150000 )); }
# Each round its own buyers: each buys once (the limit), in both sales alike. The order swaps in
# the second round: a run pays for the settlement of the run before it (the same cores).
plain 1; token 1
token 2; plain 2
rate() { grep -ohE 'Requests/sec: +[0-9.]+' "$@" | awk '{s += $2} END {print s / NR}'; }
rp=$(rate "$OUT"/buy-plain-?.txt); rt=$(rate "$OUT"/buy-token-?.txt)
printf '  mean req/s: without %.0f, with a token %.0f; with / without: %.3f\n' "$rp" "$rt" "$(echo "$rt / $rp" | bc -l)"

fi

if section 4; then
echo; echo "4. The race: 5,000 people arriving over the opening's first 2 s, a bot with 1,000 made-up ids on 50 connections from 2 s before (stock 1,000)"
S=race-plain-$RUN; t=$(( $(now_ms) + 4000 ))
curl -sf "${auth[@]}" -X POST "$API/admin/sales" -d "{\"id\":\"$S\",\"name\":\"race\",\"stock\":1000,\"per_user_limit\":1,\"opens_at\":\"$(date -u -d "@$(( t / 1000 ))" +%Y-%m-%dT%H:%M:%S).$(printf %03d $(( t % 1000 )))Z\"}" >/dev/null
"$BENCH" waiting-room crowd "$API" "$S" "$t" --people 5000 --arrive-from 0 --arrive-to 2000 --bot-ids 10000000 --bot-connections 50 --bot-from -2000 --until 20000 | sed 's/^/  /'
for bits in 0 "$POW_BITS"; do
  S=race-room-$bits-$RUN; t0=$(now_ms); t=$(( t0 + 6000 )); sale "$S" 1000 1 "$t" $(( t0 - 500 )) "$bits"
  echo "  through the waiting room, pow_bits $bits (everyone joins in the 2 s before the opening):"
  "$BENCH" waiting-room crowd "$API" "$S" "$t" --room --people 5000 --arrive-from -2000 --arrive-to 0 --bot-ids 1000 --bot-connections 50 --bot-from -5500 --until 40000 | sed 's/^/    /'
done

fi

if section 5; then
echo; echo "5. The opening: $OPENING_PEOPLE buyers joining in the 4 s before it, polling every second, buying once admitted (stock 1,000)"
S=wr-opening-$RUN; t0=$(now_ms); t=$(( t0 + 6000 )); sale "$S" 1000 1 "$t" $(( t0 - 500 ))
"$BENCH" waiting-room crowd "$API" "$S" "$t" --room --people "$OPENING_PEOPLE" --arrive-from -4000 --arrive-to 0 --until 60000 | sed 's/^/  /'
curl -sf "${auth[@]}" "$API/admin/sales/$S" | jq -c '.waiting_room.queue | {waiting, admitted, used, expired, sold_out, cohort}' | sed 's/^/  queue: /'
fi

if section 6; then
echo; echo "6. What $COST_PLACES places cost (joined straight through the store)"
"$BENCH" waiting-room cost "$COST_PLACES" | sed 's/^/  /'
fi
