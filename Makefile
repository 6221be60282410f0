# Two commands matter: `make run` (the whole system) and `make test` (the whole suite).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast install clean bench reliability lint format typecheck mutation

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing coachup and its dependencies into $(VENV): 2-3 minutes the first time; pip lists each package as it goes"
	$(PY) -m pip install --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/coachup run

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# the same suite without the long fault drills (they still run in CI)
test-fast: $(STAMP)
	$(PY) -m pytest --skip-drills $(PYTEST_ARGS)

# every benchmark side by side with bare Celery / bare Flask (bench/README.md); flushes BENCH_BROKER's
# database; writes bench/results.json and docs/scaling.png; not part of `make test`
BENCH_BROKER ?= redis://127.0.0.1:6379/8
# the API benchmark runs on SQLite and on this PostgreSQL database (created when missing, emptied per server);
# `make bench BENCH_DATABASE=` measures SQLite only
BENCH_DATABASE ?= postgresql://postgres@127.0.0.1:5432/bench
bench: $(STAMP)
	@$(PY) -c 'import matplotlib, pyinstrument' 2>/dev/null || $(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PY) -m bench.suite --broker $(BENCH_BROKER) --database "$(BENCH_DATABASE)" $(BENCH_ARGS)

# ruff: lint rules and formatting (pyproject.toml [tool.ruff]); `make format` rewrites, `make lint` only checks
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# mypy over coachup/, workers/, web/ and celeryconfig.py (pyproject.toml [tool.mypy])
typecheck: $(STAMP)
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) var .pytest_cache mutants

# mutation testing (mutmut) of the defence modules, one at a time, each against the tests that guard it
# (tests/mutation.py); slow (minutes per module), not part of `make test`. One module: MODULE=jwt_auth;
# some mutants of it: MODULE=jwt_auth MUTANTS='web.jwt_auth.x*verify*'. Niced: the machine is shared.
MODULE ?= redaction jwt_auth fetch redrive sqs_transport sqs_options idempotency guard deadletter ledger outbox
MUTANTS ?=
mutation: $(STAMP)
	@$(PY) -c 'import mutmut' 2>/dev/null || $(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,mutation]'
	@set -e; for m in $(MODULE); do \
		rm -rf mutants; \
		nice -n 10 $(PY) -m tests.mutation $$m run $(MUTANTS); \
		echo "== $$m: survivors"; $(PY) -m tests.mutation $$m results; \
	done

# the fault/attack drills, then their numbers into docs/reliability.md (one command)
RELIABILITY_RESULTS ?= var/reliability.jsonl
reliability: $(STAMP)
	mkdir -p $(dir $(RELIABILITY_RESULTS)) && rm -f $(RELIABILITY_RESULTS)
	COACHUP_RELIABILITY_RESULTS=$(abspath $(RELIABILITY_RESULTS)) $(PY) -m pytest tests/reliability tests/sqs/test_sqs_in_flight_fault.py $(PYTEST_ARGS)
	$(PY) -m tests.reliability.report $(RELIABILITY_RESULTS) docs/reliability.md
