# M3SaaS: `make run` serves the demo, `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
SYSTEM_PACKAGES := pkg-config libmariadb-dev mariadb-client
# For the tests only: tests/test_proxy.py runs nginx.conf in front of gunicorn;
# tests/test_admin_browser.py screenshots the admin with headless Chromium.
TEST_SYSTEM_PACKAGES := nginx-light chromium
MARIADB_CONFIG := tests/mariadb.config.json

.PHONY: run serve worker beat test test-sqlite test-mariadb lint check system-deps venv demo bench bench-quick bench-deps clean

## system-deps: install the build headers of mysqlclient, the MariaDB client tools, and nginx and chromium for the tests (root + apt)
system-deps:
	@if { ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ] || ! command -v chromium >/dev/null 2>&1; } && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing $(TEST_SYSTEM_PACKAGES) with apt-get"; \
		apt-get install -y -qq $(TEST_SYSTEM_PACKAGES) >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq $(TEST_SYSTEM_PACKAGES) >/dev/null) || true; \
	fi
	@if pkg-config --exists mariadb 2>/dev/null || pkg-config --exists mysqlclient 2>/dev/null; then \
		command -v mysqldump >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get install -y -qq mariadb-client >/dev/null; } || true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing $(SYSTEM_PACKAGES) with apt-get"; \
		(apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null)); \
	else \
		echo "mysqlclient needs pkg-config and the MariaDB client headers, which are missing."; \
		echo "Install them as root, e.g.: apt-get install $(SYSTEM_PACKAGES)"; \
		echo "(Fedora: dnf install pkgconf mariadb-connector-c-devel; macOS: brew install pkg-config mariadb-connector-c)"; \
		exit 1; \
	fi

$(VENV)/.installed: requirements.txt
	@$(MAKE) --no-print-directory system-deps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

## venv: create .venv with the pinned requirements
venv: $(VENV)/.installed

## demo: migrate the master, seed the demo tenants (embedded default only: with CONFIG_FILE, the operator's seeds), provision their databases, print the demo API key
demo: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed
	$(PY) manage.py migrate_tenants
	$(PY) manage.py tenant_key demo

## run: serve the API (embedded SQLite default unless CONFIG_FILE says otherwise) on HOST:PORT
run: demo
	@KEY=$$($(PY) manage.py tenant_key demo 2>/dev/null | tail -n 1); \
		echo "Serving on http://$(HOST):$(PORT)/  (try: curl -H 'Authorization: Bearer $$KEY' http://$(HOST):$(PORT)/1/test/v1/animals)"
	@echo "  Admin:    http://$(HOST):$(PORT)/admin/  (a login: $(PY) manage.py createsuperuser)"
	@echo "  API docs: http://$(HOST):$(PORT)/schema/  (Swagger UI per module, e.g. /schema/test/v1/docs/)"
	$(PY) manage.py runserver $(HOST):$(PORT)

## serve: what the container runs: migrate, seed (and with AUTO_MIGRATION the tenants), then gunicorn on HOST:PORT
serve: venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" BIND_ADDRESS=$(HOST) PORT=$(PORT) bin/docker-entrypoint.sh prepare
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" BIND_ADDRESS=$(HOST) PORT=$(PORT) bin/docker-entrypoint.sh serve

## worker: a Celery worker for tenant work (needs CELERY_BROKER_URL; WORKER_CONCURRENCY processes, default: CPUs)
worker: venv
	@test -n "$$CELERY_BROKER_URL" || { echo "make worker: set CELERY_BROKER_URL, e.g. redis://127.0.0.1:6379/0 (README, 'Workers (Celery)')"; exit 2; }
	$(VENV)/bin/celery -A m3saas.celery worker -l INFO $(if $(WORKER_CONCURRENCY),--concurrency=$(WORKER_CONCURRENCY))

## beat: the schedule that starts the daily scheduled jobs at CRON_TIME on the workers (run one beat only)
beat: venv
	@test -n "$$CELERY_BROKER_URL" || { echo "make beat: set CELERY_BROKER_URL, e.g. redis://127.0.0.1:6379/0 (README, 'Workers (Celery)')"; exit 2; }
	$(VENV)/bin/celery -A m3saas.celery beat -l INFO

## test: the whole suite, on SQLite and on MariaDB
test: venv
	$(PY) -m pytest
	CONFIG_FILE=$(MARIADB_CONFIG) $(PY) -m pytest

test-sqlite: venv
	$(PY) -m pytest

test-mariadb: venv
	CONFIG_FILE=$(MARIADB_CONFIG) $(PY) -m pytest

## lint: ruff, mypy, Django's checks and a migrations check
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

## bench: what tenancy costs, on the local MariaDB (1,000 tenants, a few minutes); writes docs/performance.md
## (BENCH_QUICK=1 or `make bench-quick`: CI size; BENCH_ARGS: more options, see `python -m bench.run --help`;
##  10,000 tenants, figure 4: BENCH_ARGS="--tenants 10000 --only 4 --light-migrations --output var/performance-10k.md")
bench: venv bench-deps
	BENCH_COMMAND="make bench$(if $(BENCH_QUICK), BENCH_QUICK=$(BENCH_QUICK))$(if $(BENCH_ARGS), BENCH_ARGS='$(BENCH_ARGS)')" \
		$(PY) -m bench.run $(BENCH_ARGS)

## bench-quick: the benchmark at CI size (30 tenants, seconds of load); writes var/performance-quick.md
bench-quick: venv bench-deps
	BENCH_COMMAND="make bench-quick" $(PY) -m bench.run --quick $(BENCH_ARGS)

## bench-deps: wrk, figure 1's second load generator (apt-get, as root; without it figure 1 uses bench/loadgen.py only)
bench-deps:
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		echo "Installing wrk with apt-get" && \
		(apt-get install -y -qq wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)); } || \
		echo "wrk is not installed (apt-get install wrk): figure 1 uses bench/loadgen.py only"

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
