"""Taskdeck settings: the one place that reads the environment (django-environ, `.env`)."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
ENV_FILE = BASE_DIR / ".env"

env = environ.Env()
if ENV_FILE.exists():
    env.read_env(ENV_FILE)


def _ensure_secret_key() -> str:
    """First run: generate a key into `.env` so sessions survive restarts and nothing is committed."""
    key = env.str("SECRET_KEY", default="")
    if key:
        return key
    key = secrets.token_urlsafe(50)
    with ENV_FILE.open("a", encoding="utf-8") as handle:
        handle.write(f"SECRET_KEY={key}\n")
    return key


SECRET_KEY = _ensure_secret_key()
DEBUG = env.bool("DEBUG", default=False)
HOST = env.str("HOST", default="127.0.0.1")
PORT = env.int("PORT", default=8000)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", HOST])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[f"http://{HOST}:{PORT}"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_q",
    "tasks_app",
    *env.list("TASKDECK_EXTRA_APPS", default=["examples"]),
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
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
            ],
        },
    },
]
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

# Database: SQLite in the project folder by default, tuned for several processes writing at once
# (WAL, a busy timeout, IMMEDIATE transactions: Django ticket 29280, django-q2 #144).
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'taskdeck.sqlite3'}"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["ENGINE"] = "tasks_app.db.sqlite3"  # prompt write lock across processes
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": env.int("SQLITE_BUSY_TIMEOUT", default=30),
        # mmap: reads come straight from the page cache instead of a read() per page; it takes a
        # third off walking a long history index (bench/api.py). Writes still go through the WAL.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                        f"PRAGMA mmap_size={env.int('SQLITE_MMAP_SIZE', default=256 * 1024 * 1024)};",
    }
    # The test database's file; a second test run beside the first needs one of its own.
    DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_FILE", default=str(BASE_DIR / "var" / "test.sqlite3"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"

REDIS_URL = env.str("REDIS_URL", default="")

# django-q2: Taskdeck owns retries and timeouts (DESIGN.md "Traps"), so django-q2 never retries a
# failed task (max_attempts 1), re-delivers an unacknowledged one only long after any run could
# end (retry), keeps no result rows of its own (save_limit -1: the Run row is the record), and
# polls its ORM broker often enough for low trigger-to-start latency.
TASKDECK_WORKERS = env.int("TASKDECK_WORKERS", default=2)
TASKDECK_QUEUE_RETRY = env.int("TASKDECK_QUEUE_RETRY", default=6 * 3600)
Q_CLUSTER = {
    "name": "taskdeck",
    "workers": TASKDECK_WORKERS,
    "recycle": 1000,
    # A backstop only: a run's own watchdog enforces its timeout (tasks_app/execution/watchdog.py).
    # Runs with no timeout are still capped here, just under the re-delivery window.
    "timeout": TASKDECK_QUEUE_RETRY - 60,
    "retry": TASKDECK_QUEUE_RETRY,
    "max_attempts": 1,
    "ack_failures": True,
    "save_limit": -1,
    "poll": env.float("TASKDECK_POLL", default=0.02),
    "bulk": env.int("TASKDECK_BULK", default=4),
    "scheduler": False,
    "catch_up": False,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["broker_class"] = "tasks_app.queue.brokers.RunQueueBroker"  # takes by deleting, see there

# Live events with Redis: writers announce "new events up to id N" once committed, and each web
# process's relay reads the outbox when it hears one (tasks_app/live/announce.py). Without Redis
# there is no layer and the relay polls the outbox every 0.1 s. The pub/sub layer, not the core
# one: an announcement is a wake-up worth nothing once missed (the relay's fallback poll catches
# up), so a plain PUBLISH fits, delivered at once, with no list per web process left in Redis by
# one that died and no group membership to renew. Its own alias, not "default": Channels gives each
# consumer of the default layer a Redis channel, which our WebSocket consumers do not need.
if REDIS_URL:
    CHANNEL_LAYERS = {
        "live-events": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_connect_timeout": 2}], "prefix": "taskdeck"},
        },
    }

# Taskdeck's own settings: read through tasks_app.conf.taskdeck_settings, whose DEFAULTS is the
# one place each default is written. Here only what the environment sets (and the two paths,
# which depend on BASE_DIR).
_TASKDECK_FROM_ENV = {
    "HEARTBEAT_INTERVAL": ("TASKDECK_HEARTBEAT_INTERVAL", env.float),
    "HEARTBEAT_STALE_AFTER": ("TASKDECK_HEARTBEAT_STALE_AFTER", env.float),
    "CANCEL_GRACE": ("TASKDECK_CANCEL_GRACE", env.float),
    "SCHEDULER_INTERVAL": ("TASKDECK_SCHEDULER_INTERVAL", env.float),
    "LEASE_TTL": ("TASKDECK_LEASE_TTL", env.float),
    "SUPERVISOR_INTERVAL": ("TASKDECK_SUPERVISOR_INTERVAL", env.float),
    "WEB_THREADS": ("TASKDECK_WEB_THREADS", env.int),
    "DEFAULT_KEEP_RUNS": ("TASKDECK_KEEP_RUNS", env.int),
    "DEFAULT_KEEP_FOR": ("TASKDECK_KEEP_FOR", env.float),
    "EVENT_RETENTION": ("TASKDECK_EVENT_RETENTION", env.float),
    "SSE_KEEPALIVE": ("TASKDECK_SSE_KEEPALIVE", env.float),
    "EVENT_FALLBACK_POLL": ("TASKDECK_EVENT_FALLBACK_POLL", env.float),
    "LOG_MAX_SIZE": ("TASKDECK_LOG_MAX_SIZE", env.int),
    "WATCHER_POLL_INTERVAL": ("TASKDECK_WATCHER_POLL_INTERVAL", env.float),
    "WATCHER_POLLED_FILESYSTEMS": ("TASKDECK_WATCHER_POLLED_FILESYSTEMS", env.list),
}
TASKDECK = {
    "DEFINITIONS": env.str("TASKDECK_DEFINITIONS", default=str(BASE_DIR / "taskdeck.toml")),
    "DATA_DIR": env.str("TASKDECK_DATA_DIR", default=str(BASE_DIR / "var")),
    **{name: read(variable) for name, (variable, read) in _TASKDECK_FROM_ENV.items() if variable in os.environ},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django-q": {"level": env.str("DJANGO_Q_LOG_LEVEL", default="WARNING")}},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tasks_app.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",  # the admin login; CSRF on unsafe methods
    ],
    "DEFAULT_PERMISSION_CLASSES": ["tasks_app.api.permissions.HasScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer", "rest_framework.renderers.BrowsableAPIRenderer"],
    "DEFAULT_PARSER_CLASSES": ["tasks_app.api.parsers.JSONObjectParser"],  # bounded, one object
    "EXCEPTION_HANDLER": "tasks_app.api.problems.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Taskdeck API",
    "DESCRIPTION": "Background tasks for Django: trigger, watch, cancel and page through runs.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Fonts from the system: the page loads nothing from outside (templates/api/redoc.html).
    "REDOC_UI_SETTINGS": {"theme": {"typography": {
        "fontFamily": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
        "headings": {"fontFamily": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"},
    }}},
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["tasks_app.api.schema.paths_without_trailing_slash"],
    "ENUM_NAME_OVERRIDES": {
        "IntervalUnitEnum": "tasks_app.models.IntervalUnit",
        "RunStatusEnum": "tasks_app.models.RunStatus",
        "EndReasonEnum": "tasks_app.models.EndReason",
        "RunTriggerEnum": "tasks_app.models.RunTrigger",
        "TaskKindEnum": "tasks_app.models.TaskKind",
        "TaskTriggerEnum": "tasks_app.models.TaskTrigger",
        "TaskStatusEnum": "tasks_app.api.serializers.TASK_STATUSES",
        "OverlapPolicyEnum": "tasks_app.models.OverlapPolicy",
        "RetryBackoffEnum": "tasks_app.models.RetryBackoff",
        "RestartPolicyEnum": "tasks_app.models.RestartPolicy",
        "CatchUpEnum": "tasks_app.models.CatchUp",
        "ParameterTypeEnum": "tasks_app.parameters.TYPES",
        "ParameterKindEnum": "tasks_app.parameters.KINDS",
    },
}
