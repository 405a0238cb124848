"""A guard's own model calls (moderation, LLM judge): routed, costed, recorded, never guarded.

Each call is a child request of the one being guarded: its own request id, a
usage row under the same key, team and user (the caller pays for the guards
applied to it, and its budget is charged for them), ``metadata.guard_of`` naming
the guarded request and ``metadata.guard`` the guard. It goes straight to the
router, past the alias's own guard policy, so a classifier call can never be
guarded into a loop. Its trace keeps no content: the text it judged belongs
to the guarded request (and to its erasure).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from pilothouse.gateway.context import RequestContext
from pilothouse.providers.base import JSON, Usage
from pilothouse.telemetry.tracecontext import new_trace_id

if TYPE_CHECKING:
    from pilothouse.gateway.runtime import Runtime

WITHHELD = {"content": "[guard classifier call: content kept on the guarded request]"}


class GatewayCaller:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def _child(
        self, parent: RequestContext, alias: str, endpoint: str, guard: str
    ) -> RequestContext:
        from pilothouse.gateway import pipeline

        ctx = RequestContext(request_id=pipeline.new_request_id(), endpoint=endpoint)
        ctx.trace_id = new_trace_id()  # its own trace: findable by the receipt's request id
        ctx.key, ctx.team, ctx.user = parent.key, parent.team, parent.user
        ctx.alias = alias
        ctx.metadata = {"guard_of": parent.request_id, "guard": guard}
        ctx.deadline = self.rt.router.deadline_for(self.rt.router.route(alias))
        ctx.request_body = {"model": alias, **WITHHELD}
        return ctx

    async def chat(
        self, request: Any, alias: str, body: dict[str, Any], guard: str
    ) -> tuple[JSON, str]:
        from pilothouse.gateway import pipeline

        ctx = self._child(request, alias, "chat", guard)
        try:
            result = await self.rt.router.chat(ctx, body)
            usage = result.usage
            if usage.estimated and not (usage.input_tokens or usage.output_tokens):
                usage = pipeline.estimated_usage(body, pipeline.completion_text(result.body))
            pipeline.price_usage(self.rt, ctx, usage)
            ctx.ttft_s = ctx.elapsed()
            return result.body, ctx.request_id
        except BaseException as exc:
            self._failed(ctx, exc)
            raise
        finally:
            self._finish(request, ctx)

    async def moderate(
        self, request: Any, alias: str, body: dict[str, Any], guard: str
    ) -> tuple[JSON, str]:
        ctx = self._child(request, alias, "moderations", guard)
        try:
            result = await self.rt.router.moderate(ctx, body)
            ctx.usage = Usage()  # moderation reports no tokens and costs nothing
            ctx.ttft_s = ctx.elapsed()
            return result, ctx.request_id
        except BaseException as exc:
            self._failed(ctx, exc)
            raise
        finally:
            self._finish(request, ctx)

    def _failed(self, ctx: RequestContext, exc: BaseException) -> None:
        from pilothouse.gateway import pipeline

        if isinstance(exc, asyncio.CancelledError):  # the guard's timeout_s ran out
            ctx.status, ctx.error_type = 504, "guard_timeout"
        else:
            pipeline.fail(ctx, exc)

    def _finish(self, parent: RequestContext, ctx: RequestContext) -> None:
        """One usage row and trace; its cost settles on the caller's budgets as its own
        reservation (nothing was reserved up front: a guard call is never refused)."""
        from pilothouse.gateway import pipeline

        if ctx.key is not None and parent.budget_slots:
            ctx.budget_slots = parent.budget_slots
            ctx.reserved_pico = ctx.cost_pico
        pipeline.finish(self.rt, ctx)
