"""Settings from the environment: the embedded default (SQLite WAL + IMMEDIATE, filesystem broker, console email)
and production (PostgreSQL, Redis, secure cookies). Settings are read at import, so each case runs in a fresh
interpreter with its own environment."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from incidentportal.settings import parse_database_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent
CONFIG_VARS = {
    "DATABASE_URL",
    "REDIS_URL",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "SITE_URL",
    "TESTING",
    "EMAIL_HOST",
    "EMAIL_BACKEND",
    "CSRF_TRUSTED_ORIGINS",
    "SECURE_SSL_REDIRECT",
}


def settings_in(tmp_path, **env) -> dict:
    environment = {key: value for key, value in os.environ.items() if key not in CONFIG_VARS}
    environment["VAR_DIR"] = str(tmp_path / "var")
    environment.update(env)
    code = textwrap.dedent(
        """
        import json, os
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "incidentportal.settings")
        from django.conf import settings as s
        db = s.DATABASES["default"]
        print(json.dumps({
            "engine": db["ENGINE"], "name": str(db["NAME"]), "options": db.get("OPTIONS", {}),
            "host": db.get("HOST"), "port": db.get("PORT"), "user": db.get("USER"), "password": db.get("PASSWORD"),
            "health_checks": db.get("CONN_HEALTH_CHECKS"),
            "broker": s.CELERY_BROKER_URL, "broker_options": s.CELERY_BROKER_TRANSPORT_OPTIONS,
            "email": s.EMAIL_BACKEND, "debug": s.DEBUG, "hosts": s.ALLOWED_HOSTS, "site": s.SITE_URL,
            "csrf_origins": s.CSRF_TRUSTED_ORIGINS,
            "ssl_redirect": getattr(s, "SECURE_SSL_REDIRECT", False), "hsts": getattr(s, "SECURE_HSTS_SECONDS", 0),
            "session_secure": s.SESSION_COOKIE_SECURE, "csrf_secure": s.CSRF_COOKIE_SECURE,
            "static_storage": s.STORAGES["staticfiles"]["BACKEND"],
            "business": [s.BUSINESS_TIMEZONE, s.BUSINESS_DAY_START, s.BUSINESS_DAY_END, s.BUSINESS_DAYS],
        }))
        """
    )
    result = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-c", code], cwd=BASE_DIR, env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_nothing_set_gives_the_embedded_default(tmp_path):
    config = settings_in(tmp_path)
    assert config["engine"] == "django.db.backends.sqlite3"
    assert config["name"] == str(tmp_path / "var" / "portal.sqlite3")
    assert config["options"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in config["options"]["init_command"]
    assert config["options"]["timeout"] >= 5
    assert config["broker"].startswith("filesystem://")
    assert Path(config["broker_options"]["data_folder_in"]).is_dir()
    assert Path(config["broker_options"]["processed_folder"]).is_dir()
    assert config["email"] == "django.core.mail.backends.console.EmailBackend"
    assert config["debug"] is True
    assert config["business"] == ["UTC", "09:00", "17:00", [0, 1, 2, 3, 4]]


def test_database_and_redis_urls_select_postgresql_and_redis(tmp_path):
    config = settings_in(
        tmp_path,
        DATABASE_URL="postgres://portal:s%40cret@db.internal:6543/incidents?sslmode=require",
        REDIS_URL="redis://cache.internal:6379/2",
    )
    assert config["engine"] == "incidentportal.postgres"
    assert (config["name"], config["user"], config["password"]) == ("incidents", "portal", "s@cret")
    assert (config["host"], config["port"]) == ("db.internal", "6543")
    assert config["options"] == {"sslmode": "require"}
    assert config["health_checks"] is True
    assert config["broker"] == "redis://cache.internal:6379/2"
    assert config["broker_options"]["visibility_timeout"] >= 3600


def test_production_settings_are_secure(tmp_path):
    config = settings_in(
        tmp_path,
        DEBUG="0",
        SECRET_KEY="x" * 60,
        ALLOWED_HOSTS="incidents.example.com,status.example.com",
        SITE_URL="https://incidents.example.com/",
        EMAIL_HOST="smtp.example.com",
    )
    assert config["debug"] is False
    assert config["hosts"] == ["incidents.example.com", "status.example.com"]
    assert config["site"] == "https://incidents.example.com"
    assert config["csrf_origins"] == ["https://incidents.example.com"]
    assert config["ssl_redirect"] is True and config["hsts"] >= 31536000
    assert config["session_secure"] is True and config["csrf_secure"] is True
    assert config["email"] == "django.core.mail.backends.smtp.EmailBackend"
    assert config["static_storage"].startswith("whitenoise.")


def test_a_secret_key_alone_turns_debug_off(tmp_path):
    assert settings_in(tmp_path, SECRET_KEY="y" * 60)["debug"] is False


def test_sqlite_url_paths():
    absolute = parse_database_url("sqlite:////srv/portal/db.sqlite3")
    assert absolute["NAME"] == "/srv/portal/db.sqlite3"
    relative = parse_database_url("sqlite:///var/db.sqlite3")
    assert relative["NAME"] == "var/db.sqlite3"
    assert relative["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def test_postgres_url_defaults_and_unknown_scheme():
    config = parse_database_url("postgresql://127.0.0.1/")
    assert config["NAME"] == "incidentportal" and config["HOST"] == "127.0.0.1" and config["PORT"] == ""
    with pytest.raises(ImproperlyConfigured, match="mysql"):
        parse_database_url("mysql://localhost/portal")
