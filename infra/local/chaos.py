#!/usr/bin/env python3
"""A flash sale under random faults, then every promise checked.

usage: chaos.py [--seconds 60] [--seed N] [--buyers 16] [--failover]

Runs against the local stack (`make up`) with FlashFlow's own processes started by
infra/local/services.sh (FLASHFLOW_LOCAL_BIN picks the binary). While buyers buy, a fault loop
drawn from the seed kills -9 and restarts the API, settle, the sweeper and the beacon stand-in,
freezes LocalStack and DynamoDB Local (SIGSTOP/SIGCONT), restarts Postgres and pauses Redis'
clients. Buyers with and
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

With --failover (`make chaos FAILOVER=1`) the run uses a one-shard Redis Cluster of its own (a
primary and its replica, infra/local/drill_failover.py's) with durable writes
(REDIS_WAIT_REPLICAS=1), and the fault loop also fails the primary over: kill -9 of it, its replica
taking over, a replacement syncing where it was. Every check below holds then too.

A checkout sale runs beside it in the same faults (the expiry job among the processes killed,
localstripe among those frozen): its buyers hold, pay at localstripe (the webhook may be lost: the
expiry reads the intent), abandon or cancel, retrying as real clients do. Once every hold has
ended it checks, from localstripe's own records (the PaymentIntents listed), Postgres, Redis and
GET /orders: every promised order ends CONFIRMED, EXPIRED, CANCELLED or REFUNDED, the same
everywhere; every succeeded, unrefunded intent belongs to a CONFIRMED order that names it, and
every CONFIRMED order's intent succeeded; no charge refunded twice; held == 0 and
confirmed <= stock; Redis remaining == stock - confirmed (each unit back exactly once).

A sale with a waiting room runs beside them too: its buyers join the queue (before and after the
opening), poll their place and buy with their admission token, through the same faults (the API
killed mid-admission, Redis paused, Postgres restarted). It checks that every place a join
answered still answers its owner's poll (nobody lost a place), no buyer has two orders, each
admission used is counted once by the inlet, and every promised order is CONFIRMED.

A checkout sale with a waiting room runs beside them too: its buyers join, wait, hold with their
admission, then pay, cancel or walk away; after a cancel they try the spent admission again (it
must be refused: one admission, one order) and join again at the back. Mid-run Redis loses that
sale's keys (all of them, queue included, at a moment its outbox is empty: an order resting on
Redis alone is the failover issue's subject) and the operator rehydrates it. It checks that the
spent admissions bought nothing, every ticket from before the loss says `rejoin` and every later
one still answers its owner, no buyer holds two live orders, and the checkout sale's books (as
above) balance across the loss.

It prints one table row and exits non-zero when a check fails. Standard library only.
"""

import argparse
import http.client
import json
import os
import random
import re
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
STRIPE = ENV.get("STRIPE_API_BASE", "http://127.0.0.1:8420")
STRIPE_KEY = ENV.get("STRIPE_SECRET_KEY", "sk_test_local_not_a_secret")


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


# With --failover: the cluster's ports, either of which may be the primary (redis-cli -c follows).
CLUSTER_PORTS = []


def redis(*args):
    if CLUSTER_PORTS:
        for port in CLUSTER_PORTS:
            out = subprocess.run(["redis-cli", "-c", "-p", str(port), *args],
                                 capture_output=True, text=True, check=False)
            if out.returncode == 0 and not out.stdout.startswith("Could not connect"):
                return out.stdout.strip()
        raise subprocess.CalledProcessError(1, ["redis-cli", *args])
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


def explain_dlq(dlq_url):
    """Each message in the DLQ: its order, how often it was received, what Postgres holds for it
    and every log line that names it or its message id (the logs of the run's processes)."""
    out = subprocess.run(
        ["awslocal", "sqs", "receive-message", "--queue-url", dlq_url, "--max-number-of-messages",
         "10", "--visibility-timeout", "0", "--attribute-names", "All", "--output", "json"],
        capture_output=True, text=True, check=False)
    try:
        messages = json.loads(out.stdout or "{}").get("Messages", [])
    except ValueError:
        messages = []
    for m in messages:
        try:
            order = json.loads(m.get("Body") or "{}")
        except ValueError:
            order = {}
        oid = order.get("order_id", "?")
        attrs = m.get("Attributes", {})
        row = psql(f"SELECT sale_id, status FROM orders WHERE order_id::text = '{oid}'") \
            if re.fullmatch(r"[0-9a-f-]{36}", str(oid)) else ""
        log(f"DLQ message {m.get('MessageId')}: order {oid} of sale {order.get('sale_id')}, "
            f"received {attrs.get('ApproximateReceiveCount')} times, sent "
            f"{attrs.get('SentTimestamp')}, first received "
            f"{attrs.get('ApproximateFirstReceiveTimestamp')}; Postgres: {row or 'no row'}")
        for name in ("api", "settle", "reconcile", "expire"):
            path = os.path.join(ENV.get("LOG_DIR", ""), f"{name}.log")
            try:
                with open(path, errors="replace") as f:
                    for line in f:
                        if oid in line or m.get("MessageId", "-") in line:
                            print(f"    {name}: {line.rstrip()[:400]}")
            except OSError:
                pass


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

    def note_paid(self, order, status):
        with self.lock:
            self.answers[f"paid at stripe: {status}"] += 1


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


# ------------------------------------------------------------------ checkout buyers


def stripe(method, path, form=None, timeout=10):
    """(status, json) from localstripe; (0, {}) when it did not answer (frozen, say)."""
    import base64
    import urllib.error
    import urllib.parse
    import urllib.request
    data = urllib.parse.urlencode(form or {}).encode() if method == "POST" else None
    auth = base64.b64encode(f"{STRIPE_KEY}:".encode()).decode()
    req = urllib.request.Request(STRIPE + path, data=data, method=method,
                                 headers={"authorization": f"Basic {auth}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")
    except (OSError, ValueError):
        return 0, {}


def pay_at_stripe(intent):
    """What the buyer's browser does: a card, attached, then the intent confirmed."""
    for _ in range(10):
        st, pm = stripe("POST", "/v1/payment_methods", {
            "type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12",
            "card[exp_year]": "2031", "card[cvc]": "123"})
        if st == 200:
            st, _ = stripe("POST", f"/v1/payment_intents/{intent}", {"payment_method": pm["id"]})
            st2, done = stripe("POST", f"/v1/payment_intents/{intent}/confirm")
            if st2 == 200 or done.get("error"):
                return done.get("status")
        time.sleep(0.5)
    return None


def retrying(method, path, headers, ok, rng, tries=40):
    """Ask until an answer in `ok` (a real client: on no answer, 408, 409 pending, 429, 5xx)."""
    for _ in range(tries):
        st, body, _ = call(method, path, {}, headers)
        if st in ok:
            return st, body
        if st in (400, 403, 404) or (st == 409 and body.get("error") not in
                                     ("order_pending", "payment_processing")):
            return st, body
        time.sleep(0.3 + rng.random() * 0.4)
    return 0, {}


def checkout_buyer_loop(sale, ledger, stop, rng_seed, index):
    """Hold, then pay (most), abandon, or cancel, as shoppers do."""
    rng = random.Random(rng_seed)
    n = 0
    while not stop.is_set():
        n += 1
        buyer = f"k{index}-{n}"
        key = str(uuid.UUID(int=rng.getrandbits(128)))
        headers = {"x-user-id": buyer, "idempotency-key": key}
        order = None
        for _ in range(20):
            st, body, _ = call("POST", f"/sales/{sale}/buy", {"quantity": 1}, headers)
            if st in (200, 202):
                order = body["order_id"]
                ledger.promise(order, buyer)
                break
            if st in (403, 409):
                break
            time.sleep(0.3 + rng.random() * 0.3)
        if order is None:
            time.sleep(0.5)
            continue
        choice = rng.random()
        who = {"x-user-id": buyer}
        if choice < 0.6:
            st, pay = retrying("POST", f"/orders/{order}/payment", who, (200,), rng)
            if st == 200:
                ledger.note_paid(order, pay_at_stripe(pay["payment_intent"]))
        elif choice < 0.8:
            retrying("POST", f"/orders/{order}/cancel", who, (200,), rng)
        # else: walks away; the hold runs out.
        time.sleep(0.3 + rng.random() * 0.5)


# ------------------------------------------------------------------ waiting-room buyers


class Queue:
    """What the waiting room told its buyers."""

    def __init__(self):
        self.lock = threading.Lock()
        self.tickets = {}       # buyer -> ticket, from a 201/200 join
        self.admitted = Counter()  # buyer -> admissions seen
        self.promised = {}      # order id -> buyer
        self.answers = Counter()

    def note(self, what, status, body):
        with self.lock:
            self.answers[f"{what} {status} {body.get('error', body.get('state', ''))}".strip()] += 1


def queue_buyer_loop(sale, q, stop, rng_seed, index):
    """Join the queue, poll the place, buy once admitted (retrying as a real client does)."""
    rng = random.Random(rng_seed)
    n = 0
    while not stop.is_set():
        n += 1
        buyer = f"w{index}-{n}"
        who = {"x-user-id": buyer}
        ticket = None
        for _ in range(20):
            st, body, _ = call("POST", f"/sales/{sale}/queue", {}, who)
            q.note("join", st, body)
            if st in (200, 201):
                ticket = body["ticket"]
                with q.lock:
                    q.tickets[buyer] = ticket
                break
            if stop.is_set() or st in (400, 404):
                break
            time.sleep(0.3 + rng.random() * 0.3)
        if ticket is None:
            continue
        token, polls = None, 0
        while not stop.is_set() and polls < 240:
            polls += 1
            st, body, _ = call("GET", f"/sales/{sale}/queue/{ticket}", None, who)
            if st == 200 and body.get("state") == "admitted":
                token = body["admission_token"]
                with q.lock:
                    q.admitted[buyer] += 1
                break
            if st == 200 and body.get("state") in ("sold_out", "expired"):
                q.note("poll", st, body)
                break
            time.sleep(0.5)
        if token is None:
            time.sleep(0.5)  # sold out or expired: the next buyer comes a little later
            continue
        key = str(uuid.UUID(int=rng.getrandbits(128)))
        for _ in range(20):
            st, body, _ = call("POST", f"/sales/{sale}/buy", {"quantity": 1},
                               {**who, "idempotency-key": key, "admission-token": token})
            q.note("buy", st, body)
            if st in (200, 202):
                with q.lock:
                    q.promised[body["order_id"]] = buyer
                break
            if st in (403, 409) or (400 <= st < 500 and st not in (408, 429)):
                break
            time.sleep(0.3 + rng.random() * 0.3)


class QueueShop:
    """What the checkout sale with a waiting room told its buyers, and the Redis loss."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ledger = Ledger()        # promised orders, for checkout_checks
        self.tickets = {}             # ticket -> (buyer, joined before the loss)
        self.respent = []             # (buyer, status) of a spent admission that bought again
        self.refused_respend = 0      # spent admissions refused, as they must be
        self.rejoined = 0             # tickets told to rejoin (the queue was lost)
        self.lost_at = None           # when Redis lost the sale (time.time()), once done
        self.answers = Counter()

    def note(self, what, status, body):
        with self.lock:
            self.answers[f"{what} {status} {body.get('error', body.get('state', ''))}".strip()] += 1


def queue_join(sale, who, qs, stop, rng):
    """A place in the queue (its ticket), asking again as a real client does; None at the end."""
    for _ in range(40):
        if stop.is_set():
            return None
        asked_before = qs.lost_at is None
        st, body, headers = call("POST", f"/sales/{sale}/queue", {}, who)
        qs.note("join", st, body)
        if st in (200, 201):
            # A join answered across the loss may have a place in either queue.
            when = "after" if not asked_before else "before" if qs.lost_at is None else "during"
            with qs.lock:
                qs.tickets[body["ticket"]] = (who["x-user-id"], when)
            return body["ticket"]
        if st in (400, 403, 404):
            return None
        wait = float(headers.get("retry-after") or 0) if st == 429 else 0
        time.sleep(max(wait, 0.3 + rng.random() * 0.3))
    return None


def queue_shop_buyer_loop(sale, qs, stop, rng_seed, index):
    """Join, wait, hold with the admission; pay, cancel (then try the spent admission again and
    join again) or walk away."""
    rng = random.Random(rng_seed)
    n, cancelled = 0, False
    while not stop.is_set():
        n += 1
        buyer = f"q{index}-{n}"
        who = {"x-user-id": buyer}
        for _turn in range(3):  # a buyer who cancels queues again for another turn
            ticket = queue_join(sale, who, qs, stop, rng)
            token = None
            while ticket and not stop.is_set():
                st, body, headers = call("GET", f"/sales/{sale}/queue/{ticket}", None, who)
                state = body.get("state") if st == 200 else None
                if state == "admitted":
                    token = body["admission_token"]
                    break
                if state == "rejoin":
                    with qs.lock:
                        qs.rejoined += 1
                    ticket = queue_join(sale, who, qs, stop, rng)
                    continue
                if state in ("sold_out", "closed", "expired", "used"):
                    qs.note("poll", st, body)
                    break
                wait = (body.get("retry_after_ms") or 500) / 1000 if st == 200 else 0.5
                time.sleep(min(wait, 2.0))
            if token is None:
                break
            key = str(uuid.UUID(int=rng.getrandbits(128)))
            order = None
            for _ in range(20):
                if stop.is_set():
                    break
                st, body, _ = call("POST", f"/sales/{sale}/buy", {"quantity": 1},
                                   {**who, "idempotency-key": key, "admission-token": token})
                qs.note("buy", st, body)
                if st in (200, 202):
                    order = body["order_id"]
                    qs.ledger.promise(order, buyer)
                    break
                if st in (403, 409) or (400 <= st < 500 and st not in (408, 429)):
                    break
                time.sleep(0.3 + rng.random() * 0.3)
            if order is None:
                break
            # Each buyer thread cancels its first hold (so every run tries a spent admission);
            # then half pay, three in ten cancel, the rest walk away.
            choice = rng.random() if cancelled else 0.6
            cancelled = True
            if choice < 0.5:
                st, pay = retrying("POST", f"/orders/{order}/payment", who, (200,), rng)
                if st == 200:
                    qs.ledger.note_paid(order, pay_at_stripe(pay["payment_intent"]))
                break
            if choice < 0.8:
                st, _ = retrying("POST", f"/orders/{order}/cancel", who, (200,), rng)
                if st != 200:
                    break
                # The unit went back to the queue; the admission did not come back with it.
                again_key = str(uuid.UUID(int=rng.getrandbits(128)))
                for _ in range(10):
                    st, body, _ = call("POST", f"/sales/{sale}/buy", {"quantity": 1},
                                       {**who, "idempotency-key": again_key,
                                        "admission-token": token})
                    qs.note("buy again", st, body)
                    if st in (200, 202):
                        with qs.lock:
                            qs.respent.append((buyer, st, body.get("order_id")))
                        qs.ledger.promise(body["order_id"], buyer)
                        break
                    if st == 403:
                        with qs.lock:
                            qs.refused_respend += 1
                        break
                    if 400 <= st < 500 and st not in (408, 429):
                        break
                    time.sleep(0.3 + rng.random() * 0.3)
                continue  # join again, to the back
            break  # walks away; the hold runs out
        time.sleep(0.3 + rng.random() * 0.5)


def lose_and_rehydrate(sale, qs, stop, after):
    """Redis loses every key of `sale` (at a moment its outbox is empty, in one script), then the
    operator rehydrates it (asking until the API answers)."""
    if stop.wait(after):
        return
    script = """
if redis.call('HLEN', KEYS[1]) > 0 then return -1 end
local cursor, n = '0', 0
repeat
  local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = r[1]
  for _, k in ipairs(r[2]) do redis.call('DEL', k); n = n + 1 end
until cursor == '0'
return n
"""
    deadline = time.time() + 40
    while time.time() < deadline:
        try:
            lost = int(redis("EVAL", script, "1", f"ff:{{{sale}}}:outbox", f"ff:{{{sale}}}:*"))
        except (subprocess.CalledProcessError, ValueError):
            lost = -1
        if lost >= 0:
            qs.lost_at = time.time()
            log(f"fault: redis lost the {lost} keys of {sale}")
            break
        time.sleep(0.2)
    else:
        log(f"the outbox of {sale} was never empty: no Redis loss")
        return
    for _ in range(120):
        st, body, _ = operator("POST", f"/admin/sales/{sale}/rehydrate")
        if st == 200:
            log(f"operator: {sale} rehydrated {body.get('rehydrated')}")
            return
        time.sleep(0.5)
    log(f"operator: {sale} was not rehydrated")


def queue_shop_checks(sale, stock, qs):
    """The spent admissions bought nothing, places answered truly across the loss, the books
    balance."""
    stale, lost_places = [], []
    live_states = ("waiting", "admitted", "used", "expired", "sold_out", "closed")
    for ticket, (buyer, when) in list(qs.tickets.items()):
        st, body, _ = call("GET", f"/sales/{sale}/queue/{ticket}", None, {"x-user-id": buyer})
        state = body.get("state") if st == 200 else None
        if when == "before" and state != "rejoin":
            stale.append((buyer, st, state or body.get("error")))
        if when == "after" and state not in live_states:
            lost_places.append((buyer, st, state or body.get("error")))
        if when == "during" and state not in live_states + ("rejoin",):
            lost_places.append((buyer, st, state or body.get("error")))
    live = psql(f"SELECT buyer FROM orders WHERE sale_id = '{sale}' "
                "AND status IN ('CONFIRMED', 'HELD')").splitlines()
    twice = [b for b, n in Counter(filter(None, live)).items() if n > 1]
    books, summary = checkout_checks(sale, stock, qs.ledger, label="queue shop")
    checks = [
        ("queue shop: Redis did not lose the sale (the flow did not run)", qs.lost_at is None, False),
        ("queue shop: no spent admission was tried again (the flow did not run)",
         qs.refused_respend + len(qs.respent) == 0, False),
        ("queue shop: a spent admission bought again", len(qs.respent), 0),
        ("queue shop: tickets of the lost queue not told to rejoin", len(stale), 0),
        ("queue shop: places lost after the loss", len(lost_places), 0),
        ("queue shop: buyers with two live orders", len(twice), 0),
    ] + books
    for what, items in (("stale", stale), ("lost", lost_places), ("respent", qs.respent)):
        if items:
            print(f"  e.g. queue shop {what}: {items[:5]}")
    before = sum(1 for _, when in qs.tickets.values() if when == "before")
    summary = (f"{len(qs.tickets)} places ({before} before the loss), {qs.rejoined} told to rejoin, {qs.refused_respend} spent admissions "
               f"refused; {summary}")
    return checks, summary


def queue_checks(room, stock, q):
    """Nobody lost a place, nobody was admitted twice, every promise kept."""
    lost_places = []
    for buyer, ticket in list(q.tickets.items()):
        st, body, _ = call("GET", f"/sales/{room}/queue/{ticket}", None, {"x-user-id": buyer})
        if st != 200 or body.get("state") not in ("waiting", "admitted", "used", "expired",
                                                  "sold_out", "closed"):
            lost_places.append((buyer, st, body.get("error") or body.get("state")))
    rows = psql(f"SELECT order_id, buyer, status FROM orders WHERE sale_id = '{room}'")
    recorded = {}
    for line in filter(None, rows.splitlines()):
        order, buyer, st = line.split("|")
        recorded[order] = (buyer, st)
    per_buyer = Counter(b for b, _ in recorded.values())
    lost = [o for o in q.promised if o not in recorded or recorded[o][1] != "CONFIRMED"]
    _, view, _ = operator("GET", f"/admin/sales/{room}")
    used = ((view.get("waiting_room") or {}).get("queue") or {}).get("used", -1)
    twice = [b for b, n in per_buyer.items() if n > 1]
    # The draw waited out the beacon's kills: made with its round (or nothing to draw).
    _, draw, _ = call("GET", f"/sales/{room}/queue/draw")
    drawn = draw.get("state") == "drawn" and (draw.get("fallback") is None or draw.get("cohort") == 0)
    checks = [
        ("waiting room: the draw not final, or made without its beacon round", not drawn, False),
        ("waiting room: nobody got a place (the flow did not run)", len(q.tickets) == 0, False),
        ("waiting room: nobody bought (the flow did not run)", len(recorded) == 0, False),
        ("waiting room: places lost", len(lost_places), 0),
        ("waiting room: buyers with two orders", len(twice), 0),
        ("waiting room: admissions used (the inlet's count) - orders", used - len(recorded), 0),
        ("waiting room: promised orders not CONFIRMED", len(lost), 0),
        ("waiting room: orders beyond the stock", max(0, len(recorded) - stock), 0),
    ]
    summary = (f"{len(q.tickets)} places taken, {sum(q.admitted.values())} admissions seen, "
               f"{len(q.promised)} promised, {len(recorded)} orders; answers {dict(q.answers)}")
    return checks, summary


# ------------------------------------------------------------------ faults


def fault_loop(rng, stop, injected, bin_env, cluster=None):
    local_pids = {
        "localstack": lambda: pid_of("localstack"),
        "dynamodb": lambda: pid_of("dynamodb"),
        "localstripe": lambda: pid_of("localstripe"),
    }
    faults = ["kill-api", "kill-settle", "kill-reconcile", "kill-expire", "kill-beacon",
              "freeze-localstack",
              "freeze-dynamodb", "freeze-localstripe", "restart-postgres", "pause-redis"]
    if cluster is not None:
        faults.append("failover")
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
        elif fault == "failover":
            took = cluster.fail_over()
            add_redis_users()
            log(f"failover: the replica took over; a replacement synced {took:.1f} s after the kill")
        elif fault == "pause-redis":
            # Up to past buy's deadline (3 s): some buyers must learn that the outcome is unknown.
            redis("CLIENT", "PAUSE", str(rng.randint(500, 4000)), "ALL")


def add_redis_users():
    """FlashFlow's ACL users on every node of the cluster (ACLs are not replicated)."""
    for port in CLUSTER_PORTS:
        subprocess.run(["bash", os.path.join(HERE, "redis-users.sh")], capture_output=True,
                       check=True, env=dict(ENV, REDIS_ADMIN_URL=f"redis://127.0.0.1:{port}"))


def start_cluster():
    """A one-shard cluster with durable writes for the whole run (--failover)."""
    sys.path.insert(0, HERE)
    import drill_failover
    cluster = drill_failover.Stack("chaos")
    cluster.start_cluster()
    CLUSTER_PORTS.extend([drill_failover.PRIMARY, drill_failover.REPLICA])
    add_redis_users()
    os.environ["REDIS_URL"] = (f"redis-cluster://127.0.0.1:{drill_failover.PRIMARY}"
                               f"?node=127.0.0.1:{drill_failover.REPLICA}")
    os.environ["REDIS_WAIT_REPLICAS"] = "1"
    log(f"failover mode: Redis Cluster on {CLUSTER_PORTS}, REDIS_WAIT_REPLICAS=1")
    return cluster


def find_stack_pids():
    """LocalStack's and DynamoDB Local's pids, written by up.sh."""
    for name in ("localstack", "dynamodb", "localstripe"):
        if pid_of(name) is None:
            log(f"warning: no pid file for {name}: it will not be frozen")


# ------------------------------------------------------------------ the run


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--buyers", type=int, default=16)
    ap.add_argument("--shoppers", type=int, default=4)
    ap.add_argument("--queuers", type=int, default=4)
    ap.add_argument("--drain-seconds", type=int, default=240)
    ap.add_argument("--failover", action="store_true")
    args = ap.parse_args()
    cluster = start_cluster() if args.failover else None
    try:
        run(args, cluster)
    finally:
        if cluster is not None:
            services("stop", "api", "settle", "reconcile", "expire")
            cluster.stop()


def run(args, cluster):
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
    # The processes' logs are appended across restarts: this run's start empty.
    for name in ("beacon", "api", "settle", "reconcile", "expire"):
        open(os.path.join(ENV["LOG_DIR"], f"{name}.log"), "w").close()
    if services("start", "beacon", "api", "settle", "reconcile", "expire", quiet=False) != 0:
        sys.exit("chaos: the services did not start")
    status, body, _ = operator("POST", "/admin/sales", {
        "id": sale, "name": "Chaos drop", "stock": stock, "per_user_limit": 1})
    if status not in (200, 201):
        sys.exit(f"chaos: creating the sale answered {status} {body}")
    shop, shop_stock = f"{sale}-shop", 30
    status, body, _ = operator("POST", "/admin/sales", {
        "id": shop, "name": "Chaos shop", "stock": shop_stock, "per_user_limit": 1,
        "checkout": {"hold_seconds": 60, "price": 12900, "currency": "eur"}})
    if status not in (200, 201):
        sys.exit(f"chaos: creating the checkout sale answered {status} {body}")

    # A sale with a waiting room beside them: its queue open, the sale (and the draw) in 3 s.
    # Three admitted a second: it sells through the whole run, faults and all.
    room, room_stock = f"{sale}-room", 150
    at = lambda s: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s))
    status, body, _ = operator("POST", "/admin/sales", {
        "id": room, "name": "Chaos queue", "stock": room_stock, "per_user_limit": 1,
        "opens_at": at(time.time() + 3),
        "waiting_room": {"opens_at": at(time.time() - 1), "admission_seconds": 60,
                         "admit_per_second": 3}})
    if status not in (200, 201):
        sys.exit(f"chaos: creating the waiting-room sale answered {status} {body}")

    # A checkout sale with a waiting room: holds, cancels, re-joins, and a Redis loss mid-queue.
    qshop, qshop_stock = f"{sale}-qshop", 12
    status, body, _ = operator("POST", "/admin/sales", {
        "id": qshop, "name": "Chaos queue shop", "stock": qshop_stock, "per_user_limit": 1,
        "opens_at": at(time.time() + 3),
        "checkout": {"hold_seconds": 60, "price": 4900, "currency": "eur"},
        "waiting_room": {"opens_at": at(time.time() - 1), "admission_seconds": 60}})
    if status not in (200, 201):
        sys.exit(f"chaos: creating the checkout sale with a waiting room answered {status} {body}")

    ledger, stop, stop_faults = Ledger(), threading.Event(), threading.Event()
    qs = QueueShop()
    shoppers = Ledger()
    queued = Queue()
    injected = Counter()
    threads = [threading.Thread(target=buyer_loop, args=(sale, ledger, stop, rng.random(), i),
                                daemon=True) for i in range(args.buyers)]
    threads += [threading.Thread(target=checkout_buyer_loop,
                                 args=(shop, shoppers, stop, rng.random(), i), daemon=True)
                for i in range(args.shoppers)]
    threads += [threading.Thread(target=queue_buyer_loop,
                                 args=(room, queued, stop, rng.random(), i), daemon=True)
                for i in range(args.queuers)]
    threads += [threading.Thread(target=queue_shop_buyer_loop,
                                 args=(qshop, qs, stop, rng.random(), i), daemon=True)
                for i in range(args.queuers)]
    threads.append(threading.Thread(target=lose_and_rehydrate,
                                    args=(qshop, qs, stop_faults, args.seconds * 0.4),
                                    daemon=True))
    faults = threading.Thread(target=fault_loop, args=(random.Random(rng.random()), stop_faults,
                                                       injected, None, cluster), daemon=True)
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
    log(f"checkout answers: {dict(shoppers.answers)}")
    log(f"waiting-room answers: {dict(queued.answers)}")
    log(f"queue shop answers: {dict(qs.answers)}")

    # Everything back up, then wait for settlement to drain.
    services("start", "beacon", "api", "settle", "reconcile", "expire")
    for name in ("localstack", "dynamodb", "localstripe"):
        pid = pid_of(name)
        if pid:
            os.kill(pid, signal.SIGCONT)
    log("draining")
    deadline = time.time() + args.drain_seconds
    q_url, dlq_url = ENV["ORDERS_QUEUE_URL"], ENV["ORDERS_DLQ_URL"]
    while True:
        pending = int(redis("HLEN", f"ff:{{{sale}}}:outbox") or 0) + \
            int(redis("HLEN", f"ff:{{{room}}}:outbox") or 0)
        q = depth(q_url)
        if pending == 0 and q == 0:
            break
        if time.time() > deadline:
            log(f"drain did not finish: pending {pending}, queue {q}")
            break
        time.sleep(2)

    log("waiting for every hold to end (holds of 60 s, the expiry job every 2 s)")
    hold_deadline = time.time() + 240
    while True:
        shops = f"('{shop}', '{qshop}')"
        held = int(psql(f"SELECT count(*) FROM orders WHERE sale_id IN {shops} AND "
                        "status = 'HELD'") or 0)
        pending = int(redis("HLEN", f"ff:{{{shop}}}:outbox") or 0) + \
            int(redis("HLEN", f"ff:{{{qshop}}}:outbox") or 0)
        unfinished = int(psql(f"SELECT count(*) FROM orders WHERE sale_id IN {shops} AND "
                              "(NOT stock_returned OR NOT status_written)") or 0)
        if held == 0 and pending == 0 and unfinished == 0:
            break
        if time.time() > hold_deadline:
            log(f"holds did not end: held {held}, pending {pending}, unfinished {unfinished}")
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

    shop_checks, shop_summary = checkout_checks(shop, shop_stock, shoppers)
    room_checks, room_summary = queue_checks(room, room_stock, queued)
    qshop_checks, qshop_summary = queue_shop_checks(qshop, qshop_stock, qs)
    checks = shop_checks + room_checks + qshop_checks + [
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
    print(f"  checkout sale: {shop_summary}")
    print(f"  waiting-room sale: {room_summary}")
    print(f"  checkout sale with a waiting room: {qshop_summary}")
    failed = 0
    for label, value, want in checks:
        mark = "ok" if value == want else f"FAIL (expected {want})"
        failed += value != want
        print(f"  {label:<48} {value:<8} {mark}")
    if dlq:
        explain_dlq(dlq_url)
    for what, items in (("lost", lost), ("rejected", rejected), ("hidden", hidden),
                        ("status", status_wrong)):
        if items:
            print(f"  e.g. {what}: {items[:5]}")
    print(f"| {seed} | {args.seconds} s | {sum(injected.values())} | {len(promised)} | {len(lost)} "
          f"| {len(hidden)} | {len(duplicated)} | {len(rejected)} | {dlq} |")
    services("stop", "api", "settle", "reconcile", "expire")
    if failed:
        sys.exit(f"chaos: {failed} check(s) failed (logs: {ENV.get('LOG_DIR')})")
    print("chaos: 1 passed, 0 failed")


def intents_of(sale):
    """Every PaymentIntent localstripe holds for `sale` (its metadata), paged as Stripe pages."""
    found, after = [], None
    for _ in range(1000):
        path = "/v1/payment_intents?limit=100" + (f"&starting_after={after}" if after else "")
        st, page = stripe("GET", path)
        if st != 200:
            time.sleep(1)
            continue
        data = page.get("data", [])
        found += [i for i in data if (i.get("metadata") or {}).get("sale_id") == sale]
        if not page.get("has_more") or not data:
            return found
        after = data[-1]["id"]
    return found


def checkout_checks(shop, stock, shoppers, label="checkout"):
    """The checkout sale's books, from Stripe's records, Postgres, Redis and GET /orders."""
    rows = psql(f"SELECT order_id, buyer, status, coalesce(payment_intent, '') FROM orders "
                f"WHERE sale_id = '{shop}'")
    recorded = {}
    for line in filter(None, rows.splitlines()):
        order, buyer, st, pi = line.split("|")
        recorded[order] = (buyer, st, pi)
    ended = ("CONFIRMED", "EXPIRED", "CANCELLED", "REFUNDED")
    not_ended = [o for o in shoppers.promised if recorded.get(o, ("", "", ""))[1] not in ended]
    shown_wrong = []
    for o, buyer in shoppers.promised.items():
        st, body, _ = call("GET", f"/orders/{o}", headers={"x-user-id": buyer})
        if o in recorded and (st != 200 or body.get("status") != recorded[o][1]):
            shown_wrong.append((o, recorded[o][1], st, body.get("status", body.get("error"))))
    intents = intents_of(shop)
    by_id = {i["id"]: i for i in intents}

    def charge(i):
        return ((i.get("charges") or {}).get("data") or [{}])[0]

    succeeded = [i for i in intents if i.get("status") == "succeeded"]
    kept = [i for i in succeeded if not charge(i).get("amount_refunded")]
    confirmed = {o: v for o, v in recorded.items() if v[1] == "CONFIRMED"}
    confirmed_intents = {v[2] for v in confirmed.values()}
    charged_no_order = [i["id"] for i in kept if i["id"] not in confirmed_intents]
    confirmed_unpaid = [o for o, v in confirmed.items()
                        if by_id.get(v[2], {}).get("status") != "succeeded"
                        or charge(by_id[v[2]]).get("amount_refunded")]
    refunded_twice = [i["id"] for i in succeeded
                      if len(((charge(i).get("refunds") or {}).get("data")) or []) > 1]
    counts = psql(f"SELECT confirmed, held, stock FROM sales WHERE id = '{shop}'").split("|")
    pg_confirmed, pg_held, pg_stock = (int(x) for x in counts)
    remaining = int(redis("HGET", f"ff:{{{shop}}}:sale", "remaining") or -1)
    states = Counter(v[1] for v in recorded.values())
    checks = [
        (f"{label}: promised orders not ended", len(not_ended), 0),
        (f"{label}: GET /orders differs from Postgres", len(shown_wrong), 0),
        (f"{label}: charged, unrefunded, no CONFIRMED order", len(charged_no_order), 0),
        (f"{label}: CONFIRMED without a kept payment", len(confirmed_unpaid), 0),
        (f"{label}: charges refunded twice", len(refunded_twice), 0),
        (f"{label}: held at the end", pg_held, 0),
        (f"{label}: confirmed over the stock", max(0, pg_confirmed - pg_stock), 0),
        (f"{label}: Redis remaining - (stock - confirmed)", remaining - (stock - pg_confirmed), 0),
    ]
    for what, items in (("not ended", not_ended), ("shown", shown_wrong),
                        ("charged", charged_no_order), ("unpaid", confirmed_unpaid)):
        if items:
            print(f"  e.g. {label} {what}: {items[:5]}")
    summary = (f"{len(shoppers.promised)} promised; {dict(states)}; {len(intents)} intents, "
               f"{len(succeeded)} succeeded, {len(succeeded) - len(kept)} refunded")
    return checks, summary


if __name__ == "__main__":
    main()
