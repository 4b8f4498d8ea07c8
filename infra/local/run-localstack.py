#!/usr/bin/env python3
"""LocalStack (localstack-core), the local stand-in for SQS and Secrets Manager, keeping its
connections open as AWS does.

usage: run-localstack.py (with LocalStack's own settings in the environment, as up.sh sets them)

The local stack runs LocalStack's hypercorn gateway: it binds the host of GATEWAY_LISTEN (loopback
only), where the default twisted one binds every interface. That gateway answers every request
that does not ask for keep-alive in so many words with `Connection: close` (LocalStack's
`set_close_connection_header`, a workaround for boto over h11: localstack issue 6557). HTTP/1.1
keeps connections open unless told otherwise, so the AWS SDK's clients do not ask, and each SQS
call then paid a new TCP connection on both sides: 1,667 client-side sockets in TIME_WAIT after
one `make bench-cpu` load, and the connect/socket/shutdown calls among settle's top samples. SQS
itself keeps connections alive. This runs LocalStack's own main without that finalizer, and with
an idle keep-alive longer than the SDK's pool keeps an idle connection (90 s), so the server never
closes one the client is about to reuse. Nothing in FlashFlow's Rust code knows about it.
"""

import runpy

import hypercorn.config
from localstack.aws import handlers

# Read by LocalstackAwsGateway.__init__ (localstack/aws/app.py) when the gateway is built, after
# this: the finalizer chain is built without the header.
handlers.set_close_connection_header = lambda _chain, _context, _response: None
hypercorn.config.Config.keep_alive_timeout = 120

runpy.run_module("localstack.runtime.main", run_name="__main__", alter_sys=True)
