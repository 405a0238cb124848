"""Admin principals and roles: one table of role → allowed actions, one check.

Every admin route names the action it performs (``keys.write``,
``traces.read`` …) and calls :func:`authorize`; nothing else decides who may
do what, so the role matrix below is the whole policy.
"""

from __future__ import annotations

from dataclasses import dataclass

from pilothouse.errors import PermissionDeniedError

ROLES: tuple[str, ...] = ("admin", "operator", "viewer", "finance")
BOOTSTRAP = "bootstrap"

READS: frozenset[str] = frozenset(
    {
        "keys.read",
        "teams.read",
        "usage.read",
        "costs.read",
        "traces.read",
        "slo.read",
        "metrics.read",
        "prompts.read",
        "rollouts.read",
        "routes.read",
        "lineage.read",
        "audit.read",
        "evals.read",
        "console.read",
    }
)
OPERATOR: frozenset[str] = frozenset(
    {
        "keys.read",
        "keys.write",
        "teams.read",
        "prompts.read",
        "prompts.write",
        "labels.write",
        "prompts.approve",
        "rollouts.read",
        "rollouts.write",
        "config.reload",
        "routes.read",
        "evals.read",
        "evals.review",
        "routing.degrade",
        "console.read",
        "playground.use",  # spends: sends requests as the operator's key (console playground)
    }
)
FINANCE: frozenset[str] = frozenset({"usage.read", "costs.read", "teams.read", "console.read"})
ALLOWED: dict[str, frozenset[str] | None] = {
    "admin": None,  # everything
    "operator": OPERATOR,
    "viewer": READS,
    "finance": FINANCE,
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is acting: ``bootstrap`` (the config admin key) or a named admin key."""

    name: str
    role: str
    key_id: str | None = None

    def may(self, action: str) -> bool:
        allowed = ALLOWED.get(self.role, frozenset())
        return allowed is None or action in allowed

    @property
    def redacted(self) -> bool:
        """Viewers read traces with their content redacted."""
        return self.role == "viewer"


def allows(role: str, action: str) -> bool:
    return Principal("-", role).may(action)


def authorize(principal: Principal, action: str) -> Principal:
    """Raise 403 unless the principal's role includes ``action``."""
    if not principal.may(action):
        raise PermissionDeniedError(
            f"principal {principal.name!r} (role {principal.role}) may not {action}",
            code="forbidden_for_role",
        )
    return principal


def key_role(role: str | None, scopes: frozenset[str]) -> str | None:
    """A key's admin role: its ``role``, or ``admin`` for legacy admin-scope keys."""
    if role is not None:
        return role
    return "admin" if "admin" in scopes else None


def may_manage_key(role: str, *, target_role: str | None, new_role: object = None) -> bool:
    """Only an admin may mint, change, rotate or revoke a key that carries an admin role.

    ``keys.write`` is an operator's action too, and rotating a key hands its new
    secret to whoever asked: without this an operator could become an admin. The
    admin API and the console's key pages both ask here.
    """
    return role == "admin" or (target_role is None and new_role in (None, ""))
