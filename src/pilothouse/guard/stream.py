"""Output guards on a stream: a bounded hold-back window, released as soon as it is clean.

Text is held only while its tail could still become something a guard would
act on: the last token (it may continue in the next chunk), a trailing run of
tokens with digits or symbols (a card number, phone, key or address split
across chunks), a prefix of a surrogate that must be restored, or a finding
that is not yet complete. Everything before that is scanned and released at
once, so plain prose adds about one chunk of latency. The window is bounded:
at most ``holdback_chars`` are ever held. Tool-call deltas are held until the
call is complete, then validated against the tool policy.

A remote guard (a moderation or judge classifier) has no spans to wait on and
costs a call per scan, so with one in the policy text is released in windows of
``holdback_chars``, each judged (with the left context) before the client sees
it. ``holdback_timeout_s`` bounds how long text waits for the upstream's next
chunk: past it, the held text is scanned as it stands and released.
"""

from __future__ import annotations

import re
import time
from typing import Any

from pilothouse.errors import GuardBlockedError
from pilothouse.guard.base import Finding, Scan, Segment, merge_spans
from pilothouse.guard.engine import (
    CompiledPolicy,
    GuardEngine,
    is_remote,
    restore,
    static_info,
    surrogate_spans,
)
from pilothouse.guard.state import GuardState

JSON = dict[str, Any]
_TOKEN = re.compile(r"\S+")
CONTEXT_CHARS = 64  # released text kept as left context for the next window's scan
_SUSPICIOUS = re.compile(r"[\d@+=_/\\:%#\-.]|^[A-Za-z0-9]{16,}$")


def hold_start(buf: str, surrogates: dict[str, str], limit: int) -> int:
    """Index from which ``buf`` must be held back (``len(buf)`` = release it all)."""
    start = len(buf)
    tokens = list(_TOKEN.finditer(buf))
    if tokens and tokens[-1].end() == len(buf):
        start = tokens[-1].start()
        tokens.pop()
    for t in reversed(tokens):
        if not _SUSPICIOUS.search(t.group()):
            break
        start = t.start()
    for sur in surrogates:
        for k in range(min(len(sur) - 1, len(buf)), 0, -1):
            if buf.endswith(sur[:k]):
                start = min(start, len(buf) - k)
                break
    return max(start, len(buf) - limit, 0)


class StreamGuard:
    def __init__(self, engine: GuardEngine, compiled: CompiledPolicy, state: GuardState) -> None:
        self.engine, self.compiled, self.state = engine, compiled, state
        self.limit = compiled.policy.holdback_chars
        self.buffers: dict[int, str] = {}
        self.context: dict[int, str] = {}
        self.emitted: dict[int, list[str]] = {}
        self.calls: dict[int, dict[int, JSON]] = {}
        self.windows = 0
        self.clean: dict[str, tuple[int, float]] = {}  # guard -> (clean windows, total ms)
        self.clean_info: dict[str, dict[str, Any]] = {}  # guard -> classifier, best score
        self.done = False
        self.remote = any(is_remote(g) for _, g in compiled.output)
        self.timeout_s = compiled.policy.holdback_timeout_s
        self.held_at: float | None = None  # monotonic time the held text started waiting
        self._released = False
        self.base: JSON = {"object": "chat.completion.chunk"}

    # -- chunks ------------------------------------------------------------------------

    async def feed(self, chunk: JSON) -> list[JSON]:
        choices = chunk.get("choices")
        if not choices:
            return [chunk]
        self.base = {k: v for k, v in chunk.items() if k not in ("choices", "usage")}
        out: list[JSON] = []
        for choice in choices:
            out.extend(await self._choice(chunk, choice))
        self._mark_held()
        return out

    def _mark_held(self) -> None:
        if not any(self.buffers.values()):
            self.held_at = None
        elif self.held_at is None or self._released:
            self.held_at = time.monotonic()
        self._released = False

    def hold_deadline(self) -> float | None:
        """When held text must be released without more upstream text (None: no bound)."""
        if self.timeout_s is None or self.held_at is None:
            return None
        return self.held_at + self.timeout_s

    async def expire(self) -> list[JSON]:
        """The upstream paused past ``holdback_timeout_s``: scan what is held as it stands
        and release it (a guard that acts on it still blocks or redacts)."""
        out: list[JSON] = []
        for idx in [i for i, buf in self.buffers.items() if buf]:
            text = await self._release(idx, final=True)
            if text:
                out.append(_chunk(self.base, idx, {"content": text}, None))
        self.held_at = None
        return out

    async def _choice(self, chunk: JSON, choice: JSON) -> list[JSON]:
        idx = int(choice.get("index", 0) or 0)
        delta = dict(choice.get("delta") or {})
        content = delta.pop("content", None)
        for call in delta.pop("tool_calls", None) or []:
            self._collect_call(idx, call)
        finish = choice.get("finish_reason")
        out: list[JSON] = []
        released = ""
        if isinstance(content, str) and content:
            self.buffers[idx] = self.buffers.get(idx, "") + content
        if finish is not None or (isinstance(content, str) and content):
            released = await self._release(idx, final=finish is not None)
        d = dict(delta)  # role and anything else a provider adds
        if released or content == "":
            d["content"] = released
        if d:
            out.append(_chunk(chunk, idx, d, None))
        if finish is not None:
            calls = self._finish_calls(idx)
            if calls:
                out.append(_chunk(chunk, idx, {"tool_calls": calls}, None))
            out.append(_chunk(chunk, idx, {}, finish))
        return out

    async def flush(self) -> list[JSON]:
        """End of stream without a finish chunk: release whatever is held."""
        out: list[JSON] = []
        for idx in list(self.buffers):
            text = await self._release(idx, final=True)
            if text:
                out.append(
                    {
                        "object": "chat.completion.chunk",
                        "choices": [
                            {"index": idx, "delta": {"content": text}, "finish_reason": None}
                        ],
                    }
                )
        self.finish_receipt()
        return out

    # -- text --------------------------------------------------------------------------

    async def _release(self, idx: int, final: bool) -> str:
        buf = self.buffers.get(idx, "")
        if not buf:
            return ""
        if self.remote and not final and len(buf) < self.limit:
            return ""  # a remote classifier judges whole windows: one call per window
        surrogates = self.state.surrogates
        cut = len(buf) if final else hold_start(buf, surrogates, self.limit)
        if not final:
            cut = self._settle_cut(buf, cut)
        if cut <= 0:
            return ""
        raw, self.buffers[idx] = buf[:cut], buf[cut:]
        self._released = True
        context = self.context.get(idx, "")
        text = await self._guard_window(raw, context)
        self.context[idx] = (context + raw)[-CONTEXT_CHARS:]
        text = restore(text, surrogates)
        self.emitted.setdefault(idx, []).append(text)
        return text

    def _settle_cut(self, buf: str, cut: int) -> int:
        """Move the cut left of any finding or surrogate it would split."""
        spans = list(surrogate_spans(buf, self.state.surrogates))
        for _spec, guard in self.compiled.output:
            if is_remote(guard):
                continue  # no spans to keep whole; it judges the released window
            try:
                scan = guard.scan(Segment("stream", "stream", buf))
            except Exception:  # noqa: S112 - the window scan below records the failure
                continue
            spans.extend((f.start, f.end) for f in merge_spans(scan.findings))
        moved = True
        while moved:
            moved = False
            for s, e in spans:
                if s < cut < e:
                    cut, moved = s, True
        return max(cut, len(buf) - self.limit)  # bounded: never hold more than the window

    async def _guard_window(self, raw: str, context: str) -> str:
        """Scan ``context + raw`` so phrases begun in released text are still seen; act on
        findings that reach into ``raw`` (a block ends the stream, a redaction covers the
        part not yet sent)."""
        label = f"stream[{self.windows}]"
        self.windows += 1
        text = raw
        n = len(context)
        for spec, guard in self.compiled.output:
            seg = Segment("stream", label, text)
            started = time.perf_counter()
            try:
                whole = Segment("stream", label, context + text)
                if is_remote(guard):
                    found = await self.engine.scan_remote(
                        guard, whole, self.compiled.policy.timeout_s, self.state, spec.label
                    )
                else:
                    found = guard.scan(whole)
                scan = Scan(
                    [
                        Finding(f.entity, max(f.start, n) - n, f.end - n, f.score)
                        for f in found.findings
                        if f.end > n
                    ],
                    found.score,
                    found.info,
                )
            except Exception as exc:
                self.engine.on_guard_error(
                    self.compiled, self.state, spec, seg, "output", exc, started, static_info(guard)
                )
                continue
            if not scan.findings:
                windows, ms = self.clean.get(spec.label, (0, 0.0))
                self.clean[spec.label] = (windows + 1, ms + (time.perf_counter() - started) * 1000)
                if scan.info or scan.score:
                    self._note_clean(spec.label, scan)
                continue
            try:
                text = self.engine.apply(
                    self.compiled, self.state, spec, seg, "output", scan, started
                )
            except GuardBlockedError:
                self._record_clean()  # the windows that passed before the block are proof too
                raise
        return text

    def _note_clean(self, label: str, scan: Scan) -> None:
        info = self.clean_info.setdefault(label, {})
        for k, v in (scan.info or {}).items():
            if k == "classifier_ms":
                info[k] = round(info.get(k, 0.0) + v, 3)
            elif k == "classifier_request":
                info["classifier_calls"] = info.get("classifier_calls", 0) + 1
            else:
                info[k] = v
        if scan.score is not None:
            info["score"] = max(info.get("score") or 0.0, scan.score)

    def finish_receipt(self) -> None:
        self._record_clean()
        self.state.output_done = True

    def _record_clean(self) -> None:
        if self.done:
            return
        self.done = True
        types = {spec.label: spec.type for spec, _ in self.compiled.output}
        for guard, (n, ms) in self.clean.items():
            info = dict(self.clean_info.get(guard, {}))
            score = info.pop("score", None)
            entry = self.state.record(
                guard=guard,
                type_=types.get(guard, guard),
                stage="output",
                segment="stream",
                verdict="pass",
                score=score,
                latency_ms=ms,
                info=info,
            )
            entry["windows"] = n
            self.engine.metrics.observe(guard, "output", "pass", {}, ms)

    def text(self, idx: int = 0) -> str:
        return "".join(self.emitted.get(idx, []))

    # -- tool calls --------------------------------------------------------------------

    def _collect_call(self, idx: int, call: JSON) -> None:
        calls = self.calls.setdefault(idx, {})
        n = int(call.get("index", len(calls)) or 0)
        acc = calls.setdefault(
            n,
            {"index": n, "id": None, "type": "function", "function": {"name": "", "arguments": ""}},
        )
        if call.get("id"):
            acc["id"] = call["id"]
        fn = call.get("function") or {}
        if fn.get("name"):
            acc["function"]["name"] += fn["name"]
        if fn.get("arguments"):
            acc["function"]["arguments"] += fn["arguments"]

    def _finish_calls(self, idx: int) -> list[JSON]:
        calls = [self.calls[idx][n] for n in sorted(self.calls.get(idx, {}))]
        for call in calls:
            self.engine.check_tool_call(self.compiled, self.state, call)
        self.calls.pop(idx, None)
        if idx == 0:
            self.finish_receipt()
        return calls


def _chunk(base: JSON, idx: int, delta: JSON, finish: str | None) -> JSON:
    out = {k: v for k, v in base.items() if k not in ("choices", "usage")}
    out["choices"] = [{"index": idx, "delta": delta, "finish_reason": finish}]
    return out
