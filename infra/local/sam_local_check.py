"""`make sam-local-check`: FlashFlow's functions in Lambda containers (`sam local`), checked as a
user would use them, against the local stack. Run by infra/local/sam-local.sh check, which starts
`sam local start-api` and gives this script its address, the queue buy sends to (one of its own, so
no other settle takes its orders) and the `sam local invoke` command.

It checks, through the API: a sale created on the operator's route; two buys (202) and a keyed
retry (the same order); the order PENDING, then CONFIRMED once settle has run (settle invoked with
the very messages buy sent, as the SQS event source would hand them over); a waiting room joined,
polled until admitted, bought with the admission token (202), and a buy without one refused (403).
Then `sam local invoke` with each events/ fixture answers as events/README.md says. Last, cold and
warm latency through `sam local` beside flashflow-local (the same router in one process), so
nobody mistakes the emulator's cost for FlashFlow's. Prints each check; exits 1 on any difference.
"""

import argparse
import hashlib
import hmac
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
OPERATOR = {"Authorization": f"Bearer {os.environ['OPERATOR_TOKEN']}"}
SIGNING_KEY = os.environ["ORDER_SIGNING_KEY"].encode()

failures = []
# The first request each function answered through the API: its cold start (SAM's warm containers
# are started ahead, but a function's runtime starts on its first invocation).
first = {}


def check(what, ok, detail=""):
    print(f"  {'ok  ' if ok else 'FAIL'} {what}{'   ' + detail if detail else ''}", flush=True)
    if not ok:
        failures.append(what)
    return ok


def call(api, method, path, body=None, headers=None, timeout=60):
    """(status, JSON body or text, headers, seconds) of one request."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(api + path, data=data, method=method)
    req.add_header("content-type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw, hdrs = r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        status, raw, hdrs = e.code, e.read(), dict(e.headers)
    took = time.perf_counter() - start
    try:
        return status, json.loads(raw), hdrs, took
    except ValueError:
        return status, raw.decode(errors="replace"), hdrs, took


def wait_for(api, seconds=240):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if call(api, "GET", "/openapi.json", timeout=5)[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(1)
    return False


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def sign(order):
    """buy's signature of an order message (flashflow::domain::signing::order_text)."""
    text = "\n".join(
        ["flashflow-order-v2", order["order_id"], order["sale_id"], order["buyer"],
         str(order["quantity"]), order.get("idempotency_key") or ""])
    return hmac.new(SIGNING_KEY, text.encode(), hashlib.sha256).hexdigest()


class Sam:
    """`sam local invoke` of the same template, environment and flags as the API."""

    def __init__(self, command, flags):
        self.command = shlex.split(command)
        self.flags = shlex.split(flags)

    def invoke(self, function, event):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(event, f)
        start = time.perf_counter()
        out = subprocess.run(self.command + ["invoke", function, "-e", f.name] + self.flags,
                             capture_output=True, text=True, timeout=300)
        took = time.perf_counter() - start
        os.unlink(f.name)
        lines = [l for l in out.stdout.strip().splitlines() if l.strip()]
        try:
            return json.loads(lines[-1]), took
        except (IndexError, ValueError):
            return {"unreadable": out.stdout[-500:], "stderr": out.stderr[-1500:]}, took


def fixture(name, sale=None):
    text = (EVENTS / name).read_text()
    if sale:
        text = text.replace("demo-sale", sale)
    return json.loads(text)


def status_of(response):
    return response.get("statusCode"), json.loads(response.get("body") or "null")


def receive(queue_url, want, seconds=30):
    """The messages buy sent (as SQS hands them to an event source), `want` of them."""
    import boto3  # the tools venv's; the stack's endpoint comes from AWS_ENDPOINT_URL_SQS

    sqs = boto3.client("sqs")
    got, deadline = {}, time.time() + seconds
    while len(got) < want and time.time() < deadline:
        r = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=2,
                                AttributeNames=["All"])
        for m in r.get("Messages", []):
            got[m["MessageId"]] = m
    return sqs, list(got.values())


def as_event_record(m, queue_url):
    name = queue_url.rsplit("/", 1)[-1]
    return {
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": m.get("Attributes", {}), "messageAttributes": {},
        "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{os.environ['AWS_REGION']}:000000000000:{name}",
        "awsRegion": os.environ["AWS_REGION"],
    }


def through_the_api(api, sam, queue_url):
    print("through the API (sam local start-api)")
    sale = f"sam-{uuid.uuid4().hex[:10]}"
    s, body, _, first["operator"] = call(api, "POST", "/admin/sales", {
        "id": sale, "name": "SAM local", "stock": 10, "per_user_limit": 1}, OPERATOR)
    check("the operator creates a sale: 201", s == 201, f"{s}")
    s, body, _, _ = call(api, "GET", f"/admin/sales/{sale}", headers=OPERATOR)
    check("the operator reads it: 200, remaining 10", s == 200 and body.get("remaining") == 10,
          f"{s}")
    key = str(uuid.uuid4())
    s, alice, _, first["buy"] = call(api, "POST", f"/sales/{sale}/buy", {"quantity": 1},
                                     {"X-User-Id": "alice", "Idempotency-Key": key})
    check("alice buys: 202 PENDING", s == 202 and alice.get("status") == "PENDING", f"{s} {alice}")
    s, again, _, _ = call(api, "POST", f"/sales/{sale}/buy", {"quantity": 1},
                          {"X-User-Id": "alice", "Idempotency-Key": key})
    check("her keyed retry answers the same order", s == 202 and
          again.get("order_id") == alice.get("order_id"), f"{s} {again}")
    s, bob, _, _ = call(api, "POST", f"/sales/{sale}/buy", {"quantity": 1}, {"X-User-Id": "bob"})
    check("bob buys: 202", s == 202, f"{s}")
    order = alice.get("order_id", "none")
    s, body, _, first["orders"] = call(api, "GET", f"/orders/{order}",
                                       headers={"X-User-Id": "alice"})
    check("alice reads her order: 200 PENDING", s == 200 and body.get("status") == "PENDING",
          f"{s} {body}")

    sqs, messages = receive(queue_url, 2)
    check("buy sent both orders to the queue", len(messages) == 2, f"{len(messages)}")
    event = {"Records": [as_event_record(m, queue_url) for m in messages]}
    response, took = first["settle (sam local invoke)"] = sam.invoke("SettleFunction", event)
    check("settle (sam local invoke, the messages buy sent): no failed item",
          response.get("batchItemFailures") == [], f"{response} in {took:.1f} s")
    if response.get("batchItemFailures") == []:
        # What the event source mapping does after a batch with no failures.
        for m in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    s, body, _, _ = call(api, "GET", f"/orders/{order}", headers={"X-User-Id": "alice"})
    check("alice's order is CONFIRMED", s == 200 and body.get("status") == "CONFIRMED",
          f"{s} {body}")
    s, body, _, _ = call(api, "GET", f"/admin/sales/{sale}", headers=OPERATOR)
    settled = (body.get("settled") or {}).get("confirmed_quantity")
    check("the ledger holds 2 confirmed, Redis 8 remaining",
          settled == 2 and body.get("remaining") == 8, f"{settled} {body.get('remaining')}")

    room = f"sam-room-{uuid.uuid4().hex[:8]}"
    now = int(time.time() * 1000)
    s, body, _, _ = call(api, "POST", "/admin/sales", {
        "id": room, "name": "SAM local queue", "stock": 1, "per_user_limit": 1,
        "opens_at": iso(now + 3000),
        "waiting_room": {"opens_at": iso(now - 1000), "admission_seconds": 120}}, OPERATOR)
    check("the operator creates a sale with a waiting room: 201", s == 201, f"{s} {body}")
    s, joined, _, first["queue"] = call(api, "POST", f"/sales/{room}/queue", {},
                                        {"X-User-Id": "carol"})
    check("carol joins its queue: 201", s == 201 and "ticket" in joined, f"{s} {joined}")
    ticket, place, deadline = joined.get("ticket", "none"), {}, time.time() + 60
    while time.time() < deadline:
        s, place, _, _ = call(api, "GET", f"/sales/{room}/queue/{ticket}",
                              headers={"X-User-Id": "carol"})
        if s != 200 or place.get("state") != "waiting":
            break
        time.sleep(min(place.get("retry_after_ms") or 1000, 2000) / 1000)
    check("her place is admitted after the opening", place.get("state") == "admitted",
          f"{place.get('state')}")
    s, body, _, _ = call(api, "POST", f"/sales/{room}/buy", {"quantity": 1},
                         {"X-User-Id": "dave"})
    check("dave, not admitted, is refused: 403", s == 403, f"{s} {body}")
    s, body, _, _ = call(api, "POST", f"/sales/{room}/buy", {"quantity": 1},
                         {"X-User-Id": "carol",
                          "Admission-Token": place.get("admission_token") or ""})
    check("carol buys with her admission token: 202", s == 202, f"{s} {body}")


def the_fixtures(sam):
    print("events/ fixtures (sam local invoke)")
    sale = f"sam-fx-{uuid.uuid4().hex[:8]}"
    r, took = sam.invoke("OperatorFunction", fixture("apigw-admin-create-sale.json", sale))
    s, _ = status_of(r)
    check("apigw-admin-create-sale.json: 201", s == 201, f"{s} in {took:.1f} s")
    r, took = sam.invoke("OperatorFunction", fixture("apigw-admin-show-sale.json", sale))
    s, body = status_of(r)
    check("apigw-admin-show-sale.json: 200, stock 100", s == 200 and body.get("stock") == 100,
          f"{s} in {took:.1f} s")
    r, took = sam.invoke("BuyFunction", fixture("apigw-buy.json", sale))
    s, bought = status_of(r)
    check("apigw-buy.json: 202", s == 202, f"{s} {bought} in {took:.1f} s")
    r, took = sam.invoke("BuyFunction", fixture("apigw-buy-no-identity.json", sale))
    s, body = status_of(r)
    check("apigw-buy-no-identity.json: 401", s == 401, f"{s} {body} in {took:.1f} s")
    r, took = sam.invoke("OrdersFunction", fixture("apigw-order-status.json"))
    s, body = status_of(r)
    check("apigw-order-status.json as is: 404 order_not_found",
          s == 404 and body.get("error") == "order_not_found", f"{s} in {took:.1f} s")
    status_event = json.loads((EVENTS / "apigw-order-status.json").read_text().replace(
        "01936f1e-0000-7000-8000-000000000001", (bought or {}).get("order_id", "none")))
    r, took = sam.invoke("OrdersFunction", status_event)
    s, body = status_of(r)
    check("apigw-order-status.json with the id the buy returned: 200", s == 200,
          f"{s} {body} in {took:.1f} s")
    r, took = sam.invoke("CheckoutFunction", fixture("apigw-checkout-payment.json"))
    s, body = status_of(r)
    check("apigw-checkout-payment.json as is: 404 order_not_found",
          s == 404 and body.get("error") == "order_not_found", f"{s} in {took:.1f} s")
    batch = fixture("sqs-orders-batch.json", sale)
    for record in batch["Records"]:
        order = json.loads(record["body"])
        if "sale_id" in order:  # fresh ids and buy's signature made again, as the tests do
            order["order_id"] = str(uuid.uuid4())
            order["sig"] = sign(order)
            record["body"] = json.dumps(order)
    r, took = sam.invoke("SettleFunction", batch)
    failed = [f["itemIdentifier"] for f in r.get("batchItemFailures", [])]
    check("sqs-orders-batch.json: only the poison message fails",
          failed == ["2e1424d0-d2ea-4a6e-aa4a-ad5aa8e2a3b1"], f"{r} in {took:.1f} s")
    r, took = sam.invoke("ExpireFunction", fixture("schedule-expire.json"))
    check("schedule-expire.json: expire runs without an error", "errorMessage" not in r
          and "unreadable" not in r, f"{r} in {took:.1f} s")


def latency(api, local_bin, n=50):
    """First and warm requests through sam local beside flashflow-local's own server."""
    print("latency (one run; sequential requests from this script)")
    local = None
    if Path(local_bin).exists():
        env = dict(os.environ, LISTEN_ADDR="127.0.0.1:3091", TRUST_USER_HEADER="1",
                   RUST_LOG="warn")
        local = subprocess.Popen([local_bin, "api"], env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                call("http://127.0.0.1:3091", "GET", "/openapi.json", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
    try:
        servers = [("sam local", api)] + ([("flashflow-local", "http://127.0.0.1:3091")]
                                          if local else [])
        rows = []
        for name, base in servers:
            sale = f"sam-lat-{uuid.uuid4().hex[:8]}"
            call(base, "POST", "/admin/sales", {"id": sale, "name": "latency",
                                               "stock": 1_000_000, "per_user_limit": 1}, OPERATOR)
            reads = [call(base, "GET", f"/sales/{sale}")[3] for _ in range(n)]
            buys = [call(base, "POST", f"/sales/{sale}/buy", {"quantity": 1},
                         {"X-User-Id": f"b{i}"})[3] for i in range(n)]
            rows.append((name, reads, buys))
        print(f"    {'server':<16} {'first read':>11} {'read p50':>9} {'read p99':>9} "
              f"{'buy p50':>9} {'buy p99':>9}")
        for name, reads, buys in rows:
            q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p * len(xs)))] * 1000
            print(f"    {name:<16} {reads[0] * 1000:>9.1f}ms {q(reads[1:], .5):>7.1f}ms "
                  f"{q(reads[1:], .99):>7.1f}ms {statistics.median(buys) * 1000:>7.1f}ms "
                  f"{q(buys, .99):>7.1f}ms")
        if not local:
            print(f"    (flashflow-local not measured: {local_bin} is missing; make build)")
        print("    the first request to each function through sam local (its cold start): " +
              ", ".join(f"{k} {(v[1] if isinstance(v, tuple) else v) * 1000:.0f} ms"
                        for k, v in first.items()))
    finally:
        if local:
            local.terminate()
            local.wait()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--api", required=True)
    p.add_argument("--queue-url", required=True)
    p.add_argument("--sam", required=True)
    p.add_argument("--sam-flags", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--local-bin", default=str(ROOT / "target/release/flashflow-local"))
    a = p.parse_args()
    started = time.perf_counter()
    if not wait_for(a.api):
        print(f"sam local start-api did not answer on {a.api} (see {a.log})")
        return 1
    print(f"sam local start-api answered after {time.perf_counter() - started:.1f} s")
    os.environ["ORDERS_QUEUE_URL"] = a.queue_url  # flashflow-local's buys too
    sam = Sam(a.sam, a.sam_flags)
    through_the_api(a.api, sam, a.queue_url)
    the_fixtures(sam)
    latency(a.api, a.local_bin)
    print(f"sam-local-check: {'passed' if not failures else 'FAILED: ' + '; '.join(failures)}"
          f" in {time.perf_counter() - started:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
