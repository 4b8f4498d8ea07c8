#!/usr/bin/env bash
# `make bench-cpu`: what an order costs in CPU, process by process, whatever the machine's speed.
# Two shapes, each a wrk load (-t2, CONNECTIONS, SECONDS) on the local services (release build):
#   every request a buy   a 1,000,000-unit sale; the window runs to the last order CONFIRMED, and
#                         each process's CPU is divided by the orders CONFIRMED
#   the sold-out herd     a 100-unit sale; CPU divided by the requests answered
# Each process's CPU (its whole tree: threads, helpers, Postgres backends) is read from /proc before
# and after (bench/proc_cpu.py): nothing is asked of any service while it is measured, but for one
# INFO commandstats, one read of Postgres' statistics, and one read of the sale's row a second
# while the queue drains. An idle window before the loads gives each process's background rate (the
# emulators poll and tick on their own), printed beside it.
# Prints one table, FlashFlow's own processes apart from the data stores, the emulators and the
# load generator; then Redis commands per order (calls and µs, INFO commandstats deltas) and
# Postgres work per order (transactions, rows, index scans, WAL bytes: pg_stat_database and
# pg_stat_user_tables deltas). Last, the control: the ceiling server under the same load, its CPU
# per request and Redis' for its trivial script, what the machine's speed is in this run; each
# FlashFlow figure is also printed as a multiple of it (CONTROL=0 leaves it out).
#   usage: bench/cpu.sh            (env: CONNECTIONS=100 SECONDS_PER_SHAPE=10 SHAPES="buy soldout")
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd); cd "$ROOT"
. infra/local/env.sh
C=${CONNECTIONS:-100}; D=${SECONDS_PER_SHAPE:-10}; SHAPES=${SHAPES:-buy soldout}
LARGE=${LARGE_STOCK:-1000000}; IDLE=${IDLE_SECONDS:-5}
for tool in wrk jq psql redis-cli; do command -v "$tool" >/dev/null || die "$tool is missing: run 'make setup'"; done
API="http://127.0.0.1:$API_PORT"
auth=(-H "authorization: Bearer $OPERATOR_TOKEN" -H 'content-type: application/json')
OUT="$LOG_DIR/bench-cpu"; mkdir -p "$OUT"
# Settlement as the template configures the event source (as make bench does).
export EVENT_SOURCE_BATCH_SIZE=${EVENT_SOURCE_BATCH_SIZE:-1000} EVENT_SOURCE_BATCHING_WINDOW_MS=${EVENT_SOURCE_BATCHING_WINDOW_MS:-1000} \
  EVENT_SOURCE_MAX_CONCURRENCY=${EVENT_SOURCE_MAX_CONCURRENCY:-5}

say "release build of flashflow-local and flashflow-bench"
cargo build --release -q -p flashflow-local -p flashflow-bench
trap 'bash infra/local/services.sh stop >/dev/null 2>&1 || true' EXIT
bash infra/local/services.sh start api settle reconcile expire >/dev/null

# The processes measured, each by the root of its tree (bench/cpu_table.py names and groups them).
declare -A ROOT_PID
for s in api settle reconcile expire localstack dynamodb localstripe; do ROOT_PID[$s]=$(cat "$RUN_DIR/$s.pid"); done
ROOT_PID[redis]=$(redis-cli -u "$REDIS_URL" info server | tr -d '\r' | awk -F: '$1 == "process_id" {print $2}')
# The postmaster, whose tree holds every backend.
ROOT_PID[postgres]=$(head -1 "$(psql "$DATABASE_URL" -tAc "SELECT current_setting('data_directory')")/postmaster.pid")
ORDER=(api settle reconcile expire redis postgres localstack dynamodb localstripe)
roots=(); for s in "${ORDER[@]}"; do roots+=("$s=${ROOT_PID[$s]}"); done
echo "processes: $(for s in "${ORDER[@]}"; do printf '%s=%s ' "$s" "${ROOT_PID[$s]}"; done)"

snap() { python3 bench/proc_cpu.py snap "${roots[@]}" >"$1"; }
commandstats() { # the commands' counters, and the AOF rewrites and key expiries, in one INFO
  redis-cli -u "$REDIS_URL" info all | tr -d '\r' | grep -E '^cmdstat_|^aof_rewrites:|^expired_keys:' >"$1"
}
pgstats() { # one line of JSON: the database's counters and the WAL position
  psql "$DATABASE_URL" -tAc "SELECT json_build_object(
      'xact', xact_commit + xact_rollback, 'returned', tup_returned, 'fetched', tup_fetched,
      'inserted', tup_inserted, 'updated', tup_updated, 'deleted', tup_deleted,
      'idx_scan', (SELECT coalesce(sum(idx_scan), 0) FROM pg_stat_user_tables),
      'seq_scan', (SELECT coalesce(sum(seq_scan), 0) FROM pg_stat_user_tables),
      'wal', pg_current_wal_lsn() - '0/0'::pg_lsn,
      'tables', (SELECT json_object_agg(relname, json_build_array(seq_scan, seq_tup_read, coalesce(idx_scan, 0)))
                   FROM pg_stat_user_tables WHERE schemaname = current_schema()))
    FROM pg_stat_database WHERE datname = current_database()" >"$1"
}
children_cpu() { # the CPU of this shell's reaped children (bash's `times`, run in this shell, not a
  # subshell: a forked one has no children yet), in seconds
  times >"$OUT/times.txt"
  tail -1 "$OUT/times.txt" | awk '{ n = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); n += a[1] * 60 + a[2] } print n }'
}

# Earlier runs' orders settle first (a run stopped before its drain leaves them in its sale's
# outbox, and the sweeper re-sends them): the backlog would be measured as this run's. Looked at
# before anything is measured.
backlog() { # orders due on the queue: entries of the default prefix's outboxes due for a re-send
  # (those whose send succeeded are pushed days out), and the queue's messages
  local n=0 k now; now=$(date +%s%3N)
  for k in $(redis-cli -u "$REDIS_URL" --scan --pattern 'ff:{*}:outbox_at'); do
    n=$(( n + $(redis-cli -u "$REDIS_URL" zcount "$k" -inf "$now") ))
  done
  # SQS's JSON protocol (LocalStack does not check the signature): no CLI start-up per look.
  curl -sf -X POST "$AWS_ENDPOINT_URL_SQS/" -H 'x-amz-target: AmazonSQS.GetQueueAttributes' \
    -H 'content-type: application/x-amz-json-1.0' \
    -H "authorization: AWS4-HMAC-SHA256 Credential=test/$(date -u +%Y%m%d)/$AWS_REGION/sqs/aws4_request, SignedHeaders=host, Signature=0" \
    -d "{\"QueueUrl\":\"$ORDERS_QUEUE_URL\",\"AttributeNames\":[\"ApproximateNumberOfMessages\",\"ApproximateNumberOfMessagesNotVisible\"]}" \
    | jq --argjson n "$n" '$n + ([.Attributes[] | tonumber] | add)'
}
left=$(backlog)
if [ "$left" -gt 0 ]; then
  say "waiting for $left orders of earlier runs to settle first"
  for _ in $(seq 600); do left=$(backlog); [ "$left" -eq 0 ] && break; sleep 1; done
  [ "$left" -eq 0 ] || die "$left orders of earlier runs still unsettled after 600 s"
fi

say "idle: ${IDLE} s with no load (each process's background rate)"
snap "$OUT/idle-0.json"; sleep "$IDLE"; snap "$OUT/idle-1.json"
python3 bench/proc_cpu.py diff "$OUT/idle-0.json" "$OUT/idle-1.json" >"$OUT/idle.json"

run_shape() { # shape stock
  local shape=$1 stock=$2 sale reserved n=0 t0 t1 w0 w1
  sale=cpu-$shape-$(date +%s%N | cut -c1-13)
  curl -sf "${auth[@]}" -X POST "$API/admin/sales" \
    -d "{\"id\":\"$sale\",\"name\":\"bench-cpu\",\"stock\":$stock,\"per_user_limit\":1}" >/dev/null
  sleep 1   # the sale's creation settles out of the window
  commandstats "$OUT/$shape-redis-0.txt"; pgstats "$OUT/$shape-pg-0.json"
  children_cpu >"$OUT/w0"; t0=$(date +%s.%N); snap "$OUT/$shape-0.json"
  say "$shape: wrk -t2 -c$C -d${D}s on sale $sale (stock $stock)"
  wrk -t2 -c"$C" -d"${D}s" --latency -s bench/wrk-buy.lua "$API/sales/$sale/buy" >"$OUT/$shape-wrk.txt"
  children_cpu >"$OUT/w1"; w0=$(cat "$OUT/w0"); w1=$(cat "$OUT/w1")
  grep -E "Requests/sec|^ +99%|statuses" "$OUT/$shape-wrk.txt" | sed 's/^/    /'
  sleep 0.5   # the requests in flight when wrk stopped finish
  reserved=$(curl -sf "${auth[@]}" "$API/admin/sales/$sale" | jq -r '.reserved')
  # Every reservation ends CONFIRMED: once a second, the sale row's counter that settle keeps (one
  # primary-key read; a count over the orders would scan what is measured).
  for _ in $(seq 600); do
    n=$(psql "$DATABASE_URL" -tAc "SELECT confirmed FROM sales WHERE id = '$sale'")
    [ "$n" -ge "$reserved" ] && break; sleep 1
  done
  [ "$n" -ge "$reserved" ] || die "$shape: $n of $reserved units CONFIRMED after 600 s"
  sleep 1.5   # Postgres flushes its statistics at most once a second
  snap "$OUT/$shape-1.json"; t1=$(date +%s.%N)
  commandstats "$OUT/$shape-redis-1.txt"; pgstats "$OUT/$shape-pg-1.json"
  python3 bench/proc_cpu.py diff "$OUT/$shape-0.json" "$OUT/$shape-1.json" \
    | jq --argjson wrk "$(printf %.3f "$(echo "$w1 - $w0" | bc)")" --argjson window "$(printf %.3f "$(echo "$t1 - $t0" | bc)")" \
      --argjson orders "$n" --argjson requests "$(grep -oE '[0-9]+ requests in' "$OUT/$shape-wrk.txt" | grep -oE '^[0-9]+')" \
      '. + {wrk: $wrk, _window: $window, _orders: $orders, _requests: $requests}' >"$OUT/$shape.json"
  echo "    $n orders CONFIRMED; window $(printf %.1f "$(echo "$t1 - $t0" | bc)") s (load and drain)"
}

for shape in $SHAPES; do
  case $shape in
    buy) run_shape buy "$LARGE" ;;
    soldout) run_shape soldout 100 ;;
    *) die "unknown shape $shape (buy, soldout)" ;;
  esac
done

# The control: the ceiling server (the same HTTP server, one EVALSHA of a trivial script per
# request, a constant 202) under the same wrk load, FlashFlow's services stopped. Its CPU per
# request is what this machine's speed is today: the figures above are compared with it, not
# with a figure of another day (the same binaries cost 1.6x more on a slow afternoon).
control() {
  local port=${CEILING_PORT:-3001} pid w0 w1 t0 t1
  bash infra/local/services.sh stop api settle reconcile expire >/dev/null
  RUST_LOG=warn target/release/flashflow-bench ceiling --listen "127.0.0.1:$port" >"$LOG_DIR/ceiling.log" 2>&1 &
  pid=$!
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
  say "control: the ceiling server, wrk -t2 -c$C -d${D}s"
  children_cpu >"$OUT/w0"; t0=$(date +%s.%N)
  python3 bench/proc_cpu.py snap "ceiling=$pid" "redis=${ROOT_PID[redis]}" >"$OUT/control-0.json"
  wrk -t2 -c"$C" -d"${D}s" --latency -s bench/wrk-buy.lua "http://127.0.0.1:$port/sales/control/buy" >"$OUT/control-wrk.txt"
  grep -E "Requests/sec|statuses" "$OUT/control-wrk.txt" | sed 's/^/    /'
  python3 bench/proc_cpu.py snap "ceiling=$pid" "redis=${ROOT_PID[redis]}" >"$OUT/control-1.json"
  children_cpu >"$OUT/w1"; t1=$(date +%s.%N); w0=$(cat "$OUT/w0"); w1=$(cat "$OUT/w1")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  python3 bench/proc_cpu.py diff "$OUT/control-0.json" "$OUT/control-1.json" \
    | jq --argjson wrk "$(printf %.3f "$(echo "$w1 - $w0" | bc)")" \
      --argjson requests "$(grep -oE '[0-9]+ requests in' "$OUT/control-wrk.txt" | grep -oE '^[0-9]+')" \
      '. + {wrk: $wrk, _requests: $requests}' >"$OUT/control.json"
}
[ "${CONTROL:-1}" = 1 ] && control || rm -f "$OUT/control.json"

python3 bench/cpu_table.py "$OUT" "$SHAPES" "$C" "$D"
