#!/usr/bin/env bash
# `make profile`: where the CPU goes under `make bench`'s load. The local services run (api,
# settle, reconcile), wrk drives a sale (STOCK, 1,000,000 by default: every request a buy; 100 for
# the sold-out shape) for 12 s, and `perf record -a` samples every process on the machine for 6 s
# of it. Writes, under bench/reports/ (generated, not committed):
#   profile-processes.txt  CPU share per process (perf report --sort comm)
#   profile-api.txt        the API's hottest functions (flat, self time)
#   profile-settle.txt     settle's hottest functions
#   profile-redis.txt      Redis' hottest functions (its scripts' Lua among them)
# perf comes from Debian's linux-perf; hardware counters are not needed (software cpu-clock).
#   usage: bench/profile.sh [stock=1000000]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd); cd "$ROOT"
. infra/local/env.sh
STOCK=${1:-1000000}
command -v perf >/dev/null || die "perf is missing: apt-get install linux-perf"
REPORTS="$ROOT/bench/reports"; mkdir -p "$REPORTS"
API="http://127.0.0.1:$API_PORT"
auth=(-H "authorization: Bearer $OPERATOR_TOKEN" -H 'content-type: application/json')
export EVENT_SOURCE_BATCH_SIZE=${EVENT_SOURCE_BATCH_SIZE:-1000} EVENT_SOURCE_BATCHING_WINDOW_MS=${EVENT_SOURCE_BATCHING_WINDOW_MS:-1000} \
  EVENT_SOURCE_MAX_CONCURRENCY=${EVENT_SOURCE_MAX_CONCURRENCY:-5}
cargo build --release -q -p flashflow-local
trap 'bash infra/local/services.sh stop >/dev/null 2>&1 || true' EXIT
bash infra/local/services.sh start api settle reconcile >/dev/null
declare -A PIDS
for svc in api settle reconcile; do PIDS[$svc]=$(cat "$RUN_DIR/$svc.pid"); done
PIDS[redis]=$(redis-cli -u "$REDIS_URL" info server | tr -d '\r' | awk -F: '$1 == "process_id" {print $2}')
sale=profile-$(date +%s)
curl -sf "${auth[@]}" -X POST "$API/admin/sales" \
  -d "{\"id\":\"$sale\",\"name\":\"profile\",\"stock\":$STOCK,\"per_user_limit\":1}" >/dev/null
say "wrk -t2 -c100 -d12s on stock $STOCK; perf record -a for 6 s of it"
wrk -t2 -c100 -d12s --latency -s bench/wrk-buy.lua "$API/sales/$sale/buy" >"$REPORTS/profile-wrk.txt" &
WRK=$!
sleep 3
perf record -a -g -F 499 -o "$LOG_DIR/profile.perf" -- sleep 6 >/dev/null 2>&1
wait "$WRK"
grep -E "Requests/sec|99%" "$REPORTS/profile-wrk.txt" | sed 's/^/    /'
perf report -i "$LOG_DIR/profile.perf" --no-children --sort comm -g none 2>/dev/null \
  | grep -v "^#" | grep -v "^$" | head -20 >"$REPORTS/profile-processes.txt" || true
for svc in api settle reconcile; do
  share=$(perf report -i "$LOG_DIR/profile.perf" --no-children --pid "${PIDS[$svc]}" --percentage absolute --sort pid -g none 2>/dev/null \
    | awk '/^ +[0-9.]+%/ { s += $1 } END { printf "%.2f%%", s }')
  echo "    $share  flashflow-local $svc (all its threads)" >>"$REPORTS/profile-processes.txt"
done
for svc in api settle redis; do
  perf report -i "$LOG_DIR/profile.perf" --no-children --pid "${PIDS[$svc]}" --sort dso,sym -g none 2>/dev/null \
    | grep -v "^#" | grep -v "^$" | head -40 >"$REPORTS/profile-$svc.txt" || true
done
echo "CPU share per process (all samples of the machine, idle included as 'swapper'):"
sed 's/^/    /' "$REPORTS/profile-processes.txt"
echo "The API's top functions: bench/reports/profile-api.txt; settle's: bench/reports/profile-settle.txt; Redis': bench/reports/profile-redis.txt"
