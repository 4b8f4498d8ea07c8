#!/usr/bin/env bash
# Cross-build the named functions for Lambda's arm64 (provided.al2023) with cargo-lambda and zig, as
# `sam build` does, and print each bootstrap's size. Its own target dir: release arm64 artifacts
# never evict the debug ones the tests use.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd); cd "$ROOT"
[ $# -gt 0 ] || set -- buy settle
# Outside the checkout: clones on one machine (CI runs on a clean clone) share the slow arm64 build.
export CARGO_TARGET_DIR=${LAMBDA_TARGET_DIR:-${FLASHFLOW_HOME:-$HOME/.cache/flashflow}/target-lambda-arm64}
start=$(date +%s)
# One package per build: cargo unifies the features of packages built together, and each function
# links only the adapters it asks for.
for f in "$@"; do cargo lambda build --release --arm64 -p "$f"; done
for f in "$@"; do
  bin="$CARGO_TARGET_DIR/lambda/$f/bootstrap"
  [ -x "$bin" ] || { echo "no bootstrap for $f at $bin" >&2; exit 1; }
  printf 'lambda %-10s %s  %s bytes\n' "$f" "$(file -b "$bin" | cut -d, -f1-2)" "$(stat -c %s "$bin")"
done
echo "lambda-check: built $* for arm64 in $(( $(date +%s) - start ))s"
