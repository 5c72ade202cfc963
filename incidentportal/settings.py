"""One settings module, driven by environment variables (12-factor).

With nothing set the portal runs on an embedded default: a SQLite file in WAL mode, a filesystem Celery
broker and console email, so `make run` works on a bare machine. With DATABASE_URL / REDIS_URL set it uses
PostgreSQL and Redis, as production and the test suite do.
"""

import os
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))
TESTING = "pytest" in sys.modules or os.environ.get("TESTING") == "1"


def env(name, default=None):
    return os.environ.get(name, default)


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name, default):
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def parse_database_url(url):
    """postgres://user:pass@host:port/name?sslmode=require  or  sqlite:///relative/or//absolute/path"""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path[1:]) if parsed.path.startswith("/") else unquote(parsed.path)
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path or str(VAR_DIR / "portal.sqlite3"),
            # WAL lets the web process read while the worker writes; IMMEDIATE takes the write lock at BEGIN,
            # so two writers queue on busy_timeout instead of failing with "database is locked".
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
            },
        }
    if parsed.scheme in {"postgres", "postgresql", "pgsql"}:
        options = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
        return {
            "ENGINE": "incidentportal.postgres",
            "NAME": unquote(parsed.path.lstrip("/")) or "incidentportal",
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", 60),
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": options,
        }
    raise ImproperlyConfigured(
        f"DATABASE_URL scheme {parsed.scheme!r} is not supported (use postgres:// or sqlite://)."
    )


DEBUG = env_bool("DEBUG", default=not env("SECRET_KEY"))
SECRET_KEY = env("SECRET_KEY") or "insecure-development-key-set-SECRET_KEY-in-production"
if not DEBUG and SECRET_KEY.startswith("insecure-") and not TESTING:
    raise ImproperlyConfigured("Set SECRET_KEY when DEBUG is off.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
SITE_URL = env("SITE_URL", "http://localhost:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", SITE_URL if SITE_URL.startswith("https://") else "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "axes",
    "csp",
    "incidents",
    "incidents.alerting",
    "incidents.watch",
    "incidents.statuspage",
    "incidents.audit",
    "incidents.profiles",
    "incidents.accounts",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "oncall",
    "oncall.paging",
    "oncall.chatops",
    "oncall.health",
    "postmortems",
]

MIDDLEWARE = [
    # First, so it times and counts every answer (Prometheus, /metrics).
    "oncall.health.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The signed-in user's time zone for everything the request shows and reads (incidents.profiles).
    "incidents.profiles.middleware.TimeZoneMiddleware",
    # Two-factor: which device (if any) verified this session, then the wall for staff who still need one.
    "django_otp.middleware.OTPMiddleware",
    "incidents.accounts.middleware.SecondFactorRequiredMiddleware",
    # Request id, IP and (read lazily) the user for the audit trail of everything the request changes.
    "incidents.audit.middleware.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # After the header middleware, so its 400/404 answers carry them too; before any view reads a parameter.
    "incidentportal.middleware.RefuseNulCharactersMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, so it sees the outcome of authentication (brute-force lock-out).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "incidentportal.urls"
WSGI_APPLICATION = "incidentportal.wsgi.application"

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
                "incidentportal.context_processors.portal",
            ],
            "builtins": ["incidents.templatetags.html_time"],
        },
    }
]

_default_db = (
    "postgres://postgres@127.0.0.1:5432/incidentportal" if TESTING else f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"
)
DATABASES = {"default": parse_database_url(env("DATABASE_URL", _default_db))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    # Single sign-on with OpenID Connect (incidents.accounts.oidc); idle unless OIDC_CLIENT_ID is set.
    "incidents.accounts.oidc.PortalOIDCBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "incidents:dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = True
# The admin and `|date` without a format write moments the portal's one way (incidents.profiles.zones).
FORMAT_MODULE_PATH = ["incidentportal.formats"]
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env("STATIC_ROOT", BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or TESTING
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Email -----------------------------------------------------------------------------------------------
EMAIL_BACKEND = env(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if env("EMAIL_HOST")
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "Incident Portal <incidents@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Celery ------------------------------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/15" if TESTING else "")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Above the longest task's hard time limit, so a slow task is never redelivered while it still runs.
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
    }
else:
    _broker_dir = VAR_DIR / "broker"
    # "localhost" means nothing to this transport; naming it stops kombu warning "No hostname was supplied".
    CELERY_BROKER_URL = "filesystem://localhost//"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    for _folder in (_broker_dir, _broker_dir / "processed", _broker_dir / "control"):
        _folder.mkdir(parents=True, exist_ok=True)
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 60)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 120)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Timer ticks run on their own queue so slow channels (email, webhooks) can never starve escalations.
CELERY_TASK_ROUTES = {
    # Slack's trigger ids live 3 s: chat requests get their own worker, never queued behind an email send.
    "oncall.chatops.tasks.process_inbound": {"queue": "chat"},
    "*.tick*": {"queue": "timers"},
    "*.*_tick": {"queue": "timers"},
    "*.send_*": {"queue": "notifications"},
    "*.deliver_*": {"queue": "notifications"},
}
# Live pages (incidents.live): pushed over Server-Sent Events from Redis pub/sub; without Redis the pages poll.
LIVE_PUSH = env_bool("LIVE_PUSH", True)
LIVE_CHANNEL_PREFIX = env("LIVE_CHANNEL_PREFIX", "incidentportal:live")
LIVE_KEEPALIVE_SECONDS = float(env("LIVE_KEEPALIVE_SECONDS", "15"))
LIVE_STREAM_MAX_SECONDS = float(env("LIVE_STREAM_MAX_SECONDS", "900"))
TIMER_TICK_SECONDS = float(env("TIMER_TICK_SECONDS", "2"))
CELERY_BEAT_SCHEDULE = {}  # each app adds its ticks in incidentportal/celery.py
# Publishing a task must not hang a request when Redis is away: every timer is a database column, so a lost
# message delays nothing beyond the next tick.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
# A worker that loses its broker connection cancels what it holds (acks_late): the rows are claimed again.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True

# Alerting (incidents/alerting): the largest webhook body accepted (bigger: 413 before parsing); requests per minute
# per integration (an integration can override it) and per API token; the longest an API token lives (lowering it
# also ends older tokens); how long before detection a change counts as "recent"; how long a web process remembers
# an integration found by key (0: not at all); the age of a Grafana signature that makes it a replay; the window in
# which a signed delivery (Sentry, Grafana) seen again byte for byte is a replay.
ALERTING_MAX_BODY_BYTES = env_int("ALERTING_MAX_BODY_BYTES", 1_048_576)
ALERTING_RATE_LIMIT_PER_MINUTE = env_int("ALERTING_RATE_LIMIT_PER_MINUTE", 6000)
API_TOKEN_RATE_LIMIT_PER_MINUTE = env_int("API_TOKEN_RATE_LIMIT_PER_MINUTE", 1200)
API_TOKEN_MAX_LIFETIME_DAYS = env_int("API_TOKEN_MAX_LIFETIME_DAYS", 365)
ALERTING_RECENT_CHANGES_HOURS = env_int("ALERTING_RECENT_CHANGES_HOURS", 24)
ALERTING_KEY_CACHE_SECONDS = env_int("ALERTING_KEY_CACHE_SECONDS", 5)
ALERTING_SIGNATURE_MAX_AGE_SECONDS = env_int("ALERTING_SIGNATURE_MAX_AGE_SECONDS", 300)
ALERTING_REPLAY_WINDOW_SECONDS = env_int("ALERTING_REPLAY_WINDOW_SECONDS", 86400)

# --- Paging (oncall.paging) ----------------------------------------------------------------------------------
# Passes through the whole escalation policy before the escalation hotlines are alerted (1 = once, no repeat).
PAGING_REPEAT_POLICY_TIMES = env_int("PAGING_REPEAT_POLICY_TIMES", 3)
# At most one message per channel per contact in this window; later ones are batched into the next message.
PAGING_RATE_LIMIT_SECONDS = env_int("PAGING_RATE_LIMIT_SECONDS", 60)
PAGING_MAX_ATTEMPTS = env_int("PAGING_MAX_ATTEMPTS", 5)
PAGING_RETRY_BACKOFF_SECONDS = env_int("PAGING_RETRY_BACKOFF_SECONDS", 10)
PAGING_ACK_LINK_MAX_AGE = env_int("PAGING_ACK_LINK_MAX_AGE_SECONDS", 24 * 3600)
PAGING_WEBHOOK_TIMEOUT = env_int("PAGING_WEBHOOK_TIMEOUT", 5)
PAGING_CHAT_WEBHOOK_URL = env("PAGING_CHAT_WEBHOOK_URL", "")
# Sender tasks started per batch of new notifications (match the notifications worker's concurrency).
PAGING_SENDER_PARALLELISM = env_int("PAGING_SENDER_PARALLELISM", 2)
# Notifications a sender claims per transaction (PostgreSQL; SQLite sends one per transaction). Each send commits
# a sent mark on its own, so a worker killed mid-batch repeats nothing (oncall/paging/sentmarks.py); a batch stops
# sending after PAGING_SENDER_BATCH_SECONDS, the longest an acknowledgement waits for in-flight sends.
PAGING_SENDER_BATCH = env_int("PAGING_SENDER_BATCH", 20)
PAGING_SENDER_BATCH_SECONDS = float(env("PAGING_SENDER_BATCH_SECONDS", "1.0"))
# Pages the escalation tick claims per transaction (a fixed number of statements each); smaller batches commit (and
# reach the senders) sooner, larger ones cost fewer round trips per page: 200 is ~0.2-0.3 s of work.
PAGING_TICK_BATCH = env_int("PAGING_TICK_BATCH", 200)
# Heartbeat monitors: pings per minute one heartbeat URL accepts, and missed heartbeats alerted per tick batch.
HEARTBEAT_RATE_LIMIT_PER_MINUTE = env_int("HEARTBEAT_RATE_LIMIT_PER_MINUTE", 120)
HEARTBEAT_TICK_BATCH = env_int("HEARTBEAT_TICK_BATCH", 1000)
# Triage probes: the Prometheus server the "Prometheus query" probes ask (its HTTP API), and extra CA certificates
# (a PEM file) trusted by HTTPS probes and the certificate watch, e.g. an internal CA.
PROMETHEUS_URL = env("PROMETHEUS_URL", "")
WATCH_CA_BUNDLE = env("WATCH_CA_BUNDLE", "")
# Twilio for SMS and voice: with these three set, SMS and voice go through Twilio; without them they are only
# logged ("logged, not delivered", a warning in check --deploy, the paging admin and the on-call page).
# TWILIO_API_BASE_URL sends the SDK's requests elsewhere (a test server); empty = api.twilio.com.
TWILIO_ACCOUNT_SID = env("TWILIO_ACCOUNT_SID", "")
TWILIO_AUTH_TOKEN = env("TWILIO_AUTH_TOKEN", "")
TWILIO_FROM_NUMBER = env("TWILIO_FROM_NUMBER", "")
TWILIO_API_BASE_URL = env("TWILIO_API_BASE_URL", "")
_TWILIO = bool(TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER)
PAGING_CHANNEL_BACKENDS = {
    "email": env("PAGING_EMAIL_BACKEND", "oncall.paging.channels.EmailBackend"),
    "sms": env(
        "PAGING_SMS_BACKEND",
        "oncall.paging.providers.TwilioSmsBackend" if _TWILIO else "oncall.paging.channels.LoggingBackend",
    ),
    "voice": env(
        "PAGING_VOICE_BACKEND",
        "oncall.paging.providers.TwilioVoiceBackend" if _TWILIO else "oncall.paging.channels.LoggingBackend",
    ),
    "push": env("PAGING_PUSH_BACKEND", "oncall.paging.providers.AppriseBackend"),
    "chat": env("PAGING_CHAT_BACKEND", "oncall.paging.channels.SlackWebhookBackend"),
    "webhook": env("PAGING_WEBHOOK_BACKEND", "oncall.paging.channels.WebhookBackend"),
}

# --- Chat-ops (oncall.chatops): Slack app and Mattermost slash command ------------------------------------------
# Slack: a bot token (xoxb-...) and the app's signing secret. Empty token = the Slack integration is off.
SLACK_BOT_TOKEN = env("SLACK_BOT_TOKEN", "")
SLACK_SIGNING_SECRET = env("SLACK_SIGNING_SECRET", "")
# The Web API base URL (tests point the real slack_sdk client at a local server).
SLACK_API_BASE_URL = env("SLACK_API_BASE_URL", "https://slack.com/api/")
# Your workspace's URL, for links to channels ("https://example.slack.com").
SLACK_WORKSPACE_URL = env("SLACK_WORKSPACE_URL", "").rstrip("/")
# Where declarations are announced, per severity: "P0=C0123,P1=C0123,P2=C0456" (P3 absent = not announced).
SLACK_ANNOUNCEMENT_CHANNELS = dict(
    item.split("=", 1) for item in env_list("SLACK_ANNOUNCEMENT_CHANNELS", "") if "=" in item
)
SLACK_ARCHIVE_ON_CLOSE = env_bool("SLACK_ARCHIVE_ON_CLOSE", True)
# 429s: slack_sdk retries in-process after Retry-After this many times; past that the outbox row waits for it.
SLACK_RATE_LIMIT_RETRIES = env_int("SLACK_RATE_LIMIT_RETRIES", 2)
SLACK_TIMEOUT = env_int("SLACK_TIMEOUT", 10)
CHATOPS_MAX_ATTEMPTS = env_int("CHATOPS_MAX_ATTEMPTS", 8)
CHATOPS_RETRY_BACKOFF_SECONDS = env_int("CHATOPS_RETRY_BACKOFF_SECONDS", 5)
# Mattermost: the slash command's token(s) (comma-separated) and, for channel posts, the server URL, a bot token
# and the channel id to post to.
MATTERMOST_COMMAND_TOKENS = env_list("MATTERMOST_COMMAND_TOKENS", "")
MATTERMOST_URL = env("MATTERMOST_URL", "").rstrip("/")
MATTERMOST_BOT_TOKEN = env("MATTERMOST_BOT_TOKEN", "")
MATTERMOST_CHANNEL_ID = env("MATTERMOST_CHANNEL_ID", "")

# --- Incident rules that are configuration, not data ---------------------------------------------------------
# "Next business day" (the P3 response target) is computed against these.
BUSINESS_TIMEZONE = env("BUSINESS_TIMEZONE", "UTC")
BUSINESS_DAY_START = env("BUSINESS_DAY_START", "09:00")
BUSINESS_DAY_END = env("BUSINESS_DAY_END", "17:00")
BUSINESS_DAYS = [int(day) for day in env_list("BUSINESS_DAYS", "0,1,2,3,4")]  # Monday=0
ACKNOWLEDGE_TARGET = timedelta(minutes=env_int("ACKNOWLEDGE_TARGET_MINUTES", 5))
# Extra addresses that receive every published post-mortem report (comma-separated).
POSTMORTEM_STAKEHOLDER_EMAILS = env_list("POSTMORTEM_STAKEHOLDER_EMAILS", "")
SECURITY_GROUP_NAME = "security"

# --- REST framework ------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # First, so an anonymous API call gets 401 with WWW-Authenticate: Bearer (not 403).
        "incidents.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "incidents.api.parsers.JSONParser",  # refuses NUL characters, naming the field
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.CursorPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Incident Portal API",
    "DESCRIPTION": "Declare and run incidents, ingest alerts, read on-call and post-mortems.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a "status"/"kind" choice set; name each enum so the schema (and check --deploy) has
    # no naming-collision warnings.
    "ENUM_NAME_OVERRIDES": {
        "IncidentStatusEnum": "incidents.models.Status",
        "UpdateStatusEnum": "incidents.models.UpdateStatus",
        "UpdateKindEnum": "incidents.models.UpdateKind",
        "PostMortemStatusEnum": "postmortems.models.PostMortemStatus",
        "ActionItemStatusEnum": "postmortems.models.ActionItemStatus",
    },
}

# --- Security ------------------------------------------------------------------------------------------------
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = False
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if not DEBUG and not TESTING:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Health probes and Prometheus often talk plain HTTP to the instance, behind the TLS proxy.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# --- Sign-in: single sign-on (OpenID Connect) and two-factor (incidents.accounts) ------------------------------
# SSO is on when OIDC_CLIENT_ID is set. Endpoints are the provider's discovery document's values
# (<issuer>/.well-known/openid-configuration); `manage.py oidc_discover <issuer>` prints them as env lines.
OIDC_RP_CLIENT_ID = env("OIDC_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = env("OIDC_CLIENT_SECRET", "")
OIDC_OP_ISSUER = env("OIDC_ISSUER", "")
OIDC_OP_AUTHORIZATION_ENDPOINT = env("OIDC_AUTHORIZATION_ENDPOINT", "")
OIDC_OP_TOKEN_ENDPOINT = env("OIDC_TOKEN_ENDPOINT", "")
OIDC_OP_USER_ENDPOINT = env("OIDC_USERINFO_ENDPOINT", "")
OIDC_OP_JWKS_ENDPOINT = env("OIDC_JWKS_ENDPOINT", "")
OIDC_OP_END_SESSION_ENDPOINT = env("OIDC_END_SESSION_ENDPOINT", "")
OIDC_RP_SIGN_ALGO = env("OIDC_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = env("OIDC_SCOPES", "openid email profile")
OIDC_PROVIDER_NAME = env("OIDC_PROVIDER_NAME", "single sign-on")
# The claim that lists the user's groups at the provider, and which portal groups each of its values grants:
# JSON, e.g. {"ip-security": "security", "ip-managers": ["incident_manager", "responder"]}. The portal groups
# named here are re-synced from the claim at every SSO sign-in; other groups are left as admins set them.
OIDC_GROUPS_CLAIM = env("OIDC_GROUPS_CLAIM", "groups")
OIDC_GROUP_MAP = env("OIDC_GROUP_MAP", "{}")
OIDC_USE_PKCE = True
OIDC_TOKEN_USE_BASIC_AUTH = env_bool("OIDC_TOKEN_USE_BASIC_AUTH", True)
OIDC_STORE_ID_TOKEN = True  # the id_token_hint of the logout at the provider
OIDC_TIMEOUT = env_int("OIDC_TIMEOUT_SECONDS", 10)
OIDC_AUTHENTICATION_CALLBACK_URL = "accounts:oidc-callback"
# Two-factor (TOTP + recovery codes) for accounts that sign in with a password. Staff and admins must use it when
# this is on: the default wherever DEBUG is off. SSO sign-ins are exempt: the identity provider does the MFA.
OTP_REQUIRED_FOR_STAFF = env_bool("OTP_REQUIRED_FOR_STAFF", default=not DEBUG and not TESTING)
OTP_TOTP_ISSUER = env("OTP_TOTP_ISSUER", "Incident Portal")
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # no TOTP secrets or QR codes of other people in the admin

AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
        "base-uri": [SELF],
        "object-src": [NONE],
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
