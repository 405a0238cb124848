"""Hot-path request ids are real ULIDs: parseable, time-ordered, unique, distinct across forks."""

from __future__ import annotations

import os
import time

from ulid import ULID

from pilothouse.ids import ulid


def test_a_request_id_is_a_ulid_of_now() -> None:
    before = time.time()
    value = ulid()
    after = time.time()
    assert len(value) == 26 and value == value.lower()
    parsed = ULID.from_str(value.upper())  # python-ulid reads it back
    assert before - 0.001 <= parsed.timestamp <= after + 0.001
    assert str(parsed).lower() == value


def test_ids_are_unique_and_sort_by_time() -> None:
    ids = [ulid() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    stamps = [ULID.from_str(i.upper()).milliseconds for i in ids]
    assert stamps == sorted(stamps)


def test_a_forked_child_draws_other_ids() -> None:
    ulid()  # the parent's generator exists before the fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, "".join(ulid()[10:] for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 1000).decode()
    os.waitpid(pid, 0)
    os.close(read)
    parent = "".join(ulid()[10:] for _ in range(5))
    assert len(child) == 80 and child != parent
