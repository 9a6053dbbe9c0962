# The README's two commands: `make run` and `make test`. Everything else here is a convenience.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run demo test lint format check-python venv clean bench

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "MNS needs Python 3.11 or newer; set PYTHON=python3.11")'

# Reinstalled whenever a requirements file changes.
$(STAMP): requirements/base.txt requirements/production.txt requirements/dev.txt | check-python
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	touch $(STAMP)

venv: $(STAMP)

## make run: migrate and start the gateway (web, worker, beat) on the embedded defaults; Ctrl-C stops it.
run: venv
	$(BIN)/python manage.py rungateway

## make demo: the narrated walk-through again (alice, bob, two messages, a payment) against the gateway that
## `make run` started, with the real `mns` client; `make run` wrote where everything is to var/demo.json.
DEMO_FILE ?= var/demo.json
demo: venv
	$(BIN)/python -m mns_client.demo --from $(DEMO_FILE)

## make test: the whole suite; tests needing PostgreSQL/Redis run when reachable and say why when skipped.
test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf var/ .pytest_cache .ruff_cache

## make bench: every benchmark scenario against its baseline, in one run (not part of the tests).
bench: venv
	$(BIN)/python -m bench $(BENCH_ARGS)
