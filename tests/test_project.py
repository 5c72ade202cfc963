"""The project as a whole, run the way a fresh machine runs it: manage.py in subprocesses, on a throw-away SQLite
file (the `make run` default), plus the migration and deployment checks."""

import json
import os
import secrets
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
TIMEOUT = 300


def bare_env(tmp_path, **extra) -> dict:
    """The environment of a machine with nothing configured: no DATABASE_URL, REDIS_URL or SECRET_KEY."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {
            "DATABASE_URL",
            "REDIS_URL",
            "SECRET_KEY",
            "DEBUG",
            "ALLOWED_HOSTS",
            "SITE_URL",
            "TESTING",
            "EMAIL_HOST",
            "DJANGO_ALLOW_ASYNC_UNSAFE",  # the browser tests set it in this process; a deployment never has it
        }
        and not key.startswith("PYTEST")
    }
    env["VAR_DIR"] = str(tmp_path / "var")
    env.update(extra)
    return env


def manage(*args, env, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run(  # noqa: S603 - fixed argv, our own manage.py
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    if check:
        assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def shell(code: str, *, env) -> str:
    return manage("shell", "-c", textwrap.dedent(code), env=env).stdout


@pytest.fixture
def sqlite_env(tmp_path):
    database = tmp_path / "portal.sqlite3"
    return bare_env(tmp_path, DATABASE_URL=f"sqlite:///{database}"), database


def test_migrate_and_seed_demo_on_sqlite_in_wal_mode_and_seed_is_idempotent(sqlite_env):
    env, database = sqlite_env
    manage("migrate", "--noinput", env=env)
    first = manage("seed_demo", env=env).stdout
    assert "ic-demo-pass" in first and "manager-demo-pass" in first
    count = """
        import json
        from django.contrib.auth.models import User
        from incidents.models import Incident, Service, TimelineEntry
        print(json.dumps([Incident.objects.count(), TimelineEntry.objects.count(), User.objects.count(),
                          Service.objects.count()]))
    """
    before = json.loads(shell(count, env=env).strip().splitlines()[-1])
    assert before[0] >= 6
    second = manage("seed_demo", env=env).stdout
    assert "nothing new created" in second
    assert json.loads(shell(count, env=env).strip().splitlines()[-1]) == before
    with sqlite3.connect(database) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_concurrent_writers_on_sqlite_never_hit_database_is_locked(sqlite_env):
    """The web process and the worker write at the same time on the embedded default: IMMEDIATE transactions
    queue on the busy timeout instead of failing. Three processes declare incidents at once."""
    env, _database = sqlite_env
    manage("migrate", "--noinput", env=env)
    shell(
        """
        from django.contrib.auth.models import Group, User
        user = User.objects.create(username="writer")
        user.groups.add(Group.objects.get(name="responder"))
        """,
        env=env,
    )
    code = textwrap.dedent(
        """
        import sys
        from django.contrib.auth.models import User
        from incidents.services.status import declare_incident
        from incidents.models import SeverityPolicy
        user = User.objects.get(username="writer")
        severity = SeverityPolicy.objects.get(level="P2")
        numbers = [declare_incident(title=f"p{n}", severity=severity, by=user).number for n in range(6)]
        print(" ".join(map(str, numbers)))
        """
    )
    processes = [
        subprocess.Popen(  # noqa: S603 - fixed argv, our own manage.py
            [sys.executable, "manage.py", "shell", "-c", code],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    numbers = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
        assert process.returncode == 0, stderr
        assert "database is locked" not in stderr
        numbers += [int(n) for n in stdout.strip().splitlines()[-1].split()]
    assert sorted(numbers) == list(range(1, 19))


def test_no_missing_migrations(tmp_path):
    env = bare_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'check.sqlite3'}")
    result = manage("makemigrations", "--check", "--dry-run", env=env, check=False)
    assert result.returncode == 0, f"models and migrations differ:\n{result.stdout}\n{result.stderr}"


def test_check_deploy_with_production_settings_prints_no_warnings(tmp_path):
    env = bare_env(
        tmp_path,
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="incidents.example.com",
        SITE_URL="https://incidents.example.com",
    )
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stderr.replace("INFO", "")


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = bare_env(tmp_path, DEBUG="0", ALLOWED_HOSTS="incidents.example.com")
    result = manage("check", env=env, check=False)
    assert result.returncode != 0
    assert "Set SECRET_KEY" in result.stderr


@pytest.mark.django_db
def test_every_admin_page_renders_for_a_superuser_and_a_manager_on_demo_data(client):
    """Every registered model of every app: its changelist, and the change page of its first row, on the demo
    data. A manager gets 200 where the groups' permissions allow the page and 403 otherwise, never a 500."""
    from io import StringIO

    from django.contrib import admin
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.urls import NoReverseMatch, reverse

    call_command("seed_demo", stdout=StringIO())
    superuser, manager = User.objects.get(username="admin"), User.objects.get(username="manager")
    for user in (superuser, manager):
        client.force_login(user)
        for model, model_admin in admin.site._registry.items():
            meta = model._meta
            try:
                changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
            except NoReverseMatch:  # a model registered without the standard admin URLs
                continue
            allowed = model_admin.has_view_or_change_permission(_request_for(user))
            response = client.get(changelist)
            assert response.status_code == (200 if allowed else 403), (user.username, changelist)
            obj = model_admin.get_queryset(_request_for(user)).order_by("pk").first() if allowed else None
            if obj is not None:
                change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
                assert client.get(change).status_code == 200, (user.username, change)


def _request_for(user):
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def test_every_beat_tick_is_a_registered_task_on_a_queue_the_worker_consumes():
    """`make run` starts the Procfile's workers on their queues; every tick that beat sends must be a known task
    routed to one of them (ticks to `timers`, so slow sends never delay escalations)."""
    from incidentportal.celery import app

    app.loader.import_default_modules()
    app.finalize()
    procfile = (BASE_DIR / "Procfile").read_text()
    queues = {
        queue
        for line in procfile.splitlines()
        if " worker " in line and "-Q" in line
        for queue in line.split("-Q", 1)[1].split()[0].split(",")
    }
    assert {"timers", "notifications", "default"} <= queues
    schedule = app.conf.beat_schedule
    assert schedule, "no beat ticks registered"
    for name, entry in schedule.items():
        assert entry["task"] in app.tasks, (name, entry["task"])
        route = app.amqp.router.route({}, entry["task"])
        assert route["queue"].name == "timers", (name, route["queue"].name)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"PORT": "8201"}, "http://localhost:8201 start -p 8201"),
        ({}, "http://localhost:8000 start -p 8000"),
        ({"PORT": "8201", "SITE_URL": "https://incidents.example.com"}, "https://incidents.example.com start -p 8201"),
    ],
)
def test_make_run_sets_site_url_from_port_unless_it_is_set(tmp_path, extra, expected):
    """The command `make run` starts the processes with (from `make -n`), run with a stand-in honcho that prints
    the SITE_URL it was given: every link in pages, emails and SMS is built on it."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    honcho = venv / "bin" / "honcho"
    honcho.write_text('#!/bin/sh\necho "$SITE_URL $*"\n')
    honcho.chmod(0o755)
    env = bare_env(tmp_path)
    env.pop("PORT", None)
    plan = subprocess.run(  # noqa: S603 - fixed argv
        ["make", "-n", "run", f"VENV={venv}"], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    [line] = [line for line in plan.stdout.splitlines() if "honcho start" in line]
    result = subprocess.run(  # noqa: S603 - the Makefile's own line
        ["bash", "-c", line], env={**env, **extra}, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == expected
