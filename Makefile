# tomeflow: `make run` and `make test` are all a newcomer needs (Python 3.11 on PATH).
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
export GX_ANALYTICS_ENABLED := false
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: install run migrate test test-fast test-topology lint format bench screenshots db-stop psql clean

$(BIN)/.installed: pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or set PYTHON=" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e ".[dev]"
	@touch $@

install: $(BIN)/.installed  ## create .venv and install tomeflow with its pinned dependencies

migrate: install  ## bring the database to the newest schema
	$(BIN)/tomeflow migrate

run: migrate  ## ingest seeds/ into the database and print what loaded
	$(BIN)/tomeflow run

test: install  ## the whole suite against real PostgreSQL, on two workers
	$(BIN)/pytest -n 2 --dist loadgroup

test-fast: install  ## the suite without the production-topology and Dask cluster tests
	$(BIN)/pytest -n 2 --dist loadgroup -m "not topology and not cluster"

test-topology: install  ## only the production-topology test (Prefect server + worker)
	$(BIN)/pytest -m topology

lint: install  ## ruff (lint + format check) and mypy, as CI runs them
	$(BIN)/ruff check flows tests schemas bench
	$(BIN)/ruff format --check flows tests schemas bench
	$(BIN)/mypy

format: install
	$(BIN)/ruff format flows tests schemas bench
	$(BIN)/ruff check --fix flows tests schemas bench

# corpus sizes for `make bench` (default: 1000 10000); `make bench PAPERS=50000`: memory at 50k
PAPERS ?=
bench: install  ## benchmark figures beside their goals: speed, CPU, memory, load vs COPY and dlt
	$(BIN)/python -m bench.run $(if $(PAPERS),--papers $(PAPERS))

screenshots: install  ## headless Chromium screenshots of a run with problems: Prefect UI and Data Docs
	$(BIN)/python -m bench.screenshots --out bench/out/screenshots

psql: install  ## open psql on the tomeflow database
	$$($(BIN)/tomeflow db psql)

db-stop: install  ## stop the embedded PostgreSQL
	$(BIN)/tomeflow db stop

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
