# The two commands of the README: `make run` and `make test`. Both install what is missing first
# (idempotent: a second call installs nothing).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install system-deps test-deps run smoke test test-fast lint bench clean-smoke

install: system-deps $(STAMP)

# pip's own chatter (index warnings, setuptools' editable-install notice) goes to a log that is
# shown only when the install fails.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing the pinned Python packages into $(VENV) (log: $(VENV)/install.log)"
	@{ $(BIN)/python -m pip install --quiet --upgrade "pip>=23.2" \
		&& $(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'; } \
		> $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; echo "install failed (above)"; exit 1; }
	@$(BIN)/python -c "import torch, prefect, mlflow, dvc, flwr, onnxruntime, lightning" \
		|| { cat $(VENV)/install.log; echo "install failed: see the pip output above"; exit 1; }
	@touch $(STAMP)

system-deps:
	@bash scripts/install-system-deps.sh
	@bash scripts/install-real-voices.sh

test-deps:
	@bash scripts/install-test-deps.sh

run: install
	$(BIN)/edgelearn run

smoke: install
	$(BIN)/edgelearn run --smoke

test: install test-deps
	$(BIN)/python -m pytest

# The unit tests: everything not marked slow (no Prefect server, Ray, pipeline or export runs).
test-fast: install
	$(BIN)/python -m pytest -m "not slow"

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

# The benchmarks that take no arguments, one after the other: python -m bench.NAME, each writing
# bench/results/NAME.json. They read the pipeline's outputs (make run first) and train networks.
# The sweeps take their settings as arguments and are run by hand (python -m bench lists all):
#   .venv/bin/python -m bench.supernet_sweep '{"full_fraction": 0.5}' '{"epochs": 40}'
#   .venv/bin/python -m bench.federated_sweep --from-supernet 32,16,32,64,32,64 --seeds 1234,1,2
#       '{"pvt.strategy": "all", "omc.enabled": false}' '{"omc.enabled": false}'   (one command)
BENCHES := data negatives supernet space search fleet frontend export detector federated

bench: install
	@for b in $(BENCHES); do \
		echo "== python -m bench.$$b"; $(BIN)/python -m bench.$$b || exit 1; \
	done

clean-smoke:
	rm -rf .edgelearn/smoke
