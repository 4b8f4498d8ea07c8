#!/usr/bin/env python3
"""A flash sale under random faults, then every promise checked.

usage: chaos.py [--seconds 60] [--seed N] [--buyers 16]

Runs against the local stack (`make up`) with FlashFlow's own processes started by
infra/local/services.sh (FLASHFLOW_LOCAL_BIN picks the binary). While buyers buy, a fault loop
drawn from the seed kills -9 and restarts the API, settle and the sweeper, freezes LocalStack and
DynamoDB Local (SIGSTOP/SIGCONT), restarts Postgres and pauses Redis' clients. Buyers with and
without an Idempotency-Key retry as real clients do. Then the faults stop, settlement drains, and
the run checks:

  - every order answered 202/200 is CONFIRMED exactly once in Postgres and in GET /orders;
  - no order is CONFIRMED that its buyer was not told of (unless an answer said the outcome is
    unknown and named it, or the buyer sent no Idempotency-Key and its connection was cut: a
    process killed after the reservation cannot answer, and without a key a retry is a new
    request; those are counted and shown, not failed);
  - no promised order is REJECTED, and no buyer (limit 1) has two;
  - Redis remaining == stock - confirmed - pending;
  - the queue and the DLQ are empty.

It prints one table row and exits non-zero when a check fails. Standard library only.
"""

import argparse
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = os.environ
API_PORT = int(ENV.get("API_PORT", "3080"))
RUN_DIR = ENV["RUN_DIR"]
DATABASE_URL = ENV["DATABASE_URL"]
REDIS_URL = ENV["REDIS_URL"]
TOKEN = ENV.get("OPERATOR_TOKEN", "local-operator-token")


def log(msg):
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------ HTTP


def call(method, path, body=None, headers=None, timeout=15):
    """(status, json body or {}, headers); (0, {}, {}) when the connection failed."""
    conn = http.client.HTTPConnection("127.0.0.1", API_PORT, timeout=timeout)
    try:
        data = json.dumps(body) if body is not None else None
        h = {"content-type": "application/json"} if data else {}
        h.update(headers or {})
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {"raw": raw.decode(errors="replace")}
        return resp.status, parsed, dict(resp.getheaders())
    except (OSError, http.client.HTTPException):
        return 0, {}, {}
    finally:
        conn.close()


def operator(method, path, body=None):
    return call(method, path, body, {"authorization": f"Bearer {TOKEN}"})


# ------------------------------------------------------------------ processes


def services(action, *names, quiet=True):
    out = subprocess.DEVNULL if quiet else None
    return subprocess.run(
        ["bash", os.path.join(HERE, "services.sh"), action, *names],
        stdout=out, stderr=out, check=False,
    ).returncode


def pid_of(name):
    try:
        with open(os.path.join(RUN_DIR, f"{name}.pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def psql(sql):
    return subprocess.run(
        ["psql", DATABASE_URL, "-qtAc", sql], capture_output=True, text=True, check=True
    ).stdout.strip()


def redis(*args):
    return subprocess.run(
        ["redis-cli", "-u", REDIS_URL, *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def depth(queue_url):
    out = subprocess.run(
        ["awslocal", "sqs", "get-queue-attributes", "--queue-url", queue_url,
         "--attribute-names", "ApproximateNumberOfMessages",
         "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed",
         "--output", "json"],
        capture_output=True, text=True, check=False,
    )
    try:
        attrs = json.loads(out.stdout)["Attributes"]
        return sum(int(v) for v in attrs.values())
    except (ValueError, KeyError):
        return -1


# ------------------------------------------------------------------ buyers


class Ledger:
    """What the buyers were told."""

    def __init__(self):
        self.lock = threading.Lock()
        self.promised = {}      # order id -> buyer, answered 202/200
        self.unknown = {}       # order id -> buyer, answered 503 outcome_unknown
        self.cut_off = set()    # buyers without a key whose connection was cut (no answer)
        self.answers = Counter()

    def note(self, status, body):
        with self.lock:
            self.answers[f"{status} {body.get('error', body.get('status', ''))}".strip()] += 1

    def promise(self, order, buyer):
        with self.lock:
            self.promised[order] = buyer

    def cut(self, buyer):
        with self.lock:
            self.cut_off.add(buyer)

    def maybe(self, order, buyer):
        with self.lock:
            self.unknown[order] = buyer


def buyer_loop(sale, ledger, stop, rng_seed, index):
    rng = random.Random(rng_seed)
    n = 0
    while not stop.is_set():
        n += 1
        buyer = f"c{index}-{n}"
        keyed = rng.random() < 0.5
        key = str(uuid.UUID(int=rng.getrandbits(128))) if keyed else None
        for attempt in range(20):
            if stop.is_set():
                break
            headers = {"x-user-id": buyer}
            if key:
                headers["idempotency-key"] = key
            status, body, _ = call("POST", f"/sales/{sale}/buy", {"quantity": 1}, headers)
            ledger.note(status, body)
            if status in (200, 202):
                ledger.promise(body["order_id"], buyer)
                break
            if status == 503 and body.get("error") == "outcome_unknown":
                ledger.maybe(body["order_id"], buyer)
            if status == 0 and not key:
                ledger.cut(buyer)
            if status in (403, 409) or (400 <= status < 500 and status not in (408, 429)):
                break  # limit reached, sold out, refused: this buyer is done
            # 0 (no connection), 408, 429, 5xx: a real client waits a little and retries; with
            # a key the retry is the same request, without one it is a new one.
            time.sleep(0.2 + rng.random() * 0.3)
        # Paced, so the sale is still selling while the faults come (about 100 buys/s in all).
        time.sleep(0.08 + rng.random() * 0.08)


# ------------------------------------------------------------------ faults


def fault_loop(rng, stop, injected, bin_env):
    local_pids = {
        "localstack": lambda: pid_of("localstack"),
        "dynamodb": lambda: pid_of("dynamodb"),
    }
    faults = ["kill-api", "kill-settle", "kill-reconcile", "freeze-localstack",
              "freeze-dynamodb", "restart-postgres", "pause-redis"]
    while not stop.wait(rng.uniform(1.0, 4.0)):
        fault = rng.choice(faults)
        injected[fault] += 1
        log(f"fault: {fault}")
        if fault.startswith("kill-"):
            name = fault[5:]
            pid = pid_of(name)
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(rng.uniform(0.2, 2.0))
            services("start", name)
        elif fault.startswith("freeze-"):
            pid = local_pids[fault[7:]]()
            if pid:
                os.kill(pid, signal.SIGSTOP)
                time.sleep(rng.uniform(1.0, 8.0))
                os.kill(pid, signal.SIGCONT)
        elif fault == "restart-postgres":
            ver = sorted(os.listdir("/etc/postgresql"))[-1]
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", ver, "main", "restart"],
                           capture_output=True, check=False)
        elif fault == "pause-redis":
            # Up to past buy's deadline (3 s): some buyers must learn that the outcome is unknown.
            redis("CLIENT", "PAUSE", str(rng.randint(500, 4000)), "ALL")


def find_stack_pids():
    """LocalStack's and DynamoDB Local's pids, written by up.sh."""
    for name in ("localstack", "dynamodb"):
        if pid_of(name) is None:
            log(f"warning: no pid file for {name}: it will not be frozen")


# ------------------------------------------------------------------ the run


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--buyers", type=int, default=16)
    ap.add_argument("--drain-seconds", type=int, default=240)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    rng = random.Random(seed)
    sale = f"chaos-{seed}-{int(time.time())}"
    stock = max(500, args.seconds * 80)
    log(f"seed {seed} (make chaos SEED={seed} DURATION={args.seconds} reruns these faults), "
        f"sale {sale}, stock {stock}, {args.buyers} buyers, {args.seconds}s")
    find_stack_pids()

    # The sweeper re-sends a lost message after 5 s here, so the drain is quick.
    os.environ.setdefault("OUTBOX_THRESHOLD_MS", "5000")
    os.environ.setdefault("RECONCILE_INTERVAL_MS", "2000")
    os.environ.setdefault("SETTLE_RETRY_DELAY_MS", "3000")
    # Half a second: a Redis pause outlasts a command more often, so buy's asking again is tried.
    os.environ.setdefault("REDIS_COMMAND_TIMEOUT_MS", "500")
    # The queue and the DLQ are checked empty at the end: start them empty.
    for url in (ENV["ORDERS_QUEUE_URL"], ENV["ORDERS_DLQ_URL"]):
        subprocess.run(["awslocal", "sqs", "purge-queue", "--queue-url", url],
                       capture_output=True, check=False)
    if services("start", "api", "settle", "reconcile", quiet=False) != 0:
        sys.exit("chaos: the services did not start")
    status, body, _ = operator("POST", "/admin/sales", {
        "id": sale, "name": "Chaos drop", "stock": stock, "per_user_limit": 1})
    if status not in (200, 201):
        sys.exit(f"chaos: creating the sale answered {status} {body}")

    ledger, stop, stop_faults = Ledger(), threading.Event(), threading.Event()
    injected = Counter()
    threads = [threading.Thread(target=buyer_loop, args=(sale, ledger, stop, rng.random(), i),
                                daemon=True) for i in range(args.buyers)]
    faults = threading.Thread(target=fault_loop, args=(random.Random(rng.random()), stop_faults,
                                                       injected, None), daemon=True)
    for t in threads:
        t.start()
    faults.start()
    time.sleep(args.seconds)
    stop_faults.set()
    faults.join()
    stop.set()
    for t in threads:
        t.join()
    log(f"faults injected: {dict(injected)}")
    log(f"answers: {dict(ledger.answers)}")

    # Everything back up, then wait for settlement to drain.
    services("start", "api", "settle", "reconcile")
    for name in ("localstack", "dynamodb"):
        pid = pid_of(name)
        if pid:
            os.kill(pid, signal.SIGCONT)
    log("draining")
    deadline = time.time() + args.drain_seconds
    q_url, dlq_url = ENV["ORDERS_QUEUE_URL"], ENV["ORDERS_DLQ_URL"]
    while True:
        pending = int(redis("HLEN", f"ff:{{{sale}}}:outbox") or 0)
        q = depth(q_url)
        if pending == 0 and q == 0:
            break
        if time.time() > deadline:
            log(f"drain did not finish: pending {pending}, queue {q}")
            break
        time.sleep(2)

    # ---- the checks
    rows = psql(f"SELECT order_id, buyer, status FROM orders WHERE sale_id = '{sale}'")
    recorded = {}
    for line in filter(None, rows.splitlines()):
        order, buyer, st = line.split("|")
        recorded[order] = (buyer, st)
    confirmed = {o for o, (_, st) in recorded.items() if st == "CONFIRMED"}
    per_buyer = Counter(recorded[o][0] for o in confirmed)
    promised, unknown = ledger.promised, ledger.unknown
    lost = [o for o in promised if o not in recorded]
    rejected = [o for o in promised if o in recorded and recorded[o][1] != "CONFIRMED"]
    untold = [o for o in confirmed if o not in promised and o not in unknown]
    # Without a key, a cut connection leaves the client nothing to ask again with.
    unknowable = [o for o in untold if recorded[o][0] in ledger.cut_off]
    hidden = [o for o in untold if recorded[o][0] not in ledger.cut_off]
    duplicated = [b for b, n in per_buyer.items() if n > 1]
    status_wrong = []
    for o, buyer in promised.items():
        st, body, _ = call("GET", f"/orders/{o}", headers={"x-user-id": buyer})
        if st != 200 or body.get("status") != "CONFIRMED":
            status_wrong.append((o, st, body.get("status", body.get("error"))))
    sale_row = redis("HGET", f"ff:{{{sale}}}:sale", "remaining")
    remaining = int(sale_row or -1)
    pending = int(redis("HLEN", f"ff:{{{sale}}}:outbox") or 0)
    expected_remaining = stock - len(confirmed) - pending
    q, dlq = depth(q_url), depth(dlq_url)
    ok_unknown = sum(1 for o in unknown if o in confirmed)

    checks = [
        ("promised orders lost", len(lost), 0),
        ("promised orders REJECTED", len(rejected), 0),
        ("CONFIRMED orders nobody was told of", len(hidden), 0),
        ("buyers with two orders", len(duplicated), 0),
        ("GET /orders not CONFIRMED for a promise", len(status_wrong), 0),
        ("Redis remaining - (stock - confirmed - pending)", remaining - expected_remaining, 0),
        ("orders queue depth", q, 0),
        ("DLQ depth", dlq, 0),
    ]
    print()
    print(f"chaos run: seed {seed}, {args.seconds}s, {args.buyers} buyers, stock {stock}")
    print(f"  faults injected: {sum(injected.values())} "
          f"({', '.join(f'{k} {v}' for k, v in sorted(injected.items()))})")
    print(f"  orders promised (202/200): {len(promised)}; outcome unknown: {len(unknown)} "
          f"(of which CONFIRMED: {ok_unknown}); CONFIRMED in Postgres: {len(confirmed)}")
    print(f"  CONFIRMED orders of buyers cut off without an Idempotency-Key (no answer reached "
          f"them; not a check): {len(unknowable)}")
    failed = 0
    for label, value, want in checks:
        mark = "ok" if value == want else f"FAIL (expected {want})"
        failed += value != want
        print(f"  {label:<48} {value:<8} {mark}")
    for what, items in (("lost", lost), ("rejected", rejected), ("hidden", hidden),
                        ("status", status_wrong)):
        if items:
            print(f"  e.g. {what}: {items[:5]}")
    print(f"| {seed} | {args.seconds} s | {sum(injected.values())} | {len(promised)} | {len(lost)} "
          f"| {len(hidden)} | {len(duplicated)} | {len(rejected)} | {dlq} |")
    services("stop", "api", "settle", "reconcile")
    if failed:
        sys.exit(f"chaos: {failed} check(s) failed (logs: {ENV.get('LOG_DIR')})")
    print("chaos: 1 passed, 0 failed")


if __name__ == "__main__":
    main()
