#!/usr/bin/env bash
# `make bench-sizes`: each Lambda's bootstrap as `make lambda-check` builds it (release, fat LTO,
# one codegen unit) but for this machine, stripped as cargo-lambda strips it; with the crates it
# links (`cargo tree -e normal`) and whether the HTTP stack is among them. To compare two commits,
# run it in a worktree of each (CARGO_TARGET_DIR of its own for each keeps the builds apart).
#   usage: bench/sizes.sh [function ...]      (all eight by default)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd); cd "$ROOT"
export CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
target=${CARGO_TARGET_DIR:-target}
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
functions=("$@"); [ ${#functions[@]} -gt 0 ] || functions=(buy orders operator settle reconcile checkout expire queue)
printf '| function | bootstrap | crates | axum, lambda_http |\n| --- | ---: | ---: | --- |\n'
for f in "${functions[@]}"; do
  cargo build -q --release -p "$f"
  cp "$target/release/$f" "$out/$f"; strip "$out/$f"
  tree=$(cargo tree -q -p "$f" -e normal --prefix none | sed 's/ (\*)//' | sort -u)
  http=$(grep -cE '^(axum|lambda_http) ' <<<"$tree" || true)
  printf '| %s | %s B | %s | %s |\n' "$f" "$(stat -c %s "$out/$f")" "$(wc -l <<<"$tree")" \
    "$([ "$http" -gt 0 ] && echo linked || echo 'not linked')"
done
