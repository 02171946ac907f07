# Taskdeck: `make run` to start it, `make test` to test it. Both set up .venv/ first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BENCH_VENV := var/bench-venv

.PHONY: run test test-sqlite test-postgres setup bench soak fuzz screenshots clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

# The benches' peers (supervisord, watchdog's watchmedo) live in an environment of their own, never the project's.
$(BENCH_VENV)/bin/supervisord:
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check supervisor

$(BENCH_VENV)/bin/watchmedo:
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check "watchdog[watchmedo]==7.1.0"

## setup: virtual environment, requirements, migrations, an admin login
setup: $(VENV)/.installed
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py ensure_admin

## run: web + worker + scheduler at http://127.0.0.1:8000 with the example tasks
run: setup
	$(PY) manage.py serve

## test: the database-invariant tests on PostgreSQL, then the whole suite on SQLite
test: setup
	scripts/install-test-deps
	scripts/with-postgres $(PY) -m pytest -m postgres
	$(PY) -m pytest

test-sqlite: setup
	$(PY) -m pytest

test-postgres: setup
	scripts/install-test-deps
	scripts/with-postgres $(PY) -m pytest -m postgres

## screenshots: the browser tests, saving docs/screenshots/*.png for the README
screenshots: setup
	scripts/install-test-deps
	UPDATE_SCREENSHOTS=1 $(PY) -m pytest tests/browser -q

## fuzz: longer than CI's suite: schemathesis in random mode over the whole schema of a real
## serve, and the Hypothesis fuzzers of bodies, query strings and headers, with many more cases
FUZZ_EXAMPLES ?= 300
fuzz: setup
	scripts/install-test-deps
	TASKDECK_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) TASKDECK_FUZZ_RANDOM=1 $(PY) -m pytest --hypothesis-show-statistics \
		tests/api/test_schema_conformance.py tests/api/test_fuzz.py \
		"tests/api/test_events.py::test_the_stream_takes_any_header_or_query_string_without_a_server_error"

## bench: throughput and latency against raw django-q2, command runs against django-q2 and
## supervisord, service tasks against supervisord (each on SQLite and on PostgreSQL), API reads,
## the scheduler, live events, file watchers against watchmedo (inotify, then polling)
bench: setup $(BENCH_VENV)/bin/supervisord $(BENCH_VENV)/bin/watchmedo
	scripts/install-test-deps
	scripts/with-postgres $(PY) bench/throughput.py --database both
	scripts/with-postgres $(PY) bench/process.py --database both --supervisord $(BENCH_VENV)/bin/supervisord
	scripts/with-postgres $(PY) bench/services.py --database both --supervisord $(BENCH_VENV)/bin/supervisord
	$(PY) bench/api.py
	$(PY) bench/scheduler.py
	$(PY) bench/events.py
	$(PY) bench/watchers.py --watchmedo $(BENCH_VENV)/bin/watchmedo
	$(PY) bench/watchers.py --watchmedo $(BENCH_VENV)/bin/watchmedo --mode polling --bursts 10

## soak: 100,000 triggers from 4 HTTP clients against one serve, on SQLite then on PostgreSQL:
## drain rate with a short and a 10,000-deep backlog, 5xx, memory of every process (long: ~1 h)
soak: setup
	scripts/install-test-deps
	$(PY) bench/soak.py --database sqlite
	scripts/with-postgres $(PY) bench/soak.py --database postgres

clean:
	rm -rf $(VENV) var taskdeck.sqlite3*
