"""Summarise a py-spy ``--format raw`` (collapsed stacks) profile as two tables.

A flame graph needs a browser; the questions asked during a benchmark review
are simpler: which functions burn the CPU themselves (self time) and which
call trees hold it (inclusive time). Idle samples (the event loop waiting in
epoll/select) are counted apart so the shares are of *busy* time.

    py-spy record -p PID -d 15 -r 200 -f raw -o prof.txt
    python benchmarks/pyspy_top.py prof.txt --top 25 [--grep pilothouse]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

IDLE = re.compile(
    r"\b(select|poll|epoll_wait|_run_once|run_forever)\b.*\((selectors|asyncio|uvloop)"
)
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def short(frame: str) -> str:
    """``func (path/to/pkg/mod.py:12)`` -> ``func (pkg/mod.py)``."""
    m = FRAME.match(frame)
    if not m:
        return frame
    parts = Path(m["file"]).parts
    return f"{m['func']} ({'/'.join(parts[-2:])})"


def load(path: Path) -> tuple[Counter[str], Counter[str], int, int]:
    """Self and inclusive sample counts per frame, plus busy and idle totals."""
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    busy = idle = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [short(f) for f in stack.split(";") if f]
        if frames and IDLE.search(stack.split(";")[-1]):
            idle += n
            continue
        busy += n
        if frames:
            self_c[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    return self_c, incl, busy, idle


def table(title: str, counts: Counter[str], busy: int, top: int, grep: str | None) -> str:
    rows = [(f, n) for f, n in counts.most_common() if not grep or grep in f][:top]
    lines = [f"{title} (share of busy samples)"]
    lines += [f"{100 * n / busy:6.1f}%  {f}" for f, n in rows]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("profile", type=Path)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--grep", help="only frames whose text contains this")
    args = p.parse_args()
    self_c, incl, busy, idle = load(args.profile)
    total = busy + idle
    print(f"samples: {total}, busy {busy} ({100 * busy / max(total, 1):.1f}%), idle {idle}")
    print(table("self time", self_c, max(busy, 1), args.top, args.grep))
    print()
    print(table("inclusive time", incl, max(busy, 1), args.top, args.grep))


if __name__ == "__main__":
    main()
