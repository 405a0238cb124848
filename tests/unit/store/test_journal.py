"""The usage journal's bookkeeping: segments go once every row in them is durable."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from pilothouse.store.journal import Journal


def rows(n: int) -> list[dict[str, int]]:
    return [{"i": i} for i in range(n)]


def test_segments_rotate_and_go_once_durable(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "spool.jsonl", segment_rows=3)
    for row in rows(7):
        journal.append(row)
    files = sorted(tmp_path.glob("spool.journal.*.jsonl"))
    assert [len(f.read_bytes().splitlines()) for f in files] == [3, 3, 1]
    journal.made_durable(4)  # the first segment is wholly durable, the second is not
    assert len(list(tmp_path.glob("spool.journal.*.jsonl"))) == 2
    journal.made_durable(3)
    assert list(tmp_path.glob("spool.journal.*.jsonl")) == []
    journal.append({"i": 7})  # the next row opens a fresh segment
    assert len(list(tmp_path.glob("spool.journal.*.jsonl"))) == 1


def test_only_segments_nobody_holds_are_orphans(tmp_path: Path) -> None:
    live = Journal(tmp_path / "spool.jsonl")
    live.append({"i": 1})
    dead = tmp_path / "spool.journal.99999-1.jsonl"
    dead.write_bytes(b'{"i": 0}\n')
    assert Journal(tmp_path / "spool.jsonl").orphans() == [dead]
    live.close(delete=False)  # the process is gone: its lock with it
    assert len(Journal(tmp_path / "spool.jsonl").orphans()) == 2


def test_a_held_lock_is_respected(tmp_path: Path) -> None:
    path = tmp_path / "spool.journal.1-1.jsonl"
    path.write_bytes(b"{}\n")
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert Journal(tmp_path / "spool.jsonl").orphans() == []
    finally:
        os.close(fd)


def test_an_unwritable_journal_never_breaks_a_request(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "missing-dir" / "spool.jsonl")
    journal.append({"i": 1})
    assert journal.broken and journal.appended == 1
    journal.made_durable(1)
