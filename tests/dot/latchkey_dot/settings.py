"""Settings of the test provider. Everything instance-specific comes from the environment,
set by serve.py: LATCHKEY_DOT_DB (SQLite file), LATCHKEY_DOT_KEY_FILE (RS256 private key,
generated at start-up), LATCHKEY_DOT_ACCESS_TOKEN_TTL, LATCHKEY_DOT_ID_TOKEN_TTL,
LATCHKEY_DOT_REFRESH_TOKEN_TTL."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent


def _env_int(name, default):
    value = os.environ.get(name, "")
    return int(value) if value else default


def _private_key():
    path = os.environ.get("LATCHKEY_DOT_KEY_FILE", "")
    if not path:
        return ""
    with open(path, encoding="ascii") as f:
        return f.read()


# A throwaway per-process secret: sessions and CSRF tokens live as long as the instance.
SECRET_KEY = os.urandom(32).hex()
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "oauth2_provider",
    "latchkey_dot.apps.LatchkeyDotConfig",
]

MIDDLEWARE = [
    "latchkey_dot.middleware.IgnorePromptLogin",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

ROOT_URLCONF = "latchkey_dot.urls"
APPEND_SLASH = False
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csrf",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("LATCHKEY_DOT_DB", str(BASE_DIR / "unused.sqlite3")),
        "OPTIONS": {
            # Concurrent refreshes from several processes: writers queue instead of failing.
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL;",
        },
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LOGIN_URL = "/login"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}

OAUTH2_PROVIDER = {
    "OIDC_ENABLED": True,
    "OIDC_RSA_PRIVATE_KEY": _private_key(),
    "PKCE_REQUIRED": True,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "OIDC_RP_INITIATED_LOGOUT_ENABLED": True,
    "DCR_ENABLED": True,
    "DCR_REGISTRATION_PERMISSION_CLASSES": ("oauth2_provider.dcr.AllowAllDCRPermission",),
    "ACCESS_TOKEN_EXPIRE_SECONDS": _env_int("LATCHKEY_DOT_ACCESS_TOKEN_TTL", 60),
    "ID_TOKEN_EXPIRE_SECONDS": _env_int("LATCHKEY_DOT_ID_TOKEN_TTL", 3600),
    "REFRESH_TOKEN_EXPIRE_SECONDS": _env_int("LATCHKEY_DOT_REFRESH_TOKEN_TTL", 86400),
    # The test apps' custom-scheme redirect URI (dev.latchkey.test:/callback) next to
    # loopback http ones.
    "ALLOWED_REDIRECT_URI_SCHEMES": ["http", "https", "dev.latchkey.test"],
    "SCOPES": {
        "openid": "OpenID Connect",
        "profile": "Your name",
        "email": "Your email address",
        "offline_access": "Stay signed in",
    },
    "OAUTH2_VALIDATOR_CLASS": "latchkey_dot.validator.Validator",
}
