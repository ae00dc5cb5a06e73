"""Affinity settings: everything comes from the environment (12-factor).

With no environment at all the project runs on the *embedded default*: a SQLite
file under ``var/``, Celery on kombu's filesystem transport (a real worker process,
no server), emails to the outbox that staff read in admin. Set ``DJANGO_ENV=production``
for production: it refuses to start without ``DJANGO_SECRET_KEY`` and turns on the
security settings that ``manage.py check --deploy`` asks for.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("AFFINITY_VAR_DIR", BASE_DIR / "var"))

env = environ.Env()
if (BASE_DIR / ".env").exists():
    env.read_env(str(BASE_DIR / ".env"))

DJANGO_ENV = env.str("DJANGO_ENV", default="development")
if DJANGO_ENV not in {"development", "production", "test"}:
    raise ImproperlyConfigured(f"DJANGO_ENV must be development, production or test, not {DJANGO_ENV!r}")
PRODUCTION = DJANGO_ENV == "production"
TESTING = DJANGO_ENV == "test" or "pytest" in sys.modules

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is not set: production refuses to start without a secret.")
    SECRET_KEY = "django-insecure-dev-only-not-for-production-affinity-0123456789"

DEBUG = env.bool("DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=[] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# The public address used in absolute links (emails, the API's image URLs, feeds, Open
# Graph tags). Unset, `runstore` (`make run PORT=...`) passes the address it serves to
# its web, worker and beat processes, so links follow the port; a page request with
# no SITE_URL configured builds its own absolute URLs from the request.
SITE_URL_SET = bool(env.str("SITE_URL", default="").strip())
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").strip().rstrip("/")
# Product pages say "N people bought this in the last HOURS hours" from real orders,
# only when N reaches MIN_BUYERS.
SOCIAL_PROOF_HOURS = env.int("SOCIAL_PROOF_HOURS", default=24)
SOCIAL_PROOF_MIN_BUYERS = env.int("SOCIAL_PROOF_MIN_BUYERS", default=5)
# The product feeds for ad and shopping platforms (/feeds/...?token=...): off when empty.
PRODUCT_FEED_TOKEN = env.str("PRODUCT_FEED_TOKEN", default="")
PRODUCT_FEED_BRAND = env.str("PRODUCT_FEED_BRAND", default="Affinity")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI / Redoc served from our static files (no CDN)
    "django_celery_beat",
    "anymail",
    "axes",  # failed-login tracking and lockouts (staff see and reset them in admin)
    "csp",  # Content-Security-Policy header (see "Content-Security-Policy" below)
    "shop",
    "recommendations",
    "campaigns",
    "storefront",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",  # before BadText: its own 400 pages get the policy too
    "shop.rest.middleware.BadTextMiddleware",  # NUL / lone surrogates in path, query, form: 400
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "storefront.middleware.MarketingVisitMiddleware",  # shared links and UTM-tagged visits
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out login into the lockout page
]

ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"
ASGI_APPLICATION = "shop.asgi.application"

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
                "storefront.context_processors.storefront",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'affinity.sqlite3'}")}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # WAL + a busy timeout let the web process and the worker process share the file.
    _db.setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # Tests use a file, so that worker processes started by tests share it.
    _db["TEST"] = {"NAME": str(VAR_DIR / "test-affinity.sqlite3")}
else:
    _db.setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
    _db.setdefault("CONN_HEALTH_CHECKS", True)
DATABASE_IS_POSTGRES = _db["ENGINE"].startswith("django.db.backends.postgresql")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "shop.User"
LOGIN_URL = "shop:login"
LOGIN_REDIRECT_URL = "shop:home"
LOGOUT_REDIRECT_URL = "shop:home"

# Brute-force protection (django-axes): after LOGIN_FAILURE_LIMIT wrong passwords an
# account is locked, and so is an address (each counted on its own), on the store's and
# admin's login alike, until LOGIN_LOCKOUT_MINUTES pass (0: until staff reset it in admin,
# "Access attempts", or `manage.py axes_reset`). A right password while locked is refused.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out login before the password is checked
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env.bool("LOGIN_LOCKOUT_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # separately: per account, per address
_lockout_minutes = env.int("LOGIN_LOCKOUT_MINUTES", default=60)
AXES_COOLOFF_TIME = timedelta(minutes=_lockout_minutes) if _lockout_minutes > 0 else None
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_CALLABLE = "shop.security.login_username"  # the email, case-folded as the login forms do
AXES_CLIENT_IP_CALLABLE = "shop.security.client_ip"  # behind API_NUM_PROXIES trusted proxies, as the API
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env.str("TIME_ZONE", default="Europe/London")
USE_I18N = True
USE_TZ = True
# How far after "now" an event's time may be (clients' clock skew); the earliest
# time is fixed: shop.event_time.EVENTS_EARLIEST (a database constraint holds it too).
INTERACTION_MAX_FUTURE_SECONDS = env.int("INTERACTION_MAX_FUTURE_SECONDS", default=5 * 60)

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- Redis, cache, Celery ---------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    # Fail-soft (shop/cache.py): with Redis down the store serves without its cache,
    # logs it, and /health/ready names "cache"; the timeouts keep a hung Redis short.
    _redis_timeout = env.float("REDIS_CACHE_TIMEOUT", default=2.0)
    CACHES = {
        "default": {
            "BACKEND": "shop.cache.FailSoftRedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": _redis_timeout, "socket_timeout": _redis_timeout},
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_DIR = VAR_DIR / "celery-broker"
    CELERY_BROKER_URL = "filesystem://localhost/"  # a host named: kombu warns "No hostname was supplied" without one
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
CELERY_TASK_IGNORE_RESULT = True  # task state lives on our own rows (ModelVersion, Campaign)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True  # a killed worker's task is redelivered; tasks are idempotent
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=60 * 60)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=60 * 60 + 120)
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Email --------------------------------------------------------------------
# EMAIL_URL: smtp://user:pass@host:port, smtp+tls://..., or unset for the outbox
# (messages stored in the database and readable in admin). ANYMAIL_* settings and
# EMAIL_BACKEND=anymail.backends.<esp>.EmailBackend select an email service provider.
EMAIL_URL = env.str("EMAIL_URL", default="")
if EMAIL_URL:
    vars().update(env.email_url_config(EMAIL_URL))
    EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
else:
    EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="campaigns.outbox.OutboxEmailBackend")
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Affinity Store <store@affinity.example>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
ANYMAIL = env.json("ANYMAIL", default={})

# --- REST framework -------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # API-wide conventions (shop/rest/: errors, pagination, throttling, parsers, schema).
    "DEFAULT_SCHEMA_CLASS": "shop.rest.schema.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "shop.rest.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "EXCEPTION_HANDLER": "shop.rest.errors.api_exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "shop.rest.parsers.JSONParser",
        "shop.rest.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["shop.rest.throttling.AnonThrottle", "shop.rest.throttling.UserThrottle"],
    "DEFAULT_THROTTLE_RATES": {  # "<n>/<sec|min|hour|day>", or "off"
        "anon": env.str("API_THROTTLE_ANON", default="120/min"),
        "user": env.str("API_THROTTLE_USER", default="1200/min"),
        "interactions_batch": env.str("API_THROTTLE_BULK", default="3000/min"),
    },
    "NUM_PROXIES": env.int("API_NUM_PROXIES", default=0),  # trusted proxies adding X-Forwarded-For
}
API_MAX_PAGE_SIZE = env.int("API_MAX_PAGE_SIZE", default=100)
# A chunked body (no Content-Length) is read up to DATA_UPLOAD_MAX_MEMORY_SIZE (Django's 2.5 MB
# default); a chunked multipart upload (an import file) up to this (shop/wsgi_input.py).
CHUNKED_UPLOAD_MAX_BYTES = env.int("CHUNKED_UPLOAD_MAX_BYTES", default=256 * 1024 * 1024)
# A web process loads the active models, templates and category tree before serving (shop/warmup.py).
WARM_ON_START = env.bool("WARM_ON_START", default=True)
SPECTACULAR_SETTINGS = {
    "TITLE": "Affinity API",
    "DESCRIPTION": "Products, events, recommendations and campaigns of an Affinity store.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "shop.rest.schema.describe_api",
        "shop.rest.schema.link_operations",
    ],
    "ENUM_NAME_OVERRIDES": {
        "EventKindEnum": "shop.api.interactions.EVENT_KIND_CHOICES",
        "EventStatusEnum": "shop.api.interactions.EVENT_STATUS_CHOICES",
        "EventSourceEnum": "shop.api.interactions.EVENT_SOURCE_CHOICES",
        # Another app's field also named "kind": a clear name, not a hashed suffix.
        "CampaignKindEnum": "campaigns.models.Campaign.Kind",
    },
}

# --- Security (production) ------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Load balancers and orchestrators probe the process over plain HTTP: a 301 to
    # https would read as "down" (paths without their leading slash; see shop/urls.py).
    SECURE_REDIRECT_EXEMPT = [r"^health/live$", r"^health/ready$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SILENCED_SYSTEM_CHECKS: list[str] = []

# --- Content-Security-Policy (django-csp) ---------------------------------------
# Every page, store, admin and API docs alike. Scripts only from our own origin: no
# inline <script>, no 'unsafe-inline', no 'unsafe-eval' (the API docs use the split
# Swagger view, whose init script is a separate URL).
# style-src allows 'unsafe-inline' -- for styles ONLY: templates carry style=""
# attributes, Django admin / Swagger UI set element styles, and the email preview's
# srcdoc iframe (which inherits this policy) shows the email's inline CSS.
# img-src allows https: because a product's image_url may be any external URL, and
# SITE_URL's origin because emails (shown in the admin preview) link images there.
# Roll-out: CSP_REPORT_ONLY=true sends the same policy as
# Content-Security-Policy-Report-Only (nothing is blocked, violations are reported
# to CSP_REPORT_URI if set); once the reports are clean, unset it to enforce.
_SITE_ORIGIN = "/".join(SITE_URL.split("/")[:3])
_CSP_REPORT_ONLY = env.bool("CSP_REPORT_ONLY", default=False)
_CSP_REPORT_URI = env.str("CSP_REPORT_URI", default="")
_CSP_DIRECTIVES: dict[str, list[str]] = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:", "https:", _SITE_ORIGIN],
    "font-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    # The email preview's <iframe sandbox srcdoc> is about:srcdoc, which frame-src
    # does not restrict; nothing else is framed.
    "frame-src": ["'self'"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
    "base-uri": ["'self'"],
    "object-src": ["'none'"],
}
if _CSP_REPORT_URI:
    _CSP_DIRECTIVES["report-uri"] = [_CSP_REPORT_URI]
if _CSP_REPORT_ONLY:
    CONTENT_SECURITY_POLICY: dict | None = None
    CONTENT_SECURITY_POLICY_REPORT_ONLY: dict | None = {"DIRECTIVES": _CSP_DIRECTIVES}
else:
    CONTENT_SECURITY_POLICY = {"DIRECTIVES": _CSP_DIRECTIVES}
    CONTENT_SECURITY_POLICY_REPORT_ONLY = None

# --- Logging --------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(processName)s: %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "django": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "shop": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "recommendations": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "campaigns": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "storefront": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "celery": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

# --- Affinity -------------------------------------------------------------------
# Reserved domain (RFC 2606) for generated customers' emails.
AFFINITY_DEMO_EMAIL_DOMAIN = "customers.affinity.example"
# Where model artifacts are kept (a folder inside the default storage).
AFFINITY_ARTIFACT_DIR = "models"

# --- Campaigns (campaigns/conf.py lists every setting and its default) -------------
# Frequency cap: at most CAP marketing emails per customer per PERIOD_DAYS (0: no cap).
CAMPAIGNS_FREQUENCY_CAP = env.int("CAMPAIGNS_FREQUENCY_CAP", default=3)
CAMPAIGNS_FREQUENCY_PERIOD_DAYS = env.int("CAMPAIGNS_FREQUENCY_PERIOD_DAYS", default=7)
# Sending: rows per claim, rows per task, seconds a dead sender's rows stay claimed.
CAMPAIGNS_SEND_BATCH_SIZE = env.int("CAMPAIGNS_SEND_BATCH_SIZE", default=100)
CAMPAIGNS_SEND_CHUNK_SIZE = env.int("CAMPAIGNS_SEND_CHUNK_SIZE", default=1000)
CAMPAIGNS_SEND_LEASE_SECONDS = env.int("CAMPAIGNS_SEND_LEASE_SECONDS", default=300)
# Optional mailto address in List-Unsubscribe (the https one-click link is always there).
CAMPAIGNS_UNSUBSCRIBE_MAILTO = env.str("CAMPAIGNS_UNSUBSCRIBE_MAILTO", default="")
