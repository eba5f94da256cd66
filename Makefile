# `make test` and `make demo` work on a fresh machine with only Python 3.11: they bootstrap .venv
# with uv from the committed lock (bytecode compiled, which halves Airflow's import time; the
# editable package too, as installing its wheel would: where PYTHONDONTWRITEBYTECODE is set,
# every Airflow task process would otherwise compile it again, about 70 ms each).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test matrix demo lint typecheck docs docs-serve pytest coverage e2e bench bench-all lock locks \
	emulator clean screenshots

$(STAMP): requirements/lock.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -r requirements/lock.txt
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode --no-deps -e .
	$(BIN)/python -m compileall -q rivya_provider
	touch $(STAMP)

test: lint typecheck docs pytest

# The other cells of the support matrix (docs/compatibility.md): Airflow 3.0, 3.1, 3.2 on Python
# 3.11 and Airflow 3.3 on Python 3.10, 3.12 and 3.13, each in a fresh venv from its own lock. The
# interpreters come from the machine or are installed by .ci/find-python. CELLS=3.0-3.11 picks one.
matrix: $(STAMP)
	UV=$(BIN)/uv .ci/matrix $(CELLS)

# The marketing refresh DAG end to end against an embedded emulator; results in demo-output/.
# RIVYA_DEMO_REAL=1 RIVYA_API_KEY=... make demo  uses a real Rivya account (spends credits).
demo: $(STAMP)
	$(BIN)/python -m demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

# The documentation site (mkdocs-material); --strict fails on any warning, e.g. a broken link or a
# missing snippet file. NO_MKDOCS_2_WARNING silences a theme banner that is not a build warning.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The docs' screenshots of the Airflow UI (docs/images/), taken by scripts/screenshots.py in Debian's
# headless Chromium from a real Airflow API server and the emulator; SHOTS=connection picks one.
screenshots: $(STAMP)
	$(BIN)/python -m scripts.screenshots $(SHOTS)

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve -a 127.0.0.1:8000

# The crash scenarios of tests/e2e (marked slow_e2e) take minutes: `make e2e` runs them.
# Test modules are spread over PYTEST_WORKERS processes, one module per process at a time (a
# module's servers and Airflow deployment stay in one process).
PYTEST_WORKERS ?= 2
pytest: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not slow_e2e" $(PYTEST_COV)

# The same run with a line-coverage report of rivya_provider. Not part of `make test`: on Python
# 3.11 coverage's tracer makes the Airflow-heavy suite about a quarter slower.
coverage: $(STAMP)
	$(MAKE) pytest PYTEST_COV="--cov=rivya_provider --cov-report=term"

# Every end-to-end scenario on a real Airflow deployment, the slow crash scenarios included.
e2e: $(STAMP)
	$(BIN)/pytest tests/e2e -p no:cacheprovider

# The scale and latency table (docs/performance.md), about 5 minutes on 2 cores; `bench-all` adds
# the storm, hostile-server, memory, poll-census and 429-governor benchmarks.
bench: $(STAMP)
	$(BIN)/pytest tests/benchmarks/test_scale_table.py -s -p no:cacheprovider

bench-all: $(STAMP)
	$(BIN)/pytest tests/benchmarks -s -p no:cacheprovider

emulator: $(STAMP)
	$(BIN)/rivya-emulator

# Re-resolve the locks after changing dependencies in pyproject.toml or requirements/dev.in (what
# development needs beyond the published extras): `lock` for the primary cell, `locks` for every
# cell (requirements/cells/airflow-<line>.txt pins the release and its caps).
LOCK_INPUTS := pyproject.toml --extra emulator --extra openlineage requirements/dev.in
lock: $(STAMP)
	$(BIN)/uv pip compile $(LOCK_INPUTS) requirements/production-tests.in --python-version 3.11 \
		-o requirements/lock.txt

MATRIX_LOCKS := 3.0-3.11 3.1-3.11 3.2-3.11 3.3-3.10 3.3-3.12 3.3-3.13
locks: lock
	for cell in $(MATRIX_LOCKS); do \
		$(BIN)/uv pip compile --quiet $(LOCK_INPUTS) --python-version $${cell#*-} \
			-c requirements/cells/airflow-$${cell%-*}.txt \
			-o requirements/lock-airflow$${cell%-*}-py$${cell#*-}.txt || exit 1; \
	done

clean:
	rm -rf $(VENV) .matrix .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov site
