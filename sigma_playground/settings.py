"""Django settings for Sigma Playground.

This is the only module that reads the process environment. With nothing set the site runs on embedded
defaults (SQLite in WAL mode, the local-memory cache, eager Celery, DEBUG on) so ``make run`` works
anywhere. ``DATABASE_URL`` and ``REDIS_URL`` switch to PostgreSQL and Redis; ``DJANGO_ENV=production``
turns on production mode, which refuses to start without its secrets (see README.md).
"""

from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    value = value.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    value = os.environ.get(name, "")
    items = [item.strip() for item in value.split(",") if item.strip()]
    return items or list(default or [])


# --- Mode -----------------------------------------------------------------------------------------------

DJANGO_ENV = env_str("DJANGO_ENV", "development").lower()
if DJANGO_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"DJANGO_ENV must be 'development' or 'production', got {DJANGO_ENV!r}")
PRODUCTION = DJANGO_ENV == "production"

DEBUG = env_bool("DEBUG", default=not PRODUCTION)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG cannot be on in production mode (DJANGO_ENV=production).")

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("Production mode needs SECRET_KEY (50+ random characters).")
    SECRET_KEY = "dev-insecure-8f3c2a1e9b7d4c6a5e0f1d2c3b4a5968778695a4b3c2d1e0f"  # noqa: S105 (development only; production requires SECRET_KEY)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
if not ALLOWED_HOSTS:
    if PRODUCTION:
        raise ImproperlyConfigured("Production mode needs ALLOWED_HOSTS (comma-separated host names).")
    ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# --- Applications ---------------------------------------------------------------------------------------

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_prometheus",
    "django_celery_beat",
    "csp",
    "axes",
    "accounts",
    "workbooks",
    "notifications",
    "monitoring",
]

MIDDLEWARE = [
    "sigma_playground.request_metrics.PrometheusBeforeMiddleware",
    "sigma_playground.request_id.RequestIdMiddleware",
    # A NUL in the path, query or cookies is a 400 before anything reads them (PostgreSQL text cannot hold it).
    "sigma_playground.middleware.NulCharacterMiddleware",
    # Anonymous cache hits are answered here, with the headers the middleware below added when the page was
    # stored; nothing below runs for them (sigma_playground/caching/pages.py).
    "sigma_playground.caching.pages.AnonymousPageCacheMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.http.ConditionalGetMiddleware",
    "sigma_playground.http_caching.CacheControlMiddleware",
    "sigma_playground.middleware.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # A view that fails because PostgreSQL is unreachable answers the styled 503 (sigma_playground.db_breaker).
    "sigma_playground.db_breaker.DatabaseUnavailableMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # A view that found every password-hashing slot taken answers 503 + Retry-After (sigma_playground.passwords).
    "sigma_playground.passwords.HashingBusyMiddleware",
    "monitoring.middleware.ProfileMiddleware",
    "sigma_playground.request_metrics.PrometheusAfterMiddleware",
    # Turns a login refused by a lockout into the lockout page (429, Retry-After): accounts/throttling.py.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "sigma_playground.urls"
WSGI_APPLICATION = "sigma_playground.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
                "notifications.context_processors.bell",
                "sigma_playground.site.share_context",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL")
DB_STATEMENT_TIMEOUT_MS = env_int("DB_STATEMENT_TIMEOUT_MS", 30_000)
DB_IDLE_IN_TRANSACTION_TIMEOUT_MS = env_int("DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", 60_000)
# Statements slower than this are logged (parameters redacted) and aggregated for staff.
DB_SLOW_QUERY_SECONDS = env_float("DB_SLOW_QUERY_SECONDS", 1.0)

if DATABASE_URL:
    _db = dj_database_url.parse(DATABASE_URL)
    if _db["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            "DATABASE_URL must be a postgres:// URL (SQLite is the default without it)."
        )
    # Django's built-in psycopg pool: connections are returned to the pool after each request, so
    # CONN_MAX_AGE must stay 0 (Django refuses persistent connections together with a pool).
    _db["CONN_MAX_AGE"] = 0
    _db["CONN_HEALTH_CHECKS"] = True
    # Django's backend plus the database circuit breaker (sigma_playground.db_breaker): with PostgreSQL down,
    # requests that need it get a 503 in milliseconds instead of holding a thread for the pool timeout.
    _db["ENGINE"] = "sigma_playground.postgresql"
    _db["OPTIONS"] = {
        "pool": {
            "min_size": env_int("DB_POOL_MIN_SIZE", 5),
            "max_size": env_int("DB_POOL_MAX_SIZE", 20),
            "timeout": env_float("DB_POOL_TIMEOUT", 60.0),
        },
        # Set once per physical connection by libpq, so every pooled connection carries them.
        # jit=off: JIT compilation pays off for long analytic queries; for our millisecond page queries
        # its compile time (tens to hundreds of ms, triggered by high cost estimates) is pure loss.
        "options": (
            f"-c statement_timeout={DB_STATEMENT_TIMEOUT_MS}"
            f" -c idle_in_transaction_session_timeout={DB_IDLE_IN_TRANSACTION_TIMEOUT_MS}"
            " -c jit=off"
        ),
        "application_name": env_str("DB_APPLICATION_NAME", "sigma_playground"),
        # A server that does not answer (a hung host, not a refused connection) is given up on after this.
        "connect_timeout": env_int("DB_CONNECT_TIMEOUT", 2),
    }
    DATABASES = {"default": _db}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("SQLITE_PATH") or str(BASE_DIR / "db.sqlite3"),
            "OPTIONS": {
                # WAL lets readers proceed while one writer writes; "IMMEDIATE" avoids the
                # deferred-transaction upgrade deadlock that surfaces as "database is locked".
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# After the database is found unreachable, each process fails requests that need it at once (a 503 with
# Retry-After) for this long, then lets one request probe it (sigma_playground.db_breaker).
DB_BREAKER_SECONDS = env_float("DB_BREAKER_SECONDS", 2.0)

# --- Read replicas (sigma_playground/replicas, docs/scaling.md "Read replicas") ---------------------------
# Streaming replicas of DATABASE_URL, comma-separated postgres:// URLs (empty: none, nothing changes). Each
# becomes the alias replica_<n> with the primary's engine and options (pool, timeouts, breaker); reads of the
# public gallery pages go to a healthy one, everything else (writes, transactions, staff, admin, a client that
# wrote within REPLICA_PIN_SECONDS) to the primary.
DATABASE_REPLICA_URLS = env_list("DATABASE_REPLICA_URLS")
# A replica further behind the primary than this is skipped until it catches up (also the ReplicaLagHigh alert).
REPLICA_MAX_LAG_SECONDS = env_float("REPLICA_MAX_LAG_SECONDS", 5.0)
# Each process measures each replica's lag this often (a background thread; one query each on the primary and
# the replica). Must be well under the bound, or a healthy replica would age past it between two measurements.
REPLICA_CHECK_SECONDS = env_float("REPLICA_CHECK_SECONDS", 1.0)
# After a request that wrote, the client reads from the primary for this long (a signed cookie). At least the
# lag bound plus a second (the cookie's clock has whole seconds): by then any replica still in use has the write.
REPLICA_PIN_SECONDS = env_int("REPLICA_PIN_SECONDS", 10)
# How long a request waits for a replica connection before reading from the primary instead.
REPLICA_CONNECT_WAIT_SECONDS = env_float("REPLICA_CONNECT_WAIT_SECONDS", 0.5)
DATABASE_REPLICAS: list[str] = []  # the replicas' aliases, in order
if DATABASE_REPLICA_URLS:
    if not DATABASE_URL:
        raise ImproperlyConfigured("DATABASE_REPLICA_URLS needs DATABASE_URL (the primary) as well.")
    if not 0 < REPLICA_CHECK_SECONDS * 2 <= REPLICA_MAX_LAG_SECONDS:
        raise ImproperlyConfigured(
            "REPLICA_CHECK_SECONDS must be positive and at most half of REPLICA_MAX_LAG_SECONDS."
        )
    if REPLICA_PIN_SECONDS < REPLICA_MAX_LAG_SECONDS + 1:
        raise ImproperlyConfigured("REPLICA_PIN_SECONDS must be at least REPLICA_MAX_LAG_SECONDS + 1.")
    for _index, _url in enumerate(DATABASE_REPLICA_URLS):
        _replica = dj_database_url.parse(_url)
        if _replica["ENGINE"] != "django.db.backends.postgresql":
            raise ImproperlyConfigured(f"DATABASE_REPLICA_URLS: entry {_index + 1} is not a postgres:// URL.")
        _alias = f"replica_{_index}"
        _options = copy.deepcopy(DATABASES["default"]["OPTIONS"])
        if "application_name" in _options:  # pg_stat_activity on the replica says which alias and process
            _options["application_name"] = f"{_options['application_name']}:{_alias}"
        DATABASES[_alias] = {
            **copy.deepcopy(DATABASES["default"]),
            "NAME": _replica["NAME"],
            "USER": _replica["USER"],
            "PASSWORD": _replica["PASSWORD"],
            "HOST": _replica["HOST"],
            "PORT": _replica["PORT"],
            "OPTIONS": _options,
            # Tests never get a database of their own for a replica: it is the primary's test database.
            "TEST": {"MIRROR": "default"},
        }
        DATABASE_REPLICAS.append(_alias)
    DATABASE_ROUTERS = ["sigma_playground.replicas.router.ReplicaRouter"]
    # Below the page cache (its hits never reach the database) and above the session middleware (its writes
    # count as the request's): marks public page reads, pins clients that wrote.
    MIDDLEWARE.insert(
        MIDDLEWARE.index("sigma_playground.caching.pages.AnonymousPageCacheMiddleware") + 1,
        "sigma_playground.replicas.middleware.ReplicaRoutingMiddleware",
    )
# --- end of read replicas -----------------------------------------------------------------------------------

# DATABASE_POOLER=pgbouncer: DATABASE_URL names PgBouncer in transaction mode (docs/operations.md, "PgBouncer"),
# where consecutive transactions of one client may run on different server connections, so nothing may lean
# on a session. Everything that needs switches together, for every PostgreSQL alias:
# - Django's pool off (PgBouncer is the pool; a process opens a cheap client connection per request);
# - psycopg's prepared statements off (prepare_threshold None, Django's default, pinned: a statement prepared
#   on one server connection does not exist on the next);
# - no server-side cursors (a named cursor lives in its session; QuerySet.iterator() then fetches everything);
# - no startup "options" (PgBouncer refuses the parameter): statement_timeout,
#   idle_in_transaction_session_timeout, jit and TimeZone are set on the role (ALTER ROLE ... SET) instead.
DATABASE_POOLER = (env_str("DATABASE_POOLER") or "none").lower()
if DATABASE_POOLER not in {"none", "pgbouncer"}:
    raise ImproperlyConfigured(f"DATABASE_POOLER must be 'none' or 'pgbouncer', got {DATABASE_POOLER!r}")
if DATABASE_POOLER == "pgbouncer":
    # In production a combination that would silently do nothing behind PgBouncer is refused (in development
    # it is ignored: SQLite has nothing to pool, and the pool variables simply do not apply).
    if PRODUCTION and not DATABASE_URL:
        raise ImproperlyConfigured("DATABASE_POOLER=pgbouncer needs DATABASE_URL (PgBouncer's address).")
    _pooled = [name for name in ("DB_POOL_MIN_SIZE", "DB_POOL_MAX_SIZE", "DB_POOL_TIMEOUT") if env_str(name)]
    if PRODUCTION and _pooled:
        raise ImproperlyConfigured(
            f"DATABASE_POOLER=pgbouncer turns Django's connection pool off (PgBouncer pools): unset "
            f"{', '.join(_pooled)} and size the pool in pgbouncer.ini (default_pool_size, query_wait_timeout)."
        )
    _per_connection = [
        name for name in ("DB_STATEMENT_TIMEOUT_MS", "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS") if env_str(name)
    ]
    if PRODUCTION and _per_connection:
        raise ImproperlyConfigured(
            f"DATABASE_POOLER=pgbouncer: PgBouncer refuses per-connection options, so {', '.join(_per_connection)} "
            "would do nothing: unset them and set the values on the role, e.g. ALTER ROLE <user> SET "
            "statement_timeout = '30s' (docs/operations.md, \"PgBouncer\")."
        )
    for _database in DATABASES.values():
        if _database["ENGINE"] == "sigma_playground.postgresql":
            _database["CONN_MAX_AGE"] = 0
            _database["DISABLE_SERVER_SIDE_CURSORS"] = True
            _database["OPTIONS"] = {
                key: value for key, value in _database["OPTIONS"].items() if key not in {"pool", "options"}
            }
            _database["OPTIONS"]["prepare_threshold"] = None

# --- Cache, sessions, Celery ----------------------------------------------------------------------------

REDIS_URL = env_str("REDIS_URL")
# Two roles (docs/operations.md, "Redis"): REDIS_URL is the cache (pages, fragments, sessions' cached copies:
# allkeys-lru with a memory limit); REDIS_DURABLE_URL holds what must not be evicted (generation keys, view
# buffers, the beat lock and, in its next database, the Celery broker: noeviction, appendonly everysec).
# It defaults to REDIS_URL: one Redis for both, as in simple setups.
REDIS_DURABLE_URL = env_str("REDIS_DURABLE_URL") or REDIS_URL
CACHE_SOCKET_TIMEOUT = env_float("CACHE_SOCKET_TIMEOUT", 0.25)


def _redis_url_with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def _redis_db(url: str) -> int:
    path = urlsplit(url).path.strip("/")
    try:
        return int(path) if path else 0
    except ValueError:
        raise ImproperlyConfigured(f"REDIS_URL database must be a number, got {path!r}") from None


if REDIS_DURABLE_URL and not REDIS_URL:
    raise ImproperlyConfigured("REDIS_DURABLE_URL needs REDIS_URL (the cache Redis) as well.")
if REDIS_URL:
    for _name, _url in (("REDIS_URL", REDIS_URL), ("REDIS_DURABLE_URL", REDIS_DURABLE_URL)):
        if urlsplit(_url).scheme not in {"redis", "rediss"}:
            raise ImproperlyConfigured(f"{_name} must be a redis:// or rediss:// URL.")
    CACHES: dict[str, dict[str, Any]] = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "sp"),
            "TIMEOUT": 300,
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                # A dead Redis must cost milliseconds: connection refused is immediate, and a hung
                # server is cut off after CACHE_SOCKET_TIMEOUT seconds.
                "SOCKET_CONNECT_TIMEOUT": CACHE_SOCKET_TIMEOUT,
                "SOCKET_TIMEOUT": CACHE_SOCKET_TIMEOUT,
                # Fail open: errors become cache misses (and a log line), never a 500.
                "IGNORE_EXCEPTIONS": True,
                "CONNECTION_POOL_KWARGS": {"health_check_interval": 30},
                # Values go through JSON, never pickle: whoever can write to Redis must not be able to run
                # code in the web workers by planting a value (sessions, counters and timestamps are JSON;
                # the page cache uses its own data-only frame, sigma_playground/caching/service.py).
                "SERIALIZER": "django_redis.serializers.json.JSONSerializer",
            },
        }
    }
    # Sessions' cached copies (sigma_playground.sessions): the same Redis, but errors are raised, so the
    # session store can trip the cache breaker and fall back to the database at once.
    CACHES["sessions"] = {
        **CACHES["default"],
        "OPTIONS": {**CACHES["default"]["OPTIONS"], "IGNORE_EXCEPTIONS": False},
    }
    # The durable role, read by sigma_playground.caching.service and workbooks.counters through its raw client.
    CACHES["durable"] = {**CACHES["sessions"], "LOCATION": REDIS_DURABLE_URL}
    _broker_default = _redis_url_with_db(REDIS_DURABLE_URL, _redis_db(REDIS_DURABLE_URL) + 1)
    CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or _broker_default
    CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "sigma-playground",
            "TIMEOUT": 300,
        }
    }
    CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or "memory://"
    CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", True)

# Log ignored Redis errors so an outage is visible without taking pages down.
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
DJANGO_REDIS_LOGGER = "sigma_playground.cache"

# Page caching (sigma_playground/caching): whole pages for anonymous visitors, shared fragments for everyone.
PAGE_CACHE_ENABLED = env_bool("PAGE_CACHE_ENABLED", True)
# A page just read from Redis is reused by its process for this long (seconds; 0: never). Bounds how late a
# write shows on other processes, so keep it well under a second. Behind a CDN (a purge backend, below) the
# origin sees only the CDN's misses and revalidations, where the window saves little and would make every
# purge wait for it (CDN_PURGE_DELAY_SECONDS): off by default there.
_CDN_PURGE_BACKEND = env_str("CDN_PURGE_BACKEND", "none").lower()
PAGE_LOCAL_SECONDS = env_float("PAGE_LOCAL_SECONDS", 0.5 if _CDN_PURGE_BACKEND == "none" else 0.0)
# Cached-page hits are answered by the WSGI front (sigma_playground/caching/front.py) before Django's handler.
PAGE_FRONT_ENABLED = env_bool("PAGE_FRONT_ENABLED", True)
# Request metrics of those hits are summed in each process and published this often (sigma_playground/telemetry/batched.py).
METRICS_BATCH_SECONDS = env_float("METRICS_BATCH_SECONDS", 1.0)
# Fresh lifetime of a cached page: also the bound on how far counters on cached pages lag behind.
PAGE_CACHE_TTL = env_int("PAGE_CACHE_TTL", 60)
# Pages and fragments live PAGE_CACHE_TTL shortened by a random fraction up to this (0.2: 48 to 60 s), so those
# stored together expire apart; a page hit in its last PAGE_REFRESH_AHEAD_SECONDS is rebuilt by one request
# while the others get the stored copy (sigma_playground/caching/pages.py). 0 turns either off.
PAGE_CACHE_TTL_JITTER = env_float("PAGE_CACHE_TTL_JITTER", 0.2)
# How late a new workbook's tags may show in the tag directory (/tags/, the popular tags on lists): it is not
# recomputed per publish (workbooks/selectors.py); anything that hides a workbook updates it at once.
TAG_DIRECTORY_SECONDS = env_int("TAG_DIRECTORY_SECONDS", 60)
PAGE_REFRESH_AHEAD_SECONDS = env_float("PAGE_REFRESH_AHEAD_SECONDS", 10.0)
CACHE_STALE_GRACE_SECONDS = env_int("CACHE_STALE_GRACE_SECONDS", 300)  # stale copy kept for stampedes
CACHE_LOCK_SECONDS = 5.0  # a rebuild lock outlives no rebuild by more than this
CACHE_LOCK_WAIT_SECONDS = 2.0  # how long a request waits for another's rebuild of a missing entry
CACHE_RETRY_SECONDS = env_float("CACHE_RETRY_SECONDS", 2.0)  # after a Redis error, skip it this long
# HTTP caching of anonymous pages by browsers and CDNs (sigma_playground.http_caching). Browsers revalidate
# every time (max-age=0 with the ETag: a 304 from the CDN or the origin); shared caches hold pages for
# CDN_SHARED_MAX_AGE seconds, but only when a purge backend can take them back (docs/edge.md).
HTTP_CACHE_MAX_AGE = env_int("HTTP_CACHE_MAX_AGE", 0)
HTTP_CACHE_STALE_WHILE_REVALIDATE = env_int("HTTP_CACHE_STALE_WHILE_REVALIDATE", 0)
MEDIA_CACHE_MAX_AGE = 30 * 24 * 3600  # thumbnails and avatars: names change with every upload
# View counting: buffered in Redis, flushed to the database every VIEW_FLUSH_SECONDS by a beat task.
VIEW_COUNTING_ENABLED = env_bool("VIEW_COUNTING_ENABLED", True)
VIEW_FLUSH_SECONDS = env_int("VIEW_FLUSH_SECONDS", 5)
# A visitor (user id, or client address) counts at most once per workbook per window of this many seconds.
VIEW_DEDUP_SECONDS = env_int("VIEW_DEDUP_SECONDS", 30 * 60)
# Each web process batches its views for this long before one round trip to Redis (0: a round trip per view).
VIEW_PROCESS_FLUSH_SECONDS = env_float("VIEW_PROCESS_FLUSH_SECONDS", 0.5)

# --- CDN (sigma_playground/cdn, docs/edge.md) --------------------------------------------------------------

# Who takes cached pages back when a write makes them stale: none (no shared cache may keep a page), varnish,
# fastly or cloudflare. Every write that bumps a cache generation purges the same surrogate keys at the CDN,
# after commit, through a Celery task.
CDN_PURGE_BACKEND = _CDN_PURGE_BACKEND
if CDN_PURGE_BACKEND not in {"none", "varnish", "fastly", "cloudflare"}:
    raise ImproperlyConfigured(
        f"CDN_PURGE_BACKEND must be none, varnish, fastly or cloudflare, got {CDN_PURGE_BACKEND!r}"
    )
# How long a shared cache may keep a public page (s-maxage and Surrogate-Control). Without a purge backend
# nothing can take a page back, so shared caches get no lifetime of their own (max-age=0 applies to them).
CDN_SHARED_MAX_AGE = env_int("CDN_SHARED_MAX_AGE", 86_400) if CDN_PURGE_BACKEND != "none" else 0
# Varnish instances that receive PURGE requests (every one of them, for a fleet).
CDN_VARNISH_URLS = env_list("CDN_VARNISH_URLS", ["http://127.0.0.1:6081"])
CDN_FASTLY_API_URL = env_str("CDN_FASTLY_API_URL", "https://api.fastly.com")
CDN_FASTLY_SERVICE_ID = env_str("CDN_FASTLY_SERVICE_ID")
CDN_FASTLY_API_TOKEN = env_str("CDN_FASTLY_API_TOKEN")
# Fastly's soft purge marks objects stale instead of removing them: never for us, a stale private page
# must not be served while the origin is asked again.
CDN_CLOUDFLARE_API_URL = env_str("CDN_CLOUDFLARE_API_URL", "https://api.cloudflare.com/client/v4")
CDN_CLOUDFLARE_ZONE_ID = env_str("CDN_CLOUDFLARE_ZONE_ID")
CDN_CLOUDFLARE_API_TOKEN = env_str("CDN_CLOUDFLARE_API_TOKEN")
if PRODUCTION and CDN_PURGE_BACKEND == "fastly" and not (CDN_FASTLY_SERVICE_ID and CDN_FASTLY_API_TOKEN):
    raise ImproperlyConfigured(
        "CDN_PURGE_BACKEND=fastly needs CDN_FASTLY_SERVICE_ID and CDN_FASTLY_API_TOKEN."
    )
if (
    PRODUCTION
    and CDN_PURGE_BACKEND == "cloudflare"
    and not (CDN_CLOUDFLARE_ZONE_ID and CDN_CLOUDFLARE_API_TOKEN)
):
    raise ImproperlyConfigured(
        "CDN_PURGE_BACKEND=cloudflare needs CDN_CLOUDFLARE_ZONE_ID and CDN_CLOUDFLARE_API_TOKEN."
    )
# Seconds one purge request may take before it counts as failed (and is retried).
CDN_PURGE_TIMEOUT = env_float("CDN_PURGE_TIMEOUT", 5.0)
# A purge waits this long after the commit: writes in that window are sent together (one purge per key),
# and web processes have dropped their in-process copies (PAGE_LOCAL_SECONDS) before the CDN asks again, so
# it cannot store the page it just lost. 0.1 s behind a CDN (no in-process copies), 0.6 s if they are on.
CDN_PURGE_DELAY_SECONDS = env_float("CDN_PURGE_DELAY_SECONDS", PAGE_LOCAL_SECONDS + 0.1)
# Retries of a failed purge (backoff 1, 2, 4 ... 60 s); after that the keys wait for the periodic sweep.
CDN_PURGE_MAX_RETRIES = env_int("CDN_PURGE_MAX_RETRIES", 8)

# /readyz with Redis down: 503 "degraded" (True) or 200 "degraded" (False); see sigma_playground.health.
READINESS_REQUIRES_CACHE = env_bool("READINESS_REQUIRES_CACHE", True)

# cached_db: reads hit the cache, writes go to both, so sessions survive a Redis outage or flush; ours skips
# the cache while its breaker is open (a paused Redis costs logged-in requests no socket timeouts).
SESSION_ENGINE = "sigma_playground.sessions"
SESSION_CACHE_ALIAS = "sessions" if REDIS_URL else "default"

CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A broker error that is not a lost connection (the durable Redis at its memory limit refuses even the ZREM of an
# ack, inside kombu's MULTI) reconnects the consumer like a lost connection does; without this the worker logs
# "Unrecoverable error" and exits, and the whole queue waits for someone to restart it (the fault suite).
CELERY_BROKER_CHANNEL_ERROR_RETRY = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"
# django-celery-beat's database scheduler, run by one beat at a time (a lock in the durable Redis, renewed on
# every tick; a second beat stands by and says so): sigma_playground.beat.
CELERY_BEAT_SCHEDULER = "sigma_playground.beat:LockedDatabaseScheduler"
BEAT_LOCK_SECONDS = env_float("BEAT_LOCK_SECONDS", 30.0)
# Task modules outside the installed apps.
CELERY_IMPORTS = ["sigma_playground.cdn.tasks"]
# Where each task goes, in one place: a queue per workload, each consumed by its own worker in production (README
# "Celery": the command and concurrency of each; `make worker` consumes all of them in development), so a
# flood in one never delays another. Beat stays single (sigma_playground.beat) and only publishes.
# - celery (the default, CELERY_TASK_DEFAULT_QUEUE): notifications, CDN purges, cache warming, the link checker,
#   the beat heartbeat, housekeeping; every task without a route.
# - counters: the view flush (every VIEW_FLUSH_SECONDS, milliseconds each: counts and trending lag behind while
#   it waits) and the nightly recount (its worker has two children, so the recount never stops the flushes).
# - media: thumbnail renders (seconds of CPU per image), embed preview captures (a browser), and the beat jobs
#   that queue them: behind a backlog of renders they run after it, and so do not queue its renders again.
# - reports: capacity samples, roll-up and report, trending scores, the search word list: scans of big tables.
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "celery")
COUNTERS_QUEUE = "counters"
MEDIA_QUEUE = "media"
REPORTS_QUEUE = "reports"
# Every queue: what `make worker`, `make stack` and the fault suite's worker consume (tests/test_worker_queues.py
# checks that they and the README name all of them).
WORKER_QUEUES = (CELERY_TASK_DEFAULT_QUEUE, COUNTERS_QUEUE, MEDIA_QUEUE, REPORTS_QUEUE)
CELERY_TASK_ROUTES = {
    "workbooks.tasks.flush_views": {"queue": COUNTERS_QUEUE},
    "workbooks.tasks.recount_counters": {"queue": COUNTERS_QUEUE},
    "workbooks.tasks.capture_embed_preview": {"queue": MEDIA_QUEUE},
    "workbooks.tasks.render_thumbnail_derivatives": {"queue": MEDIA_QUEUE},
    "workbooks.tasks.render_pending_thumbnails": {"queue": MEDIA_QUEUE},
    "workbooks.tasks.refresh_embed_previews": {"queue": MEDIA_QUEUE},
    "workbooks.tasks.sweep_orphan_masters": {"queue": MEDIA_QUEUE},
    "monitoring.tasks.capacity_sample": {"queue": REPORTS_QUEUE},
    "monitoring.tasks.capacity_retention": {"queue": REPORTS_QUEUE},
    "monitoring.tasks.capacity_report": {"queue": REPORTS_QUEUE},
    "workbooks.tasks.recompute_trending": {"queue": REPORTS_QUEUE},
    "workbooks.tasks.refresh_search_lexemes": {"queue": REPORTS_QUEUE},
}
# Every periodic job, in one place. The database scheduler copies these into django-celery-beat's tables
# at start, where staff can see and change them in admin.
CELERY_BEAT_SCHEDULE = {
    "flush-views": {
        "task": "workbooks.tasks.flush_views",
        "schedule": float(env_int("VIEW_FLUSH_SECONDS", 5)),
    },
    "warm-cache": {
        "task": "workbooks.tasks.warm_cache",
        "schedule": float(env_int("CACHE_WARM_SECONDS", 300)),
    },
    "recount-counters": {
        "task": "workbooks.tasks.recount_counters",
        "schedule": crontab(hour=3, minute=17),
    },
    "recompute-trending": {
        "task": "workbooks.tasks.recompute_trending",
        "schedule": float(env_int("TRENDING_REFRESH_SECONDS", 600)),
    },
    "refresh-search-lexemes": {
        "task": "workbooks.tasks.refresh_search_lexemes",
        "schedule": 24 * 3600.0,
    },
    # Embed links looked at again (workbooks.linkcheck); a run that would start late is dropped.
    "check-embed-links": {
        "task": "workbooks.tasks.check_embed_links",
        "schedule": float(env_int("EMBED_CHECK_EVERY_SECONDS", 60)),
        "options": {"expires": max(1, env_int("EMBED_CHECK_EVERY_SECONDS", 60) - 5)},
    },
    "refresh-embed-previews": {
        "task": "workbooks.tasks.refresh_embed_previews",
        "schedule": 600.0,
        "options": {"expires": 590},
    },
    "render-pending-thumbnails": {
        "task": "workbooks.tasks.render_pending_thumbnails",
        "schedule": 300.0,
    },
    "notifications-digest": {
        "task": "notifications.tasks.send_digests",
        "schedule": crontab(hour=7, minute=5),
    },
    "notifications-cleanup": {
        "task": "notifications.tasks.cleanup_notifications",
        "schedule": crontab(hour=3, minute=41),
    },
    # Proves beat -> broker -> worker works; alerts and the health diagnosis watch its timestamp. Every
    # minute (the alert's 180 s is three missed beats); BEAT_HEARTBEAT_SECONDS only for tests of the stack.
    "monitoring-beat-heartbeat": {
        "task": "monitoring.tasks.beat_heartbeat",
        "schedule": float(env_int("BEAT_HEARTBEAT_SECONDS", 60)),
        "options": {"expires": max(1, env_int("BEAT_HEARTBEAT_SECONDS", 60) - 5)},
    },
    # Capacity planning (monitoring/capacity, docs/capacity.md): a sample of every resource, the hourly
    # roll-up and retention, and the daily report. A sample that would run late is dropped, not queued.
    "capacity-sample": {
        "task": "monitoring.tasks.capacity_sample",
        "schedule": float(env_int("CAPACITY_SAMPLE_SECONDS", 60)),
        "options": {"expires": max(1, env_int("CAPACITY_SAMPLE_SECONDS", 60) - 5)},
    },
    "capacity-retention": {
        "task": "monitoring.tasks.capacity_retention",
        "schedule": crontab(minute=7),
    },
    # Keys whose purge is still owed (a task lost, or retries exhausted while the CDN was down) are sent again.
    "cdn-purge-sweep": {
        "task": "sigma_playground.cdn.tasks.purge_pending",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "capacity-report": {
        "task": "monitoring.tasks.capacity_report",
        "schedule": crontab(hour=4, minute=23),
    },
    # Housekeeping: expired sessions (the table grew forever), thumbnail masters no workbook uses.
    "clear-expired-sessions": {
        "task": "accounts.tasks.clear_expired_sessions",
        "schedule": crontab(hour=2, minute=41),
    },
    "sweep-orphan-thumbnail-masters": {
        "task": "workbooks.tasks.sweep_orphan_masters",
        "schedule": crontab(hour=3, minute=53),
    },
}

# --- Email -----------------------------------------------------------------------------------------------

# Password reset and the notification digest send through Django's mail API. No EMAIL_HOST: the console
# backend (development); set: SMTP.
EMAIL_HOST = env_str("EMAIL_HOST")
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Sigma Playground <noreply@localhost>")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Password reset and sign-up confirmation links work this long (Django's default is three days).
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", 24 * 3600)

# --- Notifications (notifications/) ---------------------------------------------------------------------

NOTIFICATION_RETENTION_DAYS = env_int("NOTIFICATION_RETENTION_DAYS", 90)
# Followers written per fan-out task (a new workbook from an author with many followers).
NOTIFICATION_FANOUT_BATCH = env_int("NOTIFICATION_FANOUT_BATCH", 1000)
# Users handled per digest task.
NOTIFICATION_DIGEST_BATCH = env_int("NOTIFICATION_DIGEST_BATCH", 200)

# --- Passwords, log-in throttling, i18n -----------------------------------------------------------------

# django-axes checks lockouts before any password is hashed (its backend comes first), and records failures in
# the database (its database handler), so throttling keeps working with Redis down. See docs/security.md.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
# Locked after this many failures for one account (whatever the address) or from one client address.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_COOLOFF_TIME = dt.timedelta(seconds=env_int("LOGIN_LOCKOUT_SECONDS", 15 * 60))
# Tries during a lockout are refused and do not extend it (an attacker cannot keep someone locked forever
# by trying on; the lockout ends LOGIN_LOCKOUT_SECONDS after it began).
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "sigma_playground.client_ip.client_address"
AXES_USERNAME_CALLABLE = "accounts.throttling.username_key"
AXES_LOCKOUT_CALLABLE = "accounts.throttling.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False  # our own log line per lockout (accounts.throttling) instead of axes' banner
# Sign-ups per client address per hour (0: unlimited).
SIGNUP_LIMIT_PER_HOUR = env_int("SIGNUP_LIMIT_PER_HOUR", 5)
# Requests to change one's email address per user per hour (0: unlimited): each checks a password and sends
# two emails, one of them to an address the user chose.
EMAIL_CHANGES_PER_HOUR = env_int("EMAIL_CHANGES_PER_HOUR", 5)
# Password-reset requests per client address per hour, and reset mails per email address per hour (0:
# unlimited): the form mails whatever address it is given, so without them it is a way to flood an inbox.
PASSWORD_RESETS_PER_HOUR = env_int("PASSWORD_RESETS_PER_HOUR", 5)


# Argon2id (OWASP's 19 MiB, t=2, p=1: about 20 ms of CPU) first: PBKDF2 hashes (208 ms each here) still
# verify and are upgraded at the next login. Both are bounded per process (sigma_playground/passwords.py).
PASSWORD_HASHERS = [
    "sigma_playground.passwords.Argon2idPasswordHasher",
    "sigma_playground.passwords.BoundedPBKDF2PasswordHasher",
]
# Password hashes one process runs at once; beyond them (after waiting PASSWORD_HASH_WAIT_SECONDS) a login
# gets a 503 with Retry-After. One per process: with 2 x cores + 1 processes that already offers more hashes
# than there are cores. The wait lets the other thread's hash finish (~20 ms idle, 100 ms and more on a busy
# machine: at 50 ms two sign-ins a second already met 503s on a loaded machine) while staying well inside
# the SLA's 500 ms.
PASSWORD_HASH_CONCURRENCY = env_int("PASSWORD_HASH_CONCURRENCY", 1)
PASSWORD_HASH_WAIT_SECONDS = env_float("PASSWORD_HASH_WAIT_SECONDS", 0.25)
# Queue time (sigma_playground/queue_time.py): read the proxy's X-Request-Start stamp (nginx sets it, overwriting
# any client's copy; with TRUSTED_PROXY_NETWORKS set, only from those peers), add the wait to request latency,
# and answer requests that waited longer than the budget with a cheap 503 (0: never shed). The budget is the
# SLA's p99 (1 s): a request that already waited that long cannot be answered within the SLA any more.
REQUEST_START_TRUSTED = env_bool("REQUEST_START_TRUSTED", env_bool("BEHIND_TLS_PROXY", PRODUCTION))
REQUEST_QUEUE_BUDGET_SECONDS = env_float("REQUEST_QUEUE_BUDGET_SECONDS", 1.0)
# Retry-After (seconds) on every overload 503: shed requests and refused password hashes.
OVERLOAD_RETRY_AFTER_SECONDS = env_int("OVERLOAD_RETRY_AFTER_SECONDS", 2)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static and media files -----------------------------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT") or BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT") or BASE_DIR / "media")

# Uploaded originals (re-encoded masters) live outside MEDIA_ROOT: nothing serves them; pages use derivatives.
PRIVATE_MEDIA_ROOT = Path(env_str("PRIVATE_MEDIA_ROOT") or BASE_DIR / "private_media")

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "private": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(PRIVATE_MEDIA_ROOT), "base_url": None},
    },
    # Hashed names, gzip and brotli copies; whitenoise serves them with a one-year immutable Cache-Control.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_MAX_AGE = 3600 if not DEBUG else 0

# Uploaded images (profile pictures now, thumbnails later) are decoded, checked and re-encoded.
IMAGE_UPLOAD_MAX_BYTES = env_int("IMAGE_UPLOAD_MAX_BYTES", 5 * 1024 * 1024)
# Pillow warns at 89.5 MP and refuses at twice that; we refuse far below both.
IMAGE_UPLOAD_MAX_PIXELS = env_int("IMAGE_UPLOAD_MAX_PIXELS", 25_000_000)
AVATAR_SIZE = 256
# Any request body above this is answered 413 before it is read (Content-Length) or as soon as a chunked body
# goes over (sigma_playground/body_limit.py): an upload of the largest image plus the rest of the form.
REQUEST_BODY_MAX_BYTES = env_int("REQUEST_BODY_MAX_BYTES", IMAGE_UPLOAD_MAX_BYTES + 1_048_576)
# Reject request bodies (uploads included) well before they fill memory or disk.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# --- Security -------------------------------------------------------------------------------------------

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
# For a load test of production mode over plain http on this machine only (loadtest/, `make loadtest`): a
# client never sends a Secure cookie over http, so the CSRF cookie and the session would never come back.
# Refused in production unless every allowed host is a loopback name: a real site never serves it.
LOADTEST_INSECURE_COOKIES = env_bool("LOADTEST_INSECURE_COOKIES", False)
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
if LOADTEST_INSECURE_COOKIES:
    if PRODUCTION and not set(ALLOWED_HOSTS) <= _LOOPBACK_HOSTS:
        raise ImproperlyConfigured(
            "LOADTEST_INSECURE_COOKIES is for a load test on loopback only: in production every "
            f"ALLOWED_HOSTS entry must be one of {sorted(_LOOPBACK_HOSTS)}, got {ALLOWED_HOSTS}."
        )
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = False
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", PRODUCTION)
# Prometheus scrapes and health probes talk plain HTTP to the app's own address, behind the TLS proxy: a 301
# to https would mark the site down. Exactly these paths (anchored; "/healthz/" or "/metricsx" still
# redirect). /metrics keeps its own access control (METRICS_ALLOWED_NETWORKS or the bearer token).
SECURE_REDIRECT_EXEMPT = [r"^metrics$", r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
# "preload" only makes the domain eligible for browsers' preload lists; submitting it is a separate, manual step.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", PRODUCTION)
if env_bool("BEHIND_TLS_PROXY", PRODUCTION):
    # The reverse proxy terminates TLS and sets X-Forwarded-Proto; it must strip any client-sent copy.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Sigma's public embed host(s); the gallery issue allows exactly these in CSP frame-src.
SIGMA_EMBED_HOSTS = env_list("SIGMA_EMBED_HOSTS", ["app.sigmacomputing.com"])

# The embed link checker (workbooks.linkcheck): batch, threads, request starts per second per host, socket
# timeout, how often a link is looked at (healthy / failing, never more often than the minimum), and how many
# consecutive failures mark a link broken.
EMBED_CHECK_BATCH_SIZE = env_int("EMBED_CHECK_BATCH_SIZE", 200)
EMBED_CHECK_DISCOVER = env_int("EMBED_CHECK_DISCOVER", 1000)
EMBED_CHECK_CONCURRENCY = env_int("EMBED_CHECK_CONCURRENCY", 8)
EMBED_CHECK_HOST_RATE = env_float("EMBED_CHECK_HOST_RATE", 5.0)
EMBED_CHECK_TIMEOUT_SECONDS = env_float("EMBED_CHECK_TIMEOUT_SECONDS", 10.0)
EMBED_CHECK_INTERVAL_SECONDS = env_int("EMBED_CHECK_INTERVAL_SECONDS", 24 * 3600)
EMBED_CHECK_RETRY_SECONDS = env_int("EMBED_CHECK_RETRY_SECONDS", 3600)
EMBED_CHECK_MIN_INTERVAL_SECONDS = env_int("EMBED_CHECK_MIN_INTERVAL_SECONDS", 3600)
EMBED_CHECK_FAILURES_TO_BREAK = env_int("EMBED_CHECK_FAILURES_TO_BREAK", 3)
EMBED_CHECK_USER_AGENT = env_str(
    "EMBED_CHECK_USER_AGENT",
    "SigmaPlayground-LinkChecker/1.0 (Sigma Playground gallery; checks public embed links once a day)",
)

# Previews taken from the embed (workbooks.preview): a Celery task on the `media` queue opens the public embed
# in Debian's headless chromium (Playwright drives it; never a downloaded browser) for workbooks without an
# uploaded thumbnail. Off in the embedded defaults (tasks run in the web process there, and the browser must
# not); on in production when CHROMIUM_PATH is executable. README "Previews" says how to install it.
CHROMIUM_PATH = env_str("CHROMIUM_PATH", "/usr/bin/chromium")
EMBED_PREVIEWS_ENABLED = env_bool("EMBED_PREVIEWS_ENABLED", PRODUCTION and os.access(CHROMIUM_PATH, os.X_OK))
EMBED_PREVIEW_TIMEOUT_SECONDS = env_float(
    "EMBED_PREVIEW_TIMEOUT_SECONDS", 20.0
)  # the page must settle in this
EMBED_PREVIEW_MAX_AGE_DAYS = env_int("EMBED_PREVIEW_MAX_AGE_DAYS", 7)  # re-taken at most this often otherwise
EMBED_PREVIEW_RETRIES = env_int("EMBED_PREVIEW_RETRIES", 3)  # after a failure, with backoff
EMBED_PREVIEW_BACKOFF_SECONDS = env_int("EMBED_PREVIEW_BACKOFF_SECONDS", 300)  # doubles per retry
EMBED_PREVIEW_BATCH = env_int("EMBED_PREVIEW_BATCH", 50)  # previews queued per beat run

# No inline script anywhere: script-src is 'self' only. frame-ancestors 'none' matches X-Frame-Options.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "frame-src": [f"https://{host}" for host in SIGMA_EMBED_HOSTS],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
}

# --- Logging --------------------------------------------------------------------------------------------

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        # One JSON object a line in production: request id, route, status, duration, hashed user id.
        "json": {"()": "sigma_playground.logging_json.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if PRODUCTION else "plain",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # Ignored Redis errors are logged by django-redis here; the filter keeps an outage to a trickle.
        "sigma_playground.cache": {"level": "WARNING", "filters": ["rate_limit"]},
        # A failing readiness check is logged at most every few seconds, not on every probe of an outage.
        "sigma_playground.health": {"level": "INFO", "filters": ["rate_limit"]},
    },
    "filters": {
        "rate_limit": {"()": "sigma_playground.log_filters.RateLimitFilter", "per_seconds": 10},
        "request_id": {"()": "sigma_playground.request_id.RequestIdFilter"},
    },
}

# --- Site -----------------------------------------------------------------------------------------------

PAGE_SIZE = env_int("PAGE_SIZE", 20)
MAX_PAGE_SIZE = 100
# The site's public address, e.g. https://playground.example.com: absolute links in share tags, canonical
# links, feeds, the sitemap, oEmbed and emails. Empty: taken from each request's Host (fine for one host;
# with several ALLOWED_HOSTS set it, since cached pages are shared between hosts).
SITE_URL = env_str("SITE_URL").rstrip("/")
SITE_NAME = "Sigma Playground"
# Workbook thumbnails: derivative widths (px) rendered in AVIF, WebP and JPEG by a Celery task.
THUMBNAIL_WIDTHS = (320, 640, 768, 1024, 1280, 1536)
THUMBNAIL_MAX_BYTES = env_int("THUMBNAIL_MAX_BYTES", IMAGE_UPLOAD_MAX_BYTES)
# A render task is interrupted after this many seconds (soft: it gives up cleanly) and killed 30 s later.
THUMBNAIL_RENDER_TIME_LIMIT = env_int("THUMBNAIL_RENDER_TIME_LIMIT", 60)
# Image uploads (thumbnails and profile pictures) per user per hour (0: unlimited).
IMAGE_UPLOADS_PER_HOUR = env_int("IMAGE_UPLOADS_PER_HOUR", 20)

# --- Monitoring -----------------------------------------------------------------------------------------

# The design's SLA, as data. Alert thresholds (deploy/prometheus/alerts.yml, checked in
# tests/monitoring/test_alert_rules.py), the health diagnosis and load-test verdicts read it through
# monitoring.sla, which also derives the alert levels from it.
SLA = {
    "response_time_ms": {
        "api": {"p50": 200, "p95": 500, "p99": 1000},
        "page_load": {"p50": 1000, "p95": 2000, "p99": 3000},
    },
    "throughput": {"requests_per_second": 1000, "concurrent_users": 5000, "database_connections": 100},
    "availability": {"uptime_percent": 99.9, "max_downtime_hours_per_year": 8.76, "error_rate_percent": 0.1},
    "resource_utilization_percent": {"cpu": 70, "memory": 80, "disk": 85},
    # Not in the design: web.dev's "good" Core Web Vitals, judged at the 75th percentile of page loads.
    "web_vitals_p75": {"lcp_ms": 2500, "inp_ms": 200, "cls": 0.1},
}
# The design's load test, as data (loadtest/, `make loadtest`): phases of an open arrival model (each arrival
# a new visitor doing its scenario's flow once), judged per phase against the SLA above. LOADTEST_TIME_SCALE
# multiplies every duration (0.2: the 1/5 compression), never the rates.
LOAD_TEST: dict[str, Any] = {
    "phases": [
        {"name": "Warm up", "duration_s": 60, "arrivals_per_s": 10},
        {"name": "Ramp up load", "duration_s": 120, "arrivals_per_s": 50},
        {"name": "Sustained load", "duration_s": 300, "arrivals_per_s": 100},
        {"name": "Peak load", "duration_s": 60, "arrivals_per_s": 200},
    ],
    "time_scale": env_float("LOADTEST_TIME_SCALE", 1.0),
    # A client gives up after this long; a response that never came is an error, not a missing sample.
    "request_timeout_s": 10.0,
    # Arrivals still in flight beyond this are refused by the generator (counted as errors): a bound on its
    # own memory when the server stops answering.
    "max_in_flight": 5000,
    # Server CPU seconds one arrival of each scenario costs, as `make loadtest-goals` measured it on a quiet
    # machine (docs/capacity.md: the runs, what "server" covers for each). The capacity report turns them
    # into the cores the phases above need (monitoring/capacity/cost.py).
    "cpu_seconds_per_arrival": {"design": 0.109, "anonymous": 0.0038, "logged_in": 0.088},
    # The `mixed` scenario's weights per arrival: the gallery's mix that docs/scaling.md's model sizes the tiers
    # for and checked against a measured run (an assumption, stated there: mostly anonymous readers, a few
    # members, one arrival in fifty publishing).
    "mix": {"anonymous": 90, "logged_in": 8, "design": 2},
    # The goals on this machine (issue 15, section 6), measured and judged by `python -m loadtest
    # --goals` (`make loadtest-goals`; loadtest/goals.py says how each is judged). Rates in arrivals/s.
    "goals": {
        "design": {
            "warmup": {"duration_s": 20, "arrivals_per_s": 10},
            "sustained": {"duration_s": 60, "arrivals_per_s": 20},
            "p95_ms": 500,
            "max_error_percent": 0.1,
        },
        # Ramps straight to gunicorn: steps of step_s seconds, stopped at the first that fails the SLA or
        # saturates the generator; the ceiling is the best step before it.
        "ramp_step_s": 10,
        "hello_ramp": [200, 400, 700, 1000, 1300, 1600, 2000, 2400, 2800, 3300],
        "anonymous_ramp": [40, 80, 130, 180, 250, 320, 400, 500, 600, 750, 900],
        # Before the anonymous ramp (not judged): the site's page cache after a start is cold.
        "anonymous_warmup": {"duration_s": 30, "arrivals_per_s": 10},
        "min_ratio_to_hello": 0.6,
        # Rebuild waves: the 5-minute anonymous run at this share of its ceiling.
        "anonymous_run": {"duration_s": 300, "share_of_ceiling": 0.8, "rate_without_ramp": 50},
        "waves": {"window_s": 10, "factor": 3.0, "floor_ms": 200},
        # Through the CDN tier, with wrk (closed loop: Locust on 2 shared cores cannot offer 1,000 req/s).
        "cdn": {"requests_per_s": 1000, "p95_ms": 500, "duration_s": 20, "connections": 32},
        "uncached_min_cores": 1.7,
        # Twice the sustainable design rate, through nginx (X-Request-Start: queue time and shedding).
        "overload": {"factor": 2.0, "duration_s": 60, "min_share": 0.99},
        "site_p95_tolerance": 0.2,
        # Not a goal: the logged-in scenario's cost per arrival for docs/capacity.md.
        "logged_in_cost": {"duration_s": 30, "arrivals_per_s": 5},
    },
}
# Operational thresholds the SLA does not state.
MONITORING_THRESHOLDS = {
    "cache_hit_ratio_min": 0.5,
    "cache_min_lookups": 100,  # below this many lookups a hit ratio says nothing
    "beat_heartbeat_max_age_s": 180,  # three missed one-minute heartbeats
    "queue_backlog": 100,
    "slow_query_ms": DB_SLOW_QUERY_SECONDS * 1000,  # the database issue's definition of slow
    "slow_queries_window_s": 3600,
    "slow_queries_max": 10,  # distinct slow statements in the window (the design: more than 10)
}
# Where the diagnosis reads slow queries: a callable returning a list of monitoring.slow_queries.SlowQuery.
# The default reads the slow-statement log the query instrumentation keeps (monitoring.SlowQuery);
# monitoring.slow_queries.pg_stat_statements reads PostgreSQL's extension instead.
MONITORING_SLOW_QUERY_SOURCE = env_str(
    "MONITORING_SLOW_QUERY_SOURCE", "monitoring.slow_queries.slow_query_log"
)
# With it, the diagnosis reads request latency and errors of the whole fleet from Prometheus.
PROMETHEUS_URL = env_str("PROMETHEUS_URL")
# The Prometheus job that scrapes the web processes: rules, dashboard and diagnosis queries select it, so a
# worker's or an exporter's series never mix into user traffic (deploy/prometheus/prometheus.yml).
PROMETHEUS_WEB_JOB = env_str("PROMETHEUS_WEB_JOB", "sigma-web")

# prometheus_client's multiprocess mode writes into PROMETHEUS_MULTIPROC_DIR (set before Python starts, for
# gunicorn and the Celery worker; see deploy/README.md). A missing folder would crash the first metric of any
# process, a manage.py command included: create it here, before any metric exists.
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR")
if PROMETHEUS_MULTIPROC_DIR:
    os.makedirs(PROMETHEUS_MULTIPROC_DIR, exist_ok=True)
# Where the gunicorn web processes write their samples (their PROMETHEUS_MULTIPROC_DIR; deploy/gunicorn.conf.py
# sets it for its own workers). Without PROMETHEUS_URL, the diagnosis and the capacity sampler read the web's
# request and cache counters merged from here, whatever process they run in; never another process's numbers.
PROMETHEUS_WEB_MULTIPROC_DIR = env_str("PROMETHEUS_WEB_MULTIPROC_DIR", "/run/sigma-playground/prometheus-web")

# /metrics answers only these networks (every address in the forwarding chain must be inside), or a
# request carrying this bearer token; everyone else gets a 404.
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", ["127.0.0.0/8", "::1/128"])
METRICS_BEARER_TOKEN = env_str("METRICS_BEARER_TOKEN")
# /monitoring/health.json for machines: staff sessions always, otherwise this bearer token.
HEALTH_BEARER_TOKEN = env_str("HEALTH_BEARER_TOKEN") or METRICS_BEARER_TOKEN
# Our reverse proxies (CIDRs, comma-separated). X-Forwarded-For is read only when the connecting peer is inside
# one of them, and the client is its rightmost address outside them; empty (the default): no forwarded header
# is trusted and the client is REMOTE_ADDR. See sigma_playground/client_ip.py and docs/security.md.
TRUSTED_PROXY_NETWORKS = env_list("TRUSTED_PROXY_NETWORKS")
for _network in TRUSTED_PROXY_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"TRUSTED_PROXY_NETWORKS: {_network!r} is not a network (CIDR).") from None

# django-prometheus request latency buckets (seconds), including the SLA's 0.2 / 0.5 / 1 s. 1.25 and 1.5: under
# overload most requests land between 1 and 2 s, and histogram_quantile interpolates linearly inside a bucket:
# with 1-2 s as one bucket the site reported p95 1.89 s while its clients measured 1.39 s (issue 15, section 3;
# docs/performance.md, "The goals run").
PROMETHEUS_LATENCY_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    1.25,
    1.5,
    2.0,
    3.0,
    5.0,
    10.0,
    30.0,
    float("inf"),
)

# Real-user monitoring: beacons per client per minute, body size, and the data-rum names pages may use.
RUM_RATE_LIMIT_PER_MINUTE = env_int("RUM_RATE_LIMIT_PER_MINUTE", 30)
RUM_MAX_BODY_BYTES = 2048
RUM_INTERACTION_NAMES = (
    "search",
    "publish",
    "login",
    "signup",
    "logout",
    "favorite",
    "unfavorite",
    "follow",
    "unfollow",
    "open_in_sigma",
    "load_more",
)

# Celery workers serve their own metrics on this port (0: off); see README "Monitoring".
CELERY_METRICS_PORT = env_int("CELERY_METRICS_PORT", 0)
CELERY_METRICS_ADDR = env_str("CELERY_METRICS_ADDR", "127.0.0.1")
# Workers log through LOGGING above (JSON in production, with the request id of the task's request).
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Capacity planning (monitoring/capacity, docs/capacity.md) ------------------------------------------

# How often the beat task samples (also its schedule above), and how long samples are kept: every sample for
# CAPACITY_RAW_RETENTION_DAYS, hourly min/mean/max for CAPACITY_HOURLY_RETENTION_DAYS.
CAPACITY_SAMPLE_SECONDS = env_int("CAPACITY_SAMPLE_SECONDS", 60)
CAPACITY_RAW_RETENTION_DAYS = env_int("CAPACITY_RAW_RETENTION_DAYS", 7)
CAPACITY_HOURLY_RETENTION_DAYS = env_int("CAPACITY_HOURLY_RETENTION_DAYS", 400)
# Projections fit the last CAPACITY_HISTORY_DAYS complete days, and are not attempted with fewer than
# CAPACITY_MIN_HISTORY_DAYS days of data (a week: one of each weekday).
CAPACITY_HISTORY_DAYS = env_int("CAPACITY_HISTORY_DAYS", 30)
CAPACITY_MIN_HISTORY_DAYS = env_int("CAPACITY_MIN_HISTORY_DAYS", 7)
# Redis memory threshold, as a percentage of maxmemory (the SLA states none).
CAPACITY_REDIS_MEMORY_PERCENT = env_float("CAPACITY_REDIS_MEMORY_PERCENT", 80.0)
# Where disk use is measured (default: MEDIA_ROOT, as the health diagnosis).
CAPACITY_DISK_PATH = env_str("CAPACITY_DISK_PATH")
# The main tables whose estimated row counts are sampled, by model label.
CAPACITY_TABLES = env_list(
    "CAPACITY_TABLES",
    [
        "accounts.User",
        "accounts.Follow",
        "workbooks.Workbook",
        "workbooks.Favorite",
        "workbooks.Tag",
        "workbooks.WorkbookDailyStat",
        "sessions.Session",
    ],
)
