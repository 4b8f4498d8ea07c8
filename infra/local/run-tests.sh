#!/usr/bin/env bash
# Run every test of the workspace (the local stack must be up; `make test` does that) and close with
# one line of totals across all test binaries.
set -uo pipefail
log=$(mktemp)
cargo test --workspace 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
sum() { grep -E '^test result:' "$log" | grep -oE "[0-9]+ $1" | awk '{s += $1} END {print s + 0}'; }
echo "tests: $(sum passed) passed, $(sum failed) failed"
rm -f "$log"
exit "$rc"
