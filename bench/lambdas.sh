#!/usr/bin/env bash
# `make bench-lambdas`: each function's bootstrap size and init time (process start to ready, against
# the local stack; bench/lambda-init.py), as the Lambdas are built now (the adapters it asks for,
# LTO in one codegen unit: `make sam-build`, `make lambda-check`) beside the earlier build (every
# adapter linked, plain release). Built for this machine's x86_64 (an arm64 bootstrap cannot run
# here); the arm64 sizes come from `make lambda-check` / `make sam-build`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd); cd "$ROOT"
. infra/local/env.sh
export CARGO_TARGET_DIR="$ROOT/target/lambdas-x86"
printf '| %-9s | %-12s | %10s | %10s | %12s |\n' function build "size MB" "init ms" "RSS MiB"
echo "| --- | --- | ---: | ---: | ---: |"
for f in buy orders operator settle reconcile; do
  for variant in before now; do
    if [ $variant = now ]; then
      CARGO_TARGET_DIR="$CARGO_TARGET_DIR-lto" CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
        cargo build -q --release -p "$f"
      cp "$CARGO_TARGET_DIR-lto/release/$f" "$CARGO_TARGET_DIR/$f-$variant"
    else
      cargo build -q --release -p "$f" --features flashflow/default
      cp "$CARGO_TARGET_DIR/release/$f" "$CARGO_TARGET_DIR/$f-$variant"
    fi
    strip "$CARGO_TARGET_DIR/$f-$variant"   # cargo-lambda strips the bootstraps too
    out=$(python3 bench/lambda-init.py "$CARGO_TARGET_DIR/$f-$variant" 5)
    printf '| %-9s | %-12s | %10s | %10s | %12s |\n' "$f" "$variant" \
      "$(grep -oE 'size [0-9.]+' <<<"$out" | cut -d' ' -f2)" "$(grep -oE 'init [0-9.]+' <<<"$out" | cut -d' ' -f2)" \
      "$(grep -oE 'ready [0-9.]+' <<<"$out" | cut -d' ' -f2)"
  done
done
