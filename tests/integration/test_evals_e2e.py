"""`pilothouse eval` end to end through a real gateway (in process and over HTTP) with the
chaos provider as upstream: reports, exact costs from the ledger, cache, baselines, exit
codes, the review queue and calibration; stores on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from pilothouse.cli.main import app
from tests.support.gateway import ProcessGateway, free_port, write_config
from tests.support.ledger import stored_rows

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).parents[2] / "examples" / "evals" / "support-qa"
JUDGE_KEY = "Is the answer correct and polite"


def eval_cli(*args: str) -> Any:
    # A wide terminal, so tables do not wrap the ids the assertions look for.
    return CliRunner().invoke(app, ["eval", *args], catch_exceptions=False, env={"COLUMNS": "200"})


@pytest.fixture
def workdir(tmp_path: Path, store_url: str) -> Path:
    """The example suite with a chaos gateway config whose store is this test's store."""
    for name in ("suite.yaml", "cases.jsonl", "my_scorers.py"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    config = yaml.safe_load((EXAMPLE / "chaos.yaml").read_text())
    config["store"] = {"url": store_url, "spool_path": str(tmp_path / "spool.jsonl")}
    write_config(tmp_path / "gateway.yaml", config)
    return tmp_path


def gateway_with_judge(workdir: Path, reply: str, name: str) -> Path:
    config = yaml.safe_load((workdir / "gateway.yaml").read_text())
    config["providers"]["scripted"]["replies"][JUDGE_KEY] = reply
    return write_config(workdir / name, config)


def run_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_issue_suite_through_the_embedded_gateway(workdir: Path, store_url: str) -> None:
    out = workdir / "reports"
    result = eval_cli(
        "run",
        str(workdir / "suite.yaml"),
        "--config",
        str(workdir / "gateway.yaml"),
        "--md",
        str(out / "r.md"),
        "--html",
        str(out / "r.html"),
        "--junit",
        str(out / "junit.xml"),
        "--json",
        str(out / "run.json"),
    )
    # exact: 4 of 8 cases (0.50 < 0.60) -> the release gate fails.
    assert result.exit_code == 1, result.output
    assert "support-qa: 1 of 2 gates failed" in result.output
    report = run_json(out / "run.json")
    gates = report["summary"]["gates"]
    assert [g["status"] for g in gates] == ["fail", "skipped"]
    metrics = {(m["metric"], m["slice"]): m for m in report["summary"]["metrics"]}
    exact = metrics[("exact.pass_rate", None)]
    assert (exact["n"], exact["mean"]) == (8, 0.5)
    assert exact["low"] < 0.5 < exact["high"]
    assert metrics[("exact.pass_rate", "metadata.topic=hours")]["mean"] == 1.0
    assert metrics[("python.pass_rate", None)]["mean"] == 7 / 8  # "Sorry, the Team plan..."
    assert metrics[("grounded.pass_rate", None)]["mean"] == 7 / 8  # "Exports are PDF files."

    # Every case has its gateway request id, and its cost is the ledger's, to the pico-dollar.
    samples = [s for c in report["cases"] for s in c["samples"]]
    ledger = {row["request_id"]: row for row in stored_rows(store_url)}
    for sample in samples:
        (request_id,) = sample["request_ids"]
        assert sample["cost_pico"] == ledger[request_id]["cost_pico"] > 0
        assert ledger[request_id]["metadata"]["eval_case"] == sample["case_id"]
        assert len(sample["verdicts"]) == 8  # every scorer: a score, an error or a skip
        assert [e["name"] for e in sample["events"]][:1] == ["gen_ai.evaluation.result"]
    judge_spend = sum(r["cost_pico"] for r in ledger.values()) - sum(
        s["cost_pico"] for s in samples
    )
    total_judges = sum(s.get("scoring_cost_pico", 0) for s in samples)
    assert judge_spend == total_judges > 0

    root = ET.parse(out / "junit.xml").getroot()
    exact_suite = next(s for s in root.iter("testsuite") if s.get("name") == "support-qa.exact")
    assert exact_suite.get("tests") == "8" and exact_suite.get("failures") == "4"
    markdown = (out / "r.md").read_text()
    assert markdown.startswith("## ❌ support-qa: 1 of 2 gates failed")
    page = (out / "r.html").read_text()
    assert samples[0]["request_ids"][0] in page and "<svg" in page

    # The same suite again: every output from the result cache, no new model calls.
    again = eval_cli(
        "run",
        str(workdir / "suite.yaml"),
        "--config",
        str(workdir / "gateway.yaml"),
        "--json",
        str(out / "again.json"),
    )
    assert again.exit_code == 1
    assert run_json(out / "again.json")["summary"]["totals"]["cached"] == 8
    assert len(stored_rows(store_url)) == len(ledger)

    listed = eval_cli("list", "--config", str(workdir / "gateway.yaml"))
    assert listed.output.count("support-qa") == 2 and "1 failed" in listed.output
    shown = eval_cli(
        "show",
        "last",
        "--config",
        str(workdir / "gateway.yaml"),
        "--junit",
        str(out / "again.xml"),
        "--json",
        str(out / "shown.json"),
    )
    assert shown.exit_code == 0 and "exact.pass_rate" in shown.output
    ET.parse(out / "again.xml")
    # Regenerated from the store: the same intervals and gate decisions as the run printed.
    assert (
        run_json(out / "shown.json")["summary"]["metrics"]
        == run_json(out / "again.json")["summary"]["metrics"]
    )
    assert [g["status"] for g in run_json(out / "shown.json")["summary"]["gates"]] == [
        "fail",
        "skipped",
    ]


def test_exit_codes_and_a_significant_judge_drop_against_a_baseline(workdir: Path) -> None:
    suite = workdir / "suite.yaml"
    lenient = gateway_with_judge(workdir, '{"score": 5, "reason": "great"}', "lenient.yaml")
    harsh = gateway_with_judge(workdir, '{"score": 2, "reason": "rude"}', "harsh.yaml")
    passing = workdir / "passing.yaml"
    passing.write_text(suite.read_text().replace("min: 0.60", "min: 0.50"))

    first = eval_cli(
        "run", str(passing), "--config", str(lenient), "--json", str(workdir / "a.json")
    )
    assert first.exit_code == 0, first.output  # gates pass (the drop gate is skipped)

    same = eval_cli("run", str(passing), "--config", str(lenient), "--baseline", "last")
    assert same.exit_code == 0 and "drop within 0.02" in same.output

    # Judge now fails all 8 cases: 8 discordant pairs, McNemar p = 2/2^8 < 0.05.
    worse = eval_cli(
        "run",
        str(passing),
        "--config",
        str(harsh),
        "--baseline",
        str(workdir / "a.json"),
        "--md",
        str(workdir / "cmp.md"),
    )
    assert worse.exit_code == 1, worse.output
    assert "significant drop > 0.02" in worse.output
    markdown = (workdir / "cmp.md").read_text()
    assert "| `judge.pass_rate` | 1.000 | 0.000 | -1.000 |" in markdown
    assert "p=0.00781 mcnemar-exact" in markdown

    compared = eval_cli(
        "compare", str(workdir / "a.json"), "last", "--config", str(workdir / "gateway.yaml")
    )
    assert compared.exit_code == 0 and "mcnemar-exact" in compared.output

    bad = workdir / "bad.yaml"
    bad.write_text(suite.read_text().replace("exact.accuracy", "exact.acuracy"))
    broken = subprocess.run(
        [
            sys.executable,
            "-m",
            "pilothouse.cli.main",
            "eval",
            "run",
            str(bad),
            "--config",
            str(lenient),
        ],
        capture_output=True,
        text=True,
    )
    assert broken.returncode == 2
    assert "unknown metric 'exact.acuracy'" in broken.stderr
    assert "Traceback" not in broken.stderr + broken.stdout


def test_a_gateway_that_is_down_is_exit_code_2_with_one_clean_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens here
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pilothouse.cli.main",
            "eval",
            "run",
            str(EXAMPLE / "suite.yaml"),
            "--base-url",
            f"http://127.0.0.1:{port}",
            "--api-key",
            "sk-x",
            "--store",
            f"sqlite:///{tmp_path / 'down.db'}",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert f"cannot reach the gateway at http://127.0.0.1:{port}/v1" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_running_gateway_over_http(workdir: Path, tmp_path: Path) -> None:
    config = workdir / "gateway.yaml"
    key = (
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pilothouse.cli.main",
                "keys",
                "create",
                "--name",
                "ci",
                "--config",
                str(config),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    gateway = ProcessGateway(config, free_port(), {}).start()
    try:
        store = f"sqlite:///{tmp_path / 'client-side.db'}"
        ok = eval_cli(
            "run",
            str(workdir / "suite.yaml"),
            "--base-url",
            gateway.url,
            "--api-key",
            key,
            "--store",
            store,
            "--json",
            str(tmp_path / "r.json"),
        )
        assert ok.exit_code == 1, ok.output  # same gate outcome as in process
        samples = [s for c in run_json(tmp_path / "r.json")["cases"] for s in c["samples"]]
        assert all(s["request_ids"][0].startswith("req_") for s in samples)
        refused = eval_cli(
            "run",
            str(workdir / "suite.yaml"),
            "--base-url",
            gateway.url,
            "--api-key",
            "sk-wrong",
            "--store",
            store,
        )
        assert refused.exit_code == 2

        # An `http` target: your service (here the gateway's own endpoint) with a templated
        # body, a response path and a secret header from the environment.
        http_suite = workdir / "http.yaml"
        http_suite.write_text(
            "name: http-app\ndataset: cases.jsonl\nscorers: [{type: contains}]\n"
            "target: {http: {url: '" + gateway.url + "/v1/chat/completions', "
            "body: {model: local, messages: [{role: user, content: '{{input}}'}]}, "
            "response_path: choices.0.message.content, "
            "headers: {Authorization: 'env:APP_TOKEN'}}}\n"
        )
        http_run = CliRunner().invoke(
            app,
            ["eval", "run", str(http_suite), "--store", store, "--json", str(tmp_path / "h.json")],
            env={"APP_TOKEN": f"Bearer {key}", "COLUMNS": "200"},
        )
        assert http_run.exit_code == 0, http_run.output
        cases = {c["case"]["id"]: c["samples"][0] for c in run_json(tmp_path / "h.json")["cases"]}
        assert cases["hq"]["output"] == "Rotterdam"
        assert cases["hq"]["request_ids"][0].startswith("req_")  # from x-request-id
    finally:
        gateway.stop()


def test_review_queue_feeds_calibration(workdir: Path) -> None:
    config = str(workdir / "gateway.yaml")
    run = eval_cli("run", str(workdir / "suite.yaml"), "--config", config)
    # The chaos judge gives 4 with pass_at 4: every verdict is borderline -> 8 items queued.
    assert "8 item(s) queued for review" in run.output
    labels = {
        "hours": "pass",
        "founded": "pass",
        "hq": "pass",
        "refund-days": "pass",
        "refund-json": "fail",
        "plan-price": "fail",
        "weekend": "pass",
        "export": "fail",
    }
    for _ in labels:
        shown = CliRunner().invoke(app, ["review", "next", "--config", config])
        item_id = shown.output.split()[0]
        case_id = shown.output.split("case ")[1].split()[0]
        labelled = CliRunner().invoke(
            app, ["review", "label", item_id, labels[case_id], "--config", config]
        )
        assert labelled.exit_code == 0, labelled.output
    empty = CliRunner().invoke(app, ["review", "next", "--config", config])
    assert "the review queue is empty" in empty.output
    human = workdir / "human.jsonl"
    exported = CliRunner().invoke(
        app, ["review", "export", "--out", str(human), "--config", config]
    )
    assert exported.exit_code == 0 and len(human.read_text().splitlines()) == 8
    cal = eval_cli(
        "calibrate",
        str(workdir / "suite.yaml"),
        "--labels",
        str(human),
        "--config",
        config,
        "--json",
        str(workdir / "cal.json"),
        "--min-kappa",
        "0.2",
    )
    # The judge passes everything; humans failed 3 of 8: agreement 5/8, kappa 0 (chance).
    assert cal.exit_code == 1
    result = run_json(workdir / "cal.json")[0]  # type: ignore[index]
    assert result["n"] == 8 and result["agreement"] == 5 / 8
    assert result["matrix"] == [[5, 0], [3, 0]]
    assert result["kappa"] == 0.0  # the judge's constant "pass" carries no information
    assert sorted(d["id"] for d in result["disagreements"]) == [
        "export",
        "plan-price",
        "refund-json",
    ]


def test_a_python_app_whose_model_calls_join_the_case(workdir: Path, store_url: str) -> None:
    (workdir / "support_app.py").write_text(
        "async def answer(question, ctx):\n"
        "    draft = await ctx.chat(question, model='local')\n"
        "    return draft.strip()\n"
    )
    suite = workdir / "app.yaml"
    suite.write_text(
        "name: app\ntarget: {python: 'support_app:answer'}\ndataset: cases.jsonl\n"
        "params: {max_tokens: 64}\nscorers: [{type: contains}]\n"
    )
    result = eval_cli(
        "run",
        str(suite),
        "--config",
        str(workdir / "gateway.yaml"),
        "--json",
        str(workdir / "app.json"),
    )
    assert result.exit_code == 0, result.output
    samples = [s for c in run_json(workdir / "app.json")["cases"] for s in c["samples"]]
    ledger = {row["request_id"]: row for row in stored_rows(store_url)}
    for sample in samples:
        (request_id,) = sample["request_ids"]  # the app's own gateway call
        row = ledger[request_id]
        assert row["metadata"]["eval_case"] == sample["case_id"]
        assert sample["cost_pico"] == row["cost_pico"] > 0
