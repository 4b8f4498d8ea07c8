#!/usr/bin/env python3
"""localstripe (PyPI), the local stand-in for Stripe's API, on loopback only.

usage: run-localstripe.py PORT (named so that it does not shadow the localstripe package)

localstripe's own `localstripe` command binds every interface ('::') and loads its store from
/tmp/localstripe.pickle; this serves the same aiohttp app on 127.0.0.1:PORT, starting empty, so
nothing outside this machine can create payments on it. Nothing in FlashFlow's Rust code knows
about it: the Stripe adapter talks to STRIPE_API_BASE.

It adds what a storefront needs of Stripe.js and localstripe lacks: its JavaScript stand-in's
`confirmCardPayment` only plays 3-D Secure, and its API takes only secret keys. Here, as Stripe
does for Stripe.js, the browser may create a card PaymentMethod and attach it to and confirm a
PaymentIntent with a publishable key (`key=pk_...` in the form body, a CORS-simple request) and,
for the intent, that intent's client secret; and the stand-in's `confirmCardPayment` does so with
the card its Element holds.

It also answers `Idempotency-Key` as Stripe documents it, which localstripe ignores: a POST
repeated with the same key (and the same parameters) gets the first response again and does
nothing twice; the same key with other parameters is `400 idempotency_error`; a request whose
key is still being worked on is `409 idempotency_key_in_use`. Tests may slow one key's first
request (`POST /_flashflow/slow_key` with `key` and `ms`) to make two requests overlap.
"""

import asyncio
import logging
import re
import socket
import sys

from aiohttp import web
from multidict import MultiDict, MultiDictProxy
import localstripe.server as server
from localstripe.server import app

# What Stripe.js may do with a publishable key.
BROWSER_PATHS = re.compile(r"^/v1/(payment_methods|payment_intents/(\w+)(/confirm)?)$")

CONFIRM_CARD_PAYMENT = r"""
;(function () {
  // Added by FlashFlow's run-localstripe.py: confirm a PaymentIntent with the Element's card, as
  // Stripe.js does (a PaymentMethod, then the intent confirmed with it and its client secret).
  const original = Stripe;
  Stripe = (apiKey) => {
    const stripe = original(apiKey);
    const post = async (path, fields) => {
      const body = new URLSearchParams(Object.assign({ key: apiKey }, fields));
      const r = await fetch(LOCALSTRIPE_BASE_API + path, { method: 'POST', body });
      return r.json();
    };
    stripe.confirmCardPayment = async (clientSecret, data) => {
      const card = ((data || {}).payment_method || {}).card;
      const value = (card && card.value && card.value.card) || {};
      const pm = await post('/v1/payment_methods', {
        type: 'card', 'card[number]': value.number || '', 'card[exp_month]': value.exp_month || '',
        'card[exp_year]': value.exp_year || '', 'card[cvc]': value.cvc || '',
      });
      if (pm.error) return { error: pm.error };
      const pi = clientSecret.match(/^(pi_\w+)_secret_/)[1];
      const attached = await post(`/v1/payment_intents/${pi}`,
                                  { payment_method: pm.id, client_secret: clientSecret });
      if (attached.error) return { error: attached.error };
      const done = await post(`/v1/payment_intents/${pi}/confirm`, { client_secret: clientSecret });
      return done.error ? { error: done.error } : { paymentIntent: done };
    };
    return stripe;
  };
})();
"""


@web.middleware
async def browser_middleware(request, handler):
    if request.method == "GET" and request.path == "/js.stripe.com/v3/":
        resp = await handler(request)
        body = resp.body.decode() + CONFIRM_CARD_PAYMENT
        return web.Response(body=body, content_type="application/javascript",
                            headers={"Access-Control-Allow-Origin": "*"})
    match = BROWSER_PATHS.match(request.path)
    if request.method == "POST" and match and "Authorization" not in request.headers:
        data = await request.post()  # cached: localstripe reads the same body after
        key = str(data.get("key", ""))
        intent = match.group(2)
        secret_ok = intent is None or str(data.get("client_secret", "")).startswith(
            f"{intent}_secret_")
        if key.startswith("pk_") and secret_ok:
            request["browser_key"] = True
            # localstripe takes no client_secret parameter: it has served its check here.
            kept = MultiDict((k, v) for k, v in data.items() if k != "client_secret")
            request._post = MultiDictProxy(kept)  # pylint: disable=protected-access
    return await handler(request)


# (api key, idempotency key) -> (path and parameters, status, body); and the keys in flight.
IDEMPOTENT = {}
IN_FLIGHT = set()
# Idempotency key -> milliseconds its first request is held in flight (tests only).
SLOW_KEYS = {}


def stripe_error(status, kind, message, code=None):
    error = {"type": kind, "message": message}
    if code:
        error["code"] = code
    return web.json_response({"error": error}, status=status)


@web.middleware
async def idempotency_middleware(request, handler):
    if request.method == "POST" and request.path == "/_flashflow/slow_key":
        data = await request.post()
        SLOW_KEYS[str(data["key"])] = int(data.get("ms", "500"))
        return web.json_response({"slow": True})
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key:
        return await handler(request)
    data = await request.post()
    scope = (request.headers.get("Authorization", ""), key)
    params = (request.path, sorted((k, str(v)) for k, v in data.items()))
    if scope in IN_FLIGHT:
        return stripe_error(409, "idempotency_error", "There is currently another in-progress "
                            "request using this Idempotency-Key", "idempotency_key_in_use")
    if scope in IDEMPOTENT:
        first, status, body = IDEMPOTENT[scope]
        if first != params:
            return stripe_error(400, "idempotency_error", "Keys for idempotent requests can only "
                                "be used with the same parameters they were first used with.")
        return web.Response(status=status, body=body, content_type="application/json",
                            headers={"Idempotent-Replayed": "true"})
    IN_FLIGHT.add(scope)
    try:
        delay = SLOW_KEYS.pop(key, 0)
        if delay:
            await asyncio.sleep(delay / 1000)
        resp = await handler(request)
    finally:
        IN_FLIGHT.discard(scope)
    if resp.status < 500 and resp.body is not None:
        IDEMPOTENT[scope] = (params, resp.status, resp.body)
    return resp


original_get_api_key = server.get_api_key


def get_api_key(request):
    """localstripe's check, and a publishable key where Stripe.js may use one."""
    key = original_get_api_key(request)
    if key is None and request.get("browser_key"):
        return "sk_test_browser"
    return key


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8420
    server.get_api_key = get_api_key
    app.middlewares.insert(0, browser_middleware)
    app.middlewares.insert(1, idempotency_middleware)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    logger = logging.getLogger("aiohttp.access")
    logger.setLevel(logging.INFO)
    logger.addHandler(logging.StreamHandler())
    web.run_app(app, sock=sock, access_log=logger)


if __name__ == "__main__":
    main()
