#!/usr/bin/env python3
"""Check that what the docs name exists: every relative link (and its #anchor), every file path in
backticks, and every `make <target>` in code. A stale path fails `make test`.

usage: check-docs.py  (from anywhere in the repository; stdlib only)

A path in backticks is checked when it has a file extension or starts at the repository's top, and
has no placeholder (`<…>`, `{…}`, `*`, `$`); what runs make (`bench/reports/`) is skipped. One that
starts at the repository's top (`functions/…`, `infra/…`) must exist as
written; a shorter one (`adapters/redis/fast_path.rs`, `settle.rs`) must be the end of some
tracked file's path. Paths outside the repository (`../shared/…`, `~/…`, `/opt/…`) are skipped.
"""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(subprocess.check_output(["git", "rev-parse", "--show-toplevel"], text=True).strip())
DOCS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")),
        "functions/local/README.md", "functions/bench/README.md", "events/README.md"]
TOP = ("functions/", "infra/", "bench/", "docs/", "events/", "localstack/", ".ci/")
EXT = re.compile(r"\.(rs|lua|sh|py|md|ya?ml|json|js|sql|toml|svg|html|css|txt|png)$")
SKIP = re.compile(r"[<>{}*$]|^\.\./|^~|^/|^https?:|://")
# Made by runs, never committed.
GENERATED = ("bench/reports/", "target/")


def tracked():
    out = subprocess.check_output(["git", "ls-files"], cwd=ROOT, text=True).split("\n")
    files = [f for f in out if f]
    # Files the working tree has that git does not track yet (a change being made) count too.
    extra = subprocess.check_output(["git", "ls-files", "--others", "--exclude-standard"],
                                    cwd=ROOT, text=True).split("\n")
    return set(files) | {f for f in extra if f}


def slug(heading):
    """GitHub's anchor for a heading."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(path):
    text = path.read_text()
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, flags=re.M)}


def make_targets():
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z0-9-]*):", text, flags=re.M))


def main():
    files = tracked()
    dirs = {str(Path(f).parent) + "/" for f in files}
    for f in list(dirs):
        p = Path(f)
        while str(p) not in (".", "/"):
            dirs.add(str(p) + "/")
            p = p.parent
    targets = make_targets()
    problems = []
    for doc in DOCS:
        path = ROOT / doc
        if not path.exists():
            problems.append(f"{doc}: missing (listed in check-docs.py)")
            continue
        text = path.read_text()
        for m in re.finditer(r"\]\(([^)\s]+)\)", text):
            link = m.group(1)
            if re.match(r"^(https?|mailto):", link):
                continue
            target, _, anchor = link.partition("#")
            dest = path if not target else (path.parent / target).resolve()
            if not dest.exists():
                problems.append(f"{doc}: link to {link}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                problems.append(f"{doc}: link to {link}: no such heading")
        code = " ".join(re.findall(r"```.*?```|`[^`\n]+`", text, flags=re.S))
        for m in re.finditer(r"\bmake ([a-z][a-z0-9-]*)", code):
            if m.group(1) not in targets:
                problems.append(f"{doc}: `make {m.group(1)}`: no such target in the Makefile")
        for m in re.finditer(r"`([^`\n]+)`", text):
            token = m.group(1).strip()
            if " " in token or SKIP.search(token):
                continue
            token = token.split(":")[0].split("#")[0].rstrip(".,")
            if token.startswith(GENERATED) or token.startswith("-"):
                continue
            if not (EXT.search(token) or token.startswith(TOP)):
                continue  # a content type, a secret's name, a crate: not a path
            if token.startswith(TOP):
                if token not in files and token not in dirs and not (ROOT / token).exists():
                    problems.append(f"{doc}: `{token}`: no such path")
            elif "/" in token or EXT.search(token):
                suffix = "/" + token.lstrip("./")
                if not any(("/" + f).endswith(suffix) for f in files) and \
                   not any(("/" + d).endswith(suffix if suffix.endswith("/") else suffix + "/")
                           for d in dirs):
                    problems.append(f"{doc}: `{token}`: no file of the repository ends so")
    for p in problems:
        print(p)
    print(f"docs: {len(DOCS)} files checked, {len(problems)} stale")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
