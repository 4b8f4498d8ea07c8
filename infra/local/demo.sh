#!/usr/bin/env bash
# The flash sale demo on the local stack, verified:
#  1. build, start the API, the settle event source and the outbox sweeper;
#  2. create a sale of 100 items; one buy by hand, whose order message awslocal shows in SQS;
#  3. k6: VUS (100) concurrent buyers for DURATION (5s), every request a distinct buyer;
#  4. wait for settlement, showing progress;
#  5. verify and print: requests, req/s, p50/p99, 202s, sold-outs, other responses, orders in
#     Postgres (100), CONFIRMED in DynamoDB (100), queue and DLQ empty. Exit non-zero if any fails;
#  6. checkout (infra/local/demo-checkout.py): a sale whose buyers hold, pay through localstripe or
#     walk away; the expired holds' units are bought by later buyers; the books are checked;
#  7. a waiting room: 1,000 people and a bot (200 made-up ids) join a sale's queue before its
#     opening, are drawn into an order (the seed, the beacon stand-in's round fixed in advance, the
#     join list's root), poll and buy once admitted; the draw is checked against its commitment and
#     its published round, and every unit is sold and CONFIRMED;
#  8. one place per phone number: the same crowd signed in with the local issuer's JWTs (a verified
#     phone number each), the bot's 200 ids sharing 3 numbers, on a sale whose entry policy lets
#     one place per number: the bot holds 3 places, its other 197 joins are refused 409.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/../.." && pwd)
. "$HERE/env.sh"
cd "$ROOT"
API="http://127.0.0.1:$API_PORT"
STOCK=${STOCK:-100}; VUS=${VUS:-100}; DURATION=${DURATION:-5s}
SALE=${SALE:-flash-$(date +%s)}   # a fresh sale per run, so every count below is this run's
awsl() { awslocal "$@" 2>/dev/null; }   # awslocal prints a deprecation banner on stderr
auth=(-H "authorization: Bearer $OPERATOR_TOKEN" -H 'content-type: application/json')
depth() {
  awsl sqs get-queue-attributes --queue-url "$1" \
    --attribute-names ApproximateNumberOfMessages ApproximateNumberOfMessagesNotVisible \
    --query '[Attributes.ApproximateNumberOfMessages, Attributes.ApproximateNumberOfMessagesNotVisible]' \
    --output text | awk '{print $1 + $2}'
}

say "building (release)"
cargo build --release -q -p flashflow-local -p flashflow-bench
awsl sqs purge-queue --queue-url "$ORDERS_QUEUE_URL" || true
awsl sqs purge-queue --queue-url "$ORDERS_DLQ_URL" || true
trap 'bash "$HERE/services.sh" stop' EXIT
bash "$HERE/services.sh" start beacon api

say "creating sale $SALE: $STOCK items, 1 per buyer (operator API)"
curl -sf "${auth[@]}" -X POST "$API/admin/sales" \
  -d "{\"id\":\"$SALE\",\"name\":\"Flash drop\",\"stock\":$STOCK,\"per_user_limit\":1}"; echo

say "one buy by hand: POST /sales/$SALE/buy as alice"
resp=$(curl -s -w ' HTTP %{http_code}' -X POST "$API/sales/$SALE/buy" -H 'x-user-id: alice' \
  -H 'content-type: application/json' -H "idempotency-key: demo-$SALE" -d '{"quantity":1}')
echo "$resp"
[[ "$resp" == *"HTTP 202" ]] || die "the buy was not accepted"
order=$(sed -E 's/.*"order_id":"([^"]+)".*/\1/' <<<"$resp")
say "its order message in SQS (awslocal sqs receive-message)"
msg=""
for _ in 1 2 3 4 5; do
  msg=$(awsl sqs receive-message --queue-url "$ORDERS_QUEUE_URL" --max-number-of-messages 10 \
    --wait-time-seconds 1 --visibility-timeout 0 --query 'Messages[].Body' --output text || true)
  [[ "$msg" == *"$order"* ]] && break
done
echo "$msg"
[[ "$msg" == *"$order"* ]] || die "order $order did not show up in SQS"
say "its status: GET /orders/$order"
curl -s "$API/orders/$order" -H 'x-user-id: alice'; echo

say "starting settlement (event source -> settle) and the outbox sweeper"
EVENT_SOURCE_MAX_CONCURRENCY=${EVENT_SOURCE_MAX_CONCURRENCY:-2} OUTBOX_THRESHOLD_MS=10000 RECONCILE_INTERVAL_MS=2000 \
  bash "$HERE/services.sh" start settle reconcile expire

say "flash sale: k6, $VUS concurrent buyers for $DURATION"
SUMMARY="$LOG_DIR/k6-summary.json"
API="$API" SALE="$SALE" VUS="$VUS" DURATION="$DURATION" SUMMARY="$SUMMARY" \
  k6 run --quiet bench/flash-sale.js >"$LOG_DIR/k6.log" 2>&1 || { tail -20 "$LOG_DIR/k6.log"; die "k6 failed"; }

say "waiting for settlement"
start=$(date +%s)
while :; do
  view=$(curl -sf "${auth[@]}" "$API/admin/sales/$SALE")
  confirmed=$(jq -r .settled.confirmed_orders <<<"$view"); pending=$(jq -r .pending <<<"$view")
  printf '\r  settled %s/%s, pending %s   ' "$confirmed" "$STOCK" "$pending"
  [ "$confirmed" -ge "$STOCK" ] && [ "$pending" -eq 0 ] && break
  [ $(( $(date +%s) - start )) -lt 60 ] || { echo; say "settlement did not finish in 60s"; break; }
  sleep 0.5
done
echo

say "verifying"
pg=$(psql "$DATABASE_URL" -qtAc "SELECT count(*) FILTER (WHERE status='CONFIRMED'), count(*), COALESCE(sum(quantity) FILTER (WHERE status='CONFIRMED'),0) FROM orders WHERE sale_id='$SALE'")
IFS='|' read -r pg_confirmed pg_all pg_qty <<<"$pg"
ddb=$(aws dynamodb scan --region "$AWS_REGION" --endpoint-url "$AWS_ENDPOINT_URL_DYNAMODB" --table-name "$ORDERS_TABLE" \
  --select COUNT --filter-expression 'sale_id = :s AND #st = :c' --expression-attribute-names '{"#st":"status"}' \
  --expression-attribute-values "{\":s\":{\"S\":\"$SALE\"},\":c\":{\"S\":\"CONFIRMED\"}}" --query Count --output text \
  | tr -s '[:space:]' '\n' | awk '{ s += $1 } END { print s + 0 }')
# (a scan of a large table comes in pages, each with its own Count: the sum is the answer)
q=$(depth "$ORDERS_QUEUE_URL"); dlq=$(depth "$ORDERS_DLQ_URL")
order_status=$(curl -s "$API/orders/$order" -H 'x-user-id: alice' | jq -r .status)

read -r reqs rps p50 p99 ok sold other < <(jq -r '[.metrics.http_reqs.values.count, .metrics.http_reqs.values.rate,
  .metrics.http_req_duration.values.med, .metrics.http_req_duration.values["p(99)"],
  (.metrics.buy_accepted.values.count // 0), (.metrics.buy_sold_out.values.count // 0),
  (.metrics.buy_other.values.count // 0)] | map(tostring) | join(" ")' "$SUMMARY")
fails=0
check() { # label value expected
  if [ "$2" = "$3" ]; then printf '  %-34s %-10s ok\n' "$1" "$2"; else printf '  %-34s %-10s FAIL (expected %s)\n' "$1" "$2" "$3"; fails=$((fails + 1)); fi
}
echo
echo "FlashFlow flash sale — sale $SALE, stock $STOCK, $VUS buyers for $DURATION (k6 on the same 2 cores)"
printf '  %-34s %s\n' "requests" "$reqs"
printf '  %-34s %.0f\n' "req/s" "$rps"
printf '  %-34s %.2f ms / %.2f ms\n' "latency p50 / p99" "$p50" "$p99"
check "202 accepted (k6) + 1 by hand" "$((ok + 1))" "$STOCK"
printf '  %-34s %s\n' "409 sold out" "$sold"
check "other responses" "$other" 0
check "orders in Postgres" "$pg_all" "$STOCK"
check "CONFIRMED in Postgres" "$pg_confirmed" "$STOCK"
check "quantity confirmed (<= stock)" "$pg_qty" "$STOCK"
check "CONFIRMED in DynamoDB" "$ddb" "$STOCK"
check "alice's order status" "$order_status" CONFIRMED
check "orders queue depth" "$q" 0
check "DLQ depth" "$dlq" 0
[ "$fails" -eq 0 ] || die "$fails check(s) failed (logs: $LOG_DIR)"

python3 "$HERE/demo-checkout.py" || die "the checkout demo failed (logs: $LOG_DIR)"

ROOM=${SALE}-room; ROOM_STOCK=50
now=$(date +%s%3N); opens=$(( now + 6000 ))
iso() { date -u -d "@$(( $1 / 1000 ))" +%Y-%m-%dT%H:%M:%SZ; }
say "a waiting room: sale $ROOM, $ROOM_STOCK items, its queue open now, the sale (and the draw) at $(iso "$opens")"
curl -sf "${auth[@]}" -X POST "$API/admin/sales" -d "{\"id\":\"$ROOM\",\"name\":\"Queued drop\",\"stock\":$ROOM_STOCK,
  \"per_user_limit\":1,\"opens_at\":\"$(iso "$opens")\",\"waiting_room\":{\"opens_at\":\"$(iso $(( now - 1000 )))\",\"admission_seconds\":120}}" >/dev/null
before=$(curl -s "$API/sales/$ROOM/queue/draw")
echo "  published before anyone joins: the seed's commitment $(jq -r .commitment <<<"$before"), and the beacon round the draw will mix in, drand #$(jq -r .beacon.round <<<"$before") (chain $(jq -r .beacon.chain <<<"$before" | cut -c1-12)…), which nobody holds yet"
say "1,000 people join in the 4 s before the opening, a bot joins 200 made-up ids on 20 connections; all poll every second and buy once admitted"
target/release/flashflow-bench waiting-room crowd "$API" "$ROOM" "$opens" --room --people 1000 --arrive-from -4000 \
  --arrive-to 0 --bot-ids 200 --bot-connections 20 --bot-from -5000 --until 25000 | sed 's/^/  /'
draw=$(curl -s "$API/sales/$ROOM/queue/draw")
seed=$(jq -r .seed <<<"$draw"); commitment=$(jq -r .commitment <<<"$draw")
echo "  the draw ($(jq -r .algorithm <<<"$draw")): seed $seed revealed, $(jq -r .cohort <<<"$draw") in the pre-queue, join list root $(jq -r .join_root <<<"$draw")"
echo "  drand round #$(jq -r .beacon.round <<<"$draw") mixed in, its signature checked against the chain's key: randomness $(jq -r .beacon.randomness <<<"$draw")"
echo "  check it yourself: $API/shop/$ROOM/draw (a buyer's place recomputed in the browser), or docs/api.md's Python"
checked=$(python3 -c "import hashlib,sys; print(hashlib.sha256(bytes.fromhex(sys.argv[1])).hexdigest())" "$seed")
from_sig=$(python3 -c "import hashlib,sys; print(hashlib.sha256(bytes.fromhex(sys.argv[1])).hexdigest())" "$(jq -r .beacon.signature <<<"$draw")")
for _ in $(seq 60); do
  c=$(psql "$DATABASE_URL" -qtAc "SELECT count(*) FROM orders WHERE sale_id='$ROOM' AND status='CONFIRMED'")
  [ "$c" -ge "$ROOM_STOCK" ] && break; sleep 0.5
done
queue=$(curl -sf "${auth[@]}" "$API/admin/sales/$ROOM" | jq -c '.waiting_room.queue | {waiting, admitted, used, expired, sold_out}')
echo "  the queue at the end: $queue"
check "SHA-256(seed) = the commitment" "$checked" "$commitment"
check "the round mixed in = the one published before" "$(jq -r .beacon.round <<<"$draw")" "$(jq -r .beacon.round <<<"$before")"
check "randomness = SHA-256(signature)" "$from_sig" "$(jq -r .beacon.randomness <<<"$draw")"
check "drawn with the beacon (no fallback)" "$(jq -r .fallback <<<"$draw")" null
check "waiting-room units CONFIRMED" "$c" "$ROOM_STOCK"
check "the queue says sold out" "$(jq -r .sold_out <<<"$queue")" true
[ "$fails" -eq 0 ] || die "$fails check(s) failed (logs: $LOG_DIR)"

ENTRY=${SALE}-entry
now=$(date +%s%3N); opens=$(( now + 6000 ))
say "one place per phone number: sale $ENTRY, $ROOM_STOCK items, the same crowd signed in (a JWT with a verified phone number each), the bot's 200 ids sharing 3 numbers"
curl -sf "${auth[@]}" -X POST "$API/admin/sales" -d "{\"id\":\"$ENTRY\",\"name\":\"Verified drop\",\"stock\":$ROOM_STOCK,
  \"per_user_limit\":1,\"opens_at\":\"$(iso "$opens")\",\"waiting_room\":{\"opens_at\":\"$(iso $(( now - 1000 )))\",\"admission_seconds\":120,
  \"entry\":{\"require_claims\":{\"phone_number_verified\":true},\"one_per\":\"phone_number\"}}}" >/dev/null
echo "  a buyer's token, as the shop's identity issuer would give it: flashflow-local jwt --sub ann --claim phone_number=... --claim phone_number_verified=true"
crowd=$(target/release/flashflow-bench waiting-room crowd "$API" "$ENTRY" "$opens" --room --people 1000 --arrive-from -4000 \
  --arrive-to 0 --bot-ids 200 --bot-connections 20 --bot-from -5000 --until 25000 --bot-phones 3)
sed 's/^/  /' <<<"$crowd"
bot_places=$(sed -n 's/.* places in the pre-queue, \([0-9]*\) of them the bot.s.*/\1/p' <<<"$crowd")
refused=$(sed -n 's/.*409 already_entered: \([0-9]*\),.*/\1/p' <<<"$crowd")
for _ in $(seq 60); do
  c=$(psql "$DATABASE_URL" -qtAc "SELECT count(*) FROM orders WHERE sale_id='$ENTRY' AND status='CONFIRMED'")
  [ "$c" -ge "$ROOM_STOCK" ] && break; sleep 0.5
done
check "bot places (one per number)" "$bot_places" 3
check "bot joins refused 409" "$refused" 197
check "verified-drop units CONFIRMED" "$c" "$ROOM_STOCK"
[ "$fails" -eq 0 ] || die "$fails check(s) failed (logs: $LOG_DIR)"
say "demo OK"
