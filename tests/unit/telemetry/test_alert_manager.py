"""Burn-rate alerts: one message when a problem starts, one when it ends, delivered reliably."""

from __future__ import annotations

import msgspec
import pytest

from pilothouse.telemetry.alerts import Alert, AlertManager, WebhookNotifier
from pilothouse.telemetry.config import SLOConfig, WebhookConfig
from pilothouse.telemetry.slo import SLOTracker

T0 = 1_700_000_040.0
MIN = 60.0
SLO = SLOConfig(name="chat-av", alias="chat", objective=0.995)


def minutes(tracker: SLOTracker, start: float, count: int, ok: int, bad: int) -> None:
    for m in range(count):
        for i in range(ok + bad):
            tracker.record("chat", 502 if i < bad else 200, 0.2, at=start + m * MIN + 1)


def test_outage_fires_once_then_resolves_once() -> None:
    tracker = SLOTracker([SLO])
    sent: list[Alert] = []
    manager = AlertManager(tracker, sinks=[sent.append])
    minutes(tracker, T0, 60, ok=100, bad=0)
    assert manager.evaluate(T0 + 60 * MIN) == []

    minutes(tracker, T0 + 60 * MIN, 60, ok=50, bad=50)  # hard outage: 100x burn
    outage_messages = []
    for m in range(60, 121, 5):
        outage_messages += manager.evaluate(T0 + m * MIN)
    fast = [a for a in outage_messages if a.labels["rule"] == "page_fast"]
    assert [a.status for a in fast] == ["firing"]
    assert fast[0].severity == "page"
    assert fast[0].labels == {
        "slo": "chat-av",
        "alias": "chat",
        "sli": "availability",
        "rule": "page_fast",
    }
    assert fast[0].values["long_burn_rate"] > 14.4
    assert "chat-av" in fast[0].summary
    assert {a.labels["rule"] for a in manager.firing} == {"page_fast", "page_slow", "ticket"}

    minutes(tracker, T0 + 121 * MIN, 30, ok=100, bad=0)  # fixed
    recovery = []
    for m in range(121, 151, 5):
        recovery += manager.evaluate(T0 + m * MIN)
    resolved = [a for a in recovery if a.labels["rule"] == "page_fast"]
    assert [a.status for a in resolved] == ["resolved"]
    assert resolved[0].started_at == fast[0].started_at
    assert resolved[0].fingerprint == fast[0].fingerprint
    assert resolved[0].at > resolved[0].started_at
    assert sent == outage_messages + recovery  # every change reached the sink, in order


def test_other_alert_sources_share_dedupe() -> None:
    manager = AlertManager()
    labels = {"team": "search"}
    first = manager.update(
        kind="spend_anomaly",
        active=True,
        now=1.0,
        severity="ticket",
        summary="spend x5",
        labels=labels,
    )
    again = manager.update(
        kind="spend_anomaly",
        active=True,
        now=2.0,
        severity="ticket",
        summary="spend x6",
        labels=labels,
    )
    other = manager.update(
        kind="spend_anomaly",
        active=True,
        now=2.0,
        severity="ticket",
        summary="s",
        labels={"team": "ads"},
    )
    assert first is not None and first.status == "firing"
    assert again is None
    assert other is not None and other.fingerprint != first.fingerprint
    done = manager.update(
        kind="spend_anomaly", active=False, now=3.0, severity="ticket", summary="ok", labels=labels
    )
    assert done is not None and done.status == "resolved" and done.started_at == 1.0
    assert (
        manager.update(
            kind="spend_anomaly",
            active=False,
            now=4.0,
            severity="ticket",
            summary="ok",
            labels=labels,
        )
        is None
    )
    assert [a.labels for a in manager.firing] == [{"team": "ads"}]


def _alert(n: int = 0) -> Alert:
    return Alert(
        kind="slo_burn", status="firing", severity="page", fingerprint=f"f{n}", summary="s",
        labels={"n": str(n)}, values={}, started_at=1.0, at=1.0,
    )  # fmt: skip


class FakeEndpoint:
    """Answers each POST with the next scripted status (or raises it)."""

    def __init__(self, *script: int | Exception) -> None:
        self.script = list(script)
        self.bodies: list[bytes] = []

    async def __call__(self, body: bytes) -> int:
        self.bodies.append(body)
        step = self.script.pop(0) if self.script else 200
        if isinstance(step, Exception):
            raise step
        return step


def config(**overrides: object) -> WebhookConfig:
    base: dict[str, object] = {
        "url": "http://hooks.invalid/x",
        "backoff_base_s": 1.0,
        "backoff_max_s": 4.0,
    }
    return msgspec.convert({**base, **overrides}, WebhookConfig)


async def test_webhook_retries_throttling_and_server_errors_with_backoff() -> None:
    endpoint = FakeEndpoint(503, ConnectionResetError("reset"), 429, 503, 200)
    delays: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        delays.append(seconds)

    notifier = WebhookNotifier(config(max_attempts=5), transport=endpoint, sleep=fake_sleep)
    await notifier.start()
    assert notifier.notify(_alert())
    await notifier.aclose()
    assert len(endpoint.bodies) == 5
    assert msgspec.json.decode(endpoint.bodies[-1], type=Alert) == _alert()
    assert delays == [1.0, 2.0, 4.0, 4.0]  # exponential, capped
    assert (notifier.delivered, notifier.failed) == (1, 0)


async def test_webhook_gives_up_on_rejected_payload_and_after_max_attempts() -> None:
    endpoint = FakeEndpoint(400, 500, 500)

    async def no_wait(seconds: float) -> None:
        return None

    notifier = WebhookNotifier(config(max_attempts=2), transport=endpoint, sleep=no_wait)
    await notifier.start()
    notifier.notify(_alert(1))  # 400: final at once
    notifier.notify(_alert(2))  # 500, 500: gives up after two attempts
    notifier.notify(_alert(3))  # delivered: one bad message does not block the next
    await notifier.aclose()
    assert len(endpoint.bodies) == 4
    assert (notifier.delivered, notifier.failed) == (1, 2)


async def test_full_queue_drops_and_counts_instead_of_blocking() -> None:
    dropped: list[Alert] = []
    endpoint = FakeEndpoint()
    notifier = WebhookNotifier(config(queue_size=2), transport=endpoint, on_drop=dropped.append)
    # Not started yet: nothing drains, so the third message finds the queue full.
    assert notifier.notify(_alert(1)) and notifier.notify(_alert(2))
    assert notifier.pending == 2
    assert notifier.notify(_alert(3)) is False
    assert notifier.dropped == 1 and dropped == [_alert(3)]
    await notifier.start()
    await notifier.aclose()
    assert [msgspec.json.decode(b, type=Alert).fingerprint for b in endpoint.bodies] == ["f1", "f2"]


def test_webhook_config_rejects_nonsense() -> None:
    with pytest.raises(msgspec.ValidationError):
        config(max_attempts=0)
    with pytest.raises(msgspec.ValidationError):
        config(unknown=1)
