# Settings the tests need on top of env.sh. Tests use their own Postgres database and Redis logical
# database, so their sales (never settled, on purpose) never reach the demo's sweeper.
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-${DATABASE_URL%/*}/flashflow_test}"
export REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}"
