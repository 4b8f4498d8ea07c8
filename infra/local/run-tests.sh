#!/usr/bin/env bash
# Run the test levels named as arguments and close with one line of totals:
#   unit         pure domain rules, use cases and handlers on in-memory adapters (no service
#                reachable: in a network namespace of its own where the machine allows one)
#   integration  one test binary against the real local stack (`make test` starts it and sets the env)
#   chaos        a short sale under random faults (infra/local/chaos.py), every promise checked:
#                CHAOS_SECONDS (60), CHAOS_SEED (random, printed); runs the debug build of
#                flashflow-local that the integration level built
#   browser      the storefront and the live view in headless Chromium (infra/local/browser.py),
#                against the API, settle and expire (the same debug build) and localstripe
#   fuzz         schemathesis, an outside client, against an API of its own with the API's OpenAPI
#                document (infra/local/fuzz-api.sh): FUZZ_SEED (random, printed; `make test` fixes it)
set -uo pipefail
rc=0; total_passed=0; total_failed=0
levels=("$@"); [ ${#levels[@]} -gt 0 ] || levels=(unit integration)
for level in "${levels[@]}"; do
  case "$level" in
    unit)
      # With no service reachable: in a network namespace of its own when this machine allows
      # one (root, or user namespaces), so a unit test that talks to a service fails here.
      cmd=(cargo test --workspace --lib --bins)
      if unshare -n true 2>/dev/null; then
        cargo fetch -q
        cmd=(unshare -n bash -c 'ip link set lo up 2>/dev/null; exec cargo test --offline --workspace --lib --bins')
        echo "unit: in a network namespace of its own (no service reachable)"
      fi ;;
    integration) cmd=(cargo test --workspace --test integration) ;;
    chaos)
      cargo build -q -p flashflow-local
      export FLASHFLOW_LOCAL_BIN="${CARGO_TARGET_DIR:-target}/debug/flashflow-local"
      # A Redis database of its own: the integration tests' sales (db 15) are unsettled on
      # purpose, and this run's sweeper must not send them to the queue it checks.
      export REDIS_URL="${CHAOS_REDIS_URL:-redis://127.0.0.1:6379/14}"
      cmd=(python3 infra/local/chaos.py --seconds "${CHAOS_SECONDS:-60}" ${CHAOS_SEED:+--seed "$CHAOS_SEED"} ${CHAOS_FAILOVER:+--failover}) ;;
    browser)
      cargo build -q -p flashflow-local
      export FLASHFLOW_LOCAL_BIN="${CARGO_TARGET_DIR:-target}/debug/flashflow-local"
      export REDIS_URL="${BROWSER_REDIS_URL:-redis://127.0.0.1:6379/13}"
      bash infra/local/services.sh start beacon api settle expire >/dev/null
      trap 'bash infra/local/services.sh stop beacon api settle expire' EXIT
      cmd=(python3 infra/local/browser.py --screenshots bench/reports) ;;
    fuzz)
      cargo build -q -p flashflow-local
      export FLASHFLOW_LOCAL_BIN="${CARGO_TARGET_DIR:-target}/debug/flashflow-local"
      cmd=(bash infra/local/fuzz-api.sh ${FUZZ_SEED:+--seed "$FUZZ_SEED"}) ;;
    *) echo "unknown test level: $level (unit, integration, chaos, browser, fuzz)" >&2; exit 2 ;;
  esac
  log=$(mktemp)
  start=$(date +%s)
  "${cmd[@]}" 2>&1 | tee "$log"
  r=${PIPESTATUS[0]}; [ "$r" -eq 0 ] || rc=$r
  sum() { grep -E '^(test result|chaos|browser|fuzz):' "$log" | grep -oE "[0-9]+ $1" | awk '{s += $1} END {print s + 0}'; }
  p=$(sum passed); f=$(sum failed)
  [ "$r" -eq 0 ] || [ "$f" -gt 0 ] || f=1   # a level that failed before counting still counts
  echo "$level: $p passed, $f failed in $(( $(date +%s) - start ))s"
  total_passed=$((total_passed + p)); total_failed=$((total_failed + f))
  rm -f "$log"
done
echo "tests: $total_passed passed, $total_failed failed"
exit "$rc"
