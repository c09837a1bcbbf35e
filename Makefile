# Two commands do everything on a fresh machine with Python 3.11 (no conda needed):
#   make demo   - virtual environment, install, demo retailer, whole pipeline, registered champion
#   make test   - virtual environment, install (+ Chromium for the dashboard test), make lint, all tests
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8866
SERVE_PORT ?= 5001
# server processes of `make serve`; 0: one per core
WORKERS ?= 0
# pos: workbench.pos_server; mlflow: `mlflow models serve` (the same model and JSON protocol)
SERVER ?= pos
# pytest-xdist worker processes of `make test` (auto: one per core; 0: every test in this one process)
TEST_WORKERS ?= auto
LEGAL_ENTITY ?=
TRACKING_URI := sqlite:///$(CURDIR)/mlruns/mlflow.db

.PHONY: screenshots install demo test lint lab dashboard serve online-retail browser postgres benchmarks research clean

install: $(VENV)/.stamp-install

$(VENV)/.stamp-install: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 needed, found {sys.version.split()[0]}: set PYTHON=/path/to/python3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m ipykernel install --sys-prefix --name pos-workbench --display-name "Python (pos-workbench)"
	touch $@

demo: install
	$(BIN)/workbench demo-data
	$(BIN)/workbench run --config configs/demo.yml

online-retail: install
	$(BIN)/workbench run --config configs/online_retail.yml

# Debian's Chromium drives the dashboard's browser test (Playwright cannot download browsers here).
browser:
	@command -v chromium >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

# Debian's PostgreSQL server binaries for the PostgreSQL source test (tests/postgres_server.py starts
# and stops its own throwaway server in a temporary folder; the package's own cluster is not used).
postgres:
	@command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq postgresql >/dev/null; }

test: install browser postgres lint
	$(BIN)/python -m pytest -ra -n $(TEST_WORKERS) --durations=15

# unused imports, undefined names and syntax errors (pyproject.toml's [tool.ruff]), notebooks included
lint: install
	$(BIN)/ruff check src tests benchmarks notebooks docs

# The README's dashboard screenshots: the three pages and the model page retaken by the browser test on
# its fixture retailer (make test writes them to a scratch folder), and the demo retailer's product
# page as `make demo` leaves it (docs/demo_screenshot.py).
screenshots: demo browser
	WORKBENCH_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest -q tests/test_dashboard.py
	$(BIN)/python docs/demo_screenshot.py

lab: install
	$(BIN)/jupyter lab notebooks/

dashboard: install
	$(BIN)/voila notebooks/dashboard.ipynb --no-browser --Voila.ip=127.0.0.1 --port=$(PORT)

# LEGAL_ENTITY=USRT serves models:/pos-recommender@champion-USRT, which no other legal entity's run
# moves; without it, the last registered @champion (the legal entity it belongs to is printed)
serve: install
	MLFLOW_TRACKING_URI=$(TRACKING_URI) $(BIN)/python -m workbench.local_server --legal-entity "$(LEGAL_ENTITY)" --port $(SERVE_PORT) --workers $(WORKERS) --server $(SERVER)

benchmarks: install postgres
	$(BIN)/python benchmarks/pipeline.py
	$(BIN)/python benchmarks/quality.py
	$(BIN)/python benchmarks/latency.py

# The research notebooks behind the defaults (not CI: minutes each), on Online Retail in ../shared;
# their figures and tables go to benchmarks/results/research/, the executed notebooks to data/runs/research/;
# every notebook of the folder, so a new one is never left off
RESEARCH := $(basename $(notdir $(wildcard notebooks/research/*.ipynb)))
research: install
	mkdir -p data/runs/research
	for nb in $(RESEARCH); do $(BIN)/papermill notebooks/research/$$nb.ipynb data/runs/research/$$nb.ipynb --cwd notebooks/research \
	  -k pos-workbench -p figure_dir $(CURDIR)/benchmarks/results/research || exit 1; done

clean:
	rm -rf data/operational data/raw data/interim data/processed data/runs mlruns/mlflow.db mlruns/artifacts
