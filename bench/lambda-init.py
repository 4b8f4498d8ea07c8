#!/usr/bin/env python3
"""Init time of each Lambda bootstrap: process start to its first `GET .../invocation/next` (the
runtime's "ready"), against a stand-in Lambda Runtime API and the local stack (Redis, Postgres,
LocalStack SQS and Secrets Manager, DynamoDB Local). Also the resident memory at that moment.

    bench/lambda-init.py <bootstrap> [runs=5]   (the environment of infra/local/env.sh)
"""
import http.server, os, socket, statistics, subprocess, sys, threading, time

binary = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
ready = threading.Event()


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.endswith("/runtime/invocation/next"):
            ready.set()
            time.sleep(5)  # a long poll that never delivers: the process is killed meanwhile
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
env = dict(os.environ)
env.update({
    "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
    "AWS_LAMBDA_FUNCTION_NAME": os.path.basename(os.path.dirname(binary)) or "fn",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_LOG_STREAM_NAME": "init", "AWS_LAMBDA_LOG_GROUP_NAME": "init",
    "RUST_LOG": "warn",
})
times, rss = [], []
for _ in range(runs):
    ready.clear()
    start = time.monotonic()
    p = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if not ready.wait(30):
        p.kill()
        sys.exit(f"{binary} never asked for an invocation: {p.stderr.read().decode()[-500:]}")
    times.append((time.monotonic() - start) * 1000)
    with open(f"/proc/{p.pid}/status") as f:
        rss.append(next(int(l.split()[1]) for l in f if l.startswith("VmRSS")))
    p.kill()
    p.wait()
print(f"init {statistics.median(times):.1f} ms (median of {runs}; min {min(times):.1f}, max {max(times):.1f}), "
      f"RSS at ready {statistics.median(rss) / 1024:.1f} MiB, size {os.path.getsize(binary) / 1e6:.2f} MB")
