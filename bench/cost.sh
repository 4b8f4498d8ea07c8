#!/usr/bin/env bash
# `make bench-cost`: what one order costs, counted from the services' own counters, in both buy
# paths: `lambda` (buy sends to SQS before it answers, as the Lambda does) and `relay` (the local
# server answers from the outbox and a relay sends in batches of ten).
#
# For each path: the local services (api, settle, reconcile) run with SQS and DynamoDB behind a
# counting proxy (flashflow-bench count-proxy, via AWS_ENDPOINT_URL_SQS / _DYNAMODB, as they
# reach the emulators); N buys of distinct buyers on a sale of stock N (exactly N 202s), waited
# until every order is CONFIRMED in Postgres; then M more buys on the sold-out sale. Counted:
#   SQS requests by operation, DynamoDB items written  the proxy (SDK calls really made)
#   Redis commands by command                          INFO commandstats (CONFIG RESETSTAT)
#   Postgres statements (and transactions: settle batches) pg_stat_statements
# and the AWS price of a million orders that follows (see PRICES below).
#   usage: bench/cost.sh [orders=5000] [sold-out requests=20000]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd); cd "$ROOT"
. infra/local/env.sh
N=${1:-5000}; M=${2:-20000}
PROXY_PORT=${PROXY_PORT:-4599}
PROXY="http://127.0.0.1:$PROXY_PORT"
API="http://127.0.0.1:$API_PORT"
auth=(-H "authorization: Bearer $OPERATOR_TOKEN" -H 'content-type: application/json')
OUT="$LOG_DIR/bench-cost"; mkdir -p "$OUT"
BENCH="$ROOT/target/release/flashflow-bench"
# Settlement as the template configures the event source: batches of up to 1,000 gathered for at
# most 1 s, 5 at once.
export EVENT_SOURCE_BATCH_SIZE=${EVENT_SOURCE_BATCH_SIZE:-1000} EVENT_SOURCE_BATCHING_WINDOW_MS=${EVENT_SOURCE_BATCHING_WINDOW_MS:-1000} \
  EVENT_SOURCE_MAX_CONCURRENCY=${EVENT_SOURCE_MAX_CONCURRENCY:-5}
# This script's own polling query, left out of the counts.
OWN="SELECT count(*) FROM orders WHERE sale_id"
for tool in jq redis-cli psql python3; do command -v "$tool" >/dev/null || die "$tool is missing: run 'make setup'"; done

say "release build of flashflow-local and flashflow-bench"
cargo build --release -q -p flashflow-local -p flashflow-bench

# pg_stat_statements must be preloaded: on this local server only, once (a restart).
if ! psql "$DATABASE_URL" -tAc "SHOW shared_preload_libraries" | grep -q pg_stat_statements; then
  say "enabling pg_stat_statements on the local PostgreSQL (ALTER SYSTEM, then a restart)"
  psql "$DATABASE_URL" -qc "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main restart
  for _ in $(seq 50); do psql "$DATABASE_URL" -qtAc "SELECT 1" >/dev/null 2>&1 && break; sleep 0.2; done
fi
psql "$DATABASE_URL" -qc "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null

cleanup() { bash infra/local/services.sh stop >/dev/null 2>&1 || true; [ -n "${PROXY_PID:-}" ] && kill "$PROXY_PID" 2>/dev/null || true; }
trap cleanup EXIT
RUST_LOG=warn "$BENCH" count-proxy --listen "127.0.0.1:$PROXY_PORT" \
  --sqs "$AWS_ENDPOINT_URL_SQS" --dynamodb "$AWS_ENDPOINT_URL_DYNAMODB" >"$LOG_DIR/count-proxy.log" 2>&1 &
PROXY_PID=$!
for _ in $(seq 50); do curl -sf -o /dev/null "$PROXY/_counts" && break; sleep 0.1; done

reset_counts() {
  redis-cli -u "$REDIS_URL" CONFIG RESETSTAT >/dev/null
  psql "$DATABASE_URL" -qtAc "SELECT pg_stat_statements_reset()" >/dev/null
  curl -sf -X POST "$PROXY/_counts/reset" >/dev/null
}

read_counts() { # file
  {
    echo '{"redis":'
    redis-cli -u "$REDIS_URL" INFO commandstats | tr -d '\r' | python3 -c '
import json, sys
out = {}
for line in sys.stdin:
    if line.startswith("cmdstat_"):
        name, rest = line[8:].strip().split(":", 1)
        out[name] = int(dict(kv.split("=") for kv in rest.split(","))["calls"])
print(json.dumps(out))'
    echo ',"postgres":'
    psql "$DATABASE_URL" -qtAc "SELECT json_build_object(
        'statements', (SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database() AND query NOT LIKE '$OWN%' AND query NOT LIKE '%pg_stat%'),
        'lock_sales', (SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE '%FROM sales WHERE id = ANY(\$1) ORDER BY id FOR UPDATE%'),
        'top', (SELECT json_agg(t) FROM (SELECT calls, left(regexp_replace(query, '\s+', ' ', 'g'), 70) AS query FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database() AND query NOT LIKE '$OWN%' AND query NOT LIKE '%pg_stat%' ORDER BY calls DESC LIMIT 8) t))"
    echo ',"aws":'
    curl -sf "$PROXY/_counts"
    echo '}'
  } >"$1"
}

confirmed() { psql "$DATABASE_URL" -qtAc "SELECT count(*) FROM orders WHERE sale_id='$1' AND status='CONFIRMED'"; }

run_path() { # lambda|relay
  local path=$1 relay sale
  if [ "$path" = relay ]; then relay=1; else relay=0; fi
  bash infra/local/services.sh stop >/dev/null 2>&1 || true
  # A queue of its own: what an earlier run left in the shared one would be counted here.
  local queue
  queue=$(curl -sf "$AWS_ENDPOINT_URL_SQS/?Action=CreateQueue&QueueName=flashflow-cost-$path-$(date +%s)&Attribute.1.Name=VisibilityTimeout&Attribute.1.Value=30" \
    | grep -o '<QueueUrl>[^<]*' | cut -d'>' -f2)
  [ -n "$queue" ] || die "could not create a scratch queue"
  ORDERS_QUEUE_URL="$queue" AWS_ENDPOINT_URL_SQS="$PROXY" AWS_ENDPOINT_URL_DYNAMODB="$PROXY" BUY_RELAY=$relay \
    bash infra/local/services.sh start api settle reconcile >/dev/null
  sale=cost-$path-$(date +%s%N | cut -c1-13)
  curl -sf "${auth[@]}" -X POST "$API/admin/sales" \
    -d "{\"id\":\"$sale\",\"name\":\"cost\",\"stock\":$N,\"per_user_limit\":1}" >/dev/null
  sleep 1
  reset_counts
  say "$path: $N buys (stock $N), until every order is CONFIRMED"
  "$BENCH" drive "$API/sales/$sale/buy" "$N" "${DRIVE_CONCURRENCY:-20}" --prefix "$path-buy" | sed 's/^/    /'
  local n=0
  for _ in $(seq 1200); do n=$(confirmed "$sale"); [ "$n" -ge "$N" ] && break; sleep 0.25; done
  [ "$n" -ge "$N" ] || die "only $n of $N orders CONFIRMED"
  sleep 2 # the outbox cleanup and marks behind the last batch
  read_counts "$OUT/$path-orders.json"
  reset_counts
  say "$path: $M buys on the sold-out sale"
  "$BENCH" drive "$API/sales/$sale/buy" "$M" 50 --prefix "$path-late" | sed 's/^/    /'
  read_counts "$OUT/$path-sold-out.json"
  bash infra/local/services.sh stop >/dev/null
  curl -sf -o /dev/null "$AWS_ENDPOINT_URL_SQS/?Action=DeleteQueue&QueueUrl=$queue" || true
}

for path in lambda relay; do run_path "$path"; done

python3 - "$OUT" "$N" "$M" <<'EOF'
import json, sys
out, n, m = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
# AWS list prices, us-east-1, as published on the AWS pricing pages (read through the guides
# cited in the README, dated 2025-07 to 2026-06; checked 2026-12-06):
PRICES = {
    "sqs_per_million_requests": 0.40,          # standard queue, first 100 B requests/month
    "dynamodb_per_million_wru": 0.625,         # on-demand, since the Nov 2024 reduction
    "lambda_per_million_requests": 0.20,       # invocations (duration not included here)
    "http_api_per_million_requests": 1.00,     # API Gateway HTTP API, first 300 M/month
}
def load(path, phase):
    return json.load(open(f"{out}/{path}-{phase}.json"))
print()
print(f"The cost of an order: {n} orders settled per path, then {m} buys on the sold-out sale.")
print()
print("| per settled order | lambda path | relay path |")
print("| --- | ---: | ---: |")
rows = {}
for path in ("lambda", "relay"):
    c = load(path, "orders")
    calls = c["aws"]["calls"]
    sqs = {k[4:]: v for k, v in calls.items() if k.startswith("sqs ")}
    ddb = {k[9:]: v for k, v in calls.items() if k.startswith("dynamodb ")}
    redis = c["redis"]
    batches = c["postgres"]["lock_sales"]
    rows[path] = {
        "SQS requests": sum(sqs.values()) / n,
        "  sends (SendMessage / SendMessageBatch)": (sqs.get("SendMessage", 0) + sqs.get("SendMessageBatch", 0)) / n,
        "  receives + deletes (the event source)": (sqs.get("ReceiveMessage", 0) + sqs.get("DeleteMessageBatch", 0) + sqs.get("DeleteMessage", 0)) / n,
        "DynamoDB write requests (items)": c["aws"]["dynamodb_items_written"] / n,
        "DynamoDB calls": sum(ddb.values()) / n,
        "Redis commands": sum(redis.values()) / n,
        "  of them EVALSHA": redis.get("evalsha", 0) / n,
        "Postgres statements": c["postgres"]["statements"] / n,
        "settle batches = Postgres transactions": batches / n,
    }
    rows[path]["_detail"] = {"sqs": sqs, "dynamodb": ddb, "redis": redis, "pg_top": c["postgres"]["top"]}
for k in rows["lambda"]:
    if k.startswith("_"):
        continue
    print(f"| {k} | {rows['lambda'][k]:.3f} | {rows['relay'][k]:.3f} |")
print()
print("| per sold-out answer | lambda path | relay path |")
print("| --- | ---: | ---: |")
for label, f in (("Redis commands", lambda c: sum(c["redis"].values()) / m),
                 ("  of them EVALSHA", lambda c: c["redis"].get("evalsha", 0) / m),
                 ("SQS requests", lambda c: sum(v for k, v in c["aws"]["calls"].items() if k.startswith("sqs ")) / m)):
    print(f"| {label} | {f(load('lambda', 'sold-out')):.4f} | {f(load('relay', 'sold-out')):.4f} |")
print()
print("AWS price per million orders (requests only; Redis and Postgres are priced by the hour, not per call):")
print()
print("| item | lambda path | relay path |")
print("| --- | ---: | ---: |")
total = {}
for path in ("lambda", "relay"):
    r = rows[path]
    items = {
        "SQS": r["SQS requests"] * PRICES["sqs_per_million_requests"],
        "DynamoDB writes": r["DynamoDB write requests (items)"] * PRICES["dynamodb_per_million_wru"],
        "Lambda invocations (buy + settle)": (1 + r["settle batches = Postgres transactions"]) * PRICES["lambda_per_million_requests"],
        "API Gateway HTTP API": 1 * PRICES["http_api_per_million_requests"],
    }
    total[path] = items
for k in total["lambda"]:
    print(f"| {k} | ${total['lambda'][k]:.2f} | ${total['relay'][k]:.2f} |")
print(f"| total | ${sum(total['lambda'].values()):.2f} | ${sum(total['relay'].values()):.2f} |")
print()
for path in ("lambda", "relay"):
    d = rows[path]["_detail"]
    print(f"{path}: SQS {d['sqs']}; DynamoDB {d['dynamodb']}")
    print(f"{path}: Redis {dict(sorted(d['redis'].items(), key=lambda kv: -kv[1])[:8])}")
    for t in d["pg_top"] or []:
        print(f"{path}: Postgres {t['calls']:>6}  {t['query']}")
EOF
