"""Settings shared by every environment. Every value comes from the environment (12-factor)."""

from pathlib import Path

import environ
import phonenumbers
from django.core.exceptions import ImproperlyConfigured

from qbuy_core import logcontext

from .caches import cache_config

BASE_DIR = Path(__file__).resolve().parents[2]  # services/web
env = environ.Env()

SECRET_KEY = env("SECRET_KEY", default="")
DEBUG = env.bool("DEBUG", default=False)
# Keep "localhost" in production too: the Kubernetes probes send Host: localhost.
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # First: its createsuperuser (validators on DJANGO_SUPERUSER_PASSWORD too) replaces auth's.
    "accounts",
    # django.contrib.admin with qbuy's site: staff sign in with a password (accounts.admin_site).
    "accounts.admin_config.StaffAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_results",
    # The API's /api/docs: Swagger UI's files from ninja's static folder, not a CDN.
    "ninja",
    "qbuy_core",
    "sales",
    "orders",
    "waitingroom",
]

MIDDLEWARE = [
    # qbuy_core.middleware explains this order.
    "qbuy_core.middleware.RequestMetaMiddleware",
    "common.csp.CSPMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "qbuy_core.middleware.PathCacheMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# The admin's messages in the session: Django's default tries a signed cookie first, whose
# signer every request built in MessageMiddleware, for messages only the admin sends.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
# The first for the admin's password login, the second marks the SMS code login's sessions,
# which never open the admin (accounts.backends).
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "accounts.backends.SmsCodeBackend",
]
LOGIN_URL = "/login/"

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

DATABASES = {"default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/qbuy")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Django's PostgreSQL backend, its health check asking the socket, not Postgres (config/postgres).
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["ENGINE"] = "config.postgres"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Caches: one alias per purpose, each with its own failure policy (STYLE.md).
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHE_URL = env("CACHE_URL", default="locmemcache://")
CACHES = {
    # The selectable strategy (dummy, locmem, file, db, pymemcache, pylibmc, redis).
    "default": cache_config(CACHE_URL),
    # Rendered pages: losing them costs a render, so Redis errors are ignored.
    "html": cache_config(
        env("HTML_CACHE_URL", default=CACHE_URL), key_prefix="html", ignore_exceptions=True
    ),
    # The sale list (@cache_page, SALE_LIST_CACHE_TIMEOUT): nothing invalidates it, it is only
    # ever up to that many seconds old, so a copy per process is as fresh as a shared one and a
    # hit skips the network. In Redis, a hit (two reads) served 0.4x /healthz (issue 10).
    "list": cache_config(
        env("SALE_LIST_CACHE_URL", default="locmemcache://sale-list"), key_prefix="list"
    ),
    # Sessions and SMS codes must be shared by every web process and never silently lost.
    "sessions": cache_config(env("SESSION_CACHE_URL", default=REDIS_URL), key_prefix="sess"),
    "codes": cache_config(env("CODES_CACHE_URL", default=REDIS_URL), key_prefix="codes"),
    # Stock counters and reservations (orders/gate.py): must be django-redis, never ignored.
    "stock": cache_config(env("STOCK_REDIS_URL", default=REDIS_URL)),
}
STOCK_CACHE = "stock"

# Django's cache engine, except that an unreadable session (Redis down) is an outage (503),
# not an empty one (401, and a logout that deletes nothing).
SESSION_ENGINE = "qbuy_core.sessions"
SESSION_CACHE_ALIAS = env("SESSION_CACHE_ALIAS", default="sessions")
SESSION_COOKIE_NAME = "SESSION_ID"
SESSION_COOKIE_PATH = "/"
# One day, not Django's two weeks: a flash-sale buyer logs in shortly before the sale, and a
# stolen cookie should not outlive it by long. Not renewed per request (that is a session write
# on every buy); after a day the buyer logs in again.
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=86400)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

QBUY_PAGE_CACHE = {
    "ALIAS": "html",
    "TIMEOUT": env.int("PAGE_CACHE_TIMEOUT", default=60),
    # Seconds each web process keeps a page it read from the shared cache (qbuy_core.page_cache):
    # a drop reaches the other processes' copies within it. 0: every hit reads the shared cache.
    "LOCAL_TIMEOUT": env.float("PAGE_CACHE_LOCAL_TIMEOUT", default=1.0),
    "PATHS": [r"^/sales/\d+/$"],
}
SALE_LIST_CACHE_TIMEOUT = 10
SALES_PER_PAGE = env.int("SALES_PER_PAGE", default=20)
# The ISO 4217 code of every price (pages show "$9.99" for USD, "9.99 CHF" for a code they
# have no symbol for).
CURRENCY = env("CURRENCY", default="USD")

# SMS login. Every limit is a setting so load tests from one address can raise them.
SMS_BACKEND = env("SMS_BACKEND", default="console")
SMS_FILE_PATH = env("SMS_FILE_PATH", default="")
# SMS_BACKEND=webhook: the provider's HTTPS endpoint and bearer token (a Secret), and how long
# a request may wait on it (the buyer waits too).
SMS_WEBHOOK_URL = env("SMS_WEBHOOK_URL", default="")
SMS_WEBHOOK_TOKEN = env("SMS_WEBHOOK_TOKEN", default="")
SMS_WEBHOOK_TIMEOUT = env.float("SMS_WEBHOOK_TIMEOUT", default=5.0)
# Seconds a client is told to wait (Retry-After of the 503) when the provider failed.
SMS_UNAVAILABLE_RETRY_AFTER = env.int("SMS_UNAVAILABLE_RETRY_AFTER", default=30)
SMS_CODE_CACHE = "codes"
SMS_CODE_LENGTH = env.int("SMS_CODE_LENGTH", default=6)
SMS_CODE_TTL = env.int("SMS_CODE_TTL", default=300)
SMS_CODE_MAX_ATTEMPTS = env.int("SMS_CODE_MAX_ATTEMPTS", default=5)
SMS_PHONE_INTERVAL = env.int("SMS_PHONE_INTERVAL", default=60)
SMS_IP_HOURLY_LIMIT = env.int("SMS_IP_HOURLY_LIMIT", default=20)
# Codes one phone may get per UTC day: with the interval above, min(5, 86400 / 60) = 5.
SMS_PHONE_DAILY_LIMIT = env.int("SMS_PHONE_DAILY_LIMIT", default=5)
# Codes per country calling code (+1, +44...) per hour: pumping one country's numbers cannot
# take the whole global budget.
SMS_PREFIX_HOURLY_LIMIT = env.int("SMS_PREFIX_HOURLY_LIMIT", default=5000)
# Codes per hour from the whole site, the ceiling on the SMS bill; one ERROR line on the
# "qbuy.sms" logger when a window's count reaches SMS_GLOBAL_ALARM_PERCENT of it. Size both for
# the busiest hour of logins a sale expects (SECURITY.md): past them nobody can log in.
SMS_GLOBAL_HOURLY_LIMIT = env.int("SMS_GLOBAL_HOURLY_LIMIT", default=10000)
SMS_GLOBAL_ALARM_PERCENT = env.int("SMS_GLOBAL_ALARM_PERCENT", default=80)
if not 1 <= SMS_GLOBAL_ALARM_PERCENT <= 99:  # at 100 the alarm would come with the last SMS
    raise ImproperlyConfigured("SMS_GLOBAL_ALARM_PERCENT must be between 1 and 99.")
# The regions (ISO 3166, as libphonenumber names them: +1 is US, CA and 23 others) whose
# mobile numbers may get codes; premium, toll-free, VoIP and non-geographic ones never do.
SMS_ALLOWED_COUNTRIES = [
    c.upper() for c in env.list("SMS_ALLOWED_COUNTRIES", default=["US", "CA", "GB"])
]
if not SMS_ALLOWED_COUNTRIES or set(SMS_ALLOWED_COUNTRIES) - phonenumbers.SUPPORTED_REGIONS:
    raise ImproperlyConfigured(
        "SMS_ALLOWED_COUNTRIES must list libphonenumber regions (e.g. US,CA,GB), not"
        f" {','.join(SMS_ALLOWED_COUNTRIES)!r}."
    )
# Verifying codes (accounts.services.sms_code_login). Wrong guesses from the address that asked
# for a code count against that code (SMS_CODE_MAX_ATTEMPTS); guesses from any other address
# never kill it but spend this per-phone budget per UTC day, after which other addresses get 429
# until the day ends (a new code does not reset it). So an attacker gets at most
# LOGIN_PHONE_DAILY_FAILURES + SMS_CODE_MAX_ATTEMPTS x SMS_PHONE_DAILY_LIMIT = 35 guesses per
# phone per day (SECURITY.md).
LOGIN_PHONE_DAILY_FAILURES = env.int("LOGIN_PHONE_DAILY_FAILURES", default=10)
# Failed verifications from one address per hour, across phones, counted also when no code is
# live; beyond it that address gets 429 until the hour ends.
LOGIN_IP_HOURLY_FAILURES = env.int("LOGIN_IP_HOURLY_FAILURES", default=30)
# The admin's password login (accounts.admin_login): failures per address and per account per
# ADMIN_LOGIN_WINDOW seconds, then the form refuses (saying when to retry) without trying it.
ADMIN_LOGIN_IP_FAILURES = env.int("ADMIN_LOGIN_IP_FAILURES", default=20)
ADMIN_LOGIN_ACCOUNT_FAILURES = env.int("ADMIN_LOGIN_ACCOUNT_FAILURES", default=5)
ADMIN_LOGIN_WINDOW = env.int("ADMIN_LOGIN_WINDOW", default=900)
# Staff passwords (the admin); buyers have none. createsuperuser applies them to
# DJANGO_SUPERUSER_PASSWORD too (accounts/management/commands/createsuperuser.py).
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env.int("ADMIN_PASSWORD_MIN_LENGTH", default=12)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The META key holding the client address; set to HTTP_X_REAL_IP only behind a trusted proxy.
CLIENT_IP_META = env("CLIENT_IP_META", default="REMOTE_ADDR")

API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=16 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)
CSRF_FAILURE_VIEW = "common.http.csrf_failure"
# Server-Timing (the view and its time, qbuy_core.middleware) on every answer: for developers,
# not for everyone (local.py turns it on with DEBUG).
SERVER_TIMING = env.bool("SERVER_TIMING", default=False)
# Retry-After (seconds) of the 503 every request gets while Redis or Postgres is unreachable.
OUTAGE_RETRY_AFTER = env.int("OUTAGE_RETRY_AFTER", default=5)

# The buy path (orders/services.py): "gate" (Redis, then a worker) or "db-lock" (the textbook
# row lock in the request, kept to be measured against: make bench).
BUY_STRATEGY = env.str("BUY_STRATEGY", default="gate")
if BUY_STRATEGY not in ("gate", "db-lock"):
    raise ImproperlyConfigured(f"BUY_STRATEGY must be gate or db-lock, not {BUY_STRATEGY!r}")
# Seconds a web process answers "sold out" from memory once the gate said so (0: never).
SOLD_OUT_MEMO = env.float("SOLD_OUT_MEMO", default=1.0)
# Settling (orders.services.orders_settle): accepted orders are confirmed in batches, one task
# per sale per SETTLE_WINDOW_MS (the nudge window: an order waits at most about that long for
# its task) and at most SETTLE_BATCH orders per transaction (each batch holds their row locks
# and the sale row's until its COMMIT: 500 take a few milliseconds).
SETTLE_WINDOW_MS = env.int("SETTLE_WINDOW_MS", default=100)
SETTLE_BATCH = env.int("SETTLE_BATCH", default=500)
# A sale with orders pending longer than ORDER_REQUEUE_AFTER seconds is settled again by the
# reconciler; an order older than ORDER_FAIL_AFTER is failed with "timeout".
ORDER_REQUEUE_AFTER = env.int("ORDER_REQUEUE_AFTER", default=30)
ORDER_FAIL_AFTER = env.int("ORDER_FAIL_AFTER", default=600)
RECONCILE_INTERVAL = env.float("RECONCILE_INTERVAL", default=5.0)
WARM_INTERVAL = env.float("WARM_INTERVAL", default=30.0)
WARM_AHEAD = env.int("WARM_AHEAD", default=600)  # seconds before a sale opens
# The waiting room (waitingroom/, per sale: Sale.waiting_room). It opens WAITING_ROOM_OPENS
# seconds before the sale; everyone in it then is put in a random order at the start. It admits
# WAITING_ROOM_RATE buyers a second unless the sale sets its own rate: about half the accepted
# buys a second loadtests/CAPACITY.md measured on one 2-core machine, the rest of the CPU being
# for the polls of those waiting. At most the stock left plus WAITING_ROOM_MARGIN (a fraction
# of the sale's stock, at least 1) hold an unspent pass at once. A pass is good for
# WAITING_ROOM_PASS_TTL seconds. A room rebuilt after Redis lost it draws again the places of
# those who come back within WAITING_ROOM_REDRAW seconds (docs/waiting-room.md).
WAITING_ROOM_OPENS = env.int("WAITING_ROOM_OPENS", default=600)
WAITING_ROOM_RATE = env.int("WAITING_ROOM_RATE", default=250)
WAITING_ROOM_MARGIN = env.float("WAITING_ROOM_MARGIN", default=0.1)
WAITING_ROOM_PASS_TTL = env.int("WAITING_ROOM_PASS_TTL", default=300)
WAITING_ROOM_REDRAW = env.int("WAITING_ROOM_REDRAW", default=10)
# Joins per address per minute (several buyers may share one address: a shop, a campus).
WAITING_ROOM_JOINS_PER_MINUTE = env.int("WAITING_ROOM_JOINS_PER_MINUTE", default=30)
# Postgres connections one worker process may hold, whatever its gevent concurrency (-c).
WORKER_DB_CONNECTIONS = env.int("WORKER_DB_CONNECTIONS", default=10)

# Celery: everything under the CELERY_ namespace (config/celery_app.py).
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# With acks_late, Redis hands an unacked message to another worker after this many seconds;
# it must exceed the longest task, and the reconciler covers anything it misses.
# kombu's Redis transport with a crash on reconnect worked around (config/broker.py).
CELERY_BROKER_TRANSPORT = "config.broker:Transport"
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("BROKER_VISIBILITY_TIMEOUT", default=120)
}
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default="django-db")
# django-celery-results' own backends, except that a result that cannot be stored (Postgres or
# the cache down) is logged instead of costing the task its delivery: config/celery_results.py.
CELERY_RESULT_BACKEND = {
    "django-db": "config.celery_results:DatabaseBackend",
    "django-cache": "config.celery_results:CacheBackend",
}.get(CELERY_RESULT_BACKEND, CELERY_RESULT_BACKEND)
# Results are stored only for the tasks that opt in (orders/tasks.py says which and why).
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_EXTENDED = True
CELERY_RESULT_EXPIRES = env.int("CELERY_RESULT_EXPIRES", default=86400)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# SIGTERM (docker stop, a pod deletion) is Celery's warm shutdown: stop taking tasks, finish the
# running ones. This limit bounds "finish" so the worker is gone well inside the pod's grace
# period (k8s/base/worker.yaml: 60 s); a task cut off leaves its order pending for the
# reconciler. Celery's own soft shutdown (worker_soft_shutdown_timeout) is not used: with
# -P gevent it sleeps inside gevent's signal callback, hits BlockingSwitchOutError and hangs
# until SIGKILL (Celery 5.7, seen while writing the SIGTERM test in tests/test_buy_storm.py).
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=20)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Celery's default. 1 looks safer with acks_late but on the Redis transport it leaves the pool
# idle between fetches (celery#4378): measured 2 orders per ~2 s at -c 2 in the kill test.
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_WORKER_PREFETCH_MULTIPLIER", default=4)
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "reconcile-orders": {"task": "orders.tasks.reconcile_orders", "schedule": RECONCILE_INTERVAL},
    "warm-sales": {"task": "orders.tasks.warm_sales", "schedule": WARM_INTERVAL},
    # celery.backend_cleanup deletes expired results (CELERY_RESULT_EXPIRES) from Postgres.
    "backend-cleanup": {"task": "celery.backend_cleanup", "schedule": 3600.0},
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# One language: Django's translation machinery off, as its docs advise for a site that does
# not translate (every @cache_page hit looked the language up for its key).
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
# The site's own stylesheet (a file, not an inline <style>: the CSP below has no unsafe-inline).
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed names: nginx and WhiteNoise can cache them forever; gzip copies, not brotli
    # (common/static_storage.py says why).
    "staticfiles": {"BACKEND": "common.static_storage.GzipManifestStaticFilesStorage"},
}

# Content-Security-Policy (django-csp's CSPMiddleware): our own files only, no inline script or
# style, nothing may frame us, forms post only to us. The Django admin fits it as it is
# (checked in Chromium: tests/test_browser.py), so there is one policy for every page.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
    }
}

# LOG_FORMAT (qbuy_core.logcontext): json in the images, text in make local and the tests. The
# worker and beat use this too (config/celery_app.py), gunicorn's own lines the same formatter.
LOG_FORMAT = logcontext.log_format()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"line": logcontext.formatter(LOG_FORMAT)},
    # The request id, sale and order of the scope (a request, a task) on each line.
    "filters": {"context": {"()": "qbuy_core.logcontext.ContextFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "line", "filters": ["context"]}
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    # Django logs every 4xx as a WARNING line: at a sale's opening that is a line per sold-out
    # answer (thousands a second, each formatted and written); the 5xx stay logged.
    "loggers": {"django.request": {"level": env("REQUEST_LOG_LEVEL", default="ERROR")}},
}
