"""One exception hierarchy for the whole package.

Every error a user can see is a :class:`PilothouseError`. Each carries the HTTP
status and OpenAI-style ``type``/``code`` it maps to, so the gateway converts
it to a response in exactly one place (``gateway.http_errors``) and the CLI
prints the same message without a traceback.
"""

from __future__ import annotations


class PilothouseError(Exception):
    """Base class: a message meant for the user, plus how to present it over HTTP."""

    status: int = 500
    type: str = "api_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}


class ConfigError(PilothouseError):
    """The configuration is invalid; raised at start-up or reload, never per request."""

    status = 400
    type = "config_error"


class StoreError(PilothouseError):
    """The store (database) cannot be reached or migrated."""

    status = 503
    type = "store_error"


class StoreUnavailableError(StoreError):
    """A request needed the store (e.g. an uncached key) while it is down: retry later."""

    code = "store_unavailable"

    def __init__(self, message: str, *, retry_after: float = 5.0) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, int(retry_after)))})


# ---- client errors (4xx) -------------------------------------------------------------


class InvalidRequestError(PilothouseError):
    status = 400
    type = "invalid_request_error"


class AuthenticationError(PilothouseError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDeniedError(PilothouseError):
    status = 403
    type = "permission_error"


class NotFoundError(PilothouseError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"


class GateNotMetError(PilothouseError):
    """409: a protected label's promotion policy does not hold; ``missing`` says what."""

    status = 409
    type = "invalid_request_error"
    code = "gate_not_met"

    def __init__(self, message: str, missing: list[str]) -> None:
        super().__init__(message)
        self.missing = missing
        self.details = {"missing": missing}


class PayloadTooLargeError(PilothouseError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RequestTimeoutError(PilothouseError):
    """The client did not finish sending its body within ``server.body_timeout_s``."""

    status = 408
    type = "invalid_request_error"
    code = "body_timeout"


class RateLimitError(PilothouseError):
    """RPM/TPM exhausted; ``retry_after`` seconds is sent as ``Retry-After``."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        seconds = max(1, int(retry_after + 0.999))
        super().__init__(message, code=code, headers={"Retry-After": str(seconds)})
        self.retry_after = retry_after


class QuotaExceededError(PilothouseError):
    """The key's budget is spent; OpenAI clients know this as ``insufficient_quota``."""

    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"


# ---- gateway-side failures (5xx) -----------------------------------------------------


class OverloadedError(PilothouseError):
    """Load shedding: too many requests in flight."""

    status = 503
    type = "overloaded_error"
    code = "overloaded"

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, int(retry_after)))})


class UpstreamError(PilothouseError):
    """Every target failed; the last upstream failure is summarised in the message."""

    status = 502
    type = "upstream_error"
    code = "upstream_failed"


class UpstreamTimeoutError(UpstreamError):
    status = 504
    code = "upstream_timeout"


class ProviderError(PilothouseError):
    """One upstream attempt failed. Internal to routing: decides retry and fallback.

    ``retryable`` is true for connect errors, timeouts, 429 and 5xx; other
    statuses are the caller's fault and are passed through unchanged.
    """

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int | None = None,
        retryable: bool = True,
        retry_after: float | None = None,
        timeout: bool = False,
        body: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status
        self.retryable = retryable
        self.retry_after = retry_after
        self.timeout = timeout
        self.body = body
        if upstream_status is not None and 400 <= upstream_status < 500 and not retryable:
            self.status = upstream_status
            self.type = "invalid_request_error"
        else:
            self.status = 504 if timeout else 502
            self.type = "upstream_error"


def retryable_status(status: int) -> bool:
    """Statuses worth another attempt: throttling and server-side failures."""
    return status == 429 or status == 408 or status >= 500


class GuardBlockedError(PilothouseError):
    """A guard policy refused the request or the answer; names the guard, never the value."""

    status = 400
    type = "invalid_request_error"
    code = "guard_blocked"


class ToolNotAllowedError(PermissionDeniedError):
    """The request declares a tool outside its guard policy's allowlist."""

    code = "guard_blocked"


class ConflictError(PilothouseError):
    """409: the change conflicts with current state (e.g. a rollout already runs there)."""

    status = 409
    type = "invalid_request_error"
    code = "conflict"
