#!/usr/bin/env bash
# Start or stop FlashFlow's own local processes (release build of flashflow-local) in the background:
#   api        the buy, order-status and operator handlers on 127.0.0.1:$API_PORT
#   settle     the SQS event source feeding the settle handler in-process
#   reconcile  the outbox sweeper
#   expire     checkout's expiry job (holds past pay_by end, their units go back)
#   beacon     the stand-in for drand's randomness beacon on $BEACON_LISTEN_ADDR (the draw's round)
# usage: services.sh start|stop [beacon api settle reconcile expire]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/../.." && pwd)
. "$HERE/env.sh"
mkdir -p "$RUN_DIR" "$LOG_DIR"
# FLASHFLOW_LOCAL_BIN picks another build (the chaos run in `make test` uses the debug one).
BIN="${FLASHFLOW_LOCAL_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/flashflow-local}"
action=${1:-start}; shift || true
names=${*:-beacon api settle reconcile expire}

stop_one() {
  local f="$RUN_DIR/$1.pid"
  if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then
    kill "$(cat "$f")" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$(cat "$f")" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$(cat "$f")" 2>/dev/null || true
  fi
  rm -f "$f"
}

# Each process logs in to Redis as its function's ACL user (infra/local/redis-users.sh); expire
# is checkout's.
redis_user() {
  case "$1" in api) echo api ;; settle) echo settle ;; reconcile) echo reconcile ;; expire) echo checkout ;; esac
}

start_one() {
  stop_one "$1"
  [ -x "$BIN" ] || die "$BIN is missing: run 'make build'"
  # Appended: a process restarted (the chaos run kills them) keeps what it logged before.
  echo "=== $(date -u +%FT%TZ) $1 starting" >>"$LOG_DIR/$1.log"
  # A short long-poll wait, so a stopped event source leaves no long poll behind for long.
  REDIS_SECRET_ARN="${REDIS_SECRET_ARN:-flashflow/redis/$(redis_user "$1")}" \
  LISTEN_ADDR="127.0.0.1:$API_PORT" TRUST_USER_HEADER=1 RUST_LOG="${RUST_LOG:-warn}" \
    EVENT_SOURCE_POLL_WAIT_MS="${EVENT_SOURCE_POLL_WAIT_MS:-2000}" OUTBOX_THRESHOLD_MS="${OUTBOX_THRESHOLD_MS:-30000}" \
    nohup "$BIN" "$1" >>"$LOG_DIR/$1.log" 2>&1 &
  echo $! >"$RUN_DIR/$1.pid"
  if [ "$1" = api ]; then
    for _ in $(seq 100); do
      curl -s -o /dev/null "http://127.0.0.1:$API_PORT/" && return 0
      kill -0 "$(cat "$RUN_DIR/api.pid")" 2>/dev/null || { cat "$LOG_DIR/api.log" >&2; die "the API exited"; }
      sleep 0.1
    done
    die "the API did not answer on :$API_PORT"
  fi
  sleep 0.3
  kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null || { cat "$LOG_DIR/$1.log" >&2; die "$1 exited"; }
}

for n in $names; do
  case "$n" in beacon|api|settle|reconcile|expire) ;; *) die "unknown service $n" ;; esac
  case "$action" in
    start) start_one "$n"; say "$n running (log $LOG_DIR/$n.log)" ;;
    stop) stop_one "$n" ;;
    *) die "usage: services.sh start|stop [beacon api settle reconcile expire]" ;;
  esac
done
