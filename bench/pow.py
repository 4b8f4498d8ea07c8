#!/usr/bin/env python3
"""What the waiting room's proof of work costs a device: SHA-256 hashes per second in headless
Chromium, the way the storefront computes them (pages/pow.js, in a Web Worker and on the page's
own thread) and the old way (one WebCrypto digest awaited per hash), with the CPU throttled as
Chrome's DevTools does for phones (4x: a mid-range phone, 6x: a low-end one), and the bits a join
may ask for so that the expected work takes about 2 s at each rate.

usage: pow.py [--seconds S]     (make bench-pow; the local API serves the page and the worker)
"""

import argparse
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "infra", "local"))
import browser  # noqa: E402 - the browser tests' WebDriver client

API = browser.API

# The worker's hashing, run on the page's thread (throttling applies there for certain).
MAIN_THREAD = """
const done = arguments[arguments.length - 1];
const ms = arguments[0];
fetch('/pages/pow.js').then(r => r.text()).then(code => {
  const scope = {};
  (new Function('scope', code.replace("'use strict';", '') +
    '\\nscope.firstWord = firstWord; scope.digits = digits;'))(scope);
  const msg = new Uint8Array(200);
  const prefix = new TextEncoder().encode('benchmark');
  msg.set(prefix);
  const start = performance.now();
  let n = 0;
  while (performance.now() - start < ms) {
    for (let i = 0; i < 4096; i++, n++) scope.firstWord(msg, scope.digits(msg, prefix.length, n));
  }
  done({ hashes: n, ms: performance.now() - start });
});
"""

WORKER = """
const done = arguments[arguments.length - 1];
const w = new Worker('/pages/pow.js');
w.onmessage = (e) => { if (e.data.hashes) { w.terminate(); done(e.data); } };
w.postMessage({ bench: arguments[0] });
"""

# The storefront's earlier loop: one awaited WebCrypto digest per hash.
WEBCRYPTO = """
const done = arguments[arguments.length - 1];
const ms = arguments[0];
(async () => {
  const enc = new TextEncoder();
  const start = performance.now();
  let n = 0;
  while (performance.now() - start < ms) {
    await crypto.subtle.digest('SHA-256', enc.encode('benchmark' + n));
    n++;
  }
  done({ hashes: n, ms: performance.now() - start });
})();
"""


def run(b, script, ms):
    b.s("POST", "/timeouts", {"script": ms + 60_000})
    r = b.s("POST", "/execute/async", {"script": script, "args": [ms]})
    return r["hashes"] / r["ms"] * 1000


def throttle(b, rate):
    b.s("POST", "/goog/cdp/execute", {"cmd": "Emulation.setCPUThrottlingRate",
                                     "params": {"rate": rate}})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=3.0)
    args = p.parse_args()
    ms = int(args.seconds * 1000)
    b = browser.Browser()
    try:
        # A page of the API's origin without the pages' security policy (the bench evaluates code).
        b.go(API + "/openapi.json")
        print(f"| CPU | way | hashes/s | bits for ~2 s | a 19-bit join takes (mean) |")
        print("| --- | --- | ---: | ---: | ---: |")
        for rate, label in [(1, "this machine"), (4, "4x slower (mid-range phone)"),
                            (6, "6x slower (low-end phone)")]:
            throttle(b, rate)
            for way, script in [("pow.js, page thread", MAIN_THREAD),
                                ("pow.js, Web Worker", WORKER),
                                ("WebCrypto, one await per hash", WEBCRYPTO)]:
                hps = run(b, script, ms)
                bits = int(math.floor(math.log2(2 * hps)))
                # DevTools' throttling slows the page's thread, not a dedicated worker's: there
                # the page-thread row is the phone's figure.
                note = " (not throttled)" if rate > 1 and "Worker" in way else ""
                print(f"| {label} | {way}{note} | {hps:,.0f} | {bits} | {2**19 / hps:.2f} s |",
                      flush=True)
        throttle(b, 1)
    finally:
        b.close()


if __name__ == "__main__":
    main()
