"""The portal on several hosts (network namespaces, bench/support/netns.py), for bench/cluster.py.

- db: its own PostgreSQL cluster (Debian's binaries, `initdb` into a temporary directory, run as the postgres user)
  and its own redis-server, both bound to the host's address only. The machine's own servers are never touched.
- web1, web2: gunicorn with the production config (incidentportal/gunicorn.py), DEBUG=0.
- lb: Debian's haproxy in front of web1 and web2 (TCP health checks every second, redispatch on a refused
  connection, `X-Forwarded-Proto: https` as a TLS-terminating balancer sends).
- wk1, wk2: the Procfile's `timers` and `notifications,default` workers, and a Celery beat on each.
- client: where the load generators, the probes and this script's own database connections run.

Channel backends record every delivery to a file (tests/reliability/backends.py), one line per idempotency key.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from .netns import Net, Proc, enter

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
HOSTS = {"db": 10, "web1": 21, "web2": 22, "wk1": 31, "wk2": 32, "lb": 40, "client": 50}
WEB_HOSTS = ("web1", "web2")
SWITCH_PORT = 8099
WORKER_HOSTS = ("wk1", "wk2")
BACKEND = "tests.reliability.backends.RecordingBackend"
CHANNELS = ("EMAIL", "SMS", "VOICE", "PUSH", "CHAT", "WEBHOOK")


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise SystemExit(f"PostgreSQL's {name} not found under /usr/lib/postgresql (apt-get install postgresql)")
    return found[-1]


def wait_tcp(addr: str, port: int, timeout: float, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((addr, port), timeout=0.5).close()
            return
        except OSError:
            if proc is not None and not proc.alive:
                raise RuntimeError(f"{proc.host} {proc.name} exited:\n{proc.text()[-3000:]}") from None
            time.sleep(0.2)
    raise TimeoutError(f"nothing listens on {addr}:{port} after {timeout}s")


def wait_log(proc: Proc, needle: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in proc.text():
            return
        if not proc.alive:
            raise RuntimeError(f"{proc.host} {proc.name} exited:\n{proc.text()[-3000:]}")
        time.sleep(0.2)
    raise TimeoutError(f"{proc.host} {proc.name} did not log {needle!r} in {timeout}s:\n{proc.text()[-3000:]}")


HAPROXY = """global
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 30s
    timeout http-keep-alive 30s
    retries 2
    option redispatch
frontend portal
    bind {lb}:80
    default_backend web
backend web
    balance leastconn
    http-request set-header X-Forwarded-Proto https
{servers}
"""


class Testbed:
    def __init__(self, work_dir: Path, *, tick: float, web_workers: int | None, extra_env: dict | None = None):
        self.work = work_dir
        self.work.mkdir(parents=True, exist_ok=True)
        os.chmod(self.work, 0o755)  # PostgreSQL (its own user) reaches its data directory below
        self.net = Net(HOSTS, self.work)
        self.deliveries = self.work / "deliveries.txt"
        self.tick = tick
        self.web_workers = web_workers
        addr = self.net.addr
        self.database_url = (
            f"postgres://postgres@{addr('db')}:5432/portal"
            # A web request or a tick whose database went away fails in seconds (a 503, a retried tick), never
            # waits for TCP's own retransmission timeout (minutes): see README, "Running on several machines".
            "?connect_timeout=3&tcp_user_timeout=5000&keepalives_idle=5&keepalives_interval=2&keepalives_count=2"
        )
        self.redis_url = f"redis://{addr('db')}:6379/1"
        self.lb_url = f"http://{addr('lb')}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_", "WEB_", "GUNICORN_"))},
            "DJANGO_SETTINGS_MODULE": "incidentportal.settings",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": ",".join(addr(h) for h in ("lb", *WEB_HOSTS)),
            "SITE_URL": f"https://{addr('lb')}",
            "FORWARDED_ALLOW_IPS": addr("lb"),
            "VAR_DIR": str(self.work / "var"),
            "STATIC_ROOT": str(self.work / "static"),
            "TIMER_TICK_SECONDS": str(tick),
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "RELIABILITY_DELIVERIES": str(self.deliveries),
            # The dead-man's switch pings a monitor on the client host (bench/support/traffic.SwitchMonitor).
            "DEADMAN_SWITCH_URL": f"http://{addr('client')}:{SWITCH_PORT}/ping",
            **{f"PAGING_{channel}_BACKEND": BACKEND for channel in CHANNELS},
            **(extra_env or {}),
        }
        self.env.pop("TESTING", None)
        self.env.pop("RELIABILITY_STARTS", None)

    # --- the database host ------------------------------------------------------------------------------------

    def start_db(self) -> None:
        data = self.work / "pgdata"
        run_dir = self.work / "pgrun"
        for folder in (data, run_dir):
            folder.mkdir()
            shutil.chown(folder, "postgres", "postgres")
        self.net.run(
            "db",
            ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", pg_bin("initdb"), "-D", str(data),
             "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
            check=True, capture_output=True,
        )  # fmt: skip
        with open(data / "pg_hba.conf", "a") as hba:
            hba.write("host all all 198.18.0.0/24 trust\n")
        db = self.net.addr("db")
        self.net.spawn(
            "db",
            "postgres",
            [pg_bin("postgres"), "-D", str(data), "-c", f"listen_addresses={db}", "-c", "port=5432",
             "-c", f"unix_socket_directories={run_dir}", "-c", "max_connections=300", "-c", "shared_buffers=256MB",
             "-c", "log_min_messages=warning"],
            os.environ.copy(),
            user="postgres",
        )  # fmt: skip
        redis = self.net.spawn(
            "db",
            "redis",
            ["redis-server", "--bind", db, "--port", "6379", "--save", "", "--appendonly", "no",
             "--protected-mode", "no", "--dir", str(self.work), "--loglevel", "warning"],
            os.environ.copy(),
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while subprocess.run(["pg_isready", "-q", "-h", db, "-p", "5432"], timeout=10).returncode != 0:
            if time.monotonic() > deadline:
                raise TimeoutError("the database host's PostgreSQL did not start")
            time.sleep(0.3)
        wait_tcp(db, 6379, 30, redis)
        subprocess.run(["psql", "-h", db, "-U", "postgres", "-qAtc", "CREATE DATABASE portal"], check=True, timeout=60)
        migrate = subprocess.run(
            [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if migrate.returncode:
            raise RuntimeError(f"migrate failed:\n{migrate.stdout}\n{migrate.stderr}")
        # A release step of any deployment: the pages' stylesheets and scripts, hashed (ManifestStaticFilesStorage).
        subprocess.run(
            [PYTHON, "manage.py", "collectstatic", "--noinput", "-v", "0"],
            cwd=ROOT, env=self.env, check=True, capture_output=True, timeout=600,
        )  # fmt: skip

    # --- web hosts and the balancer -----------------------------------------------------------------------------

    def start_web(self, host: str) -> Proc:
        env = dict(self.env, WEB_BIND=f"{self.net.addr(host)}:8000")
        if self.web_workers:
            env["WEB_WORKERS"] = str(self.web_workers)
        args = [PYTHON, "-m", "gunicorn", "incidentportal.wsgi:application", "-c", "python:incidentportal.gunicorn"]
        proc = self.net.spawn(host, "gunicorn", args, env, cwd=ROOT)
        wait_tcp(self.net.addr(host), 8000, 90, proc)
        return proc

    def start_lb(self) -> Proc:
        servers = "\n".join(
            f"    server {host} {self.net.addr(host)}:8000 check inter 1s fall 2 rise 2" for host in WEB_HOSTS
        )
        config = self.work / "haproxy.cfg"
        config.write_text(HAPROXY.format(lb=self.net.addr("lb"), servers=servers))
        proc = self.net.spawn("lb", "haproxy", ["haproxy", "-db", "-f", str(config)], os.environ.copy())
        wait_tcp(self.net.addr("lb"), 80, 30, proc)
        return proc

    # --- worker hosts -------------------------------------------------------------------------------------------

    def start_workers(self, host: str, *, beat: bool = True) -> list[Proc]:
        """The Procfile's `timers` and `worker` processes (and `beat`) on one host."""
        celery = [PYTHON, "-m", "celery", "-A", "incidentportal"]
        procs = [
            self.net.spawn(
                host, "timers",
                celery + ["worker", "-n", f"timers@{host}", "-Q", "timers", "--concurrency", "1", "--loglevel", "INFO"],
                self.env, cwd=ROOT,
            ),
            self.net.spawn(
                host, "worker",
                celery + ["worker", "-n", f"worker@{host}", "-Q", "notifications,default", "--concurrency", "2",
                          "--loglevel", "INFO"],
                self.env, cwd=ROOT,
            ),
        ]  # fmt: skip
        if beat:
            procs.append(self.start_beat(host))
        for proc in procs[:2]:
            wait_log(proc, "ready.", 120)
        return procs

    def start_beat(self, host: str) -> Proc:
        schedule = self.work / f"beat-{host}-{time.monotonic_ns()}"
        proc = self.net.spawn(
            host, "beat",
            [PYTHON, "-m", "celery", "-A", "incidentportal", "beat", "-s", str(schedule), "--loglevel", "INFO"],
            self.env, cwd=ROOT,
        )  # fmt: skip
        wait_log(proc, "beat: Starting", 120)
        return proc

    def beats(self) -> list[Proc]:
        return [proc for proc in self.net.procs if proc.name == "beat" and proc.alive]

    # --- the whole bed --------------------------------------------------------------------------------------------

    def start(self) -> None:
        self.net.start()
        enter(self.net.ns("client"))  # this script's own connections, and its children's, are on the test bed
        self.start_db()
        for host in WEB_HOSTS:
            self.start_web(host)
        self.start_lb()
        for host in WORKER_HOSTS:
            self.start_workers(host)

    def stop(self) -> None:
        self.net.stop()
