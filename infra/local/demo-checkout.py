#!/usr/bin/env python3
"""The checkout part of `make demo`: a sale whose buyers hold, pay through Stripe (localstripe) or
walk away; the abandoned units come back when their holds expire and later buyers buy them.

Runs against the API, settle and expire services (`infra/local/services.sh`). Payments go as a
buyer's browser sends them with Stripe.js: the card to Stripe, then Stripe's signed webhook to
`POST /webhooks/stripe` (localstripe delivers it to the endpoint `make up` registered). Checks the
books at the end and exits non-zero when one is off. Standard library only.
"""

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

API = f"http://127.0.0.1:{os.environ['API_PORT']}"
STRIPE = os.environ["STRIPE_API_BASE"]
STRIPE_KEY = os.environ["STRIPE_SECRET_KEY"]
OPERATOR = os.environ["OPERATOR_TOKEN"]
STOCK, FIRST_BUYERS, ABANDON = 10, 20, 3
HOLD_SECONDS = 60  # the shortest hold a sale may give


def call(method, url, body=None, headers=None, form=None):
    data = None
    headers = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["content-type"] = "application/x-www-form-urlencoded"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def api(method, path, buyer=None, body=None):
    headers = {"x-user-id": buyer} if buyer else {"authorization": f"Bearer {OPERATOR}"}
    return call(method, API + path, body, headers)


def stripe(path, form=None, method="POST"):
    auth = base64.b64encode(f"{STRIPE_KEY}:".encode()).decode()
    return call(method, STRIPE + path, headers={"authorization": f"Basic {auth}"}, form=form)[1]


def card_payment(intent):
    """What Stripe.js does with the client secret: a test card, then confirm."""
    pm = stripe("/v1/payment_methods", {"type": "card", "card[number]": "4242424242424242",
                                        "card[exp_month]": "12", "card[exp_year]": "2031",
                                        "card[cvc]": "123"})
    stripe(f"/v1/payment_intents/{intent}", {"payment_method": pm["id"]})
    return stripe(f"/v1/payment_intents/{intent}/confirm", {})["status"]


def wait_status(orders, want, seconds):
    """Wait until every (order, buyer) shows `want`; returns the statuses seen last."""
    deadline = time.time() + seconds
    while True:
        seen = {o: api("GET", f"/orders/{o}", b)[1].get("status") for o, b in orders}
        if all(s == want for s in seen.values()) or time.time() > deadline:
            return seen
        time.sleep(0.5)


def buy_and_hold(sale, buyers):
    held = []
    for b in buyers:
        status, body = api("POST", f"/sales/{sale}/buy", b, {"quantity": 1})
        if status == 202:
            held.append((body["order_id"], b, body["pay_by"]))
    return held


def pay(orders):
    for o, b in orders:
        status, p = api("POST", f"/orders/{o}/payment", b)
        if status != 200:
            sys.exit(f"demo: payment for {o} answered {status} {p}")
        if card_payment(p["payment_intent"]) != "succeeded":
            sys.exit(f"demo: the card payment of {o} did not succeed")


def main():
    sale = f"shop-{int(time.time())}"
    print(f"\n==> checkout sale {sale}: {STOCK} units at 129.00 EUR, 1 per buyer, "
          f"holds of {HOLD_SECONDS}s")
    status, body = api("POST", "/admin/sales", body={
        "id": sale, "name": "Checkout drop", "stock": STOCK, "per_user_limit": 1,
        "checkout": {"hold_seconds": HOLD_SECONDS, "price": 12900, "currency": "eur"}})
    if status not in (200, 201):
        sys.exit(f"demo: creating the sale answered {status} {body}")

    first = buy_and_hold(sale, [f"shopper-{i}" for i in range(FIRST_BUYERS)])
    print(f"    {FIRST_BUYERS} buyers: {len(first)} hold a unit (pay by {first[0][2]}), "
          f"{FIRST_BUYERS - len(first)} were told sold out")
    seen = wait_status([(o, b) for o, b, _ in first], "HELD", 30)
    print(f"    settled: {sum(s == 'HELD' for s in seen.values())} HELD")
    payers = [(o, b) for o, b, _ in first[ABANDON:]]
    leavers = [(o, b) for o, b, _ in first[:ABANDON]]
    pay(payers)
    seen = wait_status(payers, "CONFIRMED", 30)
    # The others open the payment form (their intent exists at Stripe) and walk away.
    left_intents = [api("POST", f"/orders/{o}/payment", b)[1]["payment_intent"] for o, b in leavers]
    print(f"    {len(payers)} paid with a test card (Stripe's webhook -> CONFIRMED: "
          f"{sum(s == 'CONFIRMED' for s in seen.values())}); {len(leavers)} opened the payment "
          f"and walked away")
    status, view = api("GET", f"/admin/sales/{sale}")
    print(f"    books: remaining {view['remaining']}, held {view['holds']['held_orders']}, "
          f"paid {view['settled']['confirmed_orders']}")

    print(f"    waiting for the abandoned holds to expire (up to {HOLD_SECONDS + 30}s)...")
    seen = wait_status(leavers, "EXPIRED", HOLD_SECONDS + 30)
    expired = sum(s == "EXPIRED" for s in seen.values())
    cancelled = sum(stripe(f"/v1/payment_intents/{pi}", method="GET")["status"] == "canceled"
                    for pi in left_intents)
    status, view = api("GET", f"/admin/sales/{sale}")
    print(f"    {expired} EXPIRED: {cancelled} intents cancelled at Stripe first, remaining back "
          f"to {view['remaining']}")

    later = buy_and_hold(sale, [f"latecomer-{i}" for i in range(ABANDON + 2)])
    later_orders = [(o, b) for o, b, _ in later]
    wait_status(later_orders, "HELD", 30)
    pay(later_orders)
    seen = wait_status(later_orders, "CONFIRMED", 30)
    print(f"    {len(later)} later buyers bought the returned units and paid: "
          f"{sum(s == 'CONFIRMED' for s in seen.values())} CONFIRMED")

    status, view = api("GET", f"/admin/sales/{sale}")
    h, s = view["holds"], view["settled"]
    paid, held = s["confirmed_quantity"], h["held_quantity"]
    print(f"\nFlashFlow checkout — sale {sale}, stock {STOCK}")
    checks = [
        ("paid (CONFIRMED)", paid, STOCK),
        ("held", held, 0),
        ("expired and sold again", h["expired_orders"], ABANDON),
        ("their intents cancelled at Stripe", cancelled, ABANDON),
        ("paid + held + remaining (= stock)", paid + held + view["remaining"], STOCK),
        ("refunded", h["refunded_orders"], 0),
        ("pending", view["pending"], 0),
    ]
    failed = 0
    for label, value, want in checks:
        mark = "ok" if value == want else f"FAIL (expected {want})"
        failed += value != want
        print(f"  {label:<36} {value:<8} {mark}")
    if failed:
        sys.exit(f"demo: {failed} checkout check(s) failed")
    print("==> checkout demo OK")


if __name__ == "__main__":
    main()
