"""Budgets: reserve a request's worst-case cost up front, settle to the real cost after.

Reservation makes concurrent requests see each other's in-flight spend, so
fifty parallel calls against a nearly spent budget cannot overshoot it. The
spent total is loaded from the usage ledger on first use of a period, so a
restart (or a new replica) starts from the truth.

Each reservation is a *lease* named by the request id: it expires after
``limits.reservation_lease_s`` unless the process holding it renews it, so a
replica killed with requests in flight gives their reserved money back once
the lease runs out (the next reservation on any replica reaps expired ones).
Settling looks the lease up by id, so a reservation is released exactly once.

Money stays integer end to end: in Redis every sum and comparison is done by
Redis' own 64-bit integer commands (HINCRBY, DECRBY on a scratch key) and
values come back as strings, never as Lua doubles (exact only to 2^53).
A settlement above its reservation can *freeze* the key's budget for the
period (see docs/costs.md): further reservations are refused until the period
ends or the key's budget changes.

A request can be charged to several scopes at once (its key, its team, its
user): :meth:`BudgetBackend.reserve_all` checks every scope and reserves in all
of them or in none, in one step (one Lua script in Redis, no await in memory),
so two keys of one team cannot both take the team's last dollar.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, cast

from redis.asyncio import Redis

from pilothouse.limits import budget_lua

SpentLoader = Callable[[str, str], Awaitable[int]]
INT64_MAX = 2**63 - 1


def period_key(period: str, now: datetime | None = None) -> str:
    """The budget window a moment belongs to: ``total``, ``d:YYYY-MM-DD`` or ``m:YYYY-MM``."""
    now = now or datetime.now(UTC)
    if period == "day":
        return "d:" + now.strftime("%Y-%m-%d")
    if period == "month":
        return "m:" + now.strftime("%Y-%m")
    return "total"


def period_start(period_id: str) -> datetime | None:
    """Inclusive start of a period id; ``None`` for ``total``."""
    if period_id.startswith("d:"):
        return datetime.strptime(period_id[2:], "%Y-%m-%d").replace(tzinfo=UTC)
    if period_id.startswith("m:"):
        return datetime.strptime(period_id[2:], "%Y-%m").replace(tzinfo=UTC)
    return None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a reservation was refused: ``left`` pico-USD, or a frozen budget.

    ``slot`` is the index of the refusing scope in :meth:`BudgetBackend.reserve_all`.
    """

    left: int
    frozen: bool = False
    slot: int = 0


@dataclass(frozen=True, slots=True)
class Slot:
    """One budget a request is charged to: a key, team or user id, its period and limit."""

    scope: str
    period: str
    budget: int


class BudgetBackend(Protocol):
    async def reserve_all(
        self, slots: Sequence[Slot], amount: int, lease_id: str
    ) -> Refusal | None:
        """Reserve ``amount`` in every slot under ``lease_id``, or in none; ``None`` if granted."""

    async def settle_all(
        self, slots: Sequence[Slot], lease_id: str, actual: int, *, freeze: bool = False
    ) -> None:
        """Release the lease and charge ``actual`` in every slot; ``freeze`` at each budget."""

    async def reserve(
        self, key_id: str, period: str, budget: int, amount: int, lease_id: str
    ) -> Refusal | None:
        """Reserve ``amount`` pico-USD under ``lease_id``; ``None`` if granted."""

    async def settle(
        self, key_id: str, period: str, lease_id: str, actual: int, *, freeze: int | None = None
    ) -> None:
        """Release the lease and charge ``actual``; ``freeze`` = the budget to freeze at."""

    async def spent(self, key_id: str, period: str) -> int: ...

    async def renew(self) -> None:
        """Extend the leases of this process's in-flight reservations."""


def _clamp(amount: int) -> int:
    return min(max(int(amount), 0), INT64_MAX)


class _SingleSlot:
    """The one-scope calls, as the multi-scope ones with one slot."""

    async def reserve_all(
        self, slots: Sequence[Slot], amount: int, lease_id: str
    ) -> Refusal | None:
        raise NotImplementedError

    async def settle_all(
        self, slots: Sequence[Slot], lease_id: str, actual: int, *, freeze: bool = False
    ) -> None:
        raise NotImplementedError

    async def reserve(
        self, key_id: str, period: str, budget: int, amount: int, lease_id: str
    ) -> Refusal | None:
        return await self.reserve_all([Slot(key_id, period, budget)], amount, lease_id)

    async def settle(
        self, key_id: str, period: str, lease_id: str, actual: int, *, freeze: int | None = None
    ) -> None:
        slot = Slot(key_id, period, freeze if freeze is not None else 0)
        await self.settle_all([slot], lease_id, actual, freeze=freeze is not None)


@dataclass(slots=True)
class _Entry:
    spent: int
    leases: dict[str, tuple[int, float]]  # lease id -> (amount, expiry on the monotonic clock)
    frozen: int | None = None

    def reap(self, now: float) -> None:
        for lease_id in [k for k, (_, exp) in self.leases.items() if exp <= now]:
            del self.leases[lease_id]

    @property
    def reserved(self) -> int:
        return sum(amount for amount, _ in self.leases.values())

    def refusal(self, budget: int, amount: int, index: int) -> Refusal | None:
        if self.frozen is not None:
            if self.frozen == budget:
                return Refusal(0, frozen=True, slot=index)
            self.frozen = None
        left = budget - self.spent - self.reserved
        if self.spent >= budget or left < 0:
            return Refusal(max(left, 0), slot=index)
        if amount > left:
            return Refusal(left, slot=index)
        return None


class MemoryBudgets(_SingleSlot):
    """One process's budgets (Python ints are exact at any size)."""

    def __init__(
        self,
        loader: SpentLoader,
        lease_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.loader = loader
        self.lease_s = lease_s
        self.clock = clock
        self._state: dict[tuple[str, str], _Entry] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._active: dict[str, list[tuple[str, str]]] = {}

    async def _entry(self, key_id: str, period: str) -> _Entry:
        slot = (key_id, period)
        entry = self._state.get(slot)
        if entry is not None:
            return entry
        lock = self._locks.setdefault(slot, asyncio.Lock())
        async with lock:
            entry = self._state.get(slot)
            if entry is None:
                entry = _Entry(await self.loader(key_id, period), {})
                self._state[slot] = entry
        return entry

    async def reserve_all(
        self, slots: Sequence[Slot], amount: int, lease_id: str
    ) -> Refusal | None:
        entries = [await self._entry(s.scope, s.period) for s in slots]
        # No await from here on: the check and the reservation are one step for the loop.
        now = self.clock()
        for index, (slot, entry) in enumerate(zip(slots, entries, strict=True)):
            entry.reap(now)
            refusal = entry.refusal(slot.budget, amount, index)
            if refusal is not None:
                return refusal
        for entry in entries:
            entry.leases[lease_id] = (amount, now + self.lease_s)
        self._active[lease_id] = [(s.scope, s.period) for s in slots]
        return None

    async def settle_all(
        self, slots: Sequence[Slot], lease_id: str, actual: int, *, freeze: bool = False
    ) -> None:
        self._active.pop(lease_id, None)
        for slot in slots:
            entry = await self._entry(slot.scope, slot.period)
            entry.leases.pop(lease_id, None)
            entry.spent += actual
            if freeze:
                entry.frozen = slot.budget

    async def spent(self, key_id: str, period: str) -> int:
        return (await self._entry(key_id, period)).spent

    async def reserved(self, key_id: str, period: str) -> int:
        entry = await self._entry(key_id, period)
        entry.reap(self.clock())
        return entry.reserved

    async def renew(self) -> None:
        expiry = self.clock() + self.lease_s
        for lease_id, held in list(self._active.items()):
            for slot in held:
                entry = self._state.get(slot)
                if entry is not None and lease_id in entry.leases:
                    entry.leases[lease_id] = (entry.leases[lease_id][0], expiry)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisBudgets(_SingleSlot):
    """Budget counters in Redis shared by every replica (integer pico-USD strings)."""

    def __init__(
        self, redis: Redis, prefix: str, loader: SpentLoader, lease_s: float = 60.0
    ) -> None:
        self.redis = redis
        self.prefix = prefix + "budget:"
        self.loader = loader
        self.lease_ms = max(1, int(lease_s * 1000))
        self._reserve = redis.register_script(budget_lua.RESERVE)
        self._settle = redis.register_script(budget_lua.SETTLE)
        self._renew = redis.register_script(budget_lua.RENEW)
        self._reserved = redis.register_script(budget_lua.RESERVED)
        self._initialised: set[str] = set()
        self._active: dict[str, list[str]] = {}  # lease id -> budget hash names

    @staticmethod
    def _keys(name: str) -> list[str]:
        return [name, name + ":leases", name + ":amounts", name + ":scratch"]

    async def _key(self, key_id: str, period: str) -> str:
        name = f"{self.prefix}{key_id}:{period}"
        if name not in self._initialised:
            # redis-py types these as ``Awaitable[T] | T`` (sync and async clients share stubs).
            if not await cast(Awaitable[bool], self.redis.hexists(name, "spent")):
                spent = str(await self.loader(key_id, period))
                await cast(Awaitable[bool], self.redis.hsetnx(name, "spent", spent))
            self._initialised.add(name)
        return name

    async def reserve_all(
        self, slots: Sequence[Slot], amount: int, lease_id: str
    ) -> Refusal | None:
        names = [await self._key(s.scope, s.period) for s in slots]
        keys = [k for name in names for k in self._keys(name)]
        args = [str(_clamp(amount)), lease_id, str(self.lease_ms)]
        args += [str(_clamp(s.budget)) for s in slots]
        text = _text(await self._reserve(keys=keys, args=args))
        if text == "ok":
            self._active[lease_id] = names
            return None
        index, _, reason = text.partition(":")
        if reason == "frozen":
            return Refusal(0, frozen=True, slot=int(index))
        return Refusal(int(reason.removeprefix("left:")), slot=int(index))

    async def settle_all(
        self, slots: Sequence[Slot], lease_id: str, actual: int, *, freeze: bool = False
    ) -> None:
        self._active.pop(lease_id, None)
        names = [await self._key(s.scope, s.period) for s in slots]
        keys = [k for name in names for k in self._keys(name)]
        frozen = [str(_clamp(s.budget)) if freeze else "" for s in slots]
        await self._settle(keys=keys, args=[lease_id, str(_clamp(actual)), *frozen])

    async def spent(self, key_id: str, period: str) -> int:
        name = await self._key(key_id, period)
        value = await cast(Awaitable[bytes | None], self.redis.hget(name, "spent"))
        return int(_text(value)) if value is not None else 0

    async def reserved(self, key_id: str, period: str) -> int:
        """Pico-USD held by live leases (expired ones are reaped first)."""
        name = await self._key(key_id, period)
        return int(_text(await self._reserved(keys=self._keys(name), args=[])))

    async def renew(self) -> None:
        by_name: dict[str, list[str]] = {}
        for lease_id, names in list(self._active.items()):
            for name in names:
                by_name.setdefault(name, []).append(lease_id)
        for name, ids in by_name.items():
            await self._renew(keys=[name + ":leases"], args=[str(self.lease_ms), *ids])
