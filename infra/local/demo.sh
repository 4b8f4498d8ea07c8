#!/usr/bin/env bash
# The flash sale demo on the local stack: build, serve the API, create a sale, buy, and show the
# order message waiting in LocalStack SQS.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/../.." && pwd)
. "$HERE/env.sh"
cd "$ROOT"
API="http://127.0.0.1:$API_PORT"
SALE=${SALE:-demo}
awsl() { awslocal "$@" 2>/dev/null; }   # awslocal prints a deprecation banner on stderr

say "building the API (release)"
cargo build --release -q -p flashflow-local
bash "$HERE/api.sh" start
trap 'bash "$HERE/api.sh" stop' EXIT

say "creating sale '$SALE' (100 items, 2 per buyer) through the operator API"
auth=(-H "authorization: Bearer $OPERATOR_TOKEN" -H 'content-type: application/json')
code=$(curl -s -o /tmp/flashflow-sale.json -w '%{http_code}' "${auth[@]}" -X POST "$API/admin/sales" \
  -d "{\"id\":\"$SALE\",\"name\":\"Demo drop\",\"stock\":100,\"per_user_limit\":2}")
case "$code" in
  201) ;;
  200|409) curl -sf "${auth[@]}" -X POST "$API/admin/sales/$SALE/reset" -d '{"stock":100}' >/tmp/flashflow-sale.json ;;
  *) cat /tmp/flashflow-sale.json; die "creating the sale answered $code" ;;
esac
cat /tmp/flashflow-sale.json; echo
awsl sqs purge-queue --queue-url "$ORDERS_QUEUE_URL" || true

say "buying: POST /sales/$SALE/buy as buyer alice"
resp=$(curl -s -w ' HTTP %{http_code}' -X POST "$API/sales/$SALE/buy" -H 'x-user-id: alice' \
  -H 'content-type: application/json' -H "idempotency-key: demo-$(date +%s%N)" -d '{"quantity":1}')
echo "$resp"
[[ "$resp" == *"HTTP 202" ]] || die "the buy was not accepted"
order=$(sed -E 's/.*"order_id":"([^"]+)".*/\1/' <<<"$resp")

say "the order message in SQS (awslocal sqs receive-message)"
for _ in 1 2 3; do
  msg=$(awsl sqs receive-message --queue-url "$ORDERS_QUEUE_URL" --max-number-of-messages 10 --wait-time-seconds 2 \
    --visibility-timeout 0 --query 'Messages[].Body' --output text || true)
  [[ "$msg" == *"$order"* ]] && break
done
echo "$msg"
[[ "$msg" == *"$order"* ]] || die "order $order did not show up in SQS"

say "sale after the buy"
curl -sf "${auth[@]}" "$API/admin/sales/$SALE"; echo
say "demo OK: order $order reserved in Redis and queued in SQS"
