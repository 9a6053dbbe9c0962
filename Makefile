# The README's two commands: `make run` and `make test`. Everything else here is a convenience.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run demo test lint format check-python venv clean bench faults dapp dapp-if-node

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "MNS needs Python 3.11 or newer; set PYTHON=python3.11")'

# Reinstalled whenever a requirements file or pyproject.toml changes. The client goes in editable and without its
# dependencies (the pins above already hold them; test_packaging checks they satisfy its ranges): $(BIN)/mns.
$(STAMP): requirements/base.txt requirements/production.txt requirements/dev.txt pyproject.toml | check-python
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

## make run: migrate and start the gateway (web, worker, beat) on the embedded defaults; Ctrl-C stops it.
## BIND=host:port serves it elsewhere than 127.0.0.1:8000 (make demo then finds it through var/demo.json).
BIND ?= 127.0.0.1:8000
run: venv dapp-if-node
	$(BIN)/python manage.py rungateway --bind $(BIND)

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

## make bench: every benchmark scenario against its baseline, in one run (not part of the tests; needs wrk). It uses
## DATABASE_URL/REDIS_URL, else the machine's PostgreSQL and Redis on 127.0.0.1 when they answer (database mns_bench).
## BENCH_ARGS="lookup --seconds 5" for one scenario, BENCH_ARGS=--smoke to check the harness.
bench: venv
	@if [ -z "$$DATABASE_URL" ] && pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then \
	  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='mns_bench'" | grep -q 1 \
	    || psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE mns_bench"; \
	  export DATABASE_URL=postgres://postgres@127.0.0.1:5432/mns_bench; fi; \
	if [ -z "$$REDIS_URL" ] && redis-cli -h 127.0.0.1 ping 2>/dev/null | grep -q PONG; then \
	  export REDIS_URL=redis://127.0.0.1:6379/11; fi; \
	echo "bench on $${DATABASE_URL:-SQLite} and $${REDIS_URL:-the filesystem broker}"; \
	$(BIN)/python -m bench $(BENCH_ARGS)

## make dapp: build the browser Dapp (Node.js 20 + npm: npm ci, then dapp/build.mjs) into $(DAPP_OUT)/site, which
## the gateway serves at /app/, and the MiniDapp $(DAPP_OUT)/mns.mds.zip. The build output is never committed.
DAPP_OUT ?= $(or $(MNS_VAR_DIR),var)/dapp
dapp:
	cd dapp && npm ci --no-audit --no-fund --loglevel=error
	node dapp/build.mjs --out $(DAPP_OUT)/site --zip $(DAPP_OUT)/mns.mds.zip

# `make run` builds the Dapp when Node.js is there; without it (or offline) the gateway runs and /app/ says why.
dapp-if-node:
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory dapp || echo "make dapp failed: the gateway runs without the Dapp"; \
	else echo "Node.js/npm not found: the gateway runs without the Dapp (/app/ says how to build it)"; fi

## make faults: the fault suite (README "Reliability") against the real stack on a private PostgreSQL and Redis;
## the CI budget (200 messages per fault, 8 s outages); `make faults FULL=1` for 1,000 messages and 30 s outages.
faults: venv
	FULL=$(FULL) $(BIN)/python -m faults $(FAULTS_ARGS)
