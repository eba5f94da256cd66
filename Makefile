# `make test` and `make demo` work on a fresh machine with only Python 3.11: they bootstrap .venv
# with uv from the committed lock (bytecode compiled, which halves Airflow's import time).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint typecheck pytest bench lock emulator clean

$(STAMP): requirements/lock.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -r requirements/lock.txt
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode --no-deps -e .
	touch $(STAMP)

test: lint typecheck pytest

# Runs against the embedded emulator; set RIVYA_API_KEY (and RIVYA_BASE_URL) for a real account.
demo: $(STAMP)
	$(BIN)/python docs/examples/client_quickstart.py demo-output

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest --cov=rivya_provider --cov-report=term

bench: $(STAMP)
	$(BIN)/pytest tests/benchmarks -s -p no:cacheprovider

emulator: $(STAMP)
	$(BIN)/rivya-emulator

# Re-resolve the lock after changing dependencies in pyproject.toml.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements/lock.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov
