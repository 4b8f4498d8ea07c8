#!/usr/bin/env python3
"""The pages in a real browser: headless Chromium driven over WebDriver (chromedriver).

usage: browser.py [--screenshots DIR]

Runs against the local API (infra/local/services.sh starts api, settle and expire) and localstripe.
It drives:
  - the storefront: buy -> HELD with its timer -> pay with a test card in the card Element ->
    CONFIRMED (Stripe's webhook, never the page's word); a double click -> one order; a buy with
    the Enter key on a phone-width window; a sold-out sale -> its message;
  - the live view: the operator's token, then its counts moving during a small load;
  - the waiting room: join before the opening (with a proof of work) -> "you're in the queue"
    -> admitted -> buy -> pay; a place that waits while the only unit sells -> sold out;
  - the draw page: a buyer's place recomputed in the browser from the draw's record (the beacon's
    round, the join list's root), equal to the documented algorithm's in Python;
  - sign-in by link (`#token=`, the JWT mode of a deployment, served by a second API process with
    TRUST_USER_HEADER=false): who is signed in is shown, and a link never signs in someone else
    silently.
Screenshots of both pages go to DIR (bench/reports/). Prints `browser: N passed, M failed`.
Standard library only: WebDriver is JSON over HTTP.
"""

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

API = f"http://127.0.0.1:{os.environ['API_PORT']}"
OPERATOR = os.environ["OPERATOR_TOKEN"]


def http(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    h = {"content-type": "application/json"} if data else {}
    h.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def admin(method, path, body=None):
    return http(method, API + path, body, {"authorization": f"Bearer {OPERATOR}"})


class Browser:
    """A headless Chromium session over chromedriver's W3C WebDriver API."""

    def __init__(self, width=1200, height=900, phone=False):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.profile = tempfile.mkdtemp(prefix="ff-chromium-")
        self.driver = subprocess.Popen(["chromedriver", f"--port={self.port}"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(100):
            try:
                self.call("GET", "/status")
                break
            except OSError:
                time.sleep(0.1)
        # The flags this machine needs: no sandbox as root, and no background connections (its
        # network refuses them).
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}"]
        options = {"binary": shutil.which("chromium"), "args": args}
        if phone:
            # A phone's viewport (a headless window is at least 500 px wide).
            options["mobileEmulation"] = {"deviceMetrics": {"width": 390, "height": 844,
                                                            "pixelRatio": 2}}
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome",
                                                 "goog:chromeOptions": options}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"webdriver {method} {path}: {e.read()[:300]!r}") from None

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def go(self, url):
        self.s("POST", "/url", {"url": url})

    def find(self, css):
        found = self.s("POST", "/elements", {"using": "css selector", "value": css})
        return [list(e.values())[0] for e in found]

    def one(self, css, timeout=10):
        return self.wait(lambda: (self.find(css) or [None])[0], f"an element {css}", timeout)

    def type(self, css, text):
        self.s("POST", f"/element/{self.one(css)}/value", {"text": text})

    def click(self, css):
        self.s("POST", f"/element/{self.one(css)}/click", {})

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def text(self, css):
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", css)

    def wait(self, check, what, timeout=20):
        deadline = time.time() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.time() > deadline:
                raise AssertionError(f"waited {timeout}s for {what}")
            time.sleep(0.2)

    def screenshot(self, path):
        import base64
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.s("GET", "/screenshot")))

    def close(self):
        try:
            self.s("DELETE", "")
        except Exception:  # noqa: BLE001 - closing what may be gone
            pass
        self.driver.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


def new_sale(stock, checkout=True, limit=1):
    sale = f"web-{int(time.time() * 1000) % 10**10}-{stock}"
    body = {"id": sale, "name": "Launch sneakers", "stock": stock, "per_user_limit": limit}
    if checkout:
        body["checkout"] = {"hold_seconds": 600, "price": 12900, "currency": "eur"}
    status, answer = admin("POST", "/admin/sales", body)
    assert status in (200, 201), f"creating {sale}: {status} {answer}"
    return sale


def fresh_buyer(b, sale, name):
    """A new visitor: nothing remembered from an earlier buyer on this browser."""
    # Cleared on a page of the same origin without the shop's script (which keeps its order).
    b.go(f"{API}/pages/config.json")
    b.js("sessionStorage.clear(); localStorage.clear();")
    b.go(f"{API}/shop/{sale}")
    b.wait(lambda: b.js("return !!window.fetch && document.getElementById('remaining').textContent !== '–'"),
           "the sale to load")
    b.type("#buyer", name)


def reserved(sale):
    return admin("GET", f"/admin/sales/{sale}")[1]["reserved"]


def test_buy_hold_pay_confirmed(b, shots):
    sale = new_sale(3)
    fresh_buyer(b, sale, "alice")
    b.wait(lambda: b.js("return !document.getElementById('buy').disabled"), "the buy button")
    b.click("#buy")
    b.wait(lambda: b.text("#order-status") == "HELD", "HELD")
    assert "Pay within" in b.wait(lambda: b.text("#hold"), "the hold timer")
    # The card Element (localstripe's stand-in: number, month, year, cvc, postal code).
    b.one("#card input[placeholder=number]")
    for field, value in (("number", "4242424242424242"), ("exp_month", "12"),
                         ("exp_year", "31"), ("cvc", "123"), ("postal_code", "10115")):
        b.type(f"#card input[placeholder={field}]", value)
    b.click("#pay")
    b.wait(lambda: b.text("#order-status") == "CONFIRMED", "CONFIRMED (Stripe's webhook)", 30)
    assert "Paid" in b.text("#message")
    if shots:
        b.screenshot(os.path.join(shots, "shop.png"))
    return sale


def test_double_click_is_one_order(b):
    # A limit of 5: only the page's one key per intent can make two clicks one order.
    sale = new_sale(10, limit=5)
    fresh_buyer(b, sale, "bob")
    before = reserved(sale)
    b.wait(lambda: b.js("return !document.getElementById('buy').disabled"), "the buy button")
    # Two clicks in one go, and a second submit as a retry would send it: one intent, one key.
    b.js("const f = document.getElementById('buy-form'); const btn = document.getElementById('buy');"
         "btn.click(); btn.click(); f.requestSubmit();")
    b.wait(lambda: b.text("#order-status") in ("PENDING", "HELD"), "bob's order")
    time.sleep(1.5)
    assert reserved(sale) == before + 1, f"reserved {before} -> {reserved(sale)}"


def test_enter_key_buys_on_a_phone_width_screen(b, sale):
    fresh_buyer(b, sale, "carol")
    width = b.js("return window.innerWidth")
    assert width <= 390, f"viewport {width} px wide"
    overflow = b.js("return document.documentElement.scrollWidth > window.innerWidth")
    assert not overflow, "the page is wider than the phone"
    b.wait(lambda: b.js("return !document.getElementById('buy').disabled"), "the buy button")
    b.type("#buyer", "\ue007")  # Enter in the name field submits the form
    b.wait(lambda: b.text("#order-status") in ("PENDING", "HELD"), "carol's order")


def test_countdown_before_the_opening(b):
    sale = f"web-soon-{int(time.time() * 1000) % 10**10}"
    opens = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    status, answer = admin("POST", "/admin/sales", {
        "id": sale, "name": "Later drop", "stock": 5, "per_user_limit": 1, "opens_at": opens})
    assert status in (200, 201), answer
    fresh_buyer(b, sale, "erin")
    text = b.wait(lambda: b.text("#countdown"), "the countdown")
    assert text.startswith("Opens in 59:") or text.startswith("Opens in 1:00:"), text
    assert b.js("return document.getElementById('buy').disabled"), "no buying before the opening"


def test_sold_out_says_so(b):
    sale = new_sale(1, checkout=False)
    http("POST", f"{API}/sales/{sale}/buy", {"quantity": 1}, {"x-user-id": "early-bird"})
    fresh_buyer(b, sale, "dave")
    b.wait(lambda: "Sold out" in (b.text("#message") or ""), "the sold-out message")
    assert b.js("return document.getElementById('buy').disabled")


def room_sale(stock, opens_in, pow_bits=0, checkout=True, entry=None):
    """A sale with a waiting room: the queue open now, the sale (and the draw) `opens_in` s on."""
    sale = f"web-room-{int(time.time() * 1000) % 10**10}-{stock}"
    at = lambda s: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s))
    body = {"id": sale, "name": "Queued drop", "stock": stock, "per_user_limit": 1,
            "opens_at": at(time.time() + opens_in),
            "waiting_room": {"opens_at": at(time.time() - 1), "admission_seconds": 120,
                             "pow_bits": pow_bits}}
    if entry:
        body["waiting_room"]["entry"] = entry
    if checkout:
        body["checkout"] = {"hold_seconds": 600, "price": 12900, "currency": "eur"}
    status, answer = admin("POST", "/admin/sales", body)
    assert status in (200, 201), f"creating {sale}: {status} {answer}"
    return sale


def test_queue_countdown_position_admission_buy_and_pay(b, shots):
    # Two people ahead joined through the API; this visitor joins in the browser, with a proof
    # of work, before the opening: "you're in the queue", then a place, then the buy button.
    sale = room_sale(3, opens_in=8, pow_bits=8)
    fresh_buyer(b, sale, "queued-alice")
    assert "Opens in" in b.wait(lambda: b.text("#countdown"), "the countdown")
    assert b.js("return document.getElementById('buy').hidden"), "no buy button before admission"
    b.wait(lambda: not b.js("return document.getElementById('join').disabled"), "the join button")
    b.click("#join")
    b.wait(lambda: b.text("#queue-state") == "You're in the queue.", "in the pre-queue", 30)
    if shots:
        b.screenshot(os.path.join(shots, "queue.png"))
    # After the opening: admitted (three units, three places), the buy button, then pay.
    b.wait(lambda: "your turn" in (b.text("#queue-state") or ""), "admitted", 30)
    b.wait(lambda: b.js("return !document.getElementById('buy').disabled"), "the buy button")
    b.click("#buy")
    b.wait(lambda: b.text("#order-status") == "HELD", "HELD", 20)
    b.one("#card input[placeholder=number]")
    for field, value in (("number", "4242424242424242"), ("exp_month", "12"),
                         ("exp_year", "31"), ("cvc", "123"), ("postal_code", "10115")):
        b.type(f"#card input[placeholder={field}]", value)
    b.click("#pay")
    b.wait(lambda: b.text("#order-status") == "CONFIRMED", "CONFIRMED", 30)


def test_queue_position_moves_then_sold_out_while_waiting(b):
    # One unit; three people joined before the opening, the visitor after it, so the visitor
    # queues behind them all. Whoever is admitted buys the unit: the visitor's page says sold
    # out (an instant sale: nothing held can come back).
    sale = room_sale(1, opens_in=2, checkout=False)
    ahead = []
    for i in range(3):
        _, t = http("POST", f"{API}/sales/{sale}/queue", None, {"x-user-id": f"early-{i}"})
        ahead.append((f"early-{i}", t["ticket"]))
    deadline = time.time() + 10
    while http("GET", f"{API}/sales/{sale}/queue/draw")[1].get("seed") is None:
        assert time.time() < deadline, "the draw did not happen"
        time.sleep(0.2)
    fresh_buyer(b, sale, "late-dave")
    b.wait(lambda: not b.js("return document.getElementById('join').disabled"), "the join button")
    b.click("#join")
    b.wait(lambda: "in line" in (b.text("#queue-state") or ""), "a place in line", 20)
    assert b.js("return document.getElementById('buy').hidden"), "no buy button while waiting"
    bought = False
    while not bought:
        assert time.time() < deadline + 20, "nobody ahead was admitted"
        for who, ticket in ahead:
            _, s = http("GET", f"{API}/sales/{sale}/queue/{ticket}", None, {"x-user-id": who})
            if s.get("state") == "admitted":
                st, _ = http("POST", f"{API}/sales/{sale}/buy", {"quantity": 1},
                             {"x-user-id": who, "admission-token": s["admission_token"]})
                bought = bought or st == 202
        time.sleep(0.3)
    b.wait(lambda: "Sold out" in (b.text("#queue-state") or ""), "sold out while waiting", 10)
    assert b.js("return document.getElementById('buy').hidden")


def jwt(sub):
    """A token naming `sub` (unsigned: the page only reads who it names; the API checks tokens)."""
    part = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{part({'alg': 'none'})}.{part({'sub': sub})}.x"


def jwt_api():
    """A second local API whose pages identify buyers by JWT, as a deployment's do."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, TRUST_USER_HEADER="false", LISTEN_ADDR=f"127.0.0.1:{port}")
    proc = subprocess.Popen([os.environ["FLASHFLOW_LOCAL_BIN"], "api"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            if http("GET", f"{base}/pages/config.json")[1]["identity"] == "jwt":
                return proc, base
        except OSError:
            pass
        if time.time() > deadline or proc.poll() is not None:
            proc.kill()
            raise AssertionError("the JWT-mode API did not start")
        time.sleep(0.2)


def test_a_link_never_signs_in_someone_else_silently(b):
    sale = new_sale(3)
    proc, base = jwt_api()
    try:
        b.go(f"{base}/pages/config.json")
        b.js("sessionStorage.clear(); localStorage.clear();")
        who = lambda: b.text("#who-name")  # noqa: E731
        asked = lambda: b.js("return !document.getElementById('switch').hidden")  # noqa: E731
        # Not signed in: the link (the sign-in page's redirect) signs in, and says who.
        b.go(f"{base}/shop/{sale}#token={jwt('alice')}")
        b.wait(lambda: who() == "alice", "signed in as alice")
        assert "token=" not in b.js("return location.href"), "the token left the address bar"
        # Signed in: someone else's link is a question, and nothing changes until it is answered.
        b.go(f"{base}/shop/{sale}#token={jwt('mallory')}")
        b.wait(asked, "the question")
        assert who() == "alice" and "mallory" in b.text("#switch-text")
        b.click("#switch-stay")
        assert who() == "alice" and not asked()
        b.go(f"{base}/shop/{sale}")
        b.wait(lambda: who() == "alice", "still alice after a reload")
        # Choosing to switch does switch.
        b.go(f"{base}/shop/{sale}#token={jwt('bob')}")
        b.wait(asked, "the question again")
        b.click("#switch-go")
        b.wait(lambda: who() == "bob", "signed in as bob")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def local_jwt(sub, phone):
    """A token of the local issuer (`flashflow-local jwt`) with a verified phone number."""
    return subprocess.check_output(
        [os.environ["FLASHFLOW_LOCAL_BIN"], "jwt", "--sub", sub, "--claim", f"phone_number={phone}",
         "--claim", "phone_number_verified=true"], text=True).strip()


def test_a_verified_drop_lets_one_place_per_phone_number(b):
    # A sale whose queue lets one place per verified phone number: a buyer signed in by a link
    # (a token of the local issuer) joins from the storefront; a second account with the same
    # number is told one place per person, and takes none.
    sale = room_sale(5, opens_in=120, checkout=False,
                     entry={"require_claims": {"phone_number_verified": True}, "one_per": "phone_number"})
    for sub, expect in (("vera", "You're in the queue."), ("vince", "one place per person")):
        b.go(f"{API}/pages/config.json")
        b.js("sessionStorage.clear(); localStorage.clear();")
        b.go(f"{API}/shop/{sale}#token={local_jwt(sub, '+15550001')}")
        b.wait(lambda: b.text("#who-name") == sub, f"signed in as {sub}")
        b.wait(lambda: "One place per phone number." in (b.text("#queue-detail") or ""),
               "the storefront says who may join")
        b.wait(lambda: not b.js("return document.getElementById('join').disabled"), "the join button")
        b.click("#join")
        b.wait(lambda: expect in ((b.text("#queue-state") or "") + (b.text("#message") or "")),
               f"{sub}: {expect}", 20)
    places = admin("GET", f"/admin/sales/{sale}")[1]["waiting_room"]["queue"]["waiting"]
    assert places == 1, f"one place for one phone number, not {places}"


def ff_draw_v2_place(record, join_index):
    """The place of `join_index` from the draw's record alone (docs/api.md's algorithm)."""
    import hashlib
    import struct
    seed, root = bytes.fromhex(record["seed"]), bytes.fromhex(record["join_root"])
    randomness = bytes.fromhex(record["beacon"]["randomness"] or "")
    key = hashlib.sha256(seed + randomness + root).digest()
    block, words = 0, []

    def below(m):
        nonlocal block, words
        limit = (2**64 - 1) // m * m
        while True:
            if not words:
                words = list(struct.unpack(">4Q", hashlib.sha256(key + struct.pack(">Q", block)).digest()))
                block += 1
            x = words.pop(0)
            if x < limit:
                return x % m

    order = list(range(record["cohort"]))
    for i in range(len(order) - 1, 0, -1):
        j = below(i + 1)
        order[i], order[j] = order[j], order[i]
    return order.index(join_index) + 1


def test_the_draw_page_recomputes_a_buyers_place(b, shots):
    # Four people join through the API and the visitor from the storefront before the opening;
    # after the draw the visitor opens the draw page from the shop: the record's values, and
    # their place recomputed in the browser, which must be the one Python computes from the
    # record (docs/api.md's algorithm), and the ticket's entry checked against the join root.
    sale = room_sale(5, opens_in=12, checkout=False)
    for i in range(4):
        status, _ = http("POST", f"{API}/sales/{sale}/queue", None, {"x-user-id": f"drawn-{i}"})
        assert status == 201, f"join drawn-{i}: {status}"
    fresh_buyer(b, sale, "drawn-dora")
    b.wait(lambda: not b.js("return document.getElementById('join').disabled"), "the join button")
    b.click("#join")
    b.wait(lambda: b.text("#queue-state") == "You're in the queue.", "in the pre-queue", 30)
    b.click("#draw-link")
    b.wait(lambda: "nobody holds yet" in (b.text("#state") or ""), "the round fixed in advance")
    mine = b.wait(lambda: "✔" in (b.text("#my-place") or "") and b.text("#my-place"),
                  "the recomputed place", 40)
    if shots:
        b.screenshot(os.path.join(shots, "draw.png"))
    record = http("GET", f"{API}/sales/{sale}/queue/draw")[1]
    assert record["algorithm"] == "ff-draw-v2" and record["beacon"]["randomness"], record
    ticket = b.js(f"return sessionStorage.getItem('flashflow:ticket:{sale}')")
    status = http("GET", f"{API}/sales/{sale}/queue/{ticket}", None, {"x-user-id": "drawn-dora"})[1]
    place = ff_draw_v2_place(record, status["join_index"])
    assert mine == f"Your place {place}, recomputed in your browser from these values: ✔", mine
    assert "✔" in b.text("#seed-check") and "✔" in b.text("#randomness-check")
    assert "checks out against the root: ✔" in b.text("#my-entry"), b.text("#my-entry")


def test_live_view_counts_move(b, shots):
    sale = new_sale(40, checkout=False)
    b.go(f"{API}/pages/config.json")
    b.js("sessionStorage.clear();")
    b.go(f"{API}/admin/live/{sale}")
    b.type("#token", OPERATOR + "\ue007")
    stat = lambda name: b.js(  # noqa: E731
        "const e = document.querySelector(`[data-name='${arguments[0]}'] b`);"
        "return e ? e.textContent : null;", name)
    b.wait(lambda: stat("remaining") == "40", "remaining 40")

    def load():
        for i in range(120):
            http("POST", f"{API}/sales/{sale}/buy", {"quantity": 1}, {"x-user-id": f"load-{i}"})
            time.sleep(0.02)
    t = threading.Thread(target=load)
    t.start()
    b.wait(lambda: stat("remaining") == "0", "remaining to reach 0", 30)
    seen_sold_out = b.wait(lambda: (stat("sold_out_per_s") or "0") != "0", "sold out/s > 0", 30)
    t.join()
    b.wait(lambda: stat("paid") == "40", "40 paid (settled)", 60)
    if shots:
        b.screenshot(os.path.join(shots, "live.png"))
    return seen_sold_out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--screenshots", default="bench/reports")
    args = ap.parse_args()
    os.makedirs(args.screenshots, exist_ok=True)
    phone = Browser(phone=True)
    wide = Browser(1200, 900)
    passed = failed = 0
    try:
        sale = None
        tests = [
            ("buy -> hold -> pay -> CONFIRMED", lambda: test_buy_hold_pay_confirmed(phone, args.screenshots)),
            ("a double click is one order", lambda: test_double_click_is_one_order(phone)),
            ("Enter buys, phone width", lambda: test_enter_key_buys_on_a_phone_width_screen(phone, sale)),
            ("a countdown before the opening", lambda: test_countdown_before_the_opening(phone)),
            ("a sold-out sale says so", lambda: test_sold_out_says_so(phone)),
            ("the queue: countdown, place, admitted, buy, pay", lambda: test_queue_countdown_position_admission_buy_and_pay(phone, args.screenshots)),
            ("the queue says sold out while waiting", lambda: test_queue_position_moves_then_sold_out_while_waiting(wide)),
            ("the live view's counts move", lambda: test_live_view_counts_move(wide, args.screenshots)),
            ("a link never signs someone else in silently", lambda: test_a_link_never_signs_in_someone_else_silently(wide)),
            ("a verified drop: one place per phone number", lambda: test_a_verified_drop_lets_one_place_per_phone_number(wide)),
            ("the draw page recomputes a buyer's place", lambda: test_the_draw_page_recomputes_a_buyers_place(wide, args.screenshots)),
        ]
        for name, test in tests:
            start = time.time()
            try:
                result = test()
                if name.startswith("buy"):
                    sale = result
                passed += 1
                print(f"browser test {name} ... ok ({time.time() - start:.1f}s)")
            except Exception as e:  # noqa: BLE001 - each test reports its own failure
                failed += 1
                print(f"browser test {name} ... FAILED: {e}")
    finally:
        phone.close()
        wide.close()
    print(f"screenshots: {args.screenshots}/shop.png, queue.png, live.png, draw.png")
    print(f"browser: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
