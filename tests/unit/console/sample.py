"""Realistic console data written straight into the store: keys, usage rows, traces, spans.

One request (``TRACED``) has the full story: a retried upstream call, a cache
lookup, an application retrieval span with scored documents, a tool span, a
guard action and a first-token event. Another (``XSS``) carries HTML/JS in
every user-controlled field, to prove pages show it as text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.store.tables import api_keys, feedback, spans, traces, usage_records

XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
XSS_PROMPT = f"Summarise this: {XSS} & thanks"
TRACED = "req_traced_0001"
XSS_REQUEST = "req_xss_0002"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
XSS_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
APP_PARENT = "a1a1a1a1a1a1a1a1"  # the application's own span: never sent, so an orphan parent
MS = 1_000_000


@dataclass
class Sample:
    now: datetime
    keys: dict[str, str] = field(default_factory=dict)  # name → id
    usage: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total_pico(self) -> int:
        return sum(int(r["cost_pico"]) for r in self.usage)

    def cost_pico(self, **where: Any) -> int:
        return sum(
            int(r["cost_pico"]) for r in self.usage if all(r.get(k) == v for k, v in where.items())
        )


def _key(key_id: str, name: str, team: str | None, now: datetime) -> dict[str, Any]:
    return {
        "id": key_id,
        "name": name,
        "key_hash": hashlib.sha256(key_id.encode()).hexdigest(),
        "key_prefix": "ph-" + key_id[-6:],
        "scopes": ["inference"],
        "models": None,
        "budget_period": "total",
        "metadata": {"team": team} if team else {},
        "created_at": now - timedelta(days=30),
        "revoked_at": None,
    }


def _usage(n: int, created: datetime, **values: Any) -> dict[str, Any]:
    row = {
        "id": f"ur_{n:04d}_{created.strftime('%Y%m%d%H%M%S')}",
        "request_id": values.pop("request_id", f"req_sample_{n:04d}"),
        "created_at": created,
        "key_id": None,
        "endpoint": "chat",
        "alias": "support-bot",
        "provider": "chaos",
        "upstream_model": "gpt-4o-mini",
        "stream": False,
        "attempts": 1,
        "status": 200,
        "error_type": None,
        "input_tokens": 0,
        "output_tokens": 0,
        "cached_input_tokens": 0,
        "estimated": False,
        "cost_pico": 0,
        "latency_ms": 250.0,
        "ttft_ms": None,
        "cache_hit": False,
        "metadata": None,
    }
    row.update(values)
    return row


def _span(trace_id: str, span_id: str, name: str, start: int, end: int, **extra: Any) -> dict:
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": extra.pop("parent", None),
        "name": name,
        "kind": extra.pop("kind", "internal"),
        "source": extra.pop("source", "gateway"),
        "start_ns": start,
        "end_ns": end,
        "status": extra.pop("status", "ok"),
        "status_message": extra.pop("message", None),
        "attributes": extra.pop("attributes", {}),
        "events": extra.pop("events", []),
    }


def traced_spans(t0: int) -> list[dict[str, Any]]:
    root = "1000000000000001"
    return [
        _span(TRACE_ID, root, "chat support-bot", t0, t0 + 1450 * MS, kind="server",
              parent=APP_PARENT, attributes={
                  "gen_ai.operation.name": "chat", "gen_ai.request.model": "support-bot",
                  "gen_ai.provider.name": "chaos", "gen_ai.usage.input_tokens": 412,
                  "gen_ai.usage.output_tokens": 96, "pilothouse.cost_usd": "0.001234567891",
                  "pilothouse.attempts": 2},
              events=[{"name": "gen_ai.first_token", "time_ns": t0 + 900 * MS,
                       "attributes": {"pilothouse.ttft_ms": 900.0}}]),
        _span(TRACE_ID, "1000000000000002", "gateway.admission", t0 + MS // 5, t0 + 3 * MS // 2,
              parent=root, attributes={"pilothouse.reserved_tokens": 668}),
        _span(TRACE_ID, "1000000000000003", "guard.input", t0 + 3 * MS // 2, t0 + 2 * MS,
              parent=root, attributes={"pilothouse.guard.action": "redacted",
                                       "pilothouse.guard.findings": "email:1"}),
        _span(TRACE_ID, "1000000000000004", "cache.lookup", t0 + 2 * MS, t0 + 3 * MS,
              parent=root, attributes={"pilothouse.cache_hit": False}),
        _span(TRACE_ID, "1000000000000005", "chat gpt-4o-mini", t0 + 4 * MS, t0 + 404 * MS,
              kind="client", parent=root, status="error",
              message="upstream returned 503: chaos injected error",
              attributes={"gen_ai.provider.name": "chaos", "gen_ai.request.model": "gpt-4o-mini",
                          "pilothouse.attempt": 1, "pilothouse.outcome": "error",
                          "http.response.status_code": 503, "error.type": "error"}),
        _span(TRACE_ID, "1000000000000006", "chat gpt-4o-mini", t0 + 420 * MS, t0 + 1440 * MS,
              kind="client", parent=root,
              attributes={"gen_ai.provider.name": "chaos", "gen_ai.request.model": "gpt-4o-mini",
                          "pilothouse.attempt": 2, "pilothouse.outcome": "ok"}),
        _span(TRACE_ID, "2000000000000001", "retrieval", t0 - 120 * MS, t0 - 20 * MS,
              source="app", parent=APP_PARENT, attributes={
                  "retrieval.documents.0.document.id": "kb-42",
                  "retrieval.documents.0.document.score": 0.91,
                  "retrieval.documents.0.document.content": "Refunds are issued within 14 days.",
                  "retrieval.documents.1.document.id": "kb-7",
                  "retrieval.documents.1.document.score": 0.77}),
        _span(TRACE_ID, "2000000000000002", "execute_tool get_order", t0 + 1460 * MS,
              t0 + 1500 * MS, source="app", parent=APP_PARENT, attributes={
                  "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_order",
                  "gen_ai.tool.call.id": "call_1", "gen_ai.tool.call.arguments": '{"order": 1234}',
                  "gen_ai.tool.call.result": '{"status": "shipped"}'}),
    ]  # fmt: skip


TRACED_CONTENT = {
    "request": {
        "model": "support-bot",
        "temperature": 0.2,
        "max_tokens": 256,
        "messages": [
            {"role": "system", "content": "You are a helpful support agent."},
            {"role": "user", "content": "Where is order 1234? Reply to [EMAIL]."},
        ],
        "tools": [{"type": "function", "function": {"name": "get_order", "parameters": {}}}],
    },
    "response": {
        "id": "chatcmpl-1",
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Order 1234 shipped yesterday."},
                "finish_reason": "stop",
            }
        ],
    },
}


def _trace(trace_id: str, row: dict[str, Any], **extra: Any) -> dict[str, Any]:
    meta = row.get("metadata") or {}
    return {
        "trace_id": trace_id,
        "request_id": row["request_id"],
        "created_at": row["created_at"],
        "key_id": row["key_id"],
        "alias": row["alias"],
        "provider": row["provider"],
        "upstream_model": row["upstream_model"],
        "status": row["status"],
        "error_type": row["error_type"],
        "user_id": meta.get("user"),
        "session_id": meta.get("session"),
        "feature": meta.get("feature"),
        "team": meta.get("team"),
        "task_id": meta.get("task_id"),
        "prompt_name": extra.pop("prompt_name", None),
        "prompt_version": extra.pop("prompt_version", None),
        "duration_ms": row["latency_ms"],
        "ttft_ms": row["ttft_ms"],
        "attempts": row["attempts"],
        "input_tokens": row["input_tokens"],
        "output_tokens": row["output_tokens"],
        "cost_pico": row["cost_pico"],
        "cache_hit": row["cache_hit"],
        "metadata": meta or None,
        "content": extra.pop("content", None),
    }


async def write_sample(engine: AsyncEngine, now: datetime | None = None) -> Sample:
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    sample = Sample(now=now)
    keys = [
        _key("key_checkout000000000000000001", "checkout-service", "payments", now),
        _key("key_search00000000000000000002", "search <i>beta</i>", "search", now),
    ]
    sample.keys = {k["name"]: k["id"] for k in keys}
    checkout, search = keys[0]["id"], keys[1]["id"]
    hour = timedelta(hours=1)
    day = timedelta(days=1)
    rows = [
        _usage(1, now - hour, request_id=TRACED, key_id=checkout, attempts=2, input_tokens=412,
               output_tokens=96, cost_pico=1_234_567_891, latency_ms=1450.0, ttft_ms=900.0,
               metadata={"user": "alice", "feature": "support-chat", "session": "s-1",
                         "task_id": "T-77"}),
        _usage(2, now - 2 * hour, request_id=XSS_REQUEST, key_id=search, input_tokens=30,
               output_tokens=12, cost_pico=27_000_000,
               metadata={"user": "<b>mallory</b>", "feature": f'x">{XSS}', "team": XSS}),
        _usage(3, now - day, key_id=checkout, alias="summarize", status=429,
               error_type="rate_limit_error", latency_ms=2.0, metadata={"user": "alice"}),
        _usage(4, now - day - hour, key_id=search, alias="summarize", status=502,
               error_type="upstream_error", attempts=3, latency_ms=3100.0,
               metadata={"user": "bob", "feature": "digest"}),
        _usage(5, now - 2 * day, key_id=checkout, input_tokens=1000, output_tokens=500,
               cost_pico=450_000_000_001, metadata={"user": "bob", "feature": "support-chat"}),
        _usage(6, now - 2 * day - hour, key_id=search, alias="summarize", input_tokens=2000,
               output_tokens=300, cost_pico=3_000_000_000, cache_hit=True,
               metadata={"feature": "digest", "team": "research"}),
        _usage(7, now - 3 * day, key_id=None, status=401, error_type="authentication_error",
               latency_ms=1.0),
        _usage(8, now - 3 * day - hour, key_id=checkout, input_tokens=10, output_tokens=5,
               cost_pico=7, stream=True, ttft_ms=120.0, metadata={"user": "carol"}),
    ]  # fmt: skip
    sample.usage = rows
    t0 = int(rows[0]["created_at"].timestamp() * 1e9)
    trace_rows = [
        _trace(TRACE_ID, rows[0], content=TRACED_CONTENT, prompt_name="support-answer",
               prompt_version="7"),
        _trace(XSS_TRACE_ID, rows[1], content={
            "request": {"messages": [{"role": "user", "content": XSS_PROMPT}], "temperature": XSS},
            "response": {"choices": [{"message": {"role": "assistant", "content": XSS},
                                      "finish_reason": "stop"}]}}),
    ]  # fmt: skip
    t1 = int(rows[1]["created_at"].timestamp() * 1e9)
    span_rows = [
        *traced_spans(t0),
        _span(XSS_TRACE_ID, "3000000000000001", f"chat {XSS}", t1, t1 + 80 * MS,
              attributes={"note": XSS}, events=[{"name": XSS, "time_ns": t1 + 5 * MS}]),
    ]  # fmt: skip
    async with engine.begin() as conn:
        await conn.execute(api_keys.insert(), keys)
        await conn.execute(usage_records.insert(), rows)
        await conn.execute(traces.insert(), trace_rows)
        await conn.execute(spans.insert(), span_rows)
        await conn.execute(feedback.insert(), [
            {"id": "fb_1", "created_at": now, "request_id": TRACED, "task_id": "T-77",
             "key_id": checkout, "success": True, "score": 0.9, "comment": "resolved"},
            {"id": "fb_2", "created_at": now, "request_id": XSS_REQUEST, "task_id": None,
             "key_id": search, "success": False, "score": None, "comment": XSS},
        ])  # fmt: skip
    return sample
