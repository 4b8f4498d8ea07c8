#!/usr/bin/env python3
"""localstripe (PyPI), the local stand-in for Stripe's API, on loopback only.

usage: run-localstripe.py PORT (named so that it does not shadow the localstripe package)

localstripe's own `localstripe` command binds every interface ('::') and loads its store from
/tmp/localstripe.pickle; this serves the same aiohttp app on 127.0.0.1:PORT, starting empty, so
nothing outside this machine can create payments on it. Nothing in FlashFlow's Rust code knows
about it: the Stripe adapter talks to STRIPE_API_BASE.
"""

import logging
import socket
import sys

from aiohttp import web
from localstripe.server import app


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8420
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    logger = logging.getLogger("aiohttp.access")
    logger.setLevel(logging.INFO)
    logger.addHandler(logging.StreamHandler())
    web.run_app(app, sock=sock, access_log=logger)


if __name__ == "__main__":
    main()
