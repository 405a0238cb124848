"""The prompt registry: immutable versions, labels, label history and approvals.

Every write commits together with its audit row. :meth:`PromptRegistry.move_label`
is the one function that points a label at a version (promotion, rollback,
rollouts all go through it); policy checks happen before it is called.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from ulid import ULID

from pilothouse import audit
from pilothouse.audit.log import LOCK_ID
from pilothouse.errors import InvalidRequestError, NotFoundError
from pilothouse.evals.tables import eval_runs
from pilothouse.releases.bundle import NAME, content_hash, normalize
from pilothouse.releases.evalruns import matching_suite
from pilothouse.releases.tables import (
    label_history,
    labels,
    prompt_approvals,
    prompt_evidence,
    prompt_versions,
    prompts,
)
from pilothouse.releases.versions import Version, history_entry, iso, version_from_row

LABEL = NAME


async def _lock(conn: AsyncConnection) -> None:
    """Serialise registry writes across replicas (the audit append needs the lock anyway)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_ID})


def check_label(label: str) -> str:
    if not isinstance(label, str) or not LABEL.match(label) or label.isdigit():
        raise InvalidRequestError(
            "a label is lowercase letters, digits, '.', '_' or '-' and not a number",
            param="label",
        )
    return label


class PromptRegistry:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # -- versions -------------------------------------------------------------------------

    async def push(
        self, raw: Any, *, actor: str, reason: str | None = None
    ) -> tuple[Version, bool]:
        """Store a new version unless identical content exists; (version, created)."""
        bundle = normalize(raw)
        digest = content_hash(bundle)
        name = bundle["name"]
        async with self.engine.begin() as conn:
            await _lock(conn)
            same = (
                await conn.execute(
                    select(prompt_versions).where(
                        prompt_versions.c.name == name, prompt_versions.c.hash == digest
                    )
                )
            ).first()
            if same is not None:
                return version_from_row(same), False
            latest = (
                await conn.execute(
                    select(func.max(prompt_versions.c.version)).where(
                        prompt_versions.c.name == name
                    )
                )
            ).scalar()
            now = datetime.now(UTC)
            if latest is None:
                await conn.execute(
                    prompts.insert().values(name=name, created_at=now, created_by=actor)
                )
            row = {
                "name": name,
                "version": (latest or 0) + 1,
                "hash": digest,
                "content": bundle,
                "author": actor,
                "reason": reason,
                "parent": latest,
                "created_at": now,
            }
            await conn.execute(prompt_versions.insert().values(**row))
            await audit.append(
                conn,
                actor=actor,
                action="prompt.push",
                target=f"{name}@{row['version']}",
                details={"hash": digest, "parent": latest, "reason": reason},
            )
        return Version(**row), True

    async def version(self, name: str, number: int) -> Version:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(prompt_versions).where(
                        prompt_versions.c.name == name, prompt_versions.c.version == number
                    )
                )
            ).first()
        if row is None:
            raise NotFoundError(f"prompt {name!r} has no version {number}")
        return version_from_row(row)

    async def label_version(self, name: str, label: str) -> int | None:
        async with self.engine.connect() as conn:
            return (
                await conn.execute(
                    select(labels.c.version).where(labels.c.name == name, labels.c.label == label)
                )
            ).scalar()

    async def resolve(self, name: str, ref: str) -> tuple[Version, str | None]:
        """A version by number or label; (version, label or None)."""
        if ref.isdigit():
            return await self.version(name, int(ref)), None
        number = await self.label_version(name, ref)
        if number is None:
            raise NotFoundError(f"prompt {name!r} has no label {ref!r}")
        return await self.version(name, number), ref

    async def list_prompts(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            latest = {
                r.name: r.v
                for r in await conn.execute(
                    select(
                        prompt_versions.c.name, func.max(prompt_versions.c.version).label("v")
                    ).group_by(prompt_versions.c.name)
                )
            }
            held: dict[str, dict[str, int]] = {}
            for r in await conn.execute(select(labels)):
                held.setdefault(r.name, {})[r.label] = r.version
        return [
            {"name": n, "latest_version": latest[n], "labels": held.get(n, {})}
            for n in sorted(latest)
        ]

    async def describe(self, name: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(prompt_versions)
                    .where(prompt_versions.c.name == name)
                    .order_by(prompt_versions.c.version)
                )
            ).fetchall()
            held = {
                r.label: r.version
                for r in await conn.execute(select(labels).where(labels.c.name == name))
            }
        if not rows:
            raise NotFoundError(f"no prompt named {name!r}")
        versions = [
            {
                "version": r.version,
                "hash": r.hash,
                "author": r.author,
                "reason": r.reason,
                "parent": r.parent,
                "created_at": iso(r.created_at),
                "labels": sorted(lbl for lbl, v in held.items() if v == r.version),
            }
            for r in rows
        ]
        return {
            "name": name,
            "latest_version": rows[-1].version,
            "labels": held,
            "versions": versions,
        }

    # -- labels ----------------------------------------------------------------------------

    async def move_label(
        self,
        name: str,
        label: str,
        version: int,
        *,
        actor: str,
        reason: str | None,
        forced: bool = False,
        evidence: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Point ``label`` at ``version`` (the one way a label moves); history + audit."""
        check_label(label)
        target = await self.version(name, version)
        async with self.engine.begin() as conn:
            await _lock(conn)
            previous = (
                await conn.execute(
                    select(labels.c.version).where(labels.c.name == name, labels.c.label == label)
                )
            ).scalar()
            move_id = str(ULID()).lower()
            now = datetime.now(UTC)
            values = {
                "version": version,
                "move_id": move_id,
                "updated_at": now,
                "updated_by": actor,
            }
            if previous is None:
                await conn.execute(labels.insert().values(name=name, label=label, **values))
            else:
                await conn.execute(
                    labels.update()
                    .where(labels.c.name == name, labels.c.label == label)
                    .values(**values)
                )
            await conn.execute(
                label_history.insert().values(
                    id=move_id,
                    name=name,
                    label=label,
                    action="move",
                    from_version=previous,
                    to_version=version,
                    actor=actor,
                    at=now,
                    reason=reason,
                    forced=forced,
                    evidence=evidence or [],
                )
            )
            await audit.append(
                conn,
                actor=actor,
                action="label.move",
                target=f"{name}/{label}",
                details={
                    "from": previous,
                    "to": version,
                    "hash": target.hash,
                    "forced": forced,
                    "reason": reason,
                    "evidence": [e.get("run_id") for e in evidence or []],
                },
            )
        return {"label": label, "version": version, "previous": previous, "forced": forced}

    async def delete_label(self, name: str, label: str, *, actor: str, reason: str | None) -> int:
        async with self.engine.begin() as conn:
            await _lock(conn)
            previous = (
                await conn.execute(
                    select(labels.c.version).where(labels.c.name == name, labels.c.label == label)
                )
            ).scalar()
            if previous is None:
                raise NotFoundError(f"prompt {name!r} has no label {label!r}")
            await conn.execute(delete(labels).where(labels.c.name == name, labels.c.label == label))
            await conn.execute(
                label_history.insert().values(
                    id=str(ULID()).lower(),
                    name=name,
                    label=label,
                    action="delete",
                    from_version=previous,
                    to_version=None,
                    actor=actor,
                    at=datetime.now(UTC),
                    reason=reason,
                    forced=False,
                    evidence=[],
                )
            )
            await audit.append(
                conn,
                actor=actor,
                action="label.delete",
                target=f"{name}/{label}",
                details={"from": previous, "reason": reason},
            )
        return int(previous)

    async def history(self, name: str, label: str | None = None) -> list[dict[str, Any]]:
        query = select(label_history).where(label_history.c.name == name)
        if label is not None:
            query = query.where(label_history.c.label == label)
        async with self.engine.connect() as conn:
            rows = await conn.execute(query.order_by(label_history.c.id))
            return [history_entry(r) for r in rows]

    async def moved_since(self, since: datetime) -> tuple[list[tuple[str, str]], datetime]:
        """(name, label) pairs moved or deleted at/after ``since`` (the poll safety net)."""
        now = datetime.now(UTC)
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(label_history.c.name, label_history.c.label).where(
                    label_history.c.at >= since
                )
            )
            return [(r.name, r.label) for r in rows], now

    # -- approvals and evidence ------------------------------------------------------------

    async def approve(
        self, name: str, version: int, label: str, *, actor: str, reason: str | None
    ) -> dict[str, Any]:
        """Record an approval; the pusher of the version may not approve it (four eyes)."""
        check_label(label)
        target = await self.version(name, version)
        if target.author == actor:
            raise InvalidRequestError(
                f"{actor!r} pushed {name}@{version} and may not approve it (four eyes)",
                param="actor",
                code="same_principal",
            )
        now = datetime.now(UTC)
        row: dict[str, Any] = {
            "id": str(ULID()).lower(),
            "name": name,
            "version": version,
            "label": label,
            "actor": actor,
            "reason": reason,
        }
        async with self.engine.begin() as conn:
            await conn.execute(prompt_approvals.insert().values(**row, at=now))
            await audit.append(
                conn,
                actor=actor,
                action="prompt.approve",
                target=f"{name}@{version}",
                details={"label": label, "hash": target.hash, "reason": reason},
            )
        return {**row, "at": iso(now)}

    async def approvals(self, name: str, version: int, label: str) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(prompt_approvals).where(
                    prompt_approvals.c.name == name,
                    prompt_approvals.c.version == version,
                    prompt_approvals.c.label == label,
                )
            )
            return [{"who": r.actor, "when": iso(r.at), "why": r.reason} for r in rows]

    async def record_evidence(
        self, version: Version, *, run_id: str, suite: str, passed: bool, gates: Any
    ) -> dict[str, Any]:
        row = {
            "id": str(ULID()).lower(),
            "name": version.name,
            "version": version.version,
            "hash": version.hash,
            "label": None,
            "run_id": run_id,
            "suite": suite,
            "passed": passed,
            "gates": gates,
            "at": datetime.now(UTC),
        }
        async with self.engine.begin() as conn:
            await conn.execute(prompt_evidence.insert().values(**row))
        return {**row, "at": iso(row["at"])}

    async def collect_runs(self, version: Version) -> list[dict[str, Any]]:
        """Record finished eval runs that targeted exactly this version as evidence.

        A run counts when its target was ``prompt:NAME@V`` (immutable, so exactly
        this hash) and its suite path is one of the bundle's ``evals``.
        """
        wanted = {f"prompt:{version.name}@{version.version}"}
        suites = version.content.get("evals") or []
        known = {e["run_id"] for e in await self.evidence(version.name, version.version)}
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(select(eval_runs).where(eval_runs.c.status != "running"))
            ).fetchall()
        added = []
        for row in rows:
            info = row.info or {}
            target = (info.get("target") or {}).get("model")
            suite = matching_suite(str(info.get("suite_path") or ""), suites)
            if target not in wanted or suite is None or row.id in known:
                continue
            gates = (row.summary or {}).get("gates") if isinstance(row.summary, dict) else None
            added.append(
                await self.record_evidence(
                    version,
                    run_id=row.id,
                    suite=suite,
                    passed=row.gates_passed is True and row.status == "completed",
                    gates=gates,
                )
            )
        return added

    async def evidence(self, name: str, version: int) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(prompt_evidence)
                .where(prompt_evidence.c.name == name, prompt_evidence.c.version == version)
                .order_by(prompt_evidence.c.id)
            )
            return [
                {
                    "run_id": r.run_id,
                    "suite": r.suite,
                    "hash": r.hash,
                    "passed": bool(r.passed),
                    "gates": r.gates,
                    "at": iso(r.at),
                }
                for r in rows
            ]

    async def ever_held(self, name: str, version: int, label: str) -> bool:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(label_history.c.id)
                    .where(
                        label_history.c.name == name,
                        label_history.c.label == label,
                        label_history.c.to_version == version,
                    )
                    .limit(1)
                )
            ).first()
        return row is not None
