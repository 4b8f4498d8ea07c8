"""schemathesis hooks for the local API (infra/local/fuzz-api.sh).

Stripe signs every webhook with the endpoint's secret; schemathesis cannot. This hook signs what
it is about to send to POST /webhooks/stripe exactly as Stripe does (HMAC-SHA256 of
"{t}.{payload}", header `t=…,v1=…`), so the generated events, valid and invalid, reach the event
handler instead of all stopping at the signature check (which the project's own tests cover).
A case sent without the header (schemathesis checking that a missing one is refused) stays so.
"""

import hashlib
import hmac
import json
import os
import time

import schemathesis
from schemathesis.core import NotSet

SECRET = os.environ["STRIPE_WEBHOOK_SECRET"]


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.operation.path != "/webhooks/stripe" or "data" in kwargs or "json" in kwargs:
        return
    if not any(name.lower() == "stripe-signature" for name in (case.headers or {})):
        return
    payload = body_bytes(case.body)
    t = str(int(time.time()))
    v1 = hmac.new(SECRET.encode(), t.encode() + b"." + payload, hashlib.sha256).hexdigest()
    for name in [n for n in case.headers if n.lower() in ("stripe-signature", "content-type")]:
        del case.headers[name]
    case.headers["Stripe-Signature"] = f"t={t},v1={v1}"
    case.headers["Content-Type"] = "application/json"
    # The body sent is the one signed (it replaces the one schemathesis would serialize).
    kwargs["data"] = payload


def body_bytes(body):
    """The bytes schemathesis would send for `body`: raw bytes and text as they are, else JSON."""
    if isinstance(body, NotSet):
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()
