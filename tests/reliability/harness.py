"""Real Celery worker and beat processes against Redis and the test PostgreSQL database, for reliability tests
and the escalation benchmark. Every wait is bounded; every process is killed in a finally (see `Cluster`)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CELERY = [sys.executable, "-m", "celery", "-A", "incidentportal"]


class Process:
    def __init__(self, name: str, args: list[str], env: dict, log_dir: Path):
        self.name = name
        self.log = log_dir / f"{name}.log"
        handle = open(self.log, "wb")  # noqa: SIM115 - closed in kill()
        self._handle = handle
        # Own process group: kill -9 reaches the worker and any child it forked.
        self.popen = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.popen.returncode}):\n{self.text()[-3000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} did not log {needle!r} within {timeout}s:\n{self.text()[-3000:]}")

    def kill(self) -> None:
        """kill -9 the whole process group, then reap it."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)
        self._handle.close()

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None


class Cluster:
    """Start workers and a beat with a shared environment; `stop()` kills everything (call it in a finally)."""

    def __init__(self, *, database_url: str, redis_url: str, work_dir: Path, tick_seconds: float = 0.5, **extra):
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.deliveries = self.work_dir / "deliveries.txt"
        self.starts = self.work_dir / "starts.txt"
        backend = "tests.reliability.backends.RecordingBackend"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_"))},
            "DJANGO_SETTINGS_MODULE": "incidentportal.settings",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "TESTING": "1",
            "VAR_DIR": str(self.work_dir / "var"),
            "TIMER_TICK_SECONDS": str(tick_seconds),
            "PAGING_EMAIL_BACKEND": backend,
            "PAGING_SMS_BACKEND": backend,
            "PAGING_VOICE_BACKEND": backend,
            "PAGING_CHAT_BACKEND": backend,
            "PAGING_WEBHOOK_BACKEND": backend,
            "RELIABILITY_DELIVERIES": str(self.deliveries),
            "RELIABILITY_STARTS": str(self.starts),
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **{k: str(v) for k, v in extra.items()},
        }
        self.processes: list[Process] = []

    def worker(self, name: str, *, queues: str = "timers,notifications,default", pool: str = "solo", concurrency=1):
        args = CELERY + [
            "worker",
            "-n",
            f"{name}@%h",
            "-Q",
            queues,
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "INFO",
        ]
        process = Process(name, args, self.env, self.work_dir)
        self.processes.append(process)
        process.wait_for("ready.", timeout=90)
        return process

    def beat(self):
        args = CELERY + ["beat", "-s", str(self.work_dir / "beat-schedule"), "-l", "INFO"]
        process = Process("beat", args, self.env, self.work_dir)
        self.processes.append(process)
        process.wait_for("beat: Starting", timeout=90)
        return process

    def stop(self) -> None:
        for process in self.processes:
            process.kill()

    def started_sends(self) -> list[tuple[int, str]]:
        if not self.starts.exists():
            return []
        lines = [line.split() for line in self.starts.read_text().splitlines()]
        return [(int(pid), key) for pid, key in lines if pid.isdigit()]


def wait_until(predicate, *, timeout: float, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{message} not reached within {timeout}s")
