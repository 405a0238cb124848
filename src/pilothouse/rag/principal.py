"""The signed principal header: one gateway key serving many end users, each with their groups.

An application holding one key sends ``x-pilothouse-principal: <JWT>`` (HMAC,
signed with ``rag.principal.secret``) naming the end user (``sub``) and their
``groups``. The key's groups are the ceiling and the token narrows them:

- non-admin key with ``metadata.groups``: token groups ∩ key groups;
- admin key (reads everything without a token): the token's groups, so acting
  for a user sees what the user sees;
- key with neither: the token's groups only when the key's metadata says
  ``delegate_groups: true`` (the application vouches for its tokens), else 403
  ``principal_not_delegated``.

A token never grants read-everything (an ``admin`` group in it is just a group
name). The token itself is never logged or echoed in an error.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from pilothouse.errors import AuthenticationError, InvalidRequestError, PermissionDeniedError
from pilothouse.rag.acl import caller_groups
from pilothouse.rag.config import PrincipalConfig

DELEGATE_FLAG = "delegate_groups"  # key metadata: a group-less key may read as its tokens say
_MAX_GROUPS = 1000
_MAX_NAME = 256


@dataclass(frozen=True, slots=True)
class Principal:
    """The end user a request acts for: an id (recorded on traces) and their groups."""

    sub: str
    groups: tuple[str, ...]


def _invalid(header: str, why: str) -> AuthenticationError:
    return AuthenticationError(f"the {header} token {why}", code="invalid_principal")


# Fixed reasons per PyJWT error: its messages are not guaranteed free of token bytes.
_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "has expired"),
    (jwt.ImmatureSignatureError, "is not valid yet (nbf/iat in the future)"),
    (jwt.InvalidSignatureError, "has a signature that does not verify"),
    (jwt.InvalidAlgorithmError, "uses an algorithm not in rag.principal.algorithms"),
    (jwt.InvalidAudienceError, "has an audience this gateway does not accept"),
    (jwt.DecodeError, "is not a well-formed JWT"),
)


def parse(cfg: PrincipalConfig, headers: Mapping[str, str]) -> Principal | None:
    """The verified principal of a request, ``None`` without the header.

    400 ``principal_header_disabled`` when the header comes but the feature is
    off (so nobody believes it applied); 401 ``invalid_principal`` for a token
    that is forged, expired, too long-lived or malformed.
    """
    token = headers.get(cfg.header)
    if token is None:
        return None
    if cfg.secret is None:
        raise InvalidRequestError(
            f"the {cfg.header} header is not enabled on this gateway "
            "(set rag.principal.secret); it was not applied",
            code="principal_header_disabled",
            param=cfg.header,
        )
    try:
        claims: dict[str, Any] = jwt.decode(
            token.strip(),
            cfg.secret.get(),
            algorithms=list(cfg.algorithms),
            options={"require": ["sub", "exp"]},
        )
    except jwt.MissingRequiredClaimError as exc:
        raise _invalid(cfg.header, f"lacks the required {exc.claim!r} claim") from None
    except jwt.InvalidTokenError as exc:
        why = next((w for t, w in _REASONS if isinstance(exc, t)), "could not be verified")
        raise _invalid(cfg.header, why) from None
    if float(claims["exp"]) - time.time() > cfg.max_age_s:
        raise _invalid(
            cfg.header, f"expires more than rag.principal.max_age_s ({cfg.max_age_s}s) ahead"
        )
    sub = claims["sub"]
    if not isinstance(sub, str) or not 0 < len(sub) <= _MAX_NAME:
        raise _invalid(cfg.header, f"needs `sub` as a string of 1 to {_MAX_NAME} characters")
    groups = claims.get("groups", [])
    if (
        not isinstance(groups, list)
        or len(groups) > _MAX_GROUPS
        or not all(isinstance(g, str) and 0 < len(g) <= _MAX_NAME for g in groups)
    ):
        raise _invalid(
            cfg.header, f"needs `groups` as a list of at most {_MAX_GROUPS} non-empty strings"
        )
    return Principal(sub, tuple(dict.fromkeys(groups)))


def effective_groups(key: Any, principal: Principal | None) -> list[str] | None:
    """The groups a request reads with (``None``: everything), the key narrowed by the token."""
    ceiling = caller_groups(key)
    if principal is None:
        return ceiling
    if ceiling is None:  # an admin key acting for an end user sees what that user sees
        return list(principal.groups)
    if not ceiling:
        if (key.metadata or {}).get(DELEGATE_FLAG) is True:
            return list(principal.groups)
        raise PermissionDeniedError(
            "this key has no metadata.groups to narrow and may not delegate; set its "
            f"metadata.{DELEGATE_FLAG}: true to read with the principal token's groups",
            code="principal_not_delegated",
        )
    allowed = set(ceiling)
    return [g for g in principal.groups if g in allowed]
