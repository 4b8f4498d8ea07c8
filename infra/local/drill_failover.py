#!/usr/bin/env python3
"""`make drill-failover`: a Redis primary fails over to its replica mid-sale; is any promise lost?

A Redis Cluster of one shard (a primary and its replica, as ElastiCache cluster mode runs it) on
loopback, the replication link through infra/local/lag_proxy.py (a link that lags LAG_MS, as one
between zones under load), and FlashFlow's API, settle and sweeper on it (the release build, their
own queues and table, the local Postgres). Buyers buy a sale and join a waiting room, retrying as
real clients do; once half the stock is promised the primary and the link are killed with kill -9
and the replica takes over (CLUSTER FAILOVER TAKEOVER: no other primary is left to vote); clients
follow the cluster's new map. The buyers go on until the sale is sold out; then everything drains
and each promise is checked against Postgres:

    acknowledged N, lost L, rejected after 202 R, places lost P, oversold O

N: orders answered 202/200; L: of those, not in Postgres after the drain; R: of those, REJECTED;
P: places answered to a joiner that no longer answer it (or answer another's index); O: orders
CONFIRMED beyond the stock. Modes: `async` (Redis' default: a promise is answered once the primary
has it), `paused` (REDIS_PAUSE_ON_FAILOVER=1: after the promotion each buy is refused with a 503
until the drill, as the operator, has rehydrated the sale, which the operator API allows once the
queue has drained) and
`durable` (REDIS_WAIT_REPLICAS=1: a promise waits for the replica). Exit 1 unless every count but N
is 0 in the durable mode.

usage: drill_failover.py [async|paused|durable|all]   (env: LAG_MS=20 STOCK=3000 BUYERS=12 JOINERS=3)
"""
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ENV = os.environ
PRIMARY, REPLICA = 7401, 7402
LAG_MS = int(ENV.get("LAG_MS", "20"))
STOCK = int(ENV.get("STOCK", "3000"))
BUYERS = int(ENV.get("BUYERS", "12"))
JOINERS = int(ENV.get("JOINERS", "3"))
API_PORT = int(ENV.get("DRILL_API_PORT", "3095"))
TOKEN = ENV.get("OPERATOR_TOKEN", "local-operator-token")
BIN = ENV.get("FLASHFLOW_LOCAL_BIN") or os.path.join(
    ENV.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "flashflow-local")
QUEUE, DLQ, TABLE = "flashflow-drill-orders", "flashflow-drill-orders-dlq", "flashflow-drill-orders"
REGION = ENV.get("AWS_REGION", "us-east-1")
LS_PORT = ENV.get("LOCALSTACK_PORT", "4566")


def log(msg):
    print(f"[drill {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def call(method, path, body=None, headers=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", API_PORT, timeout=timeout)
    try:
        data = json.dumps(body) if body is not None else None
        h = {"content-type": "application/json"} if data else {}
        h.update(headers or {})
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, (json.loads(raw) if raw else {})
        except ValueError:
            return resp.status, {}
    except (OSError, http.client.HTTPException):
        return 0, {}
    finally:
        conn.close()


def operator(method, path, body=None):
    return call(method, path, body, {"authorization": f"Bearer {TOKEN}"})


def cli(port, *args, host="127.0.0.1"):
    return subprocess.run(["redis-cli", "-h", host, "-p", str(port), *args],
                          capture_output=True, text=True, timeout=10).stdout.strip()


def psql(sql):
    return subprocess.run(["psql", ENV["DATABASE_URL"], "-qtAc", sql],
                          capture_output=True, text=True, check=True).stdout.strip()


def wait_until(what, seconds, check):
    until = time.time() + seconds
    while not check():
        if time.time() > until:
            raise SystemExit(f"drill: {what} did not happen within {seconds} s")
        time.sleep(0.05)


class Stack:
    """The cluster, the lagging link and FlashFlow's processes for one mode."""

    def __init__(self, mode):
        self.mode = mode
        self.dir = tempfile.mkdtemp(prefix="ff-drill-")
        self.procs = {}
        self.nodes = {}         # port -> the name of the Redis process serving it now

    def spawn(self, name, argv, env=None, log_name=None):
        out = open(os.path.join(self.dir, f"{log_name or name}.log"), "w")
        self.procs[name] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                            env=env, start_new_session=True)

    def redis(self, name, port, extra):
        d = os.path.join(self.dir, name)
        os.makedirs(d)
        self.nodes[port] = name
        self.spawn(name, ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--dir", d,
                          "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                          "--cluster-node-timeout", "2000", *extra])
        wait_until(f"redis on {port}", 10, lambda: cli(port, "ping") == "PONG")

    def start_cluster(self):
        # The primary announces 127.0.0.2 to the cluster (its replica replicates through the
        # lagging proxy there) and 127.0.0.1 to clients (the preferred endpoint, a hostname).
        self.redis("primary", PRIMARY, ["--cluster-announce-ip", "127.0.0.2",
                                        "--cluster-announce-hostname", "127.0.0.1",
                                        "--cluster-preferred-endpoint-type", "hostname"])
        self.redis("replica", REPLICA, ["--cluster-announce-hostname", "127.0.0.1",
                                        "--cluster-preferred-endpoint-type", "hostname"])
        proxy = os.path.join(HERE, "lag_proxy.py")
        self.spawn("link", [sys.executable, proxy, f"127.0.0.2:{PRIMARY}",
                            f"127.0.0.1:{PRIMARY}", str(LAG_MS)])
        self.spawn("bus", [sys.executable, proxy, f"127.0.0.2:{PRIMARY + 10000}",
                           f"127.0.0.1:{PRIMARY + 10000}", "0"])
        time.sleep(0.3)
        cli(PRIMARY, "cluster", "addslotsrange", "0", "16383")
        cli(REPLICA, "cluster", "meet", "127.0.0.2", str(PRIMARY))
        primary_id = cli(PRIMARY, "cluster", "myid")
        wait_until("the nodes meeting", 10,
                   lambda: primary_id in cli(REPLICA, "cluster", "nodes"))
        wait_until("the replica attaching", 10,
                   lambda: cli(REPLICA, "cluster", "replicate", primary_id) == "OK")
        wait_until("the replication link", 20,
                   lambda: "master_link_status:up" in cli(REPLICA, "info", "replication"))
        wait_until("the cluster", 20,
                   lambda: "cluster_state:ok" in cli(REPLICA, "cluster", "info")
                   and "cluster_state:ok" in cli(PRIMARY, "cluster", "info"))

    def replace_primary(self, dead=PRIMARY, primary=REPLICA):
        """A new node where the dead primary was, made the new primary's replica (as ElastiCache
        replaces a failed node): until it has synced, durable writes cannot be confirmed."""
        self.redis(f"node-{dead}-{len(self.procs)}", dead,
                   ["--cluster-announce-hostname", "127.0.0.1",
                    "--cluster-preferred-endpoint-type", "hostname"])
        cli(dead, "cluster", "meet", "127.0.0.1", str(primary))
        new_primary = cli(primary, "cluster", "myid")
        wait_until("the nodes meeting", 10,
                   lambda: new_primary in cli(dead, "cluster", "nodes"))
        wait_until("the replacement attaching", 10,
                   lambda: cli(dead, "cluster", "replicate", new_primary) == "OK")
        wait_until("the replacement's sync", 30,
                   lambda: "master_link_status:up" in cli(dead, "info", "replication"))

    def fail_over(self):
        """kill -9 of whichever node is the primary now (and the lagging link, if it was the
        first one), its replica taking over, a replacement where it was. Returns the seconds
        until the replacement synced."""
        primary = next(p for p in (PRIMARY, REPLICA) if cli(p, "role").startswith("master"))
        other = REPLICA if primary == PRIMARY else PRIMARY
        started = time.time()
        self.kill(self.nodes[primary])
        self.kill("link")
        self.kill("bus")
        cli(other, "cluster", "failover", "takeover")
        wait_until("the replica's promotion", 20,
                   lambda: "role:master" in cli(other, "info", "replication"))
        self.replace_primary(primary, other)
        return time.time() - started

    def start_flashflow(self):
        env = dict(ENV)
        env.update({
            "REDIS_URL": f"redis-cluster://127.0.0.1:{PRIMARY}?node=127.0.0.1:{REPLICA}",
            "REDIS_SECRET_ARN": "",
            "REDIS_WAIT_REPLICAS": "1" if self.mode == "durable" else "0",
            "REDIS_PAUSE_ON_FAILOVER": "1" if self.mode == "paused" else "0",
            "ORDERS_QUEUE": QUEUE, "ORDERS_DLQ": DLQ, "ORDERS_TABLE": TABLE,
            "ORDERS_QUEUE_URL": f"http://localhost:{LS_PORT}/queue/{REGION}/000000000000/{QUEUE}",
            "ORDERS_DLQ_URL": f"http://localhost:{LS_PORT}/queue/{REGION}/000000000000/{DLQ}",
            "LISTEN_ADDR": f"127.0.0.1:{API_PORT}", "TRUST_USER_HEADER": "1",
            "RUST_LOG": ENV.get("RUST_LOG", "warn"),
            "EVENT_SOURCE_POLL_WAIT_MS": "1000", "RECONCILE_INTERVAL_MS": "1000",
            "OUTBOX_THRESHOLD_MS": "2000",
        })
        for name in ("api", "settle", "reconcile"):
            self.spawn(name, [BIN, name], env)
        wait_until("the drill's API", 20, lambda: call("GET", "/")[0] != 0)

    def kill(self, name, sig=signal.SIGKILL):
        p = self.procs.get(name)
        if p and p.poll() is None:
            os.killpg(p.pid, sig)
            p.wait()

    def stop(self):
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM if name in ("api", "settle", "reconcile")
                      else signal.SIGKILL)
        subprocess.run(["rm", "-rf", self.dir])


def make_queues():
    env = dict(ENV, ORDERS_QUEUE=QUEUE, ORDERS_DLQ=DLQ, ORDERS_TABLE=TABLE,
               DYNAMODB_ENDPOINT=ENV.get("AWS_ENDPOINT_URL_DYNAMODB", "http://localhost:8000"))
    subprocess.run(["bash", os.path.join(ROOT, "localstack/init/ready.d/10-flashflow.sh")],
                   env=env, check=True, capture_output=True)
    for q in (QUEUE, DLQ):
        subprocess.run(["awslocal", "sqs", "purge-queue", "--queue-url",
                        f"http://localhost:{LS_PORT}/queue/{REGION}/000000000000/{q}"],
                       capture_output=True)


def rebuild_after_drain(sale):
    """What the operator does after a failover alarm: ask for the rebuild of the sale's counts
    from the ledger; the operator API refuses it (409 queue_not_drained) until settle has drained
    what the old primary's buyers sent."""
    started, refused = time.time(), 0
    while True:
        st, body = operator("POST", f"/admin/sales/{sale}/rehydrate")
        if st == 200:
            break
        assert (st, body.get("error")) == (409, "queue_not_drained"), (st, body)
        assert time.time() - started < 120, "the queue did not drain in 120 s"
        refused += 1
        time.sleep(0.2)
    log(f"paused: rebuilt {time.time() - started:.1f} s after the promotion, after {refused} "
        f"answers 409 queue_not_drained; {body['rehydrated']}")


class Told:
    """What the buyers and joiners were told."""

    def __init__(self):
        self.lock = threading.Lock()
        self.promised = {}      # order id -> buyer
        self.promised_at = []   # when each promise was answered
        self.unknown = {}       # order id -> buyer (503 outcome_unknown, never resolved)
        self.places = {}        # joiner -> (ticket, join index)
        self.answers = Counter()
        self.sold_out = threading.Event()


def buyer(sale, told, stop, index):
    n = 0
    while not stop.is_set() and not told.sold_out.is_set():
        n += 1
        who, key = f"b{index}-{n}", str(uuid.uuid4())
        headers = {"x-user-id": who, "idempotency-key": key}
        for _ in range(40):
            st, body = call("POST", f"/sales/{sale}/buy", {"quantity": 1}, headers)
            with told.lock:
                told.answers[f"buy {st} {body.get('error') or body.get('status', '')}"] += 1
            if st in (200, 202):
                with told.lock:
                    told.promised[body["order_id"]] = who
                    told.promised_at.append(time.time())
                    told.unknown.pop(body["order_id"], None)
                break
            if st == 409:
                told.sold_out.set()
                break
            if st == 503 and body.get("error") == "outcome_unknown":
                with told.lock:
                    told.unknown[body["order_id"]] = who
            elif st not in (0, 503):
                break
            time.sleep(0.1)  # no answer, or not yet: ask again with the same key


def joiner(room, told, stop, index):
    n = 0
    while not stop.is_set():
        n += 1
        who = f"j{index}-{n}"
        for _ in range(40):
            st, body = call("POST", f"/sales/{room}/queue", {}, {"x-user-id": who})
            with told.lock:
                told.answers[f"join {st} {body.get('error') or body.get('state', '')}"] += 1
            if st in (200, 201):
                with told.lock:
                    told.places[who] = (body["ticket"], body.get("join_index"))
                break
            if st not in (0, 503):
                break
            time.sleep(0.1)


def drill(mode):
    stamp = time.strftime("%H%M%S")
    sale, room = f"drill-{mode}-{stamp}", f"drill-{mode}-{stamp}-room"
    stack = Stack(mode)
    try:
        make_queues()
        stack.start_cluster()
        stack.start_flashflow()
        at = lambda s: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s))
        st, body = operator("POST", "/admin/sales", {"id": sale, "name": "Failover drill",
                                                     "stock": STOCK, "per_user_limit": 1})
        assert st in (200, 201), (st, body)
        # The room's sale opens in an hour: places are joined (and kept) all through the drill.
        st, body = operator("POST", "/admin/sales", {
            "id": room, "name": "Failover drill queue", "stock": 100, "per_user_limit": 1,
            "opens_at": at(time.time() + 3600),
            "waiting_room": {"opens_at": at(time.time() - 1), "admission_seconds": 60}})
        assert st in (200, 201), (st, body)
        log(f"{mode}: sale {sale} ({STOCK} units), room {room}; the link lags {LAG_MS} ms")

        told, stop = Told(), threading.Event()
        threads = [threading.Thread(target=buyer, args=(sale, told, stop, i))
                   for i in range(BUYERS)]
        threads += [threading.Thread(target=joiner, args=(room, told, stop, i))
                    for i in range(JOINERS)]
        started = time.time()
        for t in threads:
            t.start()
        while len(told.promised) < STOCK // 2 and time.time() - started < 60:
            time.sleep(0.01)
        before = len(told.promised)
        stack.kill("primary")
        stack.kill("link")
        stack.kill("bus")
        failed_over = time.time()
        log(f"{mode}: kill -9 of the primary after {before} promises "
            f"({failed_over - started:.1f} s); the replica takes over")
        cli(REPLICA, "cluster", "failover", "takeover")
        wait_until("the replica's promotion", 20,
                   lambda: "role:master" in cli(REPLICA, "info", "replication"))
        promoted = time.time()
        log(f"{mode}: promoted {promoted - failed_over:.1f} s after the kill")
        if mode == "paused":
            rebuild_after_drain(sale)
        stack.replace_primary()
        log(f"{mode}: a replacement replica synced {time.time() - failed_over:.1f} s after the kill")
        told.sold_out.wait(timeout=60)
        time.sleep(1)
        stop.set()
        for t in threads:
            t.join()
        log(f"{mode}: load over {time.time() - started:.1f} s; answers {dict(told.answers)}")
        after = [t for t in told.promised_at if t > failed_over]
        pause = (min(after) - failed_over) if after else float("inf")
        log(f"{mode}: the first promise after the kill came {pause:.1f} s after it")

        # Drain: every promised order recorded, or the bound passes.
        promised = dict(told.promised)
        ids = "','".join(promised)
        def recorded():
            rows = psql(f"SELECT order_id, status FROM orders WHERE sale_id = '{sale}'")
            return dict(line.split("|") for line in rows.splitlines() if line)
        until = time.time() + 90
        while time.time() < until:
            rows = recorded()
            if all(o in rows for o in promised):
                break
            time.sleep(1)
        rows = recorded()
        log(f"{mode}: drained in {time.time() - (until - 90):.1f} s")
        lost = [o for o in promised if o not in rows]
        rejected = [o for o in promised if rows.get(o) == "REJECTED"]
        confirmed = sum(1 for s in rows.values() if s == "CONFIRMED")
        oversold = max(0, confirmed - STOCK)
        # Places: each joiner's ticket still answers it, with the index it was given.
        places_lost, seen = 0, Counter()
        for who, (ticket, index) in told.places.items():
            st, body = call("GET", f"/sales/{room}/queue/{ticket}", None, {"x-user-id": who})
            ok = st == 200 and body.get("state") in ("waiting", "admitted", "used", "expired",
                                                     "sold_out", "closed")
            if not ok:
                places_lost += 1
            seen[index] += 1
        given_twice = sum(n - 1 for i, n in seen.items() if i is not None and n > 1)
        unknown = {o: b for o, b in told.unknown.items() if o not in promised}
        unknown_recorded = sum(1 for o in unknown if o in rows)
        line = (f"acknowledged {len(promised)}, lost {len(lost)}, rejected after 202 "
                f"{len(rejected)}, places lost {places_lost + given_twice}, oversold {oversold}")
        log(f"{mode}: {len(told.places)} places; {len(unknown)} buyers told outcome_unknown "
            f"({unknown_recorded} of those orders recorded); {confirmed} CONFIRMED of {STOCK}")
        print(f"{mode}: {line}", flush=True)
        return len(lost) + len(rejected) + places_lost + given_twice + oversold
    finally:
        if ENV.get("DRILL_KEEP_LOGS"):
            subprocess.run(["cp", "-r", stack.dir, f"/tmp/drill-{mode}-logs"])
        stack.stop()


def main():
    modes = {"all": ["async", "paused", "durable"]}.get(sys.argv[1] if len(sys.argv) > 1 else "all")
    modes = modes or [sys.argv[1]]
    if not os.access(BIN, os.X_OK):
        sys.exit(f"drill: {BIN} is missing (make build)")
    bad = {mode: drill(mode) for mode in modes}
    if bad.get("durable", 0) != 0:
        sys.exit("drill: the durable mode lost or broke promises")


if __name__ == "__main__":
    main()
