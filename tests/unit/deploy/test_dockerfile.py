"""deploy/docker/Dockerfile: hadolint-clean, multi-stage, non-root, health-checked."""

from __future__ import annotations

from pathlib import Path

from pilothouse.config.load import load_settings
from tests.support.deploy import DEPLOY, DOCKERFILE, ROOT, read_runtime_stage, run_tool, tool


def test_hadolint_passes() -> None:
    result = run_tool(tool("hadolint"), str(DOCKERFILE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install gcc\nCMD pilothouse serve\n")
    result = run_tool(tool("hadolint"), str(bad))
    assert result.returncode != 0
    assert "DL3006" in result.stdout  # untagged base image


def test_builder_collects_prebuilt_wheels_and_no_stage_has_a_compiler() -> None:
    text = DOCKERFILE.read_text()
    builder, _, runtime = text.partition(" AS runtime")
    assert " AS builder" in builder and "pip wheel" in builder
    # llama.cpp arrives prebuilt (xllamacpp): nothing is compiled, in either stage.
    for stage in (builder, runtime):
        assert "build-essential" not in stage and "cmake" not in stage and "CMAKE_ARGS" not in stage
    assert "COPY --from=builder /wheels" in runtime
    assert "--no-index" in runtime  # the runtime installs only the builder's wheels


def test_runtime_runs_serve_as_non_root_with_a_healthz_check() -> None:
    stage = read_runtime_stage()
    assert stage.user.split(":")[0] not in ("", "0", "root")
    assert stage.entrypoint == ["pilothouse"]
    assert stage.cmd[:1] == ["serve"] and "--config" in stage.cmd
    assert any("/healthz" in part for part in stage.healthcheck)
    assert "4000" in stage.exposed
    assert stage.workdir == "/var/lib/pilothouse"


def test_image_config_is_the_shipped_file_and_loads_with_env_secrets() -> None:
    stage = read_runtime_stage()
    config_path = stage.cmd[stage.cmd.index("--config") + 1]
    sources = {dest: src for src, dest in stage.copies}
    assert sources[config_path] == "deploy/docker/pilothouse.yaml"
    settings = load_settings(ROOT / sources[config_path], env={"PILOTHOUSE_ADMIN_KEY": "k" * 32})
    assert settings.server.admin_key is not None
    assert settings.server.host == "0.0.0.0"  # reachable from outside the container
    # Everything the gateway writes is under the image's one writable directory.
    assert settings.store.url.startswith(f"sqlite:///{stage.workdir}/")
    assert settings.store.spool_path.startswith(stage.workdir + "/")


def test_build_context_excludes_local_state() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "*.db"} <= set(ignored)
    assert (DEPLOY / "docker" / "pilothouse.yaml").exists()
