#!/usr/bin/env bash
# Run the test levels named as arguments and close with one line of totals:
#   unit         pure domain rules and handlers on in-memory adapters (no service needed)
#   integration  one test binary against the real local stack (`make test` starts it and sets the env)
set -uo pipefail
rc=0; total_passed=0; total_failed=0
levels=("$@"); [ ${#levels[@]} -gt 0 ] || levels=(unit integration)
for level in "${levels[@]}"; do
  case "$level" in
    unit) cmd=(cargo test --workspace --lib --bins) ;;
    integration) cmd=(cargo test --workspace --test integration) ;;
    *) echo "unknown test level: $level (unit, integration)" >&2; exit 2 ;;
  esac
  log=$(mktemp)
  start=$(date +%s)
  "${cmd[@]}" 2>&1 | tee "$log"
  r=${PIPESTATUS[0]}; [ "$r" -eq 0 ] || rc=$r
  sum() { grep -E '^test result:' "$log" | grep -oE "[0-9]+ $1" | awk '{s += $1} END {print s + 0}'; }
  p=$(sum passed); f=$(sum failed)
  echo "$level: $p passed, $f failed in $(( $(date +%s) - start ))s"
  total_passed=$((total_passed + p)); total_failed=$((total_failed + f))
  rm -f "$log"
done
echo "tests: $total_passed passed, $total_failed failed"
exit "$rc"
