#!/usr/bin/env bash
# Create FlashFlow's queue (with its DLQ and redrive policy), the order-status table and the
# secrets the functions read at start (as in AWS). Idempotent.
# Runs from infra/local/up.sh (a LocalStack ready.d hook in form, if LocalStack runs elsewhere).
set -euo pipefail
REGION=${AWS_DEFAULT_REGION:-us-east-1}
ORDERS_QUEUE=${ORDERS_QUEUE:-flashflow-orders}
ORDERS_DLQ=${ORDERS_DLQ:-flashflow-orders-dlq}
ORDERS_TABLE=${ORDERS_TABLE:-flashflow-orders}
DYNAMODB_ENDPOINT=${DYNAMODB_ENDPOINT:-http://localhost:8000}
MAX_RECEIVE_COUNT=${MAX_RECEIVE_COUNT:-5}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}

awslocal sqs create-queue --region "$REGION" --queue-name "$ORDERS_DLQ" \
  --attributes MessageRetentionPeriod=1209600 >/dev/null
dlq_url=$(awslocal sqs get-queue-url --region "$REGION" --queue-name "$ORDERS_DLQ" --query QueueUrl --output text)
dlq_arn=$(awslocal sqs get-queue-attributes --region "$REGION" --queue-url "$dlq_url" \
  --attribute-names QueueArn --query Attributes.QueueArn --output text)
cat >/tmp/flashflow-queue-attrs.json <<JSON
{"VisibilityTimeout": "30", "ReceiveMessageWaitTimeSeconds": "20",
 "RedrivePolicy": "{\"deadLetterTargetArn\":\"$dlq_arn\",\"maxReceiveCount\":\"$MAX_RECEIVE_COUNT\"}"}
JSON
awslocal sqs create-queue --region "$REGION" --queue-name "$ORDERS_QUEUE" \
  --attributes file:///tmp/flashflow-queue-attrs.json >/dev/null
echo "queue $ORDERS_QUEUE (DLQ $ORDERS_DLQ after $MAX_RECEIVE_COUNT receives)"

if ! aws dynamodb describe-table --region "$REGION" --endpoint-url "$DYNAMODB_ENDPOINT" \
  --table-name "$ORDERS_TABLE" >/dev/null 2>&1; then
  aws dynamodb create-table --region "$REGION" --endpoint-url "$DYNAMODB_ENDPOINT" \
    --table-name "$ORDERS_TABLE" --billing-mode PAY_PER_REQUEST \
    --attribute-definitions AttributeName=order_id,AttributeType=S \
    --key-schema AttributeName=order_id,KeyType=HASH >/dev/null
fi
echo "table $ORDERS_TABLE"

# The local database credentials, in the shape RDS-managed secrets have.
DATABASE_SECRET=${DATABASE_SECRET_ARN:-flashflow/database}
secret_value=$(printf '{"username":"%s","password":"%s","engine":"postgres"}' \
  "${DATABASE_USER:-postgres}" "${DATABASE_PASSWORD:-postgres}")
if awslocal secretsmanager describe-secret --region "$REGION" --secret-id "$DATABASE_SECRET" >/dev/null 2>&1; then
  awslocal secretsmanager put-secret-value --region "$REGION" --secret-id "$DATABASE_SECRET" \
    --secret-string "$secret_value" >/dev/null
else
  awslocal secretsmanager create-secret --region "$REGION" --name "$DATABASE_SECRET" \
    --secret-string "$secret_value" >/dev/null
fi
echo "secret $DATABASE_SECRET"

# The keys, as the template's secrets hold them (bare strings), created once: a function reads its
# key from here when it runs in a Lambda container (make sam-local); flashflow-local reads the same
# values from the environment (infra/local/env.sh).
key_secret() {
  if ! awslocal secretsmanager describe-secret --region "$REGION" --secret-id "$1" >/dev/null 2>&1; then
    awslocal secretsmanager create-secret --region "$REGION" --name "$1" --secret-string "$2" >/dev/null
  fi
  echo "secret $1"
}
key_secret flashflow/order-signing-key "${ORDER_SIGNING_KEY:-local-order-signing-key-not-a-secret-0001}"
key_secret flashflow/admission-key "${ADMISSION_KEY:-local-admission-key-not-a-secret-000000001}"
key_secret flashflow/stripe-secret-key "${STRIPE_SECRET_KEY:-sk_test_local_not_a_secret}"
key_secret flashflow/stripe-webhook-secret "${STRIPE_WEBHOOK_SECRET:-whsec_local_not_a_secret}"
