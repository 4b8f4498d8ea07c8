#!/usr/bin/env python3
"""The layers' walls, as Cargo declares them (make test runs this; make layers prints the graph).

The compiler refuses a use case or a router that names an adapter because their crates do not
depend on the adapters' crate. This check keeps it so: a dependency added across a wall fails
here, naming the crate and the wall, before anyone builds on it. It also keeps each Lambda to
what it runs (the scheduled and queue-fed functions link no HTTP stack).

  python3 infra/local/check-layers.py          check, print one line per crate's workspace deps
  python3 infra/local/check-layers.py --graph  also print the graph as mermaid
"""
import json
import subprocess
import sys

# What a layer may not depend on (normal dependencies; tests may use the memory adapters).
FORBIDDEN = {
    # The domain and its ports: no I/O, no runtime, no other layer.
    "flashflow": {"tokio", "fred", "tokio-postgres", "aws-config", "aws-sdk-sqs", "aws-sdk-dynamodb",
                  "aws-sdk-secretsmanager", "axum", "lambda_http", "lambda_runtime", "hyper",
                  "hyper-util", "getrandom", "flashflow-settings", "flashflow-app",
                  "flashflow-adapters", "flashflow-http"},
    "flashflow-settings": {"flashflow", "tokio"},
    # The use cases: ports only, no adapter, no HTTP, no SDK.
    "flashflow-app": {"flashflow-adapters", "flashflow-http", "axum", "lambda_http", "fred",
                      "tokio-postgres", "aws-config", "aws-sdk-sqs", "aws-sdk-dynamodb",
                      "aws_lambda_events"},
    # The adapters translate; they call no use case and serve no route.
    "flashflow-adapters": {"flashflow-app", "flashflow-http", "axum", "lambda_http"},
    # The HTTP layer: use cases and ports, never an adapter.
    "flashflow-http": {"flashflow-adapters", "fred", "tokio-postgres", "aws-sdk-sqs",
                       "aws-sdk-dynamodb"},
}
# Functions that take no HTTP request link no HTTP stack (resolved: nothing pulls one in).
NO_HTTP = ["settle", "reconcile", "expire"]
HTTP_STACK = {"axum", "lambda_http", "flashflow-http"}
# The domain crate has no features at all.
NO_FEATURES = ["flashflow", "flashflow-app", "flashflow-settings"]


def main():
    meta = json.loads(subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"], text=True))
    members = {p["name"]: p for p in meta["packages"]}
    failures = []
    for name, banned in FORBIDDEN.items():
        pkg = members[name]
        for dep in pkg["dependencies"]:
            if dep["kind"] is None and dep["name"] in banned:
                failures.append(f"{name} depends on {dep['name']}: across its layer's wall")
    for name in NO_FEATURES:
        if members[name]["features"]:
            failures.append(f"{name} has features {sorted(members[name]['features'])}: it has none")
    for name in NO_HTTP:
        tree = subprocess.check_output(
            ["cargo", "tree", "-q", "-p", name, "-e", "normal", "--prefix", "none"], text=True)
        linked = {line.split()[0] for line in tree.splitlines() if line.strip()}
        for crate in sorted(linked & HTTP_STACK):
            failures.append(f"{name} links {crate}, an HTTP stack it does not serve")
    workspace = set(members)
    print("layers: the workspace's crates and what each depends on (normal dependencies)")
    edges = []
    for name in sorted(members):
        deps = sorted({d["name"] for d in members[name]["dependencies"]
                       if d["kind"] is None and d["name"] in workspace})
        feats = {d["name"]: d["features"] for d in members[name]["dependencies"]
                 if d["name"] == "flashflow-adapters" and d["kind"] is None}
        shown = [f"{d}[{','.join(feats[d])}]" if d in feats and feats[d] else d for d in deps]
        print(f"  {name:20} -> {', '.join(shown) or '(nothing of the workspace)'}")
        edges += [(name, d) for d in deps]
    if "--graph" in sys.argv:
        print("```mermaid\nflowchart BT")
        for a, b in edges:
            print(f"  {a.replace('-', '_')}[{a}] --> {b.replace('-', '_')}[{b}]")
        print("```")
    for f in failures:
        print(f"layers: {f}", file=sys.stderr)
    if failures:
        sys.exit(1)
    print(f"layers: ok ({len(FORBIDDEN)} walls, {len(NO_HTTP)} functions without HTTP)")


if __name__ == "__main__":
    main()
