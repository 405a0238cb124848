"""What ``POST /admin/keys`` and ``PATCH /admin/keys/{id}`` accept, checked into column values.

Kept apart from the key store and cache so the hot path's module stays small;
the same field checks (limits, budgets, model lists) serve teams and users.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pilothouse.errors import InvalidRequestError
from pilothouse.inputs import JsonLimits, check_metadata
from pilothouse.limits.money import usd_to_pico

if TYPE_CHECKING:
    from pilothouse.limits.keys import KeyRecord

PERIODS: tuple[str, ...] = ("total", "day", "month")
SCOPES: tuple[str, ...] = ("inference", "admin", "metrics")
ROLES: tuple[str, ...] = ("admin", "operator", "viewer", "finance")
RESERVED_NAMES = ("bootstrap", "signal")


# Column bounds: rpm/tpm are 32-bit, budgets are 64-bit pico-USD (~9.2 million USD).
MAX_LIMIT = 2**31 - 1
MAX_BUDGET_PICO = 2**63 - 1


def parse_models(models: Any) -> list[str] | None:
    """``models``: a list of aliases, or null for every model."""
    if models is not None and (
        not isinstance(models, list) or not all(isinstance(m, str) and m for m in models)
    ):
        raise InvalidRequestError("`models` must be a list of model aliases", param="models")
    return models


def parse_budget(budget: Any) -> int | None:
    """``budget_usd`` (a number or decimal string) as pico-USD; null for no budget."""
    if budget is None:
        return None
    if isinstance(budget, bool) or not isinstance(budget, int | float | str):
        raise InvalidRequestError("`budget_usd` must be a number", param="budget_usd")
    try:
        budget_pico = usd_to_pico(str(budget))
    except (ArithmeticError, ValueError):  # ValueError: NaN
        raise InvalidRequestError("`budget_usd` must be a number", param="budget_usd") from None
    if not 0 <= budget_pico <= MAX_BUDGET_PICO:
        raise InvalidRequestError(
            f"`budget_usd` must be from 0 to {MAX_BUDGET_PICO // 10**12}", param="budget_usd"
        )
    return budget_pico


def parse_period(period: Any) -> str:
    if period not in PERIODS:
        raise InvalidRequestError(
            f"`budget_period` must be one of {PERIODS}", param="budget_period"
        )
    return str(period)


def parse_ref(value: Any, param: str) -> str | None:
    """A team or user id (``team_…``/``user_…``); whether it exists is the store's check."""
    if value is None:
        return None
    prefix = param.removesuffix("_id") + "_"
    if not isinstance(value, str) or not value.startswith(prefix) or len(value) > 32:
        raise InvalidRequestError(f"`{param}` must be a {prefix}… id or null", param=param)
    return value


def parse_name(spec: dict[str, Any]) -> str:
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or "\x00" in name:
        raise InvalidRequestError(
            "`name` is required: a non-empty string of at most 200 characters, without NUL",
            param="name",
        )
    return name


def positive_int(spec: dict[str, Any], name: str) -> int | None:
    value = spec.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise InvalidRequestError(f"`{name}` must be an integer from 1 to {MAX_LIMIT}", param=name)
    return value


def validate_key_spec(spec: Any) -> dict[str, Any]:
    """Check an admin ``POST /admin/keys`` body; returns column values (no secret)."""
    if not isinstance(spec, dict):
        raise InvalidRequestError("request body must be a JSON object")
    allowed = {
        "name",
        "models",
        "rpm",
        "tpm",
        "model_limits",
        "budget_usd",
        "budget_period",
        "metadata",
        "scopes",
        "role",
        "max_concurrency",
        "expires_at",
        "team_id",
        "user_id",
    }
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise InvalidRequestError(f"unknown field(s): {', '.join(unknown)}", param=unknown[0])
    name = parse_name(spec)
    models = parse_models(spec.get("models"))
    scopes = spec.get("scopes", ["inference"])
    if (
        not isinstance(scopes, list)
        or not scopes
        or not all(isinstance(s, str) and s in SCOPES for s in scopes)
    ):
        raise InvalidRequestError(f"`scopes` must be a list drawn from {SCOPES}", param="scopes")
    limits_in = spec.get("model_limits") or {}
    if not isinstance(limits_in, dict):
        raise InvalidRequestError("`model_limits` must map alias to {rpm, tpm}")
    model_limits: dict[str, dict[str, int | None]] = {}
    for alias, lim in limits_in.items():
        if not isinstance(lim, dict) or set(lim) - {"rpm", "tpm"}:
            raise InvalidRequestError(
                f"`model_limits.{alias}` must be an object with rpm and/or tpm",
                param="model_limits",
            )
        model_limits[alias] = {"rpm": positive_int(lim, "rpm"), "tpm": positive_int(lim, "tpm")}
    budget_pico = parse_budget(spec.get("budget_usd"))
    period = parse_period(spec.get("budget_period", "total"))
    role = spec.get("role")
    if role is not None and role not in ROLES:
        raise InvalidRequestError(f"`role` must be one of {ROLES}", param="role")
    if role is not None and (name.strip() in RESERVED_NAMES or name.startswith("cli:")):
        raise InvalidRequestError(
            f"`name` {name!r} is reserved for a built-in principal", param="name"
        )
    metadata = check_metadata(spec.get("metadata") or {}, JsonLimits(), "metadata")
    return {
        "name": name.strip(),
        "models": models,
        "scopes": sorted(set(scopes)),
        "rpm": positive_int(spec, "rpm"),
        "tpm": positive_int(spec, "tpm"),
        "model_limits": model_limits or None,
        "budget_pico": budget_pico,
        "budget_period": period,
        "metadata": metadata,
        "role": role,
        "max_concurrency": positive_int(spec, "max_concurrency"),
        "expires_at": _expiry(spec.get("expires_at")),
        "team_id": parse_ref(spec.get("team_id"), "team_id"),
        "user_id": parse_ref(spec.get("user_id"), "user_id"),
    }


PATCHABLE = frozenset(
    {"name", "models", "rpm", "tpm", "model_limits", "budget_usd", "budget_period", "metadata",
     "expires_at", "max_concurrency", "team_id", "user_id"}
)  # fmt: skip


def _expiry(value: Any) -> datetime | None:
    """``expires_at``: an ISO 8601 time (UTC when no offset is given), or null for never."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequestError(
            "`expires_at` must be an ISO 8601 time or null", param="expires_at"
        )
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequestError(
            f"`expires_at` is not an ISO 8601 time: {value!r}", param="expires_at"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def current_spec(record: KeyRecord) -> dict[str, Any]:
    """A key's settings in the shape ``POST /admin/keys`` takes, for PATCH to overlay."""
    public = record.public()
    copied = ("name", "models", "rpm", "tpm", "model_limits", "metadata", "max_concurrency",
              "team_id", "user_id")  # fmt: skip
    spec = {k: public[k] for k in copied}
    spec.update(
        scopes=sorted(record.scopes),
        budget_period=record.budget_period,
        budget_usd=public["budget_usd"],
        expires_at=public["expires_at"],
    )
    if record.role is not None:
        spec["role"] = record.role
    return {k: v for k, v in spec.items() if v is not None}


def validate_key_patch(record: KeyRecord, patch: Any) -> dict[str, Any]:
    """Check a ``PATCH /admin/keys/{id}`` body; returns the columns that change."""
    if not isinstance(patch, dict) or not patch:
        raise InvalidRequestError("request body must be a non-empty JSON object")
    fixed = sorted(set(patch) & {"scopes", "role"})
    if fixed:
        raise InvalidRequestError(
            f"`{fixed[0]}` cannot be changed; create a new key with the scopes or role it needs",
            param=fixed[0],
        )
    unknown = sorted(set(patch) - PATCHABLE)
    if unknown:
        raise InvalidRequestError(f"unknown field(s): {', '.join(unknown)}", param=unknown[0])
    merged = {**current_spec(record), **patch}
    values = validate_key_spec({k: v for k, v in merged.items() if v is not None})
    changed = ["budget_pico" if k == "budget_usd" else str(k) for k in patch]
    return {column: values[column] for column in changed}
