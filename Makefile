# Incident Portal. `make run` serves the portal with demo data; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export PATH := $(abspath $(VENV))/bin:$(PATH)

# The test suite and benchmarks use the real servers on localhost.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/incidentportal
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run venv install test test-fast test-next-year lint format migrate demo bench chromium prometheus wrk services oidc-provider check-deploy clean cluster-deps cluster-test cluster-test-ci

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q ".[test]"
	touch $@ $(VENV)/.installed-run

venv: $(VENV)/.installed-run
install: $(VENV)/.installed-test

migrate: venv
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py seed_demo

# Web server, Celery worker and beat together (Procfile). With no DATABASE_URL/REDIS_URL set this runs on
# SQLite and a filesystem broker; set them to use PostgreSQL and Redis.
run: demo
	$(PY) manage.py collectstatic --noinput -v 0
	# honcho hands each process its own PORT (default 5000); the web server takes PORT, 8000 unless set.
	# Links in pages, emails and SMS use SITE_URL: from PORT unless SITE_URL is set.
	SITE_URL=$${SITE_URL:-http://localhost:$${PORT:-8000}} $(VENV)/bin/honcho start -p $${PORT:-8000}

# Debian's Chromium for the browser tests (Playwright drives it; no browser is downloaded).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; fi; }

# Debian's Prometheus for the triage-probe tests (tests/watch/prometheus.py starts it on loopback with a temporary
# config and storage, scraping a test target). The tests use only the binary; on a systemd machine the package also
# enables its own service on :9090 (`systemctl disable --now prometheus` if you do not want it).
prometheus:
	@test -x /usr/bin/prometheus || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus; \
	  else sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus; fi; }

# wrk (Debian's package) drives bench/ingest.py's single-event phase: a C load generator leaves the two cores to
# the portal and PostgreSQL.
wrk:
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; \
	  else sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; fi; }

services:
	@bash .ci/services.sh

# The OpenID Provider that the SSO tests start on loopback: npm's oidc-provider (OpenID Certified), run with
# Debian's Node.js, installed from tests/oidc/package-lock.json. Nothing is downloaded while the tests run.
OIDC_PROVIDER_DIR := tests/oidc
$(OIDC_PROVIDER_DIR)/node_modules/.package-lock.json: $(OIDC_PROVIDER_DIR)/package.json $(OIDC_PROVIDER_DIR)/package-lock.json
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm; \
	  else sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm; fi; }
	cd $(OIDC_PROVIDER_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

oidc-provider: $(OIDC_PROVIDER_DIR)/node_modules/.package-lock.json

test: install chromium prometheus services oidc-provider
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest

test-fast: install prometheus oidc-provider
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest -m "not browser and not reliability" -x -q

# The non-browser suite with the clock a year ahead (ticking): nothing may depend on today's date.
test-next-year: install prometheus services oidc-provider
	TEST_CLOCK_SHIFT_DAYS=365 DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
	  $(PY) -m pytest -m "not browser and not reliability"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Benchmarks that work inside a rolled-back transaction use BENCH_DATABASE_URL (created and migrated here); the
# others create and drop their own databases on the same server. bench/cluster.py is not among them: it brings its own
# servers on hosts of its own (make cluster-test).
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/incidentportal_bench

bench: install services wrk
	@$(PY) -c 'import sys, psycopg; from urllib.parse import urlparse; u = urlparse(sys.argv[1]); \
	  c = psycopg.connect(u._replace(path="/postgres").geturl(), autocommit=True); name = u.path.lstrip("/"); \
	  c.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() or c.execute(f"CREATE DATABASE \"{name}\"")' \
	  $(BENCH_DATABASE_URL)
	DATABASE_URL=$(BENCH_DATABASE_URL) $(PY) manage.py migrate --noinput -v 0
	@set -e; for script in bench/*.py; do \
	  [ "$$script" = bench/cluster.py ] && continue; \
	  echo "== $$script"; DATABASE_URL=$(BENCH_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) $$script; done

# bench/cluster.py: the portal on several hosts, each a network namespace on a private bridge (needs root, as CI has).
# Debian's iproute2 (ip netns), haproxy (the balancer), PostgreSQL and Redis (their programs only: the test bed runs
# its own servers, never the machine's). `make cluster-test` runs the issue's sizes (about 10 minutes on two
# cores); CLUSTER_ARGS adds or overrides flags (`--help`). `make cluster-test-ci` is the few-minute run CI does.
CLUSTER_ARGS ?=
cluster-deps:
	@{ command -v ip && command -v haproxy && command -v redis-server && command -v pg_isready && command -v wrk \
	   && ls /usr/lib/postgresql/*/bin/initdb; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	    iproute2 haproxy redis-server postgresql wrk; \
	  else sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	    iproute2 haproxy redis-server postgresql wrk; fi; }

cluster-test: install cluster-deps
	$(PY) bench/cluster.py $(CLUSTER_ARGS)

cluster-test-ci: install cluster-deps
	$(PY) bench/cluster.py --incidents 300 --spread 20 --beat-pages 100 --beat-spread 10 --alerts 6000 --seconds 20 \
	  --keys 600 --outage-pages 60 --web-workers 2 $(CLUSTER_ARGS)

check-deploy: venv
	DEBUG=0 SECRET_KEY=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))') \
	  ALLOWED_HOSTS=incidents.example.com SITE_URL=https://incidents.example.com \
	  $(PY) manage.py check --deploy --fail-level WARNING

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
