# The two commands of the README: `make run` and `make test`. Both install what is missing first
# (idempotent: a second call installs nothing).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install system-deps run smoke test lint bench clean-smoke

install: system-deps $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=23.2" >/dev/null
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]' 2>&1 | grep -v "is ignored: it is neither" || true
	@$(BIN)/python -c "import torch, prefect, mlflow, dvc, flwr, onnxruntime, lightning" \
		|| { echo "install failed: see the pip output above"; exit 1; }
	@touch $(STAMP)

system-deps:
	@bash scripts/install-system-deps.sh

run: install
	$(BIN)/edgelearn run

smoke: install
	$(BIN)/edgelearn run --smoke

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

bench: install
	@for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean-smoke:
	rm -rf .edgelearn/smoke
