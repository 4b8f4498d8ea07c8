#!/usr/bin/env python3
"""Prints `make bench-cpu`'s report from the files bench/cpu.sh left in its output folder.

    cpu_table.py OUT "buy soldout" CONNECTIONS SECONDS

Per shape, OUT holds SHAPE.json (each process's CPU seconds over the window, wrk's, the window,
orders CONFIRMED and requests answered), SHAPE-redis-{0,1}.txt (INFO commandstats) and
SHAPE-pg-{0,1}.json (pg_stat_database, index and sequential scans, the WAL position); idle.json
is each process's CPU over the idle window.
"""
import json
import os
import re
import sys

LABELS = [
    ("api", "API (buy, relay)", "FlashFlow"),
    ("settle", "settle", "FlashFlow"),
    ("reconcile", "sweeper (reconcile)", "FlashFlow"),
    ("expire", "expire", "FlashFlow"),
    ("redis", "Redis", "data stores"),
    ("postgres", "Postgres", "data stores"),
    ("localstack", "LocalStack (SQS)", "emulators"),
    ("dynamodb", "DynamoDB Local", "emulators"),
    ("localstripe", "localstripe", "emulators"),
    ("wrk", "wrk (load)", "load generator"),
]
GROUPS = ["FlashFlow", "data stores", "emulators", "load generator"]
SHAPE_HEAD = {"buy": "every request a buy: µs/order", "soldout": "sold-out herd: µs/request"}


def load(path):
    with open(path) as f:
        return json.load(f)


def per_unit(shape_data, shape):
    """What one order (buy) or one request (sold out) is divided by."""
    return shape_data["_orders"] if shape == "buy" else shape_data["_requests"]


def commandstats(path):
    stats = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"cmdstat_([^:]+):calls=(\d+),usec=(\d+)", line)
            if m:
                stats[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    return stats


def redis_counters(path):
    """INFO's aof_rewrites and expired_keys (background work: an AOF rewrite forks and writes the
    whole data set, its CPU counted in Redis' tree once the child is reaped)."""
    out = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"(aof_rewrites|expired_keys):(\d+)", line)
            if m:
                out[m.group(1)] = int(m.group(2))
    return out


def main(out, shapes, connections, seconds):
    shapes = shapes.split()
    idle = load(os.path.join(out, "idle.json"))
    idle_seconds = float(os.environ.get("IDLE_SECONDS", "5"))
    data = {s: load(os.path.join(out, f"{s}.json")) for s in shapes}

    print()
    print(f"CPU per order by process: wrk -t2 -c{connections} -d{seconds}s per shape, one run; "
          "every process shares the machine's cores")
    for s in shapes:
        d = data[s]
        print(f"  {s}: {d['_orders']:,} orders CONFIRMED, {d['_requests']:,} requests, "
              f"window {d['_window']:.1f} s (load and drain)")
    print()
    head = ["process", "group"] + [SHAPE_HEAD[s] for s in shapes] + ["idle: ms of CPU/s (±2)"]
    print("| " + " | ".join(head) + " |")
    print("| --- | --- |" + " ---: |" * (len(shapes) + 1))
    sums = {g: {s: 0.0 for s in shapes} for g in GROUPS}
    for key, label, group in LABELS:
        cells = []
        for s in shapes:
            us = data[s][key] * 1e6 / max(per_unit(data[s], s), 1)
            sums[group][s] += us
            cells.append(f"{us:,.0f}" if us >= 10 else f"{us:.1f}")
        idle_rate = f"{idle[key] * 1000 / idle_seconds:.1f}" if key in idle else "-"
        print(f"| {label} | {group} | " + " | ".join(cells) + f" | {idle_rate} |")
    for group in GROUPS:
        cells = [f"**{sums[group][s]:,.0f}**" if sums[group][s] >= 10 else f"**{sums[group][s]:.1f}**"
                 for s in shapes]
        print(f"| **{group}, together** | | " + " | ".join(cells) + " | |")

    control_path = os.path.join(out, "control.json")
    if os.path.exists(control_path):
        c = load(control_path)
        n = max(c["_requests"], 1)
        ceiling, redis, wrk = (c[k] * 1e6 / n for k in ("ceiling", "redis", "wrk"))
        print(f"\nThe control, this run (the ceiling server under the same wrk load, {c['_requests']:,} "
              f"requests): the server {ceiling:.1f} µs/request, Redis {redis:.1f} µs for its one "
              f"trivial EVALSHA, wrk {wrk:.1f} µs/request. As multiples of the ceiling server's "
              "µs/request (the machine's speed taken out):")
        for s in shapes:
            unit = max(per_unit(data[s], s), 1)
            own = sum(data[s][k] for k, _, g in LABELS if g == "FlashFlow") * 1e6 / unit
            stores = {k: data[s][k] * 1e6 / unit for k in ("redis", "postgres")}
            per = "order" if s == "buy" else "request"
            print(f"  {s}, per {per}: FlashFlow's own {own / ceiling:.1f}×, "
                  f"Redis {stores['redis'] / ceiling:.1f}× (its script {stores['redis'] / max(redis, 0.01):.1f}× "
                  f"the trivial one's), Postgres {stores['postgres'] / ceiling:.1f}×")

    busy = [label for key, label, _ in LABELS if key in idle and idle[key] / idle_seconds > 0.05]
    if busy:
        print(f"\nWARNING: not idle before the loads ({', '.join(busy)} above 50 ms of CPU a second): "
              "something else ran, and is in these figures")
    print()
    print("Redis, per order (INFO commandstats deltas, µs as Redis times each command; a script's"
          " commands have their own lines and are inside its EVALSHA's µs too):")
    for s in shapes:
        before = commandstats(os.path.join(out, f"{s}-redis-0.txt"))
        after = commandstats(os.path.join(out, f"{s}-redis-1.txt"))
        unit = max(per_unit(data[s], s), 1)
        rows = []
        for cmd, (calls, usec) in after.items():
            c0, u0 = before.get(cmd, (0, 0))
            if (calls - c0) / unit >= 0.005:
                rows.append((cmd, (calls - c0) / unit, (usec - u0) / unit))
        rows.sort(key=lambda r: -r[2])
        per = "order" if s == "buy" else "request"
        print(f"  {s}, per {per}: " + (", ".join(f"{c} {n:.2f}× {u:.1f} µs" for c, n, u in rows[:10])
                                       or "no command"))
        c0 = redis_counters(os.path.join(out, f"{s}-redis-0.txt"))
        c1 = redis_counters(os.path.join(out, f"{s}-redis-1.txt"))
        if c0 and c1:
            print(f"    in the window: {c1['aof_rewrites'] - c0['aof_rewrites']} AOF rewrites, "
                  f"{c1['expired_keys'] - c0['expired_keys']:,} keys expired")

    print()
    print("Postgres, per order (pg_stat_database and pg_stat_user_tables deltas, the WAL position):")
    for s in shapes:
        p0 = load(os.path.join(out, f"{s}-pg-0.json"))
        p1 = load(os.path.join(out, f"{s}-pg-1.json"))
        unit = max(per_unit(data[s], s), 1)
        d = {k: (p1[k] - p0[k]) / unit for k in p1 if k != "tables"}
        per = "order" if s == "buy" else "request"
        print(f"  {s}, per {per}: {d['xact']:.3f} transactions, rows inserted {d['inserted']:.2f}, "
              f"updated {d['updated']:.2f}, deleted {d['deleted']:.2f}, fetched {d['fetched']:.2f}, "
              f"returned {d['returned']:.2f}; index scans {d['idx_scan']:.2f}, sequential scans "
              f"{d['seq_scan']:.3f}; WAL {d['wal']:,.0f} bytes")
        t0, t1 = p0.get("tables") or {}, p1.get("tables") or {}
        scans = []
        for table, (seq, seq_read, idx) in sorted(t1.items()):
            s0, r0, i0 = t0.get(table, [0, 0, 0])
            if seq - s0 or idx - i0:
                scans.append(f"{table} {seq - s0} seq ({seq_read - r0:,} rows) {idx - i0:,} idx")
        if scans:
            print(f"    scans by table over the window: {', '.join(scans)}")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])
