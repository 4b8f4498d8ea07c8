# Settings the tests need on top of env.sh.
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-${DATABASE_URL%/*}/flashflow_test}"
