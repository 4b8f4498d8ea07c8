#!/usr/bin/env bash
# Start or stop the local API server (target/release/flashflow-local api) in the background.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/../.." && pwd)
. "$HERE/env.sh"
mkdir -p "$RUN_DIR" "$LOG_DIR"
PIDF="$RUN_DIR/api.pid"
stop() {
  if [ -f "$PIDF" ] && kill -0 "$(cat "$PIDF")" 2>/dev/null; then kill "$(cat "$PIDF")"; fi
  rm -f "$PIDF"
}
case "${1:-start}" in
  stop) stop ;;
  start)
    stop
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/flashflow-local"
    [ -x "$BIN" ] || die "$BIN is missing: run 'make build'"
    LISTEN_ADDR="127.0.0.1:$API_PORT" TRUST_USER_HEADER=1 RUST_LOG="${RUST_LOG:-warn}" \
      nohup "$BIN" api >"$LOG_DIR/api.log" 2>&1 &
    echo $! >"$PIDF"
    for _ in $(seq 100); do
      curl -s -o /dev/null "http://127.0.0.1:$API_PORT/" && { say "API on http://127.0.0.1:$API_PORT (log $LOG_DIR/api.log)"; exit 0; }
      kill -0 "$(cat "$PIDF")" 2>/dev/null || { cat "$LOG_DIR/api.log" >&2; die "the API exited"; }
      sleep 0.1
    done
    die "the API did not answer on :$API_PORT" ;;
  *) die "usage: api.sh start|stop" ;;
esac
