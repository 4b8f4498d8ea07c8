# Shared settings of the local stack. Sourced by the other scripts and by the Makefile's commands.
# Everything can be overridden from the environment.
: "${FLASHFLOW_HOME:=${XDG_CACHE_HOME:-$HOME/.cache}/flashflow}"   # installs, logs, pids
: "${AWS_REGION:=us-east-1}"
: "${LOCALSTACK_PORT:=4566}"
: "${DYNAMODB_PORT:=8000}"
: "${STRIPE_PORT:=8420}"
: "${API_PORT:=3080}"
: "${ORDERS_QUEUE:=flashflow-orders}"
: "${ORDERS_DLQ:=flashflow-orders-dlq}"
: "${ORDERS_TABLE:=flashflow-orders}"
: "${REDIS_URL:=redis://127.0.0.1:6379}"
: "${DATABASE_URL:=postgres://postgres:postgres@127.0.0.1:5432/flashflow}"
: "${OPERATOR_TOKEN:=local-operator-token}"
# Resets end a sale's round; the local stack allows them for demos and load tests (AWS: off).
: "${SALE_RESET_ENABLED:=true}"
# Database credentials come from (LocalStack's) Secrets Manager, as in AWS; the URL keeps them too
# for the scripts' psql, and the secret's values win in the functions.
: "${DATABASE_SECRET_ARN:=flashflow/database}"
# Signs order messages (buy, sweeper) so settle can refuse anyone else's; a local-only value.
: "${ORDER_SIGNING_KEY:=local-order-signing-key-not-a-secret-0001}"
# Signs the waiting room's tickets and admission tokens (queue function, buy); a local-only value.
: "${ADMISSION_KEY:=local-admission-key-not-a-secret-000000001}"

export FLASHFLOW_HOME AWS_REGION LOCALSTACK_PORT DYNAMODB_PORT STRIPE_PORT API_PORT ORDERS_QUEUE ORDERS_DLQ \
  ORDERS_TABLE REDIS_URL DATABASE_URL DATABASE_SECRET_ARN OPERATOR_TOKEN ORDER_SIGNING_KEY ADMISSION_KEY SALE_RESET_ENABLED
export AWS_DEFAULT_REGION="$AWS_REGION"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_ENDPOINT_URL_SQS="${AWS_ENDPOINT_URL_SQS:-http://127.0.0.1:$LOCALSTACK_PORT}"
export AWS_ENDPOINT_URL_SECRETS_MANAGER="${AWS_ENDPOINT_URL_SECRETS_MANAGER:-http://127.0.0.1:$LOCALSTACK_PORT}"
# Stripe's API: localstripe locally (any key works there); Stripe's own in AWS.
export STRIPE_API_BASE="${STRIPE_API_BASE:-http://127.0.0.1:$STRIPE_PORT}"
export STRIPE_SECRET_KEY="${STRIPE_SECRET_KEY:-sk_test_local_not_a_secret}"
# The storefront's Stripe.js: localstripe's stand-in (with infra/local/run-localstripe.py's
# additions), and a publishable key (localstripe takes any pk_test_ one).
export STRIPE_JS_URL="${STRIPE_JS_URL:-$STRIPE_API_BASE/js.stripe.com/v3/}"
export STRIPE_PUBLISHABLE_KEY="${STRIPE_PUBLISHABLE_KEY:-pk_test_local_not_a_secret}"
# The local API's webhook endpoint secret (up.sh registers the endpoint with localstripe).
export STRIPE_WEBHOOK_SECRET="${STRIPE_WEBHOOK_SECRET:-whsec_local_not_a_secret}"
# The public randomness beacon the draw mixes in: the local stand-in (`flashflow-local beacon`,
# started by services.sh) with drand quicknet's genesis and period, under its own key (its /info
# gives these; a unit test keeps them in step with BEACON_SEED's default); drand's quicknet in AWS.
: "${BEACON_PORT:=8431}"
export BEACON_URL="${BEACON_URL:-http://127.0.0.1:$BEACON_PORT}"
export BEACON_LISTEN_ADDR="${BEACON_LISTEN_ADDR:-127.0.0.1:$BEACON_PORT}"
export BEACON_CHAIN="${BEACON_CHAIN:-69e8e894a08d71c203061c0105b92fed3b56465d6e5771ef670cb851667d2c46}"
export BEACON_PUBLIC_KEY="${BEACON_PUBLIC_KEY:-b94f1956e7e23e593cc54df88a5a9dd59cc37522e75cd8fa59c80f1607d55ffd4e78ef96a84ad78dc6f4ed8c981b64c814edfc099f2f5340a675b41ca3d177897ebb6b74f49c360e518dbdacb9bc8e12906a3b0a4b25369113d692d856fbd584}"
export AWS_ENDPOINT_URL_DYNAMODB="${AWS_ENDPOINT_URL_DYNAMODB:-http://localhost:$DYNAMODB_PORT}"
export ORDERS_QUEUE_URL="${ORDERS_QUEUE_URL:-http://localhost:$LOCALSTACK_PORT/queue/$AWS_REGION/000000000000/$ORDERS_QUEUE}"
export ORDERS_DLQ_URL="${ORDERS_DLQ_URL:-http://localhost:$LOCALSTACK_PORT/queue/$AWS_REGION/000000000000/$ORDERS_DLQ}"

LS_VENV="$FLASHFLOW_HOME/localstack-venv"
TOOLS_VENV="$FLASHFLOW_HOME/tools-venv"
SAM_VENV="$FLASHFLOW_HOME/sam-venv"
FUZZ_VENV="$FLASHFLOW_HOME/schemathesis-venv"
SCHEMATHESIS_VERSION=4.32.5
STRIPE_VENV="$FLASHFLOW_HOME/localstripe-venv"
CARGO_TOOLS="$FLASHFLOW_HOME/cargo-tools"
DDB_DIR="$FLASHFLOW_HOME/dynamodb-local"
RUN_DIR="$FLASHFLOW_HOME/run"
LOG_DIR="$FLASHFLOW_HOME/logs"
# awslocal, aws and cargo-lambda come from our venvs.
# cargo-lambda finds zig only through the python3 of its own venv, so that venv comes first.
export PATH="$TOOLS_VENV/bin:$LS_VENV/bin:$PATH:$SAM_VENV/bin:$CARGO_TOOLS/bin"
export SAM_CLI_TELEMETRY=0

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '\033[31mERROR: %s\033[0m\n' "$*" >&2; exit 1; }
