# FlashFlow. The two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
ENV := set -a; . infra/local/env.sh; set +a;
TEST_ENV := set -a; . infra/local/env.sh; . infra/local/test-env.sh; set +a;
# Lambda bootstraps: whole-program LTO in one codegen unit (about a quarter smaller; slower to link).
# Only for the Lambda builds: the local server's release build stays quick to rebuild.
LAMBDA_PROFILE := CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
# make bench-settle's batch sizes (a plain default: Make's `or` would split a list at its commas).
BATCH ?= 100,1000

.PHONY: drill-failover bench-wait sam-local sam-local-check bench-cpu bench-sizes bench-pow layers openapi fuzz docs-check help setup up down demo unit test chaos lint fmt build services services-stop lambda-build lambda-check sam-build deploy smoke watch bench bench-opening bench-settle bench-cost profile bench-lambdas bench-durability bench-waiting-room bench-entry bench-insider

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: ## install what the local stack needs (once; cheap to re-run)
	@bash infra/local/setup.sh

up: setup ## start the local stack: Redis, Postgres, LocalStack SQS, DynamoDB Local
	@bash infra/local/up.sh

down: ## stop LocalStack, DynamoDB Local and the local API
	@bash infra/local/down.sh

demo: up ## the flash sale end to end on the local stack
	@bash infra/local/demo.sh

unit: ## fast tests: domain rules and handlers on in-memory adapters (no service needed)
	@bash infra/local/run-tests.sh unit

test: up ## format, clippy, unused dependencies, template and docs checks, unit + integration + chaos + browser + fuzz tests
	cargo fmt --all -- --check
	@python3 infra/local/check-docs.py
	@python3 infra/local/check-layers.py
	@$(ENV) sam validate --lint --region "$$AWS_REGION"
	cargo clippy --workspace --all-targets -- -D warnings
	@$(ENV) cargo machete
	@# The fuzz level's seed is fixed here so a red run can be replayed as it was; `make fuzz`
	@# explores with a new seed each time (its findings become tests and fixes).
	@$(TEST_ENV) FUZZ_SEED=$${FUZZ_SEED:-1206} bash infra/local/run-tests.sh unit integration chaos browser fuzz

chaos: up ## a sale under random faults, every promise checked: make chaos DURATION=300 SEED=42 (FAILOVER=1: on a primary and replica, failovers among the faults)
	@$(ENV) CHAOS_SECONDS=$(or $(DURATION),60) CHAOS_SEED=$(SEED) CHAOS_FAILOVER=$(FAILOVER) bash infra/local/run-tests.sh chaos

fuzz: up ## schemathesis against a local API with the OpenAPI document: make fuzz SEED=42
	@$(ENV) FUZZ_SEED=$(SEED) bash infra/local/run-tests.sh fuzz

openapi: ## write docs/openapi.json, the API's OpenAPI document, from the code (a test keeps them equal)
	cargo run -q -p flashflow-local -- openapi > docs/openapi.json.new
	mv docs/openapi.json.new docs/openapi.json

layers: ## the crates along the layers, what each depends on, and the walls between them (checked)
	@python3 infra/local/check-layers.py --graph

docs-check: ## every path, link and make target the docs name exists
	@python3 infra/local/check-docs.py

lint: ## clippy with warnings as errors
	cargo clippy --workspace --all-targets -- -D warnings

fmt: ## format the code
	cargo fmt --all

build: ## release build of the local server
	cargo build --release -p flashflow-local

services: build ## run api, settle, reconcile and expire in the background (make services-stop ends them)
	@$(ENV) bash infra/local/services.sh start

services-stop: ## stop the background services
	@$(ENV) bash infra/local/services.sh stop

lambda-build: setup ## build the Lambda functions for provided.al2023 with cargo-lambda
	@$(ENV) $(LAMBDA_PROFILE) bash infra/aws/lambda-check.sh buy orders operator settle reconcile checkout expire queue

lambda-check: setup ## CI: cross-build buy and settle for arm64 (cargo-lambda, zig) and print their sizes
	@$(ENV) $(LAMBDA_PROFILE) bash infra/aws/lambda-check.sh buy settle

sam-build: setup ## sam build: every function for arm64 (cargo-lambda) and the RDS CA layer
	@bash infra/aws/fetch-rds-ca.sh
	@$(ENV) $(LAMBDA_PROFILE) CARGO_TARGET_DIR="$${LAMBDA_TARGET_DIR:-$$FLASHFLOW_HOME/target-lambda-arm64}" sam build --template-file template.yaml

sam-local: up ## the functions in Lambda containers (Docker, opt-in): sam local start-api on :3090 against the local stack
	@bash infra/local/sam-local.sh serve

sam-local-check: up ## sam local checked: a sale, buys, settle, the waiting room, every events/ fixture invoked, latency beside flashflow-local
	@bash infra/local/sam-local.sh check

deploy: sam-build ## sam deploy (first time: make deploy DEPLOY_FLAGS=--guided)
	@[ -s infra/aws/rds-ca/global-bundle.pem ] || [ -n "$${ALLOW_NO_RDS_CA:-}" ] || { echo "the RDS CA bundle is missing (infra/aws/rds-ca/README.md); set ALLOW_NO_RDS_CA=1 if you deploy with DatabaseProxyEndpoint" >&2; exit 1; }
	@$(ENV) sam deploy $(DEPLOY_FLAGS)

smoke: setup ## k6 smoke test of a deployed stack: make smoke API=https://... TOKEN=<buyer jwt>
	@API="$(API)" TOKEN="$(TOKEN)" bash infra/aws/smoke.sh

bench: up ## FlashFlow vs the seed design vs a ceiling server, two scenarios, one table (wrk)
	@bash bench/run.sh

bench-opening: up ## the opening as an arrival rate (k6, HTML report): make bench-opening RATE=1500
	@bash bench/opening.sh $(or $(RATE),1500)

bench-waiting-room: up ## the waiting room: joins, polls of a 100,000-place queue, buys with a token, the bot race, the opening
	@bash bench/waiting-room.sh

bench-entry: up ## the Sybil sweep: a bot's share of places and units (10/100/1,000 ids sharing 1/3/10 phone numbers) with one place per number vs none, and the policy's cost per join
	@cargo build --release -q -p flashflow-bench
	@$(ENV) RUST_LOG=warn target/release/flashflow-bench waiting-room sybil $(SYBIL_FLAGS)

bench-insider: ## the insider: up to 60 last-moment joins with the draw's seed known, their chance of place 1 under the seed-only draw and ff-draw-v2, beside 60 joins blind (pure computation, no service)
	@cargo build --release -q -p flashflow-bench
	@target/release/flashflow-bench waiting-room insider $(INSIDER_FLAGS)

bench-pow: up ## the proof of work's cost in headless Chromium (this CPU, and throttled as a phone's), and the bits that fit in ~2 s
	@cargo build -q -p flashflow-local
	@$(ENV) FLASHFLOW_LOCAL_BIN=$${CARGO_TARGET_DIR:-target}/debug/flashflow-local bash infra/local/services.sh start api >/dev/null
	@$(ENV) python3 bench/pow.py

bench-lambdas: up ## each function's bootstrap size and init time, lean vs every adapter linked
	@$(ENV) bash bench/lambdas.sh

bench-sizes: ## each function's bootstrap (fat LTO, stripped), the crates it links, whether the HTTP stack is among them
	@bash bench/sizes.sh

bench-cpu: up ## CPU per order by process (from /proc), Redis commands and Postgres work per order, both shapes
	@bash bench/cpu.sh

drill-failover: up build ## a Redis primary killed mid-sale, its replica taking over: is every promise kept? MODE=async|paused|durable|all (all)
	@$(ENV) python3 infra/local/drill_failover.py $(or $(MODE),all)

bench-wait: up ## what waiting for a replica costs (REDIS_WAIT_REPLICAS 1 vs 0): buys, the sold-out herd and joins, one wrk load each
	@bash bench/wait.sh

bench-durability: up ## what a 202 waits for: the Redis outbox (relay) vs the message in SQS, one wrk load each
	@bash bench/durability.sh

bench-settle: up ## settlement orders/s, ledger and handler, each step's time per batch: make bench-settle N=20000 C="1 5" BATCH=100,1000
	@cargo build --release -q -p flashflow-bench
	@$(ENV) RUST_LOG=warn target/release/flashflow-bench settle $(or $(N),20000) $(or $(C),1 5) --batch $(BATCH)

profile: up ## where the CPU goes under load (perf record -a): make profile STOCK=100 for the sold-out shape
	@bash bench/profile.sh $(or $(STOCK),1000000)

bench-cost: up ## the cost of an order: SQS, DynamoDB, Redis and Postgres calls per order in both buy paths, and its AWS price
	@bash bench/cost.sh $(or $(N),5000) $(or $(M),20000)

watch: setup ## run the functions under `cargo lambda watch` (Lambda emulator, one request per process)
	@$(ENV) TRUST_USER_HEADER=1 cargo lambda watch
