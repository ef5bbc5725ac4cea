# Two commands matter: `make run` and `make test` (see README.md). Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-pgbouncer test-embedded venv lint importlint typecheck format migrate worker worker-default worker-counters worker-media worker-reports beat tools clean bench-web bench-db stack loadtest loadtest-goals monitoring

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

run: venv
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py seed_demo --capacity-history
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The PostgreSQL + Redis suite through a real PgBouncer in transaction mode (DATABASE_POOLER=pgbouncer): a
# PgBouncer from deploy/pgbouncer/pgbouncer.ini on a spare port in a temporary folder, in front of
# PGBOUNCER_SERVER_URL (postgres://postgres@127.0.0.1:5432), stopped by its pid at the end. Needs REDIS_URL
# and Debian's pgbouncer. See deploy/pgbouncer.py and docs/operations.md, "PgBouncer".
test-pgbouncer: venv
	$(BIN)/python deploy/pgbouncer.py test $(PYTEST_ARGS)

lint: venv importlint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The layers (README, "Layout"): import-linter's contracts in pyproject.toml. An import in the wrong direction,
# even inside a function, or a new cycle inside a package fails.
importlint: venv
	$(BIN)/lint-imports --no-cache

# mypy with django-stubs over the app packages (pyproject.toml [tool.mypy]), at zero errors. Its Django plugin
# imports the settings: on the embedded defaults, so the shell's DATABASE_URL or DJANGO_ENV do not matter.
# Never from .mypy_cache (about 15 s instead of 1): the plugin does not tell mypy that what reads a setting
# depends on settings.py, so a cached run can pass after a setting's type changed.
typecheck: venv
	env -u DJANGO_ENV -u DATABASE_URL -u REDIS_URL $(BIN)/mypy --no-incremental

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrate: venv
	$(BIN)/python manage.py migrate --no-input

# Celery: one queue per workload (settings.CELERY_TASK_ROUTES, README "Celery"). In development `make worker`
# consumes every queue; in production run one worker per queue (worker-default, worker-counters, worker-media,
# worker-reports), each with its own concurrency, metrics port and multiprocess directory. `make beat`: one only.
WORKER_QUEUES := celery,counters,media,reports

worker: venv
	mkdir -p .run/prometheus-celery
	PROMETHEUS_MULTIPROC_DIR=$(CURDIR)/.run/prometheus-celery CELERY_METRICS_PORT=$${CELERY_METRICS_PORT:-9808} \
		$(BIN)/celery -A sigma_playground worker -Q $(WORKER_QUEUES) --loglevel=INFO --concurrency=2

# The default queue: notifications, CDN purges, cache warming, link checks, the beat heartbeat, housekeeping.
worker-default: venv
	mkdir -p .run/prometheus-celery
	PROMETHEUS_MULTIPROC_DIR=$(CURDIR)/.run/prometheus-celery CELERY_METRICS_PORT=$${CELERY_METRICS_PORT:-9808} \
		$(BIN)/celery -A sigma_playground worker -Q celery -n default@%h --loglevel=INFO --concurrency=2

# View flushes (every VIEW_FLUSH_SECONDS) and the nightly recount: two children, so the recount's minutes
# never stop the flushes.
worker-counters: venv
	mkdir -p .run/prometheus-celery-counters
	PROMETHEUS_MULTIPROC_DIR=$(CURDIR)/.run/prometheus-celery-counters CELERY_METRICS_PORT=$${CELERY_COUNTERS_METRICS_PORT:-9810} \
		$(BIN)/celery -A sigma_playground worker -Q counters -n counters@%h --loglevel=INFO --concurrency=2

# Thumbnail renders and embed previews (needs chromium, see README): one child, a browser holds a few hundred MB.
worker-media: venv
	mkdir -p .run/prometheus-celery-media
	PROMETHEUS_MULTIPROC_DIR=$(CURDIR)/.run/prometheus-celery-media CELERY_METRICS_PORT=$${CELERY_MEDIA_METRICS_PORT:-9809} \
		$(BIN)/celery -A sigma_playground worker -Q media -n media@%h --loglevel=INFO --concurrency=1

# Capacity samples and reports, trending, the search word list: scans of big tables, one at a time.
worker-reports: venv
	mkdir -p .run/prometheus-celery-reports
	PROMETHEUS_MULTIPROC_DIR=$(CURDIR)/.run/prometheus-celery-reports CELERY_METRICS_PORT=$${CELERY_REPORTS_METRICS_PORT:-9811} \
		$(BIN)/celery -A sigma_playground worker -Q reports -n reports@%h --loglevel=INFO --concurrency=1

beat: venv
	$(BIN)/celery -A sigma_playground beat --loglevel=INFO

# The site as deployed (docs/edge.md): Varnish (CDN, :8080) -> nginx (:8081) -> gunicorn (:8082), a Celery
# worker and beat, on DATABASE_URL and REDIS_URL; configs and logs in .run/stack/; Ctrl-C stops everything.
# WEB_INSTANCES=N: N gunicorn masters (:8082, :8083, ...) behind nginx's upstream. REPLICAS=N: the stack's own
# PostgreSQL (a primary on :5440, initdb'd, migrated and seeded; DATABASE_URL is not used) and N streaming
# replicas of it (pg_basebackup -R, :5441, ...) that the public pages read (docs/scaling.md);
# STACK_SEED_WORKBOOKS=N adds N bulk workbooks to that database.
WEB_INSTANCES ?= 1
REPLICAS ?= 0
stack: venv
	WEB_INSTANCES=$(WEB_INSTANCES) REPLICAS=$(REPLICAS) $(BIN)/python deploy/stack.py

# Debian's chromium and promtool, for the browser and alert-rule tests (root; .ci/run does the same).
tools:
	command -v chromium >/dev/null && command -v promtool >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium prometheus)

# The monitoring stack against the local site (deploy/README.md, "The stack locally"): Prometheus with the
# project's config and rules on :9090, node-exporter, postgres-exporter and redis-exporter; Ctrl-C stops it.
# Run the site (make run, or gunicorn) and a worker (make worker, metrics on :9808) beside it. The Debian
# packages are installed when missing (root). DATABASE_URL and REDIS_URL name what the exporters read.
MONITORING_PACKAGES := prometheus prometheus-node-exporter prometheus-postgres-exporter prometheus-redis-exporter

monitoring: venv
	@for bin in $(MONITORING_PACKAGES); do command -v $$bin >/dev/null || missing="$$missing $$bin"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi
	$(BIN)/python deploy/monitoring_stack.py --web $(HOST):$(PORT) --celery 127.0.0.1:$${CELERY_METRICS_PORT:-9808}

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache .mypy_cache

# Database benchmark (not a test, ~15 minutes): a scratch PostgreSQL database (dropped first if it exists,
# dropped again at the end), 100,000 then 1,000,000 workbooks with seed_demo, p50/p95 of every list, search,
# profile and feed query next to a naive baseline, and the goal checks. See docs/performance.md.
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/sigma_bench

bench-db: venv
	@set -e; \
	export DATABASE_URL='$(BENCH_DATABASE_URL)' DJANGO_ENV=development DEBUG=0 DB_SLOW_QUERY_SECONDS=3600; unset REDIS_URL; \
	results_dir=$$(mktemp -d); results=$$results_dir/bench-db.json; \
	trap '$(BIN)/python -m bench.bench_db dropdb; rm -rf "$$results_dir"' EXIT; trap 'exit 130' INT TERM; \
	echo "bench-db: $$(date -u), $$(nproc) CPUs, $$(awk '/MemTotal/ {printf "%.1f GiB", $$2 / 1048576}' /proc/meminfo) memory"; \
	$(BIN)/python -m bench.bench_db createdb; \
	echo "migrate"; $(BIN)/python manage.py migrate --no-input --verbosity 0; \
	echo "seed 100k: seed_demo --workbooks 100000 --users 10000 --favorites 500000 --follows 100000"; \
	$(BIN)/python manage.py seed_demo --workbooks 100000 --users 10000 --favorites 500000 --follows 100000; \
	$(BIN)/python -m bench.bench_db measure --label 100k --results "$$results"; \
	echo "seed up to 1M: seed_demo --workbooks 900000 --users 90000 --favorites 4500000 --follows 900000"; \
	$(BIN)/python manage.py seed_demo --workbooks 900000 --users 90000 --favorites 4500000 --follows 900000; \
	$(BIN)/python -m bench.bench_db measure --label 1M --results "$$results"; \
	$(BIN)/python -m bench.bench_db summary --results "$$results"

# Web benchmark (not a test, ~10 minutes): gunicorn (deploy/gunicorn.conf.py) in production mode on a scratch
# PostgreSQL database (BENCH_WEB_DB: dropped first if it exists, dropped again at the end) with 100,000
# workbooks and Redis BENCH_REDIS_DB / BENCH_REDIS_BROKER_DB (emptied at the end), driven by wrk from 127.0.0.1:
# a bare WSGI hello-world (the ceiling), /workbooks/ with the page cache on and off, a detail page with view
# counting on and off. Prints req/s and p50/p95/p99 per scenario, the ratios and the goals. See
# docs/performance.md. Pick databases nobody else uses: make bench-web BENCH_WEB_DB=sigma_webbench_me BENCH_REDIS_DB=14
BENCH_WEB_DB ?= sigma_webbench
BENCH_REDIS_DB ?= 10
BENCH_REDIS_BROKER_DB ?= $(shell echo $$(($(BENCH_REDIS_DB) + 1)))

bench-web: venv
	@command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)
	BENCH_WEB_DB=$(BENCH_WEB_DB) BENCH_REDIS_DB=$(BENCH_REDIS_DB) BENCH_REDIS_BROKER_DB=$(BENCH_REDIS_BROKER_DB) \
		$(BIN)/python bench/bench_web.py

# The design's load test (not a test, 9 minutes at LOADTEST_TIME_SCALE=1, 1:48 at the default 0.2, per
# scenario): load-test users, then `python -m loadtest` (Locust, an open arrival model, the phases in
# settings.LOAD_TEST) against LOADTEST_BASE_URL (default: `make stack`'s CDN tier, :8080), then loadtest_cleanup. This shell's
# DATABASE_URL must be the target's database (for the users and the cleanup). Prints per-phase and per-route
# figures and the SLA verdict, writes HTML reports to .run/loadtest, appends the figures to docs/performance.md
# and fails when a verdict fails. Production over plain http on loopback needs LOADTEST_INSECURE_COOKIES=1
# on the server (README, "Load test").
LOADTEST_BASE_URL ?= http://127.0.0.1:8080
LOADTEST_SCENARIOS ?= design,anonymous,logged_in
LOADTEST_TIME_SCALE ?= 0.2
LOADTEST_USERS ?= 1000
LOADTEST_GOALS_USERS ?= 200

loadtest: venv
	$(BIN)/python manage.py loadtest_users --count $(LOADTEST_USERS)
	@status=0; $(BIN)/python -m loadtest --base-url $(LOADTEST_BASE_URL) --scenario $(LOADTEST_SCENARIOS) \
		--time-scale $(LOADTEST_TIME_SCALE) --users $(LOADTEST_USERS) --report-dir .run/loadtest \
		--append-docs docs/performance.md $(LOADTEST_ARGS) || status=$$?; \
	$(BIN)/python manage.py loadtest_cleanup; exit $$status

# Issue 15's goals on this machine (not a test, ~15 minutes on a quiet machine): starts `make stack` on free
# ports (DATABASE_URL and REDIS_URL: the stack's, the next Redis db its broker), measures every goal of the
# issue's section 6 and section 3's acceptance (loadtest/goals_run.py; numbers in settings.LOAD_TEST["goals"]),
# prints each with its figure and PASS/FAIL, writes a goals page and a report per run to .run/loadtest,
# appends the figures to docs/performance.md, stops the stack and removes what the run created; exits 1 when
# a goal fails. bench-web's uncached scenario runs last on the same database and empties the same Redis dbs.
# Use a seeded database (seed_demo --workbooks 100000 --users 10000) on a quiet machine.
loadtest-goals: venv
	$(BIN)/python -m loadtest --goals --with-stack --users $(LOADTEST_GOALS_USERS) --report-dir .run/loadtest \
		--append-docs docs/performance.md $(LOADTEST_ARGS)
