#!/usr/bin/env python3
"""CPU time of process trees, read from /proc, for `make bench-cpu` (bench/cpu.sh).

Reading /proc costs the measured processes nothing: no request, no command, no query.

    proc_cpu.py snap NAME=PID ...          one JSON line: each name's CPU seconds so far
    proc_cpu.py diff BEFORE AFTER          each name's CPU seconds between two snaps (JSON)

A name's CPU is its whole process tree: every live descendant's utime + stime (all its threads),
plus cutime + cstime, the CPU of children already reaped. A child that exits between two snaps
moves its time from its own line to its parent's cutime, so the difference stays right (Postgres
backends and LocalStack's helpers come and go).
"""
import json
import os
import sys

TICKS = os.sysconf("SC_CLK_TCK")


def stat(pid):
    """(ppid, utime+stime+cutime+cstime in ticks) of one process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = raw[raw.rindex(")") + 2:].split()
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return ppid, utime + stime + cutime + cstime


def snapshot(roots):
    procs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            s = stat(int(entry))
            if s:
                procs[int(entry)] = s
    children = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    out = {}
    for name, root in roots.items():
        total, todo = 0, [root]
        while todo:
            pid = todo.pop()
            if pid in procs:
                total += procs[pid][1]
                todo.extend(children.get(pid, []))
        out[name] = total / TICKS
    return out


def main(argv):
    if len(argv) >= 2 and argv[1] == "snap":
        roots = {}
        for arg in argv[2:]:
            name, pid = arg.split("=", 1)
            roots[name] = int(pid)
        print(json.dumps(snapshot(roots)))
    elif len(argv) == 4 and argv[1] == "diff":
        with open(argv[2]) as f:
            before = json.load(f)
        with open(argv[3]) as f:
            after = json.load(f)
        print(json.dumps({k: round(after[k] - before.get(k, 0.0), 3) for k in after}))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
