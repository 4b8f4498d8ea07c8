#!/usr/bin/env bash
# Give the local Redis FlashFlow's ACL users (infra/redis/acl-users.txt: one per function, as the
# template gives ElastiCache), and their credentials to LocalStack's Secrets Manager as
# flashflow/redis/<function>, where the local processes read them at start as the Lambdas do.
# `flashflow-local api` serves five functions' routers in one process, so it logs in as `api`:
# the union of buy's, orders', operator's, checkout's and queue's rules. Idempotent.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/../.." && pwd)
. "$HERE/env.sh"
USERS="$ROOT/infra/redis/acl-users.txt"
REDIS_ADMIN_URL=${REDIS_ADMIN_URL:-redis://127.0.0.1:6379}

# name rules... -> each user line; the api user is the union of five.
lines=$(python3 - "$USERS" <<'PY'
import sys
users = {}
for line in open(sys.argv[1]):
    if line.startswith("#") or not line.strip():
        continue
    name, rules = line.split(None, 1)
    users[name] = rules.split()
keys, cmds = [], []
for name in ("buy", "orders", "operator", "checkout", "queue"):
    for r in users[name]:
        if r.startswith("~") and r not in keys:
            keys.append(r)
        elif r.startswith("+") and r not in cmds:
            cmds.append(r)
users["api"] = ["on", *keys, "resetchannels", "-@all", *cmds]
for name, rules in users.items():
    print(name, " ".join(rules))
PY
)
while read -r name rules; do
  password="local-redis-$name-not-a-secret"
  # shellcheck disable=SC2086 # the rules are words
  redis-cli -u "$REDIS_ADMIN_URL" ACL SETUSER "ff-$name" reset $rules ">$password" >/dev/null
  secret=$(printf '{"username":"ff-%s","password":"%s"}' "$name" "$password")
  id="flashflow/redis/$name"
  if awslocal secretsmanager describe-secret --secret-id "$id" >/dev/null 2>&1; then
    awslocal secretsmanager put-secret-value --secret-id "$id" --secret-string "$secret" >/dev/null
  else
    awslocal secretsmanager create-secret --name "$id" --secret-string "$secret" >/dev/null
  fi
done <<<"$lines"
say "Redis ACL users: $(cut -d' ' -f1 <<<"$lines" | sed 's/^/ff-/' | tr '\n' ' ')"
