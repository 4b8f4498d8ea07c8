#!/usr/bin/env python3
"""A TCP proxy that holds what the target sends for DELAY_MS before passing it on: a replication
link that lags, as one between two availability zones under load does. `make drill-failover` puts
it between a primary and its replica; kill -9 of this process loses what it holds, as a failing
primary loses what it had not yet sent.

usage: lag_proxy.py LISTEN_HOST:PORT TARGET_HOST:PORT DELAY_MS
Why not a maintained tool: toxiproxy is not packaged for this machine, and tc netem on loopback
would delay every client of every local service.
"""
import asyncio
import sys
import time


async def pipe(reader, writer, delay):
    """Copy reader to writer, each chunk `delay` seconds after it arrived, in order."""
    held = asyncio.Queue()

    async def send():
        while True:
            due, chunk = await held.get()
            if chunk is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(chunk)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(send())
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            held.put_nowait((time.monotonic() + delay, chunk))
    except OSError:
        pass
    held.put_nowait((0, None))
    try:
        await sender
    except OSError:
        pass


async def main():
    listen, target, delay_ms = sys.argv[1], sys.argv[2], float(sys.argv[3])
    lhost, lport = listen.rsplit(":", 1)
    thost, tport = target.rsplit(":", 1)

    async def handle(client_reader, client_writer):
        try:
            up_reader, up_writer = await asyncio.open_connection(thost, int(tport))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            pipe(client_reader, up_writer, 0),
            pipe(up_reader, client_writer, delay_ms / 1000),
        )

    server = await asyncio.start_server(handle, lhost, int(lport))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
