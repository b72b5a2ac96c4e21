# Two commands on a fresh machine:  `make run`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install run test lint format stop bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

install: $(VENV)/.installed

run: install  ## install, migrate, seed demo data, start web :8000 + worker + beat + sandbox :8100
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	./scripts/run-all.sh

test: install  ## install and run the whole test suite (real PostgreSQL, sandbox gateways)
	$(BIN)/python -m pytest

lint: install  ## ruff, and the import contracts of the floors (import-linter, pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache --no-logo

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install  ## run every benchmark (each prints a RESULT line)
	$(BIN)/python bench/notify_throughput.py
	$(BIN)/python bench/wallet_contention.py
	$(BIN)/python bench/reconcile_scaling.py
	$(BIN)/python bench/create_latency.py
	$(BIN)/python bench/worker_memory.py
	$(BIN)/python bench/chaos.py

stop:  ## stop the embedded PostgreSQL server
	$(BIN)/python -m core.embedded_pg stop

clean: stop
	rm -rf $(VENV) var
