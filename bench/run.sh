#!/usr/bin/env bash
# Side by side, in one run, with the same tool and settings: FlashFlow's buy endpoint and the seed's
# design (../shared/bench/seed-baseline: Express + Redis Lua + RabbitMQ + Postgres).
#   usage: bench/run.sh [connections=100] [seconds=5] [stock=100]
# Prints wrk's req/s and latency for both, and the sold count each ended with in Postgres.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd); cd "$ROOT"
. infra/local/env.sh
C=${1:-100}; D=${2:-5}; STOCK=${3:-100}
BASELINE=${BASELINE:-$ROOT/../shared/bench/seed-baseline/run.sh}
command -v wrk >/dev/null || { say "installing wrk"; apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; }
[ -f "$BASELINE" ] || die "baseline not found at $BASELINE"
API="http://127.0.0.1:$API_PORT"
auth=(-H "authorization: Bearer $OPERATOR_TOKEN" -H 'content-type: application/json')

say "FlashFlow: release build, services, sale of $STOCK"
cargo build --release -q -p flashflow-local
trap 'bash infra/local/services.sh stop' EXIT
bash infra/local/services.sh start api settle reconcile >/dev/null
SALE=bench-$(date +%s)
curl -sf "${auth[@]}" -X POST "$API/admin/sales" -d "{\"id\":\"$SALE\",\"name\":\"bench\",\"stock\":$STOCK,\"per_user_limit\":1}" >/dev/null
say "FlashFlow: wrk -t2 -c$C -d${D}s POST /sales/$SALE/buy (distinct buyers)"
wrk -t2 -c"$C" -d"${D}s" --latency -s bench/wrk-buy.lua "$API/sales/$SALE/buy" | tee "$LOG_DIR/wrk-flashflow.txt" \
  | grep -E "Requests/sec|Latency |50%|99%|Non-2xx"
for _ in $(seq 60); do
  done_=$(curl -sf "${auth[@]}" "$API/admin/sales/$SALE" | jq '.settled.confirmed_orders == '"$STOCK"' and .pending == 0')
  [ "$done_" = true ] && break; sleep 0.5
done
ff_sold=$(psql "$DATABASE_URL" -qtAc "SELECT count(*) FROM orders WHERE sale_id='$SALE' AND status='CONFIRMED'")
echo "flashflow: sold in postgres = $ff_sold (stock $STOCK)"
bash infra/local/services.sh stop

say "seed baseline: TOOL=wrk $BASELINE $C $D $STOCK"
# Our DATABASE_URL / REDIS_URL would point the baseline at FlashFlow's database: unset them.
env -u DATABASE_URL -u REDIS_URL TOOL=wrk bash "$BASELINE" "$C" "$D" "$STOCK" | tee "$LOG_DIR/wrk-baseline.txt"

row() { # name file sold
  awk -v n="$1" -v sold="$3" '
    /Requests\/sec/ {rps=$2}
    /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
    END {printf "  %-12s %10s req/s   p50 %-9s p99 %-9s sold %s\n", n, rps, p50, p99, sold}' "$2"
}
echo
echo "Side by side (wrk -t2 -c$C -d${D}s, stock $STOCK, same machine, same run):"
row flashflow "$LOG_DIR/wrk-flashflow.txt" "$ff_sold"
row seed "${SEED_BASELINE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/seed-baseline}/wrk.txt" \
  "$(grep -oE 'sold in postgres = [0-9]+' "$LOG_DIR/wrk-baseline.txt" | grep -oE '[0-9]+$')"
