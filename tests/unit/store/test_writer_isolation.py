"""Pure logic of the writers' safety net: spool lines, quarantine, batch bisection, salvage."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import exc as sa_exc

from pilothouse.costs.ledger import salvage
from pilothouse.store.batch import is_outage, write_isolated
from pilothouse.store.spool import Quarantine, Spool, parse_datetimes


def spool(tmp_path: Path, **kw: Any) -> tuple[Spool, Quarantine, list[tuple[str, int]]]:
    seen: list[tuple[str, int]] = []
    q = Quarantine(tmp_path / "q.jsonl", on_quarantine=lambda queue, n: seen.append((queue, n)))
    return Spool(tmp_path / "s.jsonl", "usage", q, **kw), q, seen


def test_append_after_a_torn_tail_keeps_the_new_row_whole(tmp_path: Path) -> None:
    s, _, _ = spool(tmp_path)
    s.path.write_bytes(b'{"id": "a"}\n{"id": "b", "cost')  # SIGKILL mid-line
    s.append(s.encode([{"id": "c"}]))
    working = s.take()
    assert working is not None
    rows, bad = s.read(working, lambda r: r)
    assert [r["id"] for r in rows] == ["a", "c"]
    assert len(bad) == 1 and bad[0][0] == b'{"id": "b", "cost'
    # The working file was rewritten without the bad line: a retry cannot quarantine it twice.
    assert s.read(working, lambda r: r)[1] == []


def test_rows_orjson_refuses_are_quarantined_with_their_reason(tmp_path: Path) -> None:
    s, _, seen = spool(tmp_path)
    deep: Any = "x"
    for _ in range(300):
        deep = [deep]
    lines = s.encode([{"id": "ok"}, {"id": "deep", "metadata": deep}, {"id": "big", "n": 2**70}])
    assert [orjson.loads(line)["id"] for line in lines] == ["ok"]
    assert seen == [("usage", 1), ("usage", 1)]
    entries = [orjson.loads(line) for line in (tmp_path / "q.jsonl").read_bytes().splitlines()]
    assert all(e["queue"] == "usage" and e["reason"] for e in entries)
    assert "deep" in entries[0]["row_repr"] and "big" in entries[1]["row_repr"]


def test_a_bounded_spool_drops_and_counts_what_does_not_fit(tmp_path: Path) -> None:
    drops: list[int] = []
    s, _, _ = spool(tmp_path, max_bytes=30, on_drop=lambda _q, n: drops.append(n))
    kept = s.append(s.encode([{"id": "1234567"}, {"id": "abcdefg"}, {"id": "zzzzzzz"}]))
    assert kept == 1 and drops == [2] and s.dropped == 2


def test_a_leftover_working_file_is_replayed_before_the_spool(tmp_path: Path) -> None:
    s, _, _ = spool(tmp_path)
    s.working.write_bytes(b'{"id": "old"}\n')
    s.append(s.encode([{"id": "new"}]))
    first = s.take()
    assert first == s.working
    assert [r["id"] for r in s.read(first, lambda r: r)[0]] == ["old"]
    s.finish(first)
    second = s.take()
    assert second is not None and [r["id"] for r in s.read(second, lambda r: r)[0]] == ["new"]


def test_parse_datetimes_refuses_what_is_not_a_row() -> None:
    with pytest.raises(TypeError):
        parse_datetimes([1, 2], ("created_at",))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        parse_datetimes({"created_at": "never"}, ("created_at",))


class FakeStore:
    """Refuses any batch that contains a bad id; can be taken down."""

    def __init__(self, bad: set[int]) -> None:
        self.bad = bad
        self.rows: list[int] = []
        self.up = True

    async def insert(self, batch: list[int]) -> None:
        if not self.up:
            raise sa_exc.OperationalError("INSERT", {}, ConnectionRefusedError())
        if self.bad & set(batch):
            raise sa_exc.DataError("INSERT", {}, ValueError("invalid byte sequence 0x00"))
        self.rows.extend(batch)

    async def probe(self) -> bool:
        return self.up


def test_one_bad_row_costs_only_itself() -> None:
    store = FakeStore({37})
    out = asyncio.run(write_isolated(list(range(100)), store.insert, store.probe))
    assert sorted(store.rows) == [i for i in range(100) if i != 37]
    assert [row for row, _ in out.bad] == [37] and "0x00" in out.bad[0][1]
    assert out.unwritten == []


def test_an_outage_leaves_everything_unwritten_not_quarantined() -> None:
    store = FakeStore({5})
    store.up = False
    out = asyncio.run(write_isolated(list(range(10)), store.insert, store.probe))
    assert sorted(out.unwritten) == list(range(10)) and out.bad == [] and store.rows == []


def test_outage_classification() -> None:
    assert is_outage(sa_exc.OperationalError("x", {}, Exception("database is locked")))
    assert is_outage(ConnectionRefusedError())
    assert not is_outage(sa_exc.DataError("x", {}, Exception("bad")))
    assert not is_outage(TypeError("Recursion limit reached"))


def test_salvage_keeps_money_and_plain_attribution() -> None:
    row = {
        "id": "r",
        "cost_pico": 99,
        "metadata": {"team": "red", "user": [[["deep"]]], "n": 2**70},
    }
    out = salvage(row, "TypeError: Recursion limit reached")
    assert out["cost_pico"] == 99 and out["metadata"]["team"] == "red"
    assert "user" not in out["metadata"] and "n" not in out["metadata"]
    assert out["metadata"]["pilothouse_quarantined"].startswith("TypeError")
    orjson.dumps(out)
