"""Local JSON-lines spool and quarantine file shared by the background writers.

Why: when the store is unreachable, rows are appended to a spool and replayed
later. Nothing about one row may stop a writer or start-up: a row that cannot
be encoded and a line that cannot be decoded (the half-written tail SIGKILL or
power loss leaves) go to the quarantine file with their reason and are
counted, and every good row around them is kept. All methods are synchronous
and do only file I/O; callers run them in a worker thread where it matters.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("pilothouse.spool")
Row = dict[str, Any]
#: Called with (queue, count) whenever rows are quarantined or a bounded spool drops rows.
CountHook = Callable[[str, int], None]
MAX_REPR = 1_000_000  # characters of an unencodable row kept in the quarantine file


def quarantine_path(spool_path: str | Path) -> Path:
    """``./pilothouse-spool.jsonl`` -> ``./pilothouse-spool.quarantine.jsonl``."""
    path = Path(spool_path)
    return path.with_name(path.stem + ".quarantine.jsonl")


class Quarantine:
    """Append-only file of rows and lines no writer could store, each with its reason."""

    def __init__(self, path: str | Path, on_quarantine: CountHook | None = None) -> None:
        self.path = Path(path)
        self.on_quarantine = on_quarantine
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, queue: str, reason: str, *, row: Any = None, line: bytes | None = None) -> None:
        """Keep one bad row (or raw spool line); never raises."""
        entry: dict[str, Any] = {
            "at": datetime.now(UTC).isoformat(),
            "queue": queue,
            "reason": reason[:1000],
        }
        if line is not None:
            entry["line"] = line.decode("utf-8", "backslashreplace")
            data = orjson.dumps(entry)
        else:
            try:
                data = orjson.dumps({**entry, "row": row}, default=str)
            except Exception:  # too deep, too big an int, ...: keep a textual copy
                entry["row_repr"] = _safe_repr(row)
                data = orjson.dumps(entry)
        first = queue not in self.counts
        self.counts[queue] = self.counts.get(queue, 0) + 1
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("ab") as fh:
                    fh.write(data + b"\n")
        except OSError as exc:
            log.error("cannot write quarantine file %s: %s", self.path, exc)
        if first:
            log.error(
                "quarantined a %s row (%s); kept in %s. Later ones are only counted "
                "(pilothouse_rows_quarantined_total)",
                queue,
                reason[:200],
                self.path,
            )
        if self.on_quarantine is not None:
            try:
                self.on_quarantine(queue, 1)
            except Exception:
                log.exception("quarantine hook failed")


def _safe_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # RecursionError on absurd nesting
        return f"<unrepresentable: {type(exc).__name__}>"
    return text[:MAX_REPR]


class Spool:
    """One queue's spool file, plus its ``.replaying`` working copy.

    ``take`` renames the spool to the working file (or returns a working file
    a previous run left behind); ``read`` decodes it line by line; ``keep``
    rewrites it with what is still unwritten; ``finish`` removes it. A lock
    orders appends and renames, so no append lands in a file being replayed.
    """

    def __init__(
        self,
        path: str | Path,
        queue: str,
        quarantine: Quarantine,
        *,
        max_bytes: int | None = None,
        on_drop: CountHook | None = None,
    ) -> None:
        self.path = Path(path)
        self.working = self.path.with_suffix(".replaying")
        self.queue = queue
        self.quarantine = quarantine
        self.max_bytes = max_bytes
        self.on_drop = on_drop
        self.spooled = 0
        self.dropped = 0
        self._lock = threading.Lock()

    def encode(self, rows: Iterable[Any]) -> list[bytes]:
        """One line per row; a row orjson refuses is quarantined, the rest are kept."""
        lines = []
        for row in rows:
            try:
                lines.append(orjson.dumps(row) + b"\n")
            except Exception as exc:
                self.quarantine.add(self.queue, f"cannot encode for spool: {exc}", row=row)
        return lines

    def append(self, lines: list[bytes]) -> int:
        """Append and fsync; returns lines kept (a bounded spool drops and counts the rest)."""
        if not lines:
            return 0
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a+b") as fh:
                size = fh.seek(0, os.SEEK_END)
                if size:
                    fh.seek(size - 1)
                    if fh.read(1) != b"\n":  # a torn last line: never glue a row onto it
                        fh.write(b"\n")
                keep = lines
                if self.max_bytes is not None:
                    room = self.max_bytes - size - self._working_size()
                    keep = []
                    for line in lines:
                        if len(line) > room:
                            break
                        keep.append(line)
                        room -= len(line)
                fh.write(b"".join(keep))
                fh.flush()
                os.fsync(fh.fileno())
        dropped = len(lines) - len(keep)
        self.spooled += len(keep)
        if dropped:
            self.dropped += dropped
            log.warning(
                "%s spool full (%s bytes): dropped %d rows", self.queue, self.max_bytes, dropped
            )
            if self.on_drop is not None:
                self.on_drop(self.queue, dropped)
        return len(keep)

    def _working_size(self) -> int:
        try:
            return self.working.stat().st_size
        except OSError:
            return 0

    def pending(self) -> bool:
        return self.path.exists() or self.working.exists()

    def take(self) -> Path | None:
        """The file to replay now: a leftover working file first, else the spool."""
        with self._lock:
            if self.working.exists():
                return self.working
            if not self.path.exists():
                return None
            os.replace(self.path, self.working)
            return self.working

    def read(
        self, working: Path, decode: Callable[[Any], Any]
    ) -> tuple[list[Any], list[tuple[bytes, str]]]:
        """Decoded rows and the (line, reason) pairs that could not be decoded.

        When some lines are bad the working file is rewritten without them, so
        a later attempt does not quarantine them twice.
        """
        good: list[Any] = []
        good_lines: list[bytes] = []
        bad: list[tuple[bytes, str]] = []
        for number, line in enumerate(working.read_bytes().splitlines(), 1):
            if not line.strip():
                continue
            try:
                good.append(decode(orjson.loads(line)))
                good_lines.append(line + b"\n")
            except Exception as exc:
                bad.append((line, f"undecodable spool line {number}: {type(exc).__name__}: {exc}"))
        if bad:
            self.keep(working, good_lines)
        return good, bad

    def keep(self, working: Path, lines: list[bytes]) -> None:
        """Atomically replace the working file with ``lines`` (still to be written)."""
        tmp = working.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            fh.write(b"".join(lines))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, working)

    def finish(self, working: Path) -> None:
        working.unlink(missing_ok=True)


def parse_datetimes(row: Row, fields: Iterable[str]) -> Row:
    """Spooled rows carry datetimes as ISO strings; turn them back (raises if malformed)."""
    if not isinstance(row, dict):
        raise TypeError(f"expected an object, got {type(row).__name__}")
    for name in fields:
        value = row.get(name)
        if isinstance(value, str):
            row[name] = datetime.fromisoformat(value)
    return row
