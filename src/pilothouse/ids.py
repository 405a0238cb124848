"""Time-ordered ids for the hot path: ULIDs without the ``python-ulid`` object.

A request id is minted for every request. ``str(ULID()).lower()`` costs about
12 µs (an object, ``os.urandom`` and a generic encoder); this builds the same
26-character lower-case Crockford string from the millisecond clock and 80
bits of a ``random.Random`` seeded from the OS, in about half that. Ids must be
unique and sortable, not secret: nothing authorises by a request id. The
generator is reseeded in a forked child, so two workers never share a stream.

Unlike python-ulid 3, ids minted in the same millisecond are not monotonic (the
random part is drawn afresh), so they sort only to the millisecond. Stores that
hand rows out in id order (the eval review queue) still use python-ulid.
"""

from __future__ import annotations

import os
import random
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, as python-ulid prints it
_SHIFTS = range(125, -1, -5)  # 26 characters of 5 bits, most significant first


class _Source:
    rng: random.Random | None = None


def _reseed() -> None:
    _Source.rng = random.Random(os.urandom(32))


def _rng() -> random.Random:
    rng = _Source.rng
    if rng is None:
        _reseed()
        os.register_at_fork(after_in_child=_reseed)
        rng = _Source.rng
        assert rng is not None
    return rng


def ulid() -> str:
    """A ULID in lower case, e.g. ``01jx8v9k3m5q7r2s4t6w8y0z2b``."""
    value = (time.time_ns() // 1_000_000) << 80 | _rng().getrandbits(80)
    return "".join([_ALPHABET[(value >> shift) & 31] for shift in _SHIFTS])


def random_hex(nbytes: int) -> str:
    """``nbytes`` random bytes as lower-case hex, never all zeros (W3C trace and span ids).

    Several per request, so from the same seeded stream, not ``secrets`` (a system
    call each); like request ids they must be unique, not secret.
    """
    rng = _rng()
    bits = nbytes * 8
    value = rng.getrandbits(bits)
    while value == 0:  # all-zero ids are invalid in trace context
        value = rng.getrandbits(bits)
    return f"{value:0{nbytes * 2}x}"
