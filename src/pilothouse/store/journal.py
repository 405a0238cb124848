"""A write-ahead journal for usage rows: a hard kill cannot lose an answered request's record.

The usage ledger batches rows in memory for up to ``store.flush_interval_s``;
a SIGKILL (or OOM kill) in that window used to lose them, although the client
had its answer. Every row is therefore also appended to a local journal
segment when it is queued: one ``write`` system call, no ``fsync`` (the page
cache survives the death of the process, which is the failure this is for;
a power cut is covered only as far as the file system flushed). The writer
reports how many rows it has made durable (stored or spooled), and a segment
is deleted once every row in it is. A live process holds an exclusive
``flock`` on its segments; at start-up, segments nobody holds belong to a dead
process and are handed to the spool, whose replay inserts idempotently (rows
already stored are skipped by id).

Rows are in FIFO order in the ledger queue, so "the first N journaled rows are
durable" is exact: the journal only needs a count per segment.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("pilothouse.journal")
SEGMENT_ROWS = 20_000  # rows per segment before a new file is opened


@dataclass(slots=True)
class _Segment:
    path: Path
    fd: int
    start: int  # sequence number of its first row
    end: int  # sequence number after its last row (grows while it is the current one)


def journal_glob(spool_path: str | Path) -> tuple[Path, str]:
    """Directory and glob pattern of the journal segments next to a usage spool."""
    path = Path(spool_path)
    return path.parent, f"{path.stem}.journal.*.jsonl"


class Journal:
    """Append-only segments of queued-but-not-yet-durable usage rows (one per process)."""

    def __init__(self, spool_path: str | Path, segment_rows: int = SEGMENT_ROWS) -> None:
        self.dir, self.pattern = journal_glob(spool_path)
        self.stem = Path(spool_path).stem
        self.segment_rows = segment_rows
        self.appended = 0  # sequence number of the next row
        self.durable = 0  # rows [0, durable) are stored or spooled
        self.segments: list[_Segment] = []
        self._counter = 0
        self.broken = False
        # The ledger appends on the request thread and the writer thread reports
        # durability: a row must be counted appended before it can be durable.
        self.lock = threading.Lock()

    def orphans(self) -> list[Path]:
        """Segments of dead processes (nobody holds their lock), oldest first."""
        found = []
        for path in sorted(self.dir.glob(self.pattern)):
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live process writes it
            finally:
                os.close(fd)
            found.append(path)
        return found

    def append(self, row: dict[str, Any]) -> None:
        """Journal one queued row. Never raises: a failing disk is logged once, not fatal."""
        if not self.broken:
            try:
                line = orjson.dumps(row) + b"\n"
            except Exception:
                line = b"{}\n"  # unencodable: the writer quarantines it; the count stays exact
            try:
                os.write(self._current().fd, line)
            except OSError as exc:
                self.broken = True
                log.error("usage journal disabled (%s): a hard kill may lose queued rows", exc)
        self.appended += 1
        if self.segments:
            self.segments[-1].end = self.appended

    def _current(self) -> _Segment:
        if self.segments and self.segments[-1].end - self.segments[-1].start < self.segment_rows:
            return self.segments[-1]
        self._counter += 1
        path = self.dir / f"{self.stem}.journal.{os.getpid()}-{self._counter}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        segment = _Segment(path, fd, self.appended, self.appended)
        self.segments.append(segment)
        return segment

    def made_durable(self, rows: int) -> None:
        """The writer stored or spooled the next ``rows`` rows; delete segments wholly behind."""
        with self.lock:
            self._made_durable(rows)

    def _made_durable(self, rows: int) -> None:
        self.durable = min(self.durable + rows, self.appended)
        while self.segments and self.segments[0].end <= self.durable:
            _close(self.segments.pop(0), delete=True)  # the current one too, once all is durable

    def close(self, *, delete: bool) -> None:
        """At shutdown: delete the segments when everything is durable, else leave them."""
        with self.lock:
            self._close_all(delete=delete)

    def _close_all(self, *, delete: bool) -> None:
        for segment in self.segments:
            _close(segment, delete=delete)
        self.segments = []


def _close(segment: _Segment, *, delete: bool) -> None:
    if delete:
        with contextlib.suppress(OSError):
            segment.path.unlink()
    with contextlib.suppress(OSError):
        os.close(segment.fd)
