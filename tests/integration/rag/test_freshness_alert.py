"""Freshness on /metrics and as an alert, sent once by two replicas sharing Redis.

The sweeps run on each replica's loop with a clock eight days ahead (the
collection's ``freshness.max_age`` is 7d), the way the burn-rate tests move
time; the replicas' own periodic sweep is set to a day so only the test's run.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.integration.rag.conftest import EMBED
from tests.integration.test_replicas_shared import on_loop, replicas
from tests.support.gateway import ThreadedGateway, base_config
from tests.support.receivers import http_sink

pytestmark = pytest.mark.integration
EIGHT_DAYS = 8 * 86_400


def stale_gauge(gw: ThreadedGateway, key: str, collection: str) -> float | None:
    text = httpx.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {key}"}).text
    found = re.search(rf'pilothouse_rag_stale_documents{{collection="{collection}"}} (\S+)', text)
    return float(found.group(1)) if found else None


def sweep_and_drain(gateways: list[ThreadedGateway], now: float) -> None:
    for gw in gateways:
        assert gw.runtime is not None
        on_loop(gw, gw.runtime.rag_freshness.sweep(now))
    for gw in gateways:
        assert gw.runtime is not None and gw.runtime.telemetry.notifier is not None
        on_loop(gw, gw.runtime.telemetry.notifier.drain())


def test_stale_documents_are_a_gauge_and_one_alert_across_replicas(
    postgres_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    rag = {
        "store": {"url": f"sqlite:///{tmp_path}/rag.db"},
        "freshness_check_interval_s": 86_400,
        "collections": {
            "handbook": {"embedder": "embed-local", "freshness": {"max_age": "7d"}},
            "wiki": {"embedder": "embed-local"},  # no max_age: age alone never makes it stale
        },
    }
    with http_sink("/hook") as (hook_url, received):
        config = base_config(
            postgres_url,
            tmp_path,
            **EMBED,
            rag=rag,
            redis={"url": redis_url, "prefix": redis_prefix},
            slo={"webhook": {"url": hook_url + "/hook", "max_attempts": 1}},
        )
        with replicas(config, 2) as gateways:
            scraper = gateways[0].create_key(scopes=["metrics"])
            admin = gateways[0].create_key(metadata={"groups": ["admin"]})
            deadline = time.monotonic() + 60
            while any(stale_gauge(gw, scraper, "handbook") is None for gw in gateways):
                # Each replica's own first sweep (at start) has run: it cannot land after ours.
                assert time.monotonic() < deadline, "no replica exported the stale gauge"
            auth = {"Authorization": f"Bearer {admin}"}
            for name in ("handbook", "wiki"):
                resp = httpx.post(
                    gateways[0].url + f"/v1/rag/{name}/documents",
                    json={"documents": [{"id": "pto", "text": "Staff get 25 days of leave."}]},
                    headers=auth,
                    timeout=120,
                )
                assert resp.status_code == 200, resp.text
            now = time.time()
            sweep_and_drain(gateways, now)  # indexed just now: fresh, nothing to say
            assert [stale_gauge(gw, scraper, "handbook") for gw in gateways] == [0.0, 0.0]
            assert received.bodies == []

            sweep_and_drain(gateways, now + EIGHT_DAYS)  # both replicas see it; one sends
            sweep_and_drain(gateways, now + EIGHT_DAYS + 60)  # still stale: no repeat
            assert [stale_gauge(gw, scraper, "handbook") for gw in gateways] == [1.0, 1.0]
            assert [stale_gauge(gw, scraper, "wiki") for gw in gateways] == [0.0, 0.0]
            with gateways[1].admin() as ops:
                status = ops.get("/admin/slo").json()
            [firing] = [a for a in status["firing"] if a["kind"] == "rag_freshness"]
            assert firing["labels"] == {"collection": "handbook"}

            gone = httpx.delete(gateways[1].url + "/v1/rag/handbook/documents/pto", headers=auth)
            assert gone.status_code == 200, gone.text
            sweep_and_drain(gateways, now + EIGHT_DAYS + 120)
            assert [stale_gauge(gw, scraper, "handbook") for gw in gateways] == [0.0, 0.0]
    sent = [orjson.loads(body) for body in received.bodies]
    assert [(a["kind"], a["status"], a["labels"]) for a in sent] == [
        ("rag_freshness", "firing", {"collection": "handbook"}),
        ("rag_freshness", "resolved", {"collection": "handbook"}),
    ]
    assert sent[0]["values"]["stale_documents"] == 1.0
    assert (
        "'handbook' has 1 stale document(s)" in sent[0]["summary"] and "pto" in sent[0]["summary"]
    )
