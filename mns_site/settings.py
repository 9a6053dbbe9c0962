"""The gateway's only settings module.

Every knob is an environment variable with a safe default (see ``.env.example``), parsed strictly by
``core.env``. Two shapes come out of it:

- *embedded* (nothing set): SQLite in WAL mode, a Celery worker and beat on kombu's filesystem transport and a
  local-memory cache, everything under ``var/``; no service to install.
- *production*: ``DATABASE_URL`` (PostgreSQL) and ``REDIS_URL`` (broker, result backend, cache), served by gunicorn.
"""

import hashlib
import hmac
from pathlib import Path

from kombu import Exchange, Queue

from core.env import (
    EnvError,
    database_from_url,
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_rate,
    env_str,
    env_url,
    env_url_list,
    local_secret,
)
from core.processes import SENDS_QUEUE

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("MNS_VAR_DIR", str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

MNS_VERSION = "0.1.0"


# --- Core -----------------------------------------------------------------------------------------------------
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", "") or local_secret(VAR_DIR / "secret_key")
if SECRET_KEY.startswith("replace-with"):
    raise EnvError("SECRET_KEY", "<the placeholder from .env.example>", "a random value of 50+ characters")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "mns_site.admin_site.MNSAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "core",
    "maxima",
    "registry",
    "mailboxes",
    "handshake",
    "federation",
    "registration",
    "transparency",
    "entrypoints",
    "onchain",
    "mns_site",  # the top: no models, only the commands that start the whole gateway (rungateway, simnet)
]

MIDDLEWARE = [
    "core.middleware.QueueTimeShedMiddleware",
    "core.middleware.RequestIdMiddleware",
    "mns_site.metrics.RequestMetricsMiddleware",
    "core.middleware.RequestSizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mns_site.urls"
WSGI_APPLICATION = "mns_site.wsgi.application"
ASGI_APPLICATION = "mns_site.asgi.application"
CSRF_FAILURE_VIEW = "mns_site.views.csrf_failure"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Before the apps' folders, so that mns_site's admin/ templates (its style sheet, the index's figures)
        # override the admin's own (the admin app comes first in INSTALLED_APPS).
        "DIRS": [BASE_DIR / "mns_site" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------------------
DATABASE_URL = env_url("DATABASE_URL", None, schemes=("postgres", "postgresql", "sqlite"))
if DATABASE_URL and DATABASE_URL.startswith("sqlite"):
    SQLITE_PATH = Path(DATABASE_URL.removeprefix("sqlite://"))
    DATABASE_URL = None
else:
    SQLITE_PATH = VAR_DIR / "mns.sqlite3"
if DATABASE_URL:
    DATABASES = {"default": database_from_url("DATABASE_URL", DATABASE_URL)}
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # The hottest statements kept prepared on each connection (core.postgresql's execute_prepared); false behind a
    # pooler that hands sessions from client to client (PgBouncer in transaction or statement mode, any version).
    DATABASES["default"]["PREPARED_STATEMENTS"] = env_bool("DATABASE_PREPARED_STATEMENTS", True)
else:
    DATABASES = {
        "default": {
            "ENGINE": "core.sqlite",
            "NAME": SQLITE_PATH,
            # A file, not memory, so that the real worker and web processes a test starts share the test database.
            "TEST": {"NAME": VAR_DIR / "test.sqlite3"},
            "OPTIONS": {
                # WAL lets the web process read while the worker writes; synchronous=FULL keeps every acknowledged
                # commit through a power cut, which is the promise the gateway makes about accepted messages.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, broker and Celery ---------------------------------------------------------------------------------
REDIS_URL = env_url("REDIS_URL", None, schemes=("redis", "rediss"))
# The cache holds each name's signed lookup answer (registry.published): gateways that share one Redis (a test
# cluster, a small host) must never serve each other's, so each keeps its keys under its own database's mark.
_DB = DATABASES["default"]
_DB_MARK = f"{_DB['ENGINE']}|{_DB.get('HOST', '')}|{_DB.get('PORT', '')}|{_DB['NAME']}"
CACHE_KEY_PREFIX = "mns:" + hashlib.sha256(_DB_MARK.encode()).hexdigest()[:12]
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "core.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_KEY_PREFIX,
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "mns"}}

BROKER_DIR = VAR_DIR / "broker"
REDIS_VISIBILITY_TIMEOUT = 30  # the default of CELERY_VISIBILITY_TIMEOUT (Redis broker), explained below
CELERY_BROKER_URL = env_url("CELERY_BROKER_URL", REDIS_URL, schemes=("redis", "rediss", "amqp", "filesystem"))
if CELERY_BROKER_URL is None:
    # With a host named, kombu need not warn on every connection that it is "reverting to default 'localhost'"
    # (the filesystem transport ignores the host; every folder it uses is named below). The transport of the
    # scheme is core.broker's (mns_site/celery.py installs it): kombu's, with messages that appear whole.
    CELERY_BROKER_URL = "filesystem://localhost/"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        # kombu looks at the folder again this long after finding it empty (1 s by default: every message then
        # waited up to a second for its task, ~2 Maxima messages a second on the embedded default).
        "polling_interval": 0.02,
    }
    for folder in ("queue", "processed", "control"):
        (BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)
else:
    # A task a worker took and never acknowledged (the worker was killed) goes back to the queue this many seconds
    # after it was handed out. It must be above the longest a task may run (CELERY_TASK_TIME_LIMIT, 25 s: a task
    # still running must not be handed out twice) and short enough that a killed worker's tasks run again within
    # ~30 s (the fault suite's promise). Kombu looks for such tasks every 2 s (its default, 10 s times 10 calls, would
    # add up to 100 s).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", REDIS_VISIBILITY_TIMEOUT, minimum=10),
        "unacked_restore_interval": 2,
        "unacked_restore_throttle": 1,
    }
# Sends have a queue of their own. A send waits on the node (30 ms for 1 KB and ~10 s for a full message on the
# real network, its RPC timeout for a destination that does not answer), so a worker sized to the CPUs spends its
# processes waiting on sends while the inbox waits on it. In production a worker of threads waits on many sends at
# once (``celery worker -Q sends -P threads``) and the CPU-sized worker leaves them (``-X sends``):
# docs/systemd/mns-sender.service and mns-worker.service, core.processes. A worker started with neither option
# takes both queues, as the embedded default's does (``make run``).
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name, type="direct"), routing_key=name) for name in (CELERY_TASK_DEFAULT_QUEUE, SENDS_QUEUE)
]
CELERY_TASK_ROUTES = {
    task: {"queue": SENDS_QUEUE}
    for task in ("maxima.send_outbound", "maxima.send_outbound_batch", "core.heartbeat_sends")
}
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Every task is bounded: per-message tasks do one claim, one handler or one node RPC (the send's RPC timeout is
# below the soft limit); sweeps and fan-outs only enqueue a bounded batch. The soft limit raises in the task, the
# hard limit kills its process; the visibility timeout (above) and the claim leases (maxima.selectors) are longer.
# The one exception: sending a message the node takes more than a second to send (above ~78 KB) gets longer limits
# and a longer lease, by its size (maxima.timing); its claim turns away a copy the broker hands out meanwhile.
CELERY_TASK_TIME_LIMIT = 25
CELERY_TASK_SOFT_TIME_LIMIT = 20
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes the database connection before and after every task unless this is set: a new
# PostgreSQL connection per task was a seventh of a worker's time. Set, it closes every 10 000 tasks, and
# mns_site.celery checks the connection between tasks the way Django does between requests (CONN_MAX_AGE, errors).
CELERY_DB_REUSE_MAX = 10_000
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULER = "mns_site.celery:HeartbeatScheduler"
CELERY_HEARTBEAT_EVERY = env_int("MNS_HEARTBEAT_EVERY", 15, minimum=1, maximum=3600)

# --- Static files, auth, i18n ----------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- HTTPS and security headers --------------------------------------------------------------------------------
MNS_HTTPS = env_bool("MNS_HTTPS", False)
SECURE_SSL_REDIRECT = MNS_HTTPS
SESSION_COOKIE_SECURE = MNS_HTTPS
CSRF_COOKIE_SECURE = MNS_HTTPS
SECURE_HSTS_SECONDS = env_int("MNS_HSTS_SECONDS", 31536000 if MNS_HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("MNS_HSTS_INCLUDE_SUBDOMAINS", MNS_HTTPS)
SECURE_HSTS_PRELOAD = env_bool("MNS_HSTS_PRELOAD", False)
# The Minima node posts its webhook over plain HTTP on loopback, and load balancers probe health the same way.
SECURE_REDIRECT_EXEMPT = [r"^maxima/hook/", r"^api/v1/health$"]
if env_bool("MNS_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# No script needs the CSRF cookie: the admin's forms carry the token, and the API takes no cookies.
CSRF_COOKIE_HTTPONLY = True

# --- Request limits --------------------------------------------------------------------------------------------
MNS_MAX_REQUEST_BYTES = env_int("MNS_MAX_REQUEST_BYTES", 256 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MNS_MAX_REQUEST_BYTES
# Paths with their own body limit (a Maxima message may carry up to 256 KiB of data, hex-encoded in the webhook).
MNS_REQUEST_LIMITS = {"/maxima/hook/": env_int("MNS_MAX_HOOK_BYTES", 1024 * 1024, minimum=1024)}

# Load shedding behind a front proxy that stamps each request (nginx: proxy_set_header X-Request-Start
# "t=${msec}";): a request that waited longer than this for a worker is answered 503 + Retry-After at once,
# before any work. 0 (the default) turns it off; without the header nothing is shed. README "Limits".
MNS_SHED_AFTER_MS = env_int("MNS_SHED_AFTER_MS", 0, minimum=0, maximum=60_000)
# Admission, per web process: MNS_WEB_ADMIT requests run at once, MNS_WEB_QUEUE more wait, the excess is refused
# 503 + Retry-After at once by a spare thread (gunicorn gthread, MNS_WEB_THREADS in gunicorn.conf.py, above their
# sum). MNS_WEB_ADMIT=0 turns it off. README "Limits", docs/performance.md "Overload".
MNS_WEB_ADMIT = env_int("MNS_WEB_ADMIT", 2, minimum=0, maximum=1000)
MNS_WEB_QUEUE = env_int("MNS_WEB_QUEUE", 14, minimum=0, maximum=1000)
# gunicorn.conf.py reads it too (gunicorn starts before Django); checked here, where a bad value stops the worker.
MNS_WEB_THREADS = env_int("MNS_WEB_THREADS", 24, minimum=1, maximum=1000)
if MNS_WEB_ADMIT and MNS_WEB_THREADS <= MNS_WEB_ADMIT + MNS_WEB_QUEUE:
    raise EnvError(
        "MNS_WEB_THREADS",
        str(MNS_WEB_THREADS),
        f"more than MNS_WEB_ADMIT + MNS_WEB_QUEUE ({MNS_WEB_ADMIT + MNS_WEB_QUEUE}): spare threads refuse the excess",
    )

# Admin login attempts (POSTs) per client address per minute.
MNS_ADMIN_LOGIN_PER_MINUTE = env_int("MNS_ADMIN_LOGIN_PER_MINUTE", 10, minimum=1)

# --- REST API --------------------------------------------------------------------------------------------------
MNS_NUM_PROXIES = env_int("MNS_NUM_PROXIES", 0, minimum=0, maximum=10)
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "core.schema.AutoSchema",
    "EXCEPTION_HANDLER": "core.errors.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "core.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_CLASSES": ["core.throttling.PerIPThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "ip": env_rate("MNS_THROTTLE_PER_IP", "600/min"),
        "lookup": env_rate("MNS_THROTTLE_LOOKUP", "300/min"),
        "write": env_rate("MNS_THROTTLE_WRITE", "30/min"),
        "federation": env_rate("MNS_THROTTLE_FEDERATION", "600/min"),
    },
    "NUM_PROXIES": MNS_NUM_PROXIES,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MNS gateway API",
    "DESCRIPTION": "Names and end-to-end encrypted mailboxes on the Minima network.",
    "VERSION": MNS_VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- The gateway's own policy (published at /.well-known/mns.json) ---------------------------------------------
MNS_GATEWAY_NAME = env_str("MNS_GATEWAY_NAME", "mns-gateway")
MNS_PUBLIC_URL = env_url("MNS_PUBLIC_URL", "http://127.0.0.1:8000", schemes=("http", "https"))
MNS_MAX_MESSAGE_BYTES = env_int("MNS_MAX_MESSAGE_BYTES", 64 * 1024, minimum=1024, maximum=200 * 1024)
MNS_RETENTION_DAYS = env_int("MNS_RETENTION_DAYS", 30, minimum=1, maximum=3650)
MNS_REST_SUBMISSION = env_bool("MNS_REST_SUBMISSION", False)

# --- The Minima node and Maxima --------------------------------------------------------------------------------
# One node, or a pool: URLs separated by commas, the first the gateway's identity node (its key and address are
# the gateway's; maxima/node.py). The password is the same for every node of the pool.
MINIMA_RPC_URL = env_url_list("MINIMA_RPC_URL", schemes=("http", "https"), most=16)
MINIMA_RPC_PASSWORD = env_str("MINIMA_RPC_PASSWORD", "")
MINIMA_RPC_TIMEOUT = env_int("MINIMA_RPC_TIMEOUT", 20, minimum=1, maximum=120)
# How long the node takes to send a full Maxima message (250 000 bytes of data); smaller ones take less, with the
# square of their size (maxima.timing; measured on real nodes: 245 KB 8.5-10 s, 122 KB 2.3 s, 60 KB 0.5 s).
MNS_MAXIMA_SEND_FULL_SECONDS = env_int("MNS_MAXIMA_SEND_FULL_SECONDS", 10, minimum=0, maximum=300)
# Each second a send takes the node beyond the first gives its RPC timeout, task limits and claim lease this many
# seconds more (a full-size message on a slow node gets 36 s instead of 18 with the defaults).
MNS_MAXIMA_SEND_MARGIN = env_int("MNS_MAXIMA_SEND_MARGIN", 2, minimum=1, maximum=10)
# The webhook lives at a secret path. Unset, it is derived from SECRET_KEY, so every web process of one gateway
# agrees on it without another variable to share, and it cannot be turned back into the key.
MAXIMA_HOOK_SECRET = env_str(
    "MAXIMA_HOOK_SECRET", hmac.new(SECRET_KEY.encode(), b"maxima-hook", hashlib.sha256).hexdigest()[:40]
)
if len(MAXIMA_HOOK_SECRET) < 32:
    raise EnvError("MAXIMA_HOOK_SECRET", "<hidden>", "at least 32 characters")
# How the node reaches this gateway's web server, to post its webhook (the node and gateway share a host).
MNS_HOOK_BASE_URL = env_url("MNS_HOOK_BASE_URL", "http://127.0.0.1:8000", schemes=("http", "https"))
MNS_HOOK_RATE_PER_MINUTE = env_int("MNS_HOOK_RATE_PER_MINUTE", 6000, minimum=10)
MNS_HOOK_RATE_PER_SENDER_PER_MINUTE = env_int("MNS_HOOK_RATE_PER_SENDER_PER_MINUTE", 600, minimum=1)
# The hook waits at most this long on the database (PostgreSQL: statement and lock timeout), then answers 503 with
# Retry-After: the node waits for each answer before posting its next event, so a slow database must not stall it.
MNS_HOOK_DB_TIMEOUT_MS = env_int("MNS_HOOK_DB_TIMEOUT_MS", 2000, minimum=100, maximum=30000)
# A message whose timemilli is further than this from our clock, either way, is refused as stale (replay guard).
MAXIMA_MAX_AGE_SECONDS = env_int("MAXIMA_MAX_AGE_SECONDS", 900, minimum=10)
MNS_OUTBOX_MAX_ATTEMPTS = env_int("MNS_OUTBOX_MAX_ATTEMPTS", 12, minimum=1, maximum=100)
MNS_OUTBOX_BACKOFF_SECONDS = env_int("MNS_OUTBOX_BACKOFF_SECONDS", 5, minimum=1)
MNS_OUTBOX_BACKOFF_MAX_SECONDS = env_int("MNS_OUTBOX_BACKOFF_MAX_SECONDS", 3600, minimum=1)
# A send to a MAX# address that does not resolve (its MLS restarted: ~4.5 min on real nodes) is tried again this
# often, without using up its attempts, until this long after it was queued.
MNS_OUTBOX_UNRESOLVED_WAIT_SECONDS = env_int("MNS_OUTBOX_UNRESOLVED_WAIT_SECONDS", 30, minimum=1, maximum=3600)
MNS_OUTBOX_UNRESOLVED_GIVE_UP_SECONDS = env_int("MNS_OUTBOX_UNRESOLVED_GIVE_UP_SECONDS", 3600, minimum=60)
# The address users and peers send to. Unset: the node's p2pidentity (publish a MAX#… permanent address here
# when the node's IP is not public or not stable).
MNS_MAXIMA_ADDRESS = env_str("MNS_MAXIMA_ADDRESS", "")
# Finished inbound events and outbound messages (copies of ciphertexts) are deleted after this many hours.
MNS_TRANSPORT_KEEP_HOURS = env_int("MNS_TRANSPORT_KEEP_HOURS", 24, minimum=1, maximum=24 * 90)
# /api/v1/health runs its checks at most this often per process (it is public and not rate-limited).
# How long a name's published lookup answer stays in Redis once read (registry.published keeps it exact; this only
# bounds Redis's memory: a million names at ~1.5 KB each would otherwise all stay).
MNS_LOOKUP_CACHE_SECONDS = env_int("MNS_LOOKUP_CACHE_SECONDS", 600, minimum=1, maximum=86_400)
MNS_HEALTH_CACHE_SECONDS = env_int("MNS_HEALTH_CACHE_SECONDS", 2, minimum=0, maximum=60)
MNS_SWEEP_EVERY = env_int("MNS_SWEEP_EVERY", 10, minimum=1, maximum=3600)
# An event still pending this long after it arrived has lost its task (broker down, worker killed): re-enqueue it.
# A row the sweep enqueued is enqueued again only after as long again as it had waited (doubling, capped at 15
# min), so a backlog in the queue is not piled on with copies; outbound messages follow the same rule.
MNS_INBOUND_SWEEP_AFTER_SECONDS = env_int("MNS_INBOUND_SWEEP_AFTER_SECONDS", 30, minimum=1)
# Inbound events are claimed and processed this many at a time, in one transaction (a savepoint each). The tasks of
# a burst, inbound and outbound, are coalesced over windows of this many milliseconds (core.queue.enqueue_coalesced):
# one at once, one more at the window's end.
MNS_INBOUND_BATCH = env_int("MNS_INBOUND_BATCH", 100, minimum=1, maximum=1000)
MNS_MAXIMA_BATCH_WINDOW_MS = env_int("MNS_MAXIMA_BATCH_WINDOW_MS", 50, minimum=0, maximum=5000)
MNS_NODE_CHECK_EVERY = env_int("MNS_NODE_CHECK_EVERY", 30, minimum=1, maximum=3600)

# --- Metrics (/metrics for Prometheus; mns_site.metrics) -------------------------------------------------------
# The bearer token a scraper sends (Authorization: Bearer <token>), compared in constant time. Unset: /metrics
# answers only on loopback, and only in the embedded shape or with DEBUG (behind a proxy every client is loopback).
MNS_METRICS_TOKEN = env_str("MNS_METRICS_TOKEN", "")
if MNS_METRICS_TOKEN and len(MNS_METRICS_TOKEN) < 32:
    raise EnvError("MNS_METRICS_TOKEN", "<hidden>", "at least 32 characters (e.g. openssl rand -hex 32)")
MNS_METRICS_OPEN_ON_LOOPBACK = DEBUG or not DATABASE_URL
# Seconds between the samples of queue depths and peers' lag the admin's charts draw (kept 48 hours).
MNS_SAMPLE_EVERY = env_int("MNS_SAMPLE_EVERY", 300, minimum=10, maximum=3600)

# Mounts the baseline views of bench/ (never in production).
MNS_BENCH = env_bool("MNS_BENCH", False)
# Installs testsupport's Maxima handlers in the real worker and web processes the tests start (never in production).
if env_bool("MNS_TEST_APPS", False):
    INSTALLED_APPS.append("testsupport")

# --- Logging ---------------------------------------------------------------------------------------------------
LOG_LEVEL = env_choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper()
LOG_FORMAT = env_choice("LOG_FORMAT", "text", ("text", "json"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "core.logging.RequestIdFilter"},
        "redact": {"()": "core.logging.RedactSecretsFilter"},
    },
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "core.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Our own middleware writes the one line per request; Django's would repeat it.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "ERROR"},
        "celery": {"level": "INFO"},
    },
}

# --- Registry --------------------------------------------------------------------------------------------------
# Names one owner key may hold at once (pending, active or suspended), a cap against registry poisoning (DESIGN §5).
MNS_NAMES_PER_OWNER = env_int("MNS_NAMES_PER_OWNER", 5, minimum=1, maximum=1000)
# How long a name is held as pending for its owner's handshake before it is freed again; above the challenge expiry.
MNS_NAME_HOLD_SECONDS = env_int("MNS_NAME_HOLD_SECONDS", 600, minimum=60, maximum=86400)
# The name statuses get their own enum in the OpenAPI schema (the health status has another "status" enum).
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {})["NameStatusEnum"] = "registry.models.NameRecord.Status"

# --- Handshake -------------------------------------------------------------------------------------------------
# How long a challenge can be answered (DESIGN §4: at most 5 minutes), and then, once answered, picked up.
MNS_HANDSHAKE_TTL_SECONDS = env_int("MNS_HANDSHAKE_TTL_SECONDS", 300, minimum=30, maximum=300)
if MNS_HANDSHAKE_TTL_SECONDS >= MNS_NAME_HOLD_SECONDS:
    raise EnvError("MNS_HANDSHAKE_TTL_SECONDS", str(MNS_HANDSHAKE_TTL_SECONDS), "less than MNS_NAME_HOLD_SECONDS")
# Wrong answers (a wrong code, or any answer from another key) before a challenge fails for good.
MNS_HANDSHAKE_MAX_ATTEMPTS = env_int("MNS_HANDSHAKE_MAX_ATTEMPTS", 5, minimum=1, maximum=20)
# Unexpired, unanswered challenges one name may have at once; one more is refused with 429 too_many_challenges.
MNS_HANDSHAKE_OPEN_PER_NAME = env_int("MNS_HANDSHAKE_OPEN_PER_NAME", 5, minimum=1, maximum=100)
MNS_SESSION_TTL_SECONDS = env_int("MNS_SESSION_TTL_SECONDS", 3600, minimum=60, maximum=86400)
# Expired challenges and sessions stay visible to staff this long, then the beat task deletes them.
MNS_HANDSHAKE_KEEP_SECONDS = env_int("MNS_HANDSHAKE_KEEP_SECONDS", 86400, minimum=0, maximum=30 * 86400)

# --- Mailboxes -------------------------------------------------------------------------------------------------
# A delivered ciphertext travels hex-encoded inside a Maxima message, and again when it is forwarded to its owner
# with the sender's key beside it: past 120 KiB it would not fit under Maxima's 250 000 bytes of data.
if MNS_MAX_MESSAGE_BYTES > 120 * 1024:
    raise EnvError("MNS_MAX_MESSAGE_BYTES", str(MNS_MAX_MESSAGE_BYTES), "at most 122880 (what Maxima can carry)")
# The quota of a new mailbox: stored messages, and the sum of their ciphertexts' sizes.
MNS_MAILBOX_MAX_MESSAGES = env_int("MNS_MAILBOX_MAX_MESSAGES", 1000, minimum=1, maximum=10_000_000)
MNS_MAILBOX_MAX_BYTES = env_int("MNS_MAILBOX_MAX_BYTES", 16 * 1024 * 1024, minimum=1024, maximum=2**40)
if MNS_MAILBOX_MAX_BYTES < MNS_MAX_MESSAGE_BYTES:
    raise EnvError("MNS_MAILBOX_MAX_BYTES", str(MNS_MAILBOX_MAX_BYTES), "at least MNS_MAX_MESSAGE_BYTES")
# Escrow shards of a new mailbox's quota: concurrent deliveries to one mailbox each count on one shard, so they
# do not all queue on one counters row (mailboxes.models.MailboxCounter). 1: one row, as before; a mailbox keeps
# the shards it was given.
MNS_MAILBOX_COUNTER_SHARDS = env_int("MNS_MAILBOX_COUNTER_SHARDS", 4, minimum=1, maximum=64)
# Deliveries one sender may make to one mailbox per minute (REST submissions share one bucket per mailbox).
MNS_DELIVERY_RATE_PER_MINUTE = env_int("MNS_DELIVERY_RATE_PER_MINUTE", 60, minimum=1, maximum=10**9)
# REST submissions (when MNS_REST_SUBMISSION is on) per client address.
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["submit"] = env_rate("MNS_THROTTLE_SUBMIT", "30/min")
# Seconds between the beat runs that delete expired messages and mark finished forwards.
MNS_MESSAGE_EXPIRE_EVERY = env_int("MNS_MESSAGE_EXPIRE_EVERY", 300, minimum=1, maximum=86400)
# Senders one mailbox may list (blocked and allowed together).
MNS_MAILBOX_MAX_SENDER_RULES = env_int("MNS_MAILBOX_MAX_SENDER_RULES", 1000, minimum=0, maximum=100_000)

# --- Federation (DESIGN §5) ------------------------------------------------------------------------------------
# A peer heard from within this many seconds counts as healthy (entry points, health).
MNS_FEDERATION_HEALTHY_SECONDS = env_int("MNS_FEDERATION_HEALTHY_SECONDS", 600, minimum=10)
# Health is degraded when a peer lags by more than this many operations, or for longer than this many seconds.
MNS_FEDERATION_LAG_OPS_WARN = env_int("MNS_FEDERATION_LAG_OPS_WARN", 1000, minimum=0)
MNS_FEDERATION_LAG_SECONDS_WARN = env_int("MNS_FEDERATION_LAG_SECONDS_WARN", 300, minimum=1)
# Gateways that keep a copy of each new mailbox besides its home: 0 means every peer (the default).
MNS_FEDERATION_REPLICATION_FACTOR = env_int("MNS_FEDERATION_REPLICATION_FACTOR", 0, minimum=0, maximum=1000)
# Bytes of one ops batch on the wire: ops are packed up to this size, which a real node sends in about half a second
# (60 KB: 0.5 s; a full 245 KB message took it 8.5-10 s). Maxima carries at most 250 000 bytes of data.
MNS_FEDERATION_BATCH_BYTES = env_int("MNS_FEDERATION_BATCH_BYTES", 60_000, minimum=8192, maximum=250_000)
# An operation's wire size at most (a message op carries its ciphertext hex-encoded, so twice its size and more).
# A bigger op than the batch size goes alone in its batch; with the header it stays within what Maxima carries.
MNS_FEDERATION_MAX_OP_BYTES = env_int(
    "MNS_FEDERATION_MAX_OP_BYTES", min(2 * MNS_MAX_MESSAGE_BYTES + 8192, 249_488), minimum=4096
)
if MNS_FEDERATION_MAX_OP_BYTES > 250_000 - 512:
    raise EnvError("MNS_FEDERATION_MAX_OP_BYTES", str(MNS_FEDERATION_MAX_OP_BYTES), "at most 249488 (Maxima's limit)")
# Operations accepted from one peer per minute; the rest of a batch is left for a later pull.
MNS_FEDERATION_OPS_PER_MINUTE = env_int("MNS_FEDERATION_OPS_PER_MINUTE", 6000, minimum=1)
# Invalid (unverifiable) operations after which a peer is paused with an admin alert.
MNS_FEDERATION_PAUSE_AFTER_INVALID = env_int("MNS_FEDERATION_PAUSE_AFTER_INVALID", 10, minimum=1)
# How long a claim waits for the membership's answers, and a lease holds its ack, in seconds.
MNS_FEDERATION_CLAIM_SECONDS = env_int("MNS_FEDERATION_CLAIM_SECONDS", 120, minimum=5, maximum=3600)
# Seconds between the beat runs that push and pull operations and expire claims and leases.
MNS_FEDERATION_SYNC_EVERY = env_int("MNS_FEDERATION_SYNC_EVERY", 30, minimum=1, maximum=3600)
# An op that follows another origin's op not applied yet is retried for this long, then skipped.
MNS_FEDERATION_WAIT_SECONDS = env_int("MNS_FEDERATION_WAIT_SECONDS", 600, minimum=10)
# How many gateways in a row may relay an owner-signed op on (the diameter the membership graph may have).
MNS_FEDERATION_RELAY_HOPS = env_int("MNS_FEDERATION_RELAY_HOPS", 8, minimum=0, maximum=64)
# A gateway restored from a backup numbers no new op until every peer said how far it holds its log and the lost
# ops are back, or for at most this many seconds (then it goes on, and says which peers did not answer).
MNS_FEDERATION_RESTORE_WAIT_SECONDS = env_int("MNS_FEDERATION_RESTORE_WAIT_SECONDS", 3600, minimum=10)
# Set reconciliation and snapshots (docs/protocol.md, "Reconciliation and snapshots"): a peer that lags by more than
# this many ops (a new peer, a long outage) is caught up by a snapshot, not by replaying its log: over its API URL,
# or over Maxima when it has none.
MNS_FEDERATION_SNAPSHOT_LAG = env_int("MNS_FEDERATION_SNAPSHOT_LAG", 5000, minimum=0)
# Seconds between anti-entropy rounds with every peer that has an API URL (0: none).
MNS_FEDERATION_RECONCILE_EVERY = env_int("MNS_FEDERATION_RECONCILE_EVERY", 600, minimum=0, maximum=86400)
# Seconds between anti-entropy rounds over Maxima with a peer that has no API URL (each question a message both
# ways): run by the same beat, so never more often than MNS_FEDERATION_RECONCILE_EVERY (0: none).
MNS_FEDERATION_RECONCILE_MAXIMA_EVERY = env_int(
    "MNS_FEDERATION_RECONCILE_MAXIMA_EVERY", 3600, minimum=0, maximum=7 * 86400
)
# Reconciliation questions a peer may ask over Maxima a minute (each answered with up to
# MNS_FEDERATION_BATCH_BYTES); the excess is refused as throttled and asked again later.
MNS_FEDERATION_ASKS_PER_MINUTE = env_int("MNS_FEDERATION_ASKS_PER_MINUTE", 120, minimum=1, maximum=6000)
# At most this long for one round with one peer (the lock that keeps two rounds with a peer apart).
MNS_FEDERATION_RECONCILE_SECONDS = env_int("MNS_FEDERATION_RECONCILE_SECONDS", 1800, minimum=30)
# Seconds a gateway keeps a built set tree to answer a peer's walk of it.
MNS_FEDERATION_TREE_SECONDS = env_int("MNS_FEDERATION_TREE_SECONDS", 30, minimum=0, maximum=3600)
# Items in one snapshot answer.
MNS_FEDERATION_SNAPSHOT_CHUNK = env_int("MNS_FEDERATION_SNAPSHOT_CHUNK", 500, minimum=1, maximum=5000)
# Log compaction (docs/operations.md, "Log compaction"): every this many seconds (0: never) each log is compacted up
# to a floor that keeps at least MNS_FEDERATION_LOG_KEEP ops behind its head and never passes what an active peer
# holds of it, unless that peer said nothing of it for MNS_FEDERATION_COMPACT_SILENT_SECONDS (it then catches up by
# reconciliation). Tombstones (delete ops) stay MNS_RETENTION_DAYS + 1 day.
MNS_FEDERATION_COMPACT_EVERY = env_int("MNS_FEDERATION_COMPACT_EVERY", 3600, minimum=0, maximum=7 * 86400)
MNS_FEDERATION_LOG_KEEP = env_int("MNS_FEDERATION_LOG_KEEP", 10_000, minimum=1)
MNS_FEDERATION_COMPACT_SILENT_SECONDS = env_int("MNS_FEDERATION_COMPACT_SILENT_SECONDS", 7 * 86400, minimum=1)

# --- Entry points on chain (DESIGN §6) -------------------------------------------------------------------------
# This gateway publishes the entry-point list (only one gateway of the network should; it runs entrypoints_setup).
MNS_PUBLISHER = env_bool("MNS_PUBLISHER", False)
# Hours between publications, and how many entries each list has (picked at random among the healthy candidates).
MNS_ENTRYPOINTS_EVERY = env_int("MNS_ENTRYPOINTS_EVERY", 4, minimum=1, maximum=24 * 30)
MNS_ENTRYPOINTS_COUNT = env_int("MNS_ENTRYPOINTS_COUNT", 3, minimum=1, maximum=32)
# The entry-point token (0x…). Unset on the publisher: entrypoints_setup creates one. On a gateway that only reads
# the list, set it with MNS_ENTRYPOINTS_OWNER (the publisher's owner key), both from the publisher's mns.json.
MNS_ENTRYPOINTS_TOKENID = env_str("MNS_ENTRYPOINTS_TOKENID", "")
MNS_ENTRYPOINTS_OWNER = env_str("MNS_ENTRYPOINTS_OWNER", "")
# Seconds between the beat runs that confirm sent publications, retry failed ones and (readers) read the chain.
MNS_ENTRYPOINTS_CHECK_EVERY = env_int("MNS_ENTRYPOINTS_CHECK_EVERY", 30, minimum=1, maximum=3600)
# A publication is confirmed when its coin is this many blocks deep; one not mined this many blocks after it was
# sent is failed and retried.
MNS_ENTRYPOINTS_CONFIRMATIONS = env_int("MNS_ENTRYPOINTS_CONFIRMATIONS", 1, minimum=1, maximum=100)
MNS_ENTRYPOINTS_MINE_BLOCKS = env_int("MNS_ENTRYPOINTS_MINE_BLOCKS", 10, minimum=2, maximum=1000)
# First delay before a failed publication is retried (doubling up to an hour).
MNS_ENTRYPOINTS_RETRY_SECONDS = env_int("MNS_ENTRYPOINTS_RETRY_SECONDS", 60, minimum=1, maximum=3600)
# How deep a coin must be before the gateway's node spends it (entry-point setup and rotations wait for it): real
# nodes' wallets spend a coin 3 blocks after it is mined, and refuse it before ("No Coins of tokenid … available!").
MNS_CONFIRMATIONS = env_int("MNS_CONFIRMATIONS", 3, minimum=0, maximum=100)
# How long entrypoints_setup waits for its token and first coin to be mined (and deep enough to spend).
MNS_ENTRYPOINTS_SETUP_WAIT_SECONDS = env_int("MNS_ENTRYPOINTS_SETUP_WAIT_SECONDS", 600, minimum=1, maximum=86400)

# --- Transparency: the directory's Merkle root at aligned cut-offs (docs/protocol.md, "Transparency") ----------
# Seconds between cut-offs (every gateway computes, signs and sends its root at each), and how long after a
# cut-off the root is computed, so statements issued before it have reached every gateway.
MNS_TRANSPARENCY_EVERY = env_int("MNS_TRANSPARENCY_EVERY", 3600, minimum=1, maximum=7 * 86400)
MNS_TRANSPARENCY_SETTLE = env_int("MNS_TRANSPARENCY_SETTLE", 300, minimum=0, maximum=86400)

# --- The MNS Dapp (the browser client at /app/, built by `make dapp`) ------------------------------------------
MNS_DAPP_DIR = Path(env_str("MNS_DAPP_DIR", str(VAR_DIR / "dapp" / "site"))).resolve()
# Where the Dapp's page may connect besides this gateway: the users' own node RPC (CSP connect-src sources).
MNS_DAPP_CONNECT_SRC = env_list(
    "MNS_DAPP_CONNECT_SRC", ["http://127.0.0.1:*", "http://localhost:*", "https://127.0.0.1:*", "https://localhost:*"]
)

# --- Names on chain (Minima's MNS, docs/protocol.md "Names on chain") ---
# Honour names registered on chain by Minima's MNS MiniDapp: a registration of a name held there by a wallet key
# needs that key's signature (read through this gateway's node; nothing is read without MINIMA_RPC_URL).
MNS_CHAIN_NAMES = env_bool("MNS_CHAIN_NAMES", True)
# Seconds between checks that the node still reports new coins at the MNS address (coinnotify + webhook).
MNS_CHAIN_NAMES_WATCH_EVERY = env_int("MNS_CHAIN_NAMES_WATCH_EVERY", 300, minimum=10, maximum=86400)
# Coin events the node may post to /onchain/hook/ per minute (a flood of spam coins is cut here, not stored).
MNS_CHAIN_HOOK_PER_MINUTE = env_int("MNS_CHAIN_HOOK_PER_MINUTE", 600, minimum=1)

# --- The beat schedule: every periodic task of the gateway, by task name ("<app>.<task>"), here and nowhere else --
# Seconds between runs. Each run expires at the next: a backlog of identical sweeps after an outage would only
# repeat one another.
CELERY_BEAT_SCHEDULE = {
    task: {"task": task, "schedule": seconds, "options": {"expires": seconds}}
    for task, seconds in (
        ("core.heartbeat", CELERY_HEARTBEAT_EVERY),
        ("core.heartbeat_sends", CELERY_HEARTBEAT_EVERY),
        ("maxima.supervise_node", MNS_NODE_CHECK_EVERY),
        ("maxima.sweep_inbound", MNS_SWEEP_EVERY),
        ("maxima.sweep_outbound", MNS_SWEEP_EVERY),
        ("maxima.purge", 3600),
        ("handshake.clean", 300),
        ("mailboxes.expire", MNS_MESSAGE_EXPIRE_EVERY),
        ("federation.sync", MNS_FEDERATION_SYNC_EVERY),
        *([("federation.reconcile", MNS_FEDERATION_RECONCILE_EVERY)] if MNS_FEDERATION_RECONCILE_EVERY else []),
        *([("federation.compact", MNS_FEDERATION_COMPACT_EVERY)] if MNS_FEDERATION_COMPACT_EVERY else []),
        ("entrypoints.publish", MNS_ENTRYPOINTS_EVERY * 3600),
        ("entrypoints.check", MNS_ENTRYPOINTS_CHECK_EVERY),
        ("onchain.watch", MNS_CHAIN_NAMES_WATCH_EVERY),
        ("transparency.compute", min(MNS_TRANSPARENCY_EVERY, 60)),
    )
}
# Every minute, free the names whose owner did not answer the handshake within MNS_NAME_HOLD_SECONDS.
CELERY_BEAT_SCHEDULE["registry.name_holds_expire"] = {
    "task": "registry.name_holds_expire",
    "schedule": 60.0,
    "kwargs": {"seconds": MNS_NAME_HOLD_SECONDS},
}
