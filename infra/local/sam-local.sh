#!/usr/bin/env bash
# The functions in Lambda containers: SAM CLI's `sam local` on Docker, against the local stack that
# `make up` runs (Redis, Postgres, LocalStack, DynamoDB Local, localstripe). Opt-in: nothing else
# needs Docker.
#
#   infra/local/sam-local.sh serve   `make sam-local`: prepare, then `sam local start-api` (foreground),
#                                    settle behind `sam local start-lambda` fed from the orders queue
#   infra/local/sam-local.sh check   `make sam-local-check`: prepare, start the API, check it, invoke
#                                    every events/ fixture (infra/local/sam_local_check.py), stop
# `make down` stops the dockerd this script started.
#
# Prepare: Docker from Debian's packages (docker.io) started without a bridge or iptables rules
# (the host's network is left alone; every container runs on it, so traffic stays on loopback); the
# Lambda base image SAM looks for, built here from Debian packages (debootstrap; nothing is pulled
# from a registry); the eight functions built with cargo-lambda for this machine's architecture
# (one workspace build); a copy of template.yaml pointing at them, and the environment file that
# points every function at the local stack. Docs: docs/operations.md#sam-local-lambda-containers-on-this-machine.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
source infra/local/env.sh

SAM_DIR="$FLASHFLOW_HOME/sam-local"
SAM_PORT="${SAM_PORT:-3090}"
SAM_LAMBDA_PORT="${SAM_LAMBDA_PORT:-3001}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
case "$(uname -m)" in
  x86_64) ARCH=x86_64 ARCH_FLAG=--x86-64 ;;
  aarch64 | arm64) ARCH=arm64 ARCH_FLAG=--arm64 ;;
  *) die "no Lambda architecture for $(uname -m)" ;;
esac
# The name and tag SAM CLI gives provided.al2023's base image (samcli/local/docker/lambda_image.py).
BASE_IMAGE="public.ecr.aws/lambda/provided:al2023-$ARCH"
# Package (binary) and the template's function, in the order the template lists them.
FUNCTIONS="buy:BuyFunction operator:OperatorFunction settle:SettleFunction reconcile:ReconcileFunction
orders:OrdersFunction queue:QueueFunction checkout:CheckoutFunction expire:ExpireFunction"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_docker() {
  command -v dockerd >/dev/null && command -v debootstrap >/dev/null && return
  say "installing docker.io and debootstrap (Debian packages)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io debootstrap >/dev/null
}

start_docker() {
  if docker info >/dev/null 2>&1; then return; fi
  say "starting dockerd (no bridge, no iptables: containers use the host's network)"
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  # Started directly (not through a function, whose subshell would hold the pid), so `make down`
  # stops dockerd itself (sudo passes the signal on); in a session of its own, so the Ctrl-C that
  # stops `make sam-local` does not stop Docker.
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" setsid nohup dockerd --iptables=false --ip-masq=false --bridge=none >"$LOG_DIR/dockerd.log" 2>&1 &
  echo $! >"$RUN_DIR/dockerd.pid"
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return
    sleep 0.5
  done
  die "dockerd did not answer in 30 s (see $LOG_DIR/dockerd.log)"
}

# A Debian bookworm root file system with what a Lambda base image sets (the task and runtime
# directories, LAMBDA_TASK_ROOT, the library path), tagged as the image SAM builds its emulator
# image on. The functions need only glibc and CA certificates.
base_image() {
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then return; fi
  local rootfs="$SAM_DIR/rootfs"
  say "building $BASE_IMAGE from Debian packages (debootstrap, ~1 min)"
  as_root rm -rf "$rootfs"
  as_root debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$DEBIAN_MIRROR" \
    >"$LOG_DIR/debootstrap.log" 2>&1 || die "debootstrap failed (see $LOG_DIR/debootstrap.log)"
  as_root mkdir -p "$rootfs/var/task" "$rootfs/var/runtime" "$rootfs/opt"
  as_root rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs/usr/share/doc" "$rootfs/usr/share/man" "$rootfs/usr/share/locale"
  as_root tar -C "$rootfs" -c . | docker import \
    --change 'ENV LAMBDA_TASK_ROOT=/var/task LAMBDA_RUNTIME_DIR=/var/runtime TZ=:/etc/localtime' \
    --change 'ENV LD_LIBRARY_PATH=/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib' \
    --change 'WORKDIR /var/task' - "$BASE_IMAGE" >/dev/null
  as_root rm -rf "$rootfs"
}

build_functions() {
  local packages=() f
  for f in $FUNCTIONS; do packages+=(-p "${f%%:*}"); done
  say "building the functions for $ARCH (cargo lambda build --release $ARCH_FLAG, one workspace build)"
  cargo lambda build --release "$ARCH_FLAG" "${packages[@]}"
}

# template.yaml with each function's CodeUri at its built bootstrap and the layer at its folder
# (absolute paths: the copy lives elsewhere), so `sam local` runs what was built without `sam build`.
local_template() {
  mkdir -p "$SAM_DIR"
  python3 - "$ROOT" "${CARGO_TARGET_DIR:-$ROOT/target}" "$SAM_DIR/template.yaml" $FUNCTIONS <<'PY'
import re, sys
root, target, out, pairs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
text = open(f"{root}/template.yaml").read()
for pair in pairs:
    package, _ = pair.split(":")
    text, n = re.subn(rf"CodeUri: functions/{package}\n", f"CodeUri: {target}/lambda/{package}\n", text)
    assert n == 1, f"template.yaml: CodeUri of {package}"
text, n = re.subn(r"ContentUri: (infra/\S+)", rf"ContentUri: {root}/\1", text)
assert n == 1, "template.yaml: the layer's ContentUri"
open(out, "w").write(text)
PY
}

# Every variable the functions read, pointed at the local stack (SAM overrides declared variables
# only; template_check.rs keeps the template declaring all of them). Keys come from LocalStack's
# Secrets Manager, as in AWS; ORDERS_QUEUE_URL may name another queue (the check uses its own).
env_file() {
  python3 - "$SAM_DIR/env.json" <<'PY'
import json, os, sys
e = os.environ
ls = f"http://127.0.0.1:{e['LOCALSTACK_PORT']}"
params = {
    "AWS_ENDPOINT_URL_SQS": ls,
    "AWS_ENDPOINT_URL_SECRETS_MANAGER": ls,
    "AWS_ENDPOINT_URL_DYNAMODB": f"http://127.0.0.1:{e['DYNAMODB_PORT']}",
    "REDIS_URL": e["REDIS_URL"],
    "REDIS_SECRET_ARN": "",
    "REDIS_CA_FILE": "",
    "DATABASE_URL": e["DATABASE_URL"] + "?sslmode=disable",
    "DATABASE_SECRET_ARN": e["DATABASE_SECRET_ARN"],
    "DATABASE_CA_FILE": "",
    "ORDERS_QUEUE_URL": e.get("SAM_ORDERS_QUEUE_URL") or e["ORDERS_QUEUE_URL"],
    "ORDERS_DLQ_URL": e["ORDERS_DLQ_URL"],
    "ORDERS_TABLE": e["ORDERS_TABLE"],
    "ORDER_SIGNING_KEY_SECRET_ARN": "flashflow/order-signing-key",
    "ADMISSION_KEY_SECRET_ARN": "flashflow/admission-key",
    "STRIPE_API_BASE": e["STRIPE_API_BASE"],
    "STRIPE_SECRET_KEY_SECRET_ARN": "flashflow/stripe-secret-key",
    "STRIPE_WEBHOOK_SECRET_ARN": "flashflow/stripe-webhook-secret",
    "STRIPE_PUBLISHABLE_KEY": e["STRIPE_PUBLISHABLE_KEY"],
    "STRIPE_JS_URL": e["STRIPE_JS_URL"],
    # The draw's beacon: the local stand-in (services.sh starts it), checked under its own key.
    "BEACON_URL": e["BEACON_URL"],
    "BEACON_CHAIN": e["BEACON_CHAIN"],
    "BEACON_PUBLIC_KEY": e["BEACON_PUBLIC_KEY"],
    # SAM local runs no JWT or IAM authorizer: the buyer comes from X-User-Id and the operator
    # shows the local bearer token, as with flashflow-local.
    "TRUST_USER_HEADER": "true",
    "OPERATOR_TOKEN": e["OPERATOR_TOKEN"],
    "SALE_RESET_ENABLED": e["SALE_RESET_ENABLED"],
}
json.dump({"Parameters": params}, open(sys.argv[1], "w"), indent=1)
PY
}

prepare() {
  if curl -s -o /dev/null -m 2 "http://127.0.0.1:$SAM_PORT/"; then
    die "something already answers on :$SAM_PORT (a make sam-local still running?): stop it, or set SAM_PORT"
  fi
  install_docker
  start_docker
  base_image
  [ "${SKIP_BUILD:-0}" = 1 ] || build_functions
  local_template
  env_file
}

# The flags every `sam local` command here takes.
sam_flags() {
  SAM_FLAGS=(--template "$SAM_DIR/template.yaml" --env-vars "$SAM_DIR/env.json"
    --parameter-overrides "Architecture=$ARCH" --skip-pull-image --docker-network host
    --region "$AWS_REGION")
}

# Lambda containers a stopped `sam local` left behind.
remove_containers() {
  docker ps -aq --filter label=sam.cli.container.type=lambda | xargs -r docker rm -f >/dev/null
}

# The API in the foreground; settle in its Lambda container behind `sam local start-lambda` (the
# Invoke API), fed by `flashflow-local settle` as the SQS event source mapping feeds it in AWS
# (EVENT_SOURCE_INVOKE_URL), so an order bought through the API ends CONFIRMED.
serve() {
  local local_bin="${CARGO_TARGET_DIR:-$ROOT/target}/release/flashflow-local"
  prepare
  sam_flags
  [ -x "$local_bin" ] || cargo build --release -p flashflow-local
  "$SAM_VENV/bin/python" "$ROOT/infra/local/sam_host_network.py" local start-lambda "${SAM_FLAGS[@]}" \
    --host 127.0.0.1 --port "$SAM_LAMBDA_PORT" --warm-containers LAZY >"$LOG_DIR/sam-local-lambda.log" 2>&1 &
  LAMBDA_PID=$!
  EVENT_SOURCE_INVOKE_URL="http://127.0.0.1:$SAM_LAMBDA_PORT/2015-03-31/functions/SettleFunction/invocations" \
    EVENT_SOURCE_MAX_CONCURRENCY=1 RUST_LOG=warn "$local_bin" settle >"$LOG_DIR/sam-local-settle.log" 2>&1 &
  SOURCE_PID=$!
  say "sam local start-api on http://127.0.0.1:$SAM_PORT; settle through sam local start-lambda on :$SAM_LAMBDA_PORT (Ctrl-C stops them)"
  "$SAM_VENV/bin/python" "$ROOT/infra/local/sam_host_network.py" local start-api "${SAM_FLAGS[@]}" \
    --host 127.0.0.1 --port "$SAM_PORT" --warm-containers EAGER &
  API_PID=$!
  # All three in the background, this shell waiting: Ctrl-C or a kill of this script stops them
  # all (a background job ignores SIGINT, so the EXIT trap sends each a SIGTERM).
  trap 'set +e; kill $API_PID $SOURCE_PID $LAMBDA_PID 2>/dev/null; wait $API_PID $SOURCE_PID $LAMBDA_PID 2>/dev/null; remove_containers' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  wait $API_PID
}

check() {
  CHECK_QUEUE="flashflow-sam-check-$$"
  CHECK_QUEUE_URL=$(awslocal sqs create-queue --region "$AWS_REGION" --queue-name "$CHECK_QUEUE" \
    --attributes VisibilityTimeout=30 --query QueueUrl --output text 2>/dev/null)
  export SAM_ORDERS_QUEUE_URL="$CHECK_QUEUE_URL"
  prepare
  sam_flags
  say "sam local start-api on http://127.0.0.1:$SAM_PORT (orders to $CHECK_QUEUE)"
  # Python itself in the background (not a function's subshell), so the trap stops SAM itself;
  # SIGTERM, as a background job ignores SIGINT; remove_containers then cleans up after it.
  "$SAM_VENV/bin/python" "$ROOT/infra/local/sam_host_network.py" local start-api "${SAM_FLAGS[@]}" \
    --host 127.0.0.1 --port "$SAM_PORT" --warm-containers EAGER >"$LOG_DIR/sam-local.log" 2>&1 &
  SAM_PID=$!
  trap 'set +e; kill $SAM_PID 2>/dev/null; wait $SAM_PID 2>/dev/null; remove_containers
    awslocal sqs delete-queue --region "$AWS_REGION" --queue-url "$CHECK_QUEUE_URL" >/dev/null 2>&1' EXIT
  # The SAM CLI's venv has boto3 (the check reads the queue as an event source would).
  "$SAM_VENV/bin/python" infra/local/sam_local_check.py --api "http://127.0.0.1:$SAM_PORT" \
    --queue-url "$CHECK_QUEUE_URL" --sam "$SAM_VENV/bin/python $ROOT/infra/local/sam_host_network.py local" \
    --sam-flags "${SAM_FLAGS[*]}" --log "$LOG_DIR/sam-local.log" \
    --local-bin "${CARGO_TARGET_DIR:-$ROOT/target}/release/flashflow-local"
}

case "${1:-serve}" in
  serve) serve ;;
  check) check ;;
  *) die "usage: $0 serve|check" ;;
esac
