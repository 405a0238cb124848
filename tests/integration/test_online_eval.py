"""Online evaluation: a share of live traffic is scored and the scores land on the trace."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from pilothouse.config.load import parse_settings
from pilothouse.errors import ConfigError
from tests.support.gateway import ADMIN_KEY, base_config, running_gateway

pytestmark = pytest.mark.integration


def test_sampled_requests_are_scored_and_exported(tmp_path: Path) -> None:
    config = base_config(
        f"sqlite:///{tmp_path}/o.db",
        tmp_path,
        online_eval={
            "rules": [
                {"alias": "chat", "rate": 1.0, "scorers": [{"type": "regex", "pattern": "polite"}]}
            ]
        },
    )
    with running_gateway(config) as gw:
        key = gw.create_key()
        ids = []
        for text, cost in (("be polite please", "0.0000027"), ("be rude", "0.00000195")):
            resp = httpx.post(
                gw.url + "/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={"model": "chat", "messages": [{"role": "user", "content": text}]},
            )
            assert resp.status_code == 200
            assert resp.headers["x-pilothouse-cost-usd"] == cost  # exact, from bundled prices
            ids.append(resp.headers["x-request-id"])
        assert gw.runtime is not None and gw.runtime.online is not None
        asyncio.run_coroutine_threadsafe(
            gw.runtime.online.stop(drain=True), gw.server_loop()
        ).result(30)
        verdicts = []
        for request_id in ids:
            trace = httpx.get(
                f"{gw.url}/admin/traces/{request_id}",
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            ).json()
            verdicts.append([e["passed"] for e in trace["evaluations"]])
        scraper = gw.create_key(scopes=["metrics"])
        metrics = httpx.get(
            gw.url + "/metrics", headers={"Authorization": f"Bearer {scraper}"}
        ).text
    assert verdicts == [[True], [False]]
    assert (
        'pilothouse_online_eval_scores_total{alias="chat",result="pass",scorer="regex"} 1.0'
        in metrics
    )


def test_bad_online_eval_config_refused_at_start(tmp_path: Path) -> None:
    config = base_config(
        f"sqlite:///{tmp_path}/o.db",
        tmp_path,
        online_eval={"rules": [{"alias": "chat", "rate": 2, "scorers": []}]},
    )
    with pytest.raises(ConfigError, match=r"online_eval: online_eval.rules\[0\].rate|rate"):
        parse_settings(config, source="c.yaml")
