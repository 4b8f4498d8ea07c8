#!/usr/bin/env bash
# `make smoke API=https://<buyer api> TOKEN=<buyer jwt>`: a small k6 flash sale against a deployed
# stack (bench/smoke.js). It creates the sale through the operator API, signed with your AWS
# credentials (SigV4, botocore from the SAM CLI's venv); OPERATOR_API defaults to the stack's output.
# Dry run on the local stack: make smoke API=http://127.0.0.1:3080 TOKEN=x USER_ID=smoke-buyer \
#   OPERATOR_API=http://127.0.0.1:3080 OPERATOR_TOKEN=local-operator-token
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/../.." && pwd)
. "$ROOT/infra/local/env.sh"
: "${API:?API=https://<id>.execute-api.<region>.amazonaws.com (the BuyerApiUrl output)}"
: "${TOKEN:?TOKEN=<a JWT your identity provider issued for one test buyer>}"
STACK=${STACK:-flashflow}; LIMIT=${LIMIT:-3}; STOCK=${STOCK:-100}
if [ -z "${OPERATOR_API:-}" ]; then
  OPERATOR_API=$(aws cloudformation describe-stacks --stack-name "$STACK" \
    --query "Stacks[0].Outputs[?OutputKey=='OperatorApiUrl'].OutputValue" --output text)
fi
SALE=smoke-$(date +%s)
body=$(printf '{"id":"%s","name":"smoke test","stock":%d,"per_user_limit":%d}' "$SALE" "$STOCK" "$LIMIT")
say "creating sale $SALE (stock $STOCK, limit $LIMIT) at $OPERATOR_API"
if [ -n "${OPERATOR_TOKEN:-}" ]; then
  curl -fsS -X POST "$OPERATOR_API/admin/sales" -H "authorization: Bearer $OPERATOR_TOKEN" \
    -H 'content-type: application/json' -d "$body"
else
  "$SAM_VENV/bin/python" - "$OPERATOR_API/admin/sales" "$body" <<'PY'
import sys, urllib.request, botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
url, body = sys.argv[1], sys.argv[2]
session = botocore.session.get_session()
region = session.get_config_variable("region") or "us-east-1"
req = AWSRequest(method="POST", url=url, data=body, headers={"content-type": "application/json"})
SigV4Auth(session.get_credentials(), "execute-api", region).add_auth(req)
with urllib.request.urlopen(urllib.request.Request(url, data=body.encode(), headers=dict(req.headers), method="POST")) as r:
    print(r.read().decode())
PY
fi
echo
say "k6: ${BUYS:-30} buys by one buyer on $API"
k6 run --quiet -e API="$API" -e TOKEN="$TOKEN" -e SALE="$SALE" -e LIMIT="$LIMIT" \
  ${USER_ID:+-e USER_ID="$USER_ID"} "$ROOT/bench/smoke.js"
