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
