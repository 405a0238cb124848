"""Cost governance end to end on SQLite and PostgreSQL.

Attribution and feedback run through a real gateway; anomaly detection reads
a ledger with a scripted spend history (time injected, never slept); budget
alerts follow a key's real spend request by request until it is refused.
"""

from __future__ import annotations

import asyncio
import csv
import io
import statistics
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pilothouse.cli.main import app as cli
from pilothouse.costs.anomaly import SpendAnomalyDetector
from pilothouse.costs.budget_alerts import BudgetAlerts
from pilothouse.costs.config import AnomalyConfig
from pilothouse.limits.money import pico_to_str, usd_to_pico
from pilothouse.store.db import create_engine, migrate
from pilothouse.store.tables import api_keys, usage_records
from pilothouse.telemetry.alerts import Alert, AlertManager, WebhookNotifier
from pilothouse.telemetry.config import WebhookConfig
from tests.support.gateway import ThreadedGateway, base_config, running_gateway, write_config
from tests.support.ledger import usage_rows

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "summarise the quarterly numbers"}]


@pytest.fixture
def gateway(store_url: str, tmp_path: Path) -> Iterator[ThreadedGateway]:
    config = base_config(
        store_url,
        tmp_path,
        models={
            "chat": {"targets": [{"provider": "chaos", "model": "gpt-4o-mini"}]},
            "big": {"targets": [{"provider": "chaos", "model": "gpt-4.1"}]},
        },
    )
    with running_gateway(config) as gw:
        yield gw


def chat(gw: ThreadedGateway, key: str, model: str = "chat", **metadata: Any) -> str:
    headers = {"Authorization": f"Bearer {key}"}
    if metadata:
        headers["x-pilothouse-metadata"] = orjson.dumps(metadata).decode()
    body = {"model": model, "messages": MESSAGES}
    resp = httpx.post(gw.url + "/v1/chat/completions", json=body, headers=headers, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.headers["x-request-id"]


def feedback(gw: ThreadedGateway, key: str | None, body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(gw.url + "/v1/feedback", json=body, headers=headers, timeout=30)


def usd(pico: int) -> str:
    return pico_to_str(pico)


def per_success(total: int, successes: int) -> str:
    exact = Decimal(total) / successes
    return pico_to_str(int(exact.to_integral_value(rounding="ROUND_HALF_UP")))


def run_cli(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


# -- attribution and feedback --------------------------------------------------------------


def test_costs_are_attributed_to_teams_and_successful_tasks(
    gateway: ThreadedGateway, tmp_path: Path
) -> None:
    search = gateway.create_key(name="search-prod", metadata={"team": "search"})
    shared = gateway.create_key(name="shared")
    r_plain = chat(gateway, search)  # team from the key, a task of its own
    r_ads1 = chat(gateway, search, "big", team="ads", user="u1", feature="summary", task_id="T1")
    r_ads2 = chat(gateway, search, "big", team="ads", user="u1", feature="summary", task_id="T1")
    r_t2 = chat(gateway, shared, user="u2", task_id="T2")
    r_t3 = chat(gateway, shared, task_id="T3")

    assert feedback(gateway, search, {"request_id": r_plain, "success": True}).status_code == 201
    rated = feedback(gateway, search, {"request_id": r_ads2, "success": True, "score": 0.9})
    assert rated.status_code == 201, rated.text
    assert rated.json()["task_id"] == "T1"  # a request's feedback rates its task
    assert feedback(gateway, shared, {"task_id": "T2", "success": False}).status_code == 201
    assert feedback(gateway, shared, {"task_id": "T2", "success": True}).status_code == 201
    assert feedback(gateway, shared, {"task_id": "T3", "success": False}).status_code == 201
    assert feedback(gateway, shared, {"task_id": "T3", "comment": "meh"}).status_code == 201

    cost = {row["request_id"]: row["cost_pico"] for row in usage_rows(gateway)}
    assert all(cost.values())
    total = sum(cost.values())
    by_team = {
        "search": (1, cost[r_plain], 1),
        "ads": (2, cost[r_ads1] + cost[r_ads2], 1),
        None: (2, cost[r_t2] + cost[r_t3], 1),  # T2's latest verdict wins; T3 failed
    }

    with gateway.admin() as admin:
        report = admin.get("/admin/reports/costs", params={"by": "team", "since": "1d"}).json()
        assert admin.get("/admin/reports/costs", params={"by": "region"}).status_code == 400
    assert httpx.get(gateway.url + "/admin/reports/costs").status_code == 401
    rows = {row["team"]: row for row in report["data"]}
    assert set(rows) == set(by_team)
    for team, (requests, spent, successes) in by_team.items():
        row = rows[team]
        assert (row["requests"], row["cost_usd"]) == (requests, usd(spent)), team
        assert row["successful_tasks"] == successes
        assert row["cost_per_successful_task_usd"] == per_success(spent, successes)
    assert rows[None]["tasks"] == 2 and rows[None]["rated_tasks"] == 2
    assert report["data"][0]["team"] == "ads"  # most expensive first (gpt-4.1)
    t = report["total"]
    assert (t["requests"], t["tasks"], t["rated_tasks"], t["successful_tasks"]) == (5, 4, 4, 3)
    assert t["cost_usd"] == usd(total)
    assert t["cost_per_successful_task_usd"] == per_success(total, 3)

    config = write_config(
        tmp_path / "pilothouse.yaml", {"store": {"url": gateway.settings.store.url}}
    )
    as_json = orjson.loads(
        run_cli("report", "costs", "--by", "team,model", "--format", "json", "-c", str(config))
    )
    pairs = {(r["team"], r["model"]): r["cost_usd"] for r in as_json["data"]}
    assert pairs == {
        ("search", "chat"): usd(cost[r_plain]),
        ("ads", "big"): usd(cost[r_ads1] + cost[r_ads2]),
        (None, "chat"): usd(cost[r_t2] + cost[r_t3]),
    }

    text = run_cli("report", "costs", "--by", "user,feature", "--format", "csv", "-c", str(config))
    table = list(csv.DictReader(io.StringIO(text)))
    u1 = next(r for r in table if r["user"] == "u1")
    assert (u1["feature"], u1["requests"], u1["cost_usd"]) == (
        "summary",
        "2",
        usd(cost[r_ads1] + cost[r_ads2]),
    )
    assert table[-1]["user"] == "total" and table[-1]["cost_usd"] == usd(total)

    keys = orjson.loads(
        run_cli("report", "costs", "--by", "key,day", "--format", "json", "-c", str(config))
    )
    names = {r["key_name"]: r["requests"] for r in keys["data"]}
    assert names == {"search-prod": 3, "shared": 2}
    assert {r["day"] for r in keys["data"]} == {datetime.now(UTC).strftime("%Y-%m-%d")}

    assert "search" in run_cli("report", "costs", "--by", "team", "-c", str(config))
    bad = CliRunner().invoke(cli, ["report", "costs", "--by", "region", "-c", str(config)])
    assert bad.exit_code == 2 and "--by" in bad.output


def test_feedback_is_checked_against_the_callers_own_requests(gateway: ThreadedGateway) -> None:
    mine = gateway.create_key(name="mine")
    theirs = gateway.create_key(name="theirs")
    request_id = chat(gateway, mine, task_id="T1")

    ok = feedback(gateway, mine, {"request_id": request_id, "success": True, "comment": "great"})
    assert ok.status_code == 201
    stored = ok.json()
    assert stored["object"] == "feedback" and stored["id"].startswith("fb_")
    assert (stored["request_id"], stored["task_id"], stored["success"]) == (request_id, "T1", True)
    assert ok.headers["x-request-id"].startswith("req_")

    other = feedback(gateway, theirs, {"request_id": request_id, "success": False})
    assert other.status_code == 404  # not 403: no probing other tenants' request ids
    assert "made with this key" in other.json()["error"]["message"]
    unknown = feedback(gateway, mine, {"request_id": "req_nope", "success": True})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["param"] == "request_id"

    conflict = feedback(gateway, mine, {"request_id": request_id, "task_id": "T9", "success": True})
    assert conflict.status_code == 400
    assert "sent with task_id 'T1', not 'T9'" in conflict.json()["error"]["message"]
    typo = feedback(gateway, mine, {"request_id": request_id, "sucess": True})
    assert typo.status_code == 400 and typo.json()["error"]["param"] == "sucess"
    raw = httpx.post(
        gateway.url + "/v1/feedback",
        content=b"{not json",
        headers={"Authorization": f"Bearer {mine}"},
    )
    assert raw.status_code == 400 and "not valid JSON" in raw.json()["error"]["message"]
    assert feedback(gateway, None, {"task_id": "T1", "success": True}).status_code == 401
    assert feedback(gateway, "ph-wrong", {"task_id": "T1", "success": True}).status_code == 401


text = st.text(max_size=80) | st.text(min_size=190, max_size=260)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
FEEDBACK_FIELDS = {
    "request_id": text | json_values,
    "task_id": text | json_values,
    "success": st.booleans() | json_values,
    "score": st.floats() | json_values,
    "comment": text | st.text(min_size=1990, max_size=2010) | json_values,
    "metadata": json_values,
}


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.fixed_dictionaries({}, optional=FEEDBACK_FIELDS) | json_values, own=st.booleans())
def test_no_feedback_body_yields_a_5xx(gateway: ThreadedGateway, body: Any, own: bool) -> None:
    key, request_id = _fuzz_key(gateway)
    if own and isinstance(body, dict):
        body = {**body, "request_id": request_id}  # also reach the store-backed checks
    resp = httpx.post(
        gateway.url + "/v1/feedback",
        content=orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert resp.status_code in (201, 400, 404), (resp.status_code, resp.text, body)
    if resp.status_code != 201:
        assert resp.json()["error"]["message"]


_FUZZ_KEYS: dict[str, tuple[str, str]] = {}


def _fuzz_key(gw: ThreadedGateway) -> tuple[str, str]:
    """One key and one of its requests per gateway (hypothesis reuses the fixture)."""
    if gw.url not in _FUZZ_KEYS:
        key = gw.create_key(name="fuzz")
        _FUZZ_KEYS[gw.url] = (key, chat(gw, key, task_id="fuzz-task"))
    return _FUZZ_KEYS[gw.url]


# -- anomaly detection on a scripted ledger ------------------------------------------------

NOW = datetime(2031, 3, 14, 15, 30, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def _row(n: int, key_id: str, at: datetime, usd_amount: str, **metadata: Any) -> dict[str, Any]:
    return {
        "id": f"u{n:06d}",
        "request_id": f"req_{n:06d}",
        "created_at": at,
        "key_id": key_id,
        "endpoint": "chat",
        "alias": "chat",
        "status": 200,
        "latency_ms": 1.0,
        "cost_pico": usd_to_pico(usd_amount),
        "metadata": metadata or None,
    }


def scripted_history() -> list[dict[str, Any]]:
    """15 days of hourly spend: search wobbles 4-5 USD/h, batch 2 USD/h plus 100 USD at 03:45."""
    rows: list[dict[str, Any]] = []
    start = NOW - timedelta(days=15) + timedelta(minutes=15)  # rows at hh:45
    hour = 0
    while (at := start + hour * HOUR) < NOW:
        rows.append(_row(len(rows), "key_search", at, str(4 + Decimal(hour * 7 % 5) / 4)))
        rows.append(_row(len(rows), "key_batch", at, "2", team="platform"))
        if at.hour == 3:
            rows.append(_row(len(rows), "key_batch", at, "100", team="platform"))
        hour += 1
    rows.append(_row(len(rows), "key_search", NOW - timedelta(minutes=20), "60"))  # the spike
    rows.append(_row(len(rows), "key_search", NOW + timedelta(minutes=30), "4.5"))  # calm again
    return rows


def spend_of(key_id: str, start: datetime, end: datetime) -> Decimal:
    """What the scripted ledger says a key spent in ``[start, end)``, in USD."""
    return sum(
        (
            Decimal(r["cost_pico"]) / 10**12
            for r in scripted_history()
            if r["key_id"] == key_id and start <= r["created_at"] < end
        ),
        Decimal(0),
    ).normalize()


async def _store_with_history(store_url: str) -> Any:
    engine = create_engine(store_url)
    await migrate(engine)
    keys = [("key_search", "search-prod", {"team": "search"}), ("key_batch", "batch", {})]
    async with engine.begin() as conn:
        for key_id, name, meta in keys:
            await conn.execute(
                api_keys.insert().values(
                    id=key_id,
                    name=name,
                    key_hash=key_id,
                    key_prefix="ph-x",
                    scopes=["inference"],
                    budget_period="total",
                    metadata=meta,
                    created_at=NOW - timedelta(days=30),
                )
            )
        await conn.execute(usage_records.insert(), scripted_history())
    return engine


def test_a_scripted_spend_spike_alerts_with_its_numbers_and_resolves(
    store_url: str, tmp_path: Path
) -> None:
    sent: list[Alert] = []
    posted: list[dict[str, Any]] = []

    async def transport(body: bytes) -> int:
        posted.append(orjson.loads(body))
        return 200

    async def scenario() -> dict[str, list[Any]]:
        engine = await _store_with_history(store_url)
        notifier = WebhookNotifier(WebhookConfig(url="http://alerts.invalid"), transport=transport)
        await notifier.start()
        manager = AlertManager(sinks=[sent.append, notifier.notify])
        detector = SpendAnomalyDetector(engine, AnomalyConfig(threshold=5.0), manager)
        try:
            steps = {
                "nightly batch": await detector.evaluate(NOW.replace(hour=4, minute=0)),
                "before spike": await detector.evaluate(NOW - timedelta(minutes=25)),
                "spike": await detector.evaluate(NOW),
                "still high": await detector.evaluate(NOW + timedelta(minutes=5)),
                "after": await detector.evaluate(NOW + HOUR + timedelta(minutes=1)),
            }
        finally:
            await notifier.aclose()
            await engine.dispose()
        return {
            name: [(a.scope, a.subject, a.anomalous) for a in found]
            for name, found in steps.items()
        }

    steps = asyncio.run(scenario())
    judged = {("key", "key_search"), ("key", "key_batch"), ("team", "search"), ("team", "platform")}
    for name, verdicts in steps.items():
        assert {(scope, subject) for scope, subject, _ in verdicts} == judged, name
    flagged = {name: {s for scope, s, bad in v if bad} for name, v in steps.items()}
    assert flagged == {
        "nightly batch": set(),  # 100 USD at 03:45 every day is this hour's normal
        "before spike": set(),
        "spike": {"key_search", "search"},
        "still high": {"key_search", "search"},
        "after": set(),
    }
    assert [(a.status, a.labels) for a in sent] == [
        ("firing", {"scope": "key", "key_id": "key_search"}),
        ("firing", {"scope": "team", "team": "search"}),
        ("resolved", {"scope": "key", "key_id": "key_search"}),
        ("resolved", {"scope": "team", "team": "search"}),
    ]
    fired = sent[0]
    assert fired.kind == "spend_anomaly"
    observed = spend_of("key_search", NOW - HOUR, NOW)
    history = [spend_of("key_search", NOW - d * DAY - HOUR, NOW - d * DAY) for d in range(1, 15)]
    assert observed > 60
    assert fired.values["observed_usd"] == float(observed)
    assert fired.values["baseline_median_usd"] == float(statistics.median(history))
    assert fired.values["baseline_days"] == 14.0
    assert fired.values["robust_z"] >= 5.0
    assert f"key 'search-prod' (key_search): {observed} USD in the hour to 2031-03-14 15:30" in (
        fired.summary
    )
    assert [p["status"] for p in posted] == ["firing", "firing", "resolved", "resolved"]
    assert posted[0]["values"]["observed_usd"] == float(observed)  # the webhook has the numbers

    config = write_config(tmp_path / "pilothouse.yaml", {"store": {"url": store_url}})
    out = run_cli("report", "anomalies", "--at", NOW.isoformat(), "--json", "-c", str(config))
    rows = {(r["scope"], r["subject"]): r for r in orjson.loads(out)}
    assert rows[("key", "key_search")]["anomalous"] is True
    assert rows[("key", "key_search")]["observed_usd"] == str(observed)
    assert rows[("key", "key_batch")]["anomalous"] is False


# -- budget alerts on live spend --------------------------------------------------------


def test_budget_alerts_fire_before_requests_are_refused(store_url: str, tmp_path: Path) -> None:
    config = base_config(
        store_url,
        tmp_path,
        prices={"gpt-4o-mini": {"input": 0, "output": 100_000}},  # 0.10 USD per output token
    )
    sent: list[Alert] = []
    loop = asyncio.new_event_loop()
    engine = create_engine(store_url)
    watch = BudgetAlerts(engine, [0.5, 0.8, 1.0], AlertManager(sinks=[sent.append]))

    timeline: list[tuple[int, int, list[str]]] = []
    with running_gateway(config) as gw:
        key = gw.create_key(name="search-prod", budget_usd="1")
        body = {"model": "chat", "messages": MESSAGES, "max_tokens": 1}
        for n in range(1, 12):
            resp = httpx.post(
                gw.url + "/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )
            usage_rows(gw)  # flushes the ledger the sweep reads
            loop.run_until_complete(watch.sweep(datetime.now(UTC)))
            timeline.append((n, resp.status_code, [a.labels["threshold"] for a in sent]))
        assert {row["cost_pico"] for row in usage_rows(gw) if row["status"] == 200} == {
            usd_to_pico("0.1")
        }
    loop.run_until_complete(engine.dispose())
    loop.close()
    assert [status for _, status, _ in timeline] == [200] * 10 + [429]
    assert timeline[3][2] == []
    assert timeline[4][2] == ["50%"]  # 0.50 of 1 USD spent; five more requests still succeed
    assert timeline[7][2] == ["50%", "80%"]
    assert timeline[9][2] == ["50%", "80%", "100%"]  # fired before the 11th was refused
    assert timeline[10][2] == ["50%", "80%", "100%"]  # and not again
    assert all(a.labels["period"] == "total" for a in sent)
    assert msgspec.json.decode(msgspec.json.encode(sent[0]))["values"]["spent_usd"] == 0.5
