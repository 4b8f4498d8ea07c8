#!/usr/bin/env bash
# Start the local stack (idempotent): Redis, PostgreSQL, LocalStack (SQS, host mode), DynamoDB Local,
# localstripe, then create the queue, its DLQ and the order-status table. No Docker needed.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/../.." && pwd)
. "$HERE/env.sh"
mkdir -p "$RUN_DIR" "$LOG_DIR"
[ -x "$LS_VENV/bin/python" ] && [ -f "$DDB_DIR/DynamoDBLocal.jar" ] || die "the local stack is not installed: run 'make setup' first"

wait_for() { # name timeout-seconds command...
  local name=$1 t=$2; shift 2
  for _ in $(seq $((t * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "$name did not become ready in ${t}s (logs: $LOG_DIR)"
}
pid_alive() { [ -f "$RUN_DIR/$1.pid" ] && kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }

# --- Redis
if ! redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1; then
  say "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  mkdir -p "$FLASHFLOW_HOME/redis-data"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly yes \
    --appendfsync everysec --dir "$FLASHFLOW_HOME/redis-data" --logfile "$LOG_DIR/redis.log"
  wait_for Redis 10 redis-cli -u "$REDIS_URL" ping
fi
# A 202 lives in Redis until its message is in SQS: Redis keeps an append-only file, fsynced every
# second, as a production Redis (ElastiCache with AOF, or a replica) would. A Redis that was started
# without it (this machine's own) is switched to it here; its rewrite runs in the background.
if [ "$(redis-cli -u "$REDIS_URL" config get appendonly | tail -n1)" != yes ]; then
  say "turning on Redis' append-only file (appendfsync everysec)"
  redis-cli -u "$REDIS_URL" config set appendfsync everysec >/dev/null
  redis-cli -u "$REDIS_URL" config set appendonly yes >/dev/null \
    || say "Redis refused appendonly (its dir is not writable?): running without persistence"
fi

# --- PostgreSQL
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  say "starting PostgreSQL"
  ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
  [ -n "$ver" ] || die "no PostgreSQL cluster found under /etc/postgresql"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start
  wait_for PostgreSQL 20 pg_isready -q -h 127.0.0.1 -p 5432
fi
ADMIN_URL="${DATABASE_URL%/*}/postgres"
if ! psql "$ADMIN_URL" -qtAc 'SELECT 1' >/dev/null 2>&1; then
  # A fresh Debian install only trusts the local socket: give the postgres user the password the
  # default DATABASE_URL uses (harmless where trust auth is already configured).
  su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null 2>&1 || true
  psql "$ADMIN_URL" -qtAc 'SELECT 1' >/dev/null 2>&1 || die "cannot connect to PostgreSQL as $ADMIN_URL: set DATABASE_URL"
fi
for db in "${DATABASE_URL##*/}" flashflow_test; do
  psql "$ADMIN_URL" -qtAc "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1 \
    || psql "$ADMIN_URL" -qc "CREATE DATABASE \"$db\"" >/dev/null
done

# --- LocalStack (SQS, Secrets Manager), host mode
ls_health() { curl -sf "http://localhost:$LOCALSTACK_PORT/_localstack/health"; }
ls_ready() {
  local h; h=$(ls_health) || return 1
  grep -Eq '"sqs": *"(available|running)"' <<<"$h" && grep -Eq '"secretsmanager": *"(available|running)"' <<<"$h"
}
# A LocalStack that closes every connection was not started by run-localstack.py (an older
# checkout's): it works, but every SQS call costs a new connection, and benchmarks would say so.
ls_closes() { curl -sf -D - -o /dev/null "http://localhost:$LOCALSTACK_PORT/_localstack/health" | grep -qi '^connection: *close'; }
if ls_health >/dev/null && pid_alive localstack && { ! ls_ready || ls_closes; }; then
  say "restarting LocalStack: the running one lacks a service this version needs, or closes every connection"
  kill "$(cat "$RUN_DIR/localstack.pid")"
  for _ in $(seq 100); do ls_health >/dev/null || break; sleep 0.1; done
fi
if ! ls_ready; then
  say "starting LocalStack (SQS, Secrets Manager) on :$LOCALSTACK_PORT"
  mkdir -p "$FLASHFLOW_HOME/localstack-fs"
  # Loopback only: anyone who can reach the machine could otherwise put orders on the queue.
  # (LocalStack's default twisted server ignores the host of GATEWAY_LISTEN; hypercorn binds it.)
  # `exec` makes the background job LocalStack itself: its pid is the one `make down` stops, and no
  # shell is left holding the caller's output open.
  (cd "$FLASHFLOW_HOME" && OVERRIDE_IN_DOCKER=0 FILESYSTEM_ROOT="$FLASHFLOW_HOME/localstack-fs" \
    DISABLE_EVENTS=1 SERVICES=sqs,secretsmanager SQS_ENDPOINT_STRATEGY=path LOCALSTACK_HOST="localhost:$LOCALSTACK_PORT" \
    GATEWAY_LISTEN="127.0.0.1:$LOCALSTACK_PORT" GATEWAY_SERVER=hypercorn \
    exec nohup "$LS_VENV/bin/python" "$HERE/run-localstack.py" </dev/null >"$LOG_DIR/localstack.log" 2>&1) &
  echo $! >"$RUN_DIR/localstack.pid"
  wait_for LocalStack 60 ls_ready
fi

# --- DynamoDB Local
ddb_ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://localhost:$DYNAMODB_PORT")" != 000 ]; }
if ! ddb_ready; then
  say "starting DynamoDB Local on :$DYNAMODB_PORT"
  # Run from a folder of ours: DynamoDB Local writes its metadata file into the working directory.
  mkdir -p "$FLASHFLOW_HOME/dynamodb-run"
  (cd "$FLASHFLOW_HOME/dynamodb-run" && exec nohup java -Djava.library.path="$DDB_DIR/DynamoDBLocal_lib" \
    -jar "$DDB_DIR/DynamoDBLocal.jar" -inMemory -disableTelemetry -port "$DYNAMODB_PORT" \
    </dev/null >"$LOG_DIR/dynamodb.log" 2>&1) &
  echo $! >"$RUN_DIR/dynamodb.pid"
  wait_for "DynamoDB Local" 30 ddb_ready
fi

# --- localstripe (Stripe's API, locally), on loopback
stripe_ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$STRIPE_API_BASE/v1/balance")" != 000 ]; }
if [ -x "$STRIPE_VENV/bin/python" ] && ! stripe_ready; then
  say "starting localstripe on 127.0.0.1:$STRIPE_PORT"
  (cd "$FLASHFLOW_HOME" && exec nohup "$STRIPE_VENV/bin/python" "$HERE/run-localstripe.py" "$STRIPE_PORT" \
    </dev/null >"$LOG_DIR/localstripe.log" 2>&1) &
  echo $! >"$RUN_DIR/localstripe.pid"
  wait_for localstripe 30 stripe_ready
fi
# Its webhook goes to the local API (localstripe keeps this in memory: registered on every `up`).
if stripe_ready; then
  curl -s -o /dev/null -u "$STRIPE_SECRET_KEY:" -X POST "$STRIPE_API_BASE/_config/webhooks/flashflow" \
    -d "url=http://127.0.0.1:$API_PORT/webhooks/stripe" -d "secret=$STRIPE_WEBHOOK_SECRET" \
    || die "registering the local webhook with localstripe failed"
fi

# --- Resources (the same script Docker LocalStack runs from its ready.d hook)
DYNAMODB_ENDPOINT="$AWS_ENDPOINT_URL_DYNAMODB" bash "$ROOT/localstack/init/ready.d/10-flashflow.sh" >"$LOG_DIR/init.log" 2>&1 \
  || { cat "$LOG_DIR/init.log" >&2; die "creating the queue, table and secret failed"; }
bash "$HERE/redis-users.sh" 2>>"$LOG_DIR/init.log" || { cat "$LOG_DIR/init.log" >&2; die "creating the Redis users failed"; }
say "local stack up: SQS $AWS_ENDPOINT_URL_SQS, DynamoDB $AWS_ENDPOINT_URL_DYNAMODB, Stripe $STRIPE_API_BASE, Redis $REDIS_URL, Postgres $DATABASE_URL"
