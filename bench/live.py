"""Live push benchmark: 200 viewers of one incident, polled every 2 s versus pushed over Server-Sent Events.

Runs the portal as in production on 127.0.0.1 (DEBUG=0, PostgreSQL in a database of its own, Redis): gunicorn
(incidentportal/gunicorn.py: gthread, 2 workers per core, 4 threads) serves the pages and the cursor requests,
uvicorn (one process) serves /events/. A writer process commits a note on the incident every --interval seconds
through incidents.services and stamps the moment each COMMIT returned.

For each interval, two phases of --seconds each, with the same writer:
  poll  every viewer asks GET /incidents/INC-n/?after=<cursor> (HX-Request) every 2 s, staggered, as the page does
        without push: propagation is commit -> the poll answer that carries the entry;
  push  every viewer holds GET /events/incidents/INC-n/ open on uvicorn; on each event it makes that same cursor
        request, as the page does: propagation is commit -> the event (and, reported too, -> the entry fetched).
Web server CPU is the user+system time of the gunicorn and uvicorn process groups over the phase (/proc), per
second of wall time. Everything runs on loopback and is bounded (viewers, seconds, intervals).

    .venv/bin/python bench/live.py [--viewers 200] [--seconds 24] [--intervals 2,10]

Prints one final line:
RESULT viewers=200 event_p95_ms=... event_p50_ms=... fetched_p95_ms=... poll_p95_ms=...
       cpu_push_pct=... cpu_poll_pct=... cpu_ratio=... poll_rps=... push_rps=... load1=...
       (each at the first interval; then *_i<seconds> for the others; poll_rps below 100 means the machine could not
       serve the polls, so polling's CPU is understated)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from support import ADMIN_URL, free_port, pg_url, psql

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DB_NAME = os.environ.get("BENCH_LIVE_DB", "ip_bench_live")  # a helper per database
CLK_TCK = os.sysconf("SC_CLK_TCK")
POLL_SECONDS = 2.0


def environment(port: int) -> dict:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=pg_url(DB_NAME),
        DEBUG="0",
        SECRET_KEY="bench-" + os.urandom(16).hex(),
        SECURE_SSL_REDIRECT="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SITE_URL=f"http://127.0.0.1:{port}",
        REDIS_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/4"),
        LOG_LEVEL="WARNING",
        DB_CONN_MAX_AGE="600",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.pop("TESTING", None)
    return env


SETUP = """
import json
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import Group, User
from django.contrib.sessions.backends.db import SessionStore
from incidents.services.entries import add_timeline_entry
from incidents.services.status import declare_incident
from incidents.models import SeverityPolicy
ic = User.objects.create_user("bench-ic", password="bench-ic-pass")
ic.groups.add(Group.objects.get(name="responder"))
p1 = SeverityPolicy.objects.get(level="P1")
incident = declare_incident(title="Bench: API slow response times", severity=p1, by=ic)
for n in range(40):
    add_timeline_entry(incident=incident, by=ic, body=f"Earlier note {{n}}: checked the **dashboards**.")
viewer = User.objects.create_user("bench-viewer", password="bench-viewer-pass")
viewer.groups.add(Group.objects.get(name="responder"))
keys = []
for _ in range({viewers}):
    session = SessionStore()
    session[SESSION_KEY] = str(viewer.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = viewer.get_session_auth_hash()
    session.create()
    keys.append(session.session_key)
last = incident.timeline.order_by("-id").values_list("id", flat=True).first()
path = incident.get_absolute_url()
print(json.dumps({{"reference": incident.reference, "path": path, "cursor": last, "sessions": keys}}))
"""

# The writer: one note every interval, stamped when its COMMIT returned (an on_commit callback registered before the
# service's own, so the stamp precedes the live publish). Bounded by count.
WRITER = """
import sys, time
from django.contrib.auth.models import User
from django.db import transaction
from incidents.models import Incident
from incidents.services.entries import add_timeline_entry
ic = User.objects.get(username="bench-ic")
incident = Incident.objects.get(number={number})
sys.stdin.readline()  # "go": Django is loaded, the measurement starts now
start = time.monotonic()
for n in range({count}):
    time.sleep(max(0.0, start + n * {interval} - time.monotonic()))
    stamp = []
    with transaction.atomic():
        transaction.on_commit(lambda: stamp.append(time.time()))
        entry = add_timeline_entry(incident=incident, by=ic, body=f"Bench note {{n}}: restarted **api-7**.")
    print("COMMIT", entry.pk, stamp[0], flush=True)
"""


def manage(env, *args) -> str:
    done = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"manage.py {args[0]} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def wait_for_port(port: int, name: str) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{name} did not start")


def group_cpu_seconds(pgid: int) -> float:
    """user+system CPU of every live process in the process group (the server and its workers)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is state (field 3); pgrp is field 5, utime 14, stime 15.
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# --- HTTP/1.1 on raw asyncio streams (a few hundred connections in one process) ----------------------------------


class Connection:
    def __init__(self, port: int, cookie: str):
        self.port, self.cookie = port, cookie
        self.reader = self.writer = None

    async def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        for attempt in range(2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nCookie: sessionid={self.cookie}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
            try:
                self.writer.write((head + "\r\n").encode())
                status_line = await self.reader.readline()
                if not status_line:
                    raise ConnectionError("closed")
                status = int(status_line.split()[1])
                length, close = 0, False
                while (line := await self.reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin1").partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                    elif name.lower() == "connection" and "close" in value.lower():
                        close = True
                body = await self.reader.readexactly(length) if length else b""
                if close:
                    self.close()
                return status, body
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


AFTER = re.compile(rb'id="timeline-poller" hx-get="[^"]*[?&]after=(\d+)')
ENTRY = re.compile(rb'data-entry-id="(\d+)"')


class Viewer:
    def __init__(self, web_port: int, cookie: str, path: str, cursor: int):
        self.web = Connection(web_port, cookie)
        self.cookie, self.path, self.cursor = cookie, path, cursor
        self.seen: dict[int, float] = {}  # entry id -> when this viewer had it
        self.answered: list[float] = []  # when each of its cursor requests was answered
        self.events: list[float] = []  # when each pushed event arrived

    async def fetch(self) -> None:
        status, body = await self.web.get(f"{self.path}?after={self.cursor}", {"HX-Request": "true"})
        now = time.time()
        self.answered.append(now)
        if status == 200:
            for match in ENTRY.finditer(body):
                self.seen.setdefault(int(match.group(1)), now)
            found = AFTER.search(body)
            if found:
                self.cursor = int(found.group(1))
        elif status != 204:
            raise RuntimeError(f"poll answered {status}: {body[:200]!r}")

    async def poll(self, stop: asyncio.Event, offset: float) -> None:
        await asyncio.sleep(offset)
        while not stop.is_set():
            started = time.monotonic()
            await self.fetch()
            await asyncio.sleep(max(0.0, POLL_SECONDS - (time.monotonic() - started)))

    async def push(self, events_port: int, reference: str, stop: asyncio.Event, ready: asyncio.Event, opened: list):
        reader, writer = await asyncio.open_connection("127.0.0.1", events_port)
        writer.write(
            (
                f"GET /events/incidents/{reference}/ HTTP/1.1\r\nHost: 127.0.0.1:{events_port}\r\n"
                f"Cookie: sessionid={self.cookie}\r\nAccept: text/event-stream\r\n\r\n"
            ).encode()
        )
        status = int((await reader.readline()).split()[1])
        if status != 200:
            raise RuntimeError(f"/events/ answered {status}")
        while await reader.readline() not in (b"\r\n", b""):
            pass
        refresh: asyncio.Task | None = None
        again = False

        async def refresher():
            nonlocal again
            while True:
                again = False
                await self.fetch()
                if not again:
                    return

        stopped = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                reading = asyncio.ensure_future(reader.readline())
                await asyncio.wait({reading, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not reading.done():
                    reading.cancel()
                    break
                line = reading.result()
                if not line:
                    raise RuntimeError("event stream ended")
                # uvicorn sends the body chunked: size lines and frame lines arrive alike; only "event:" matters.
                if line.startswith(b"event: ready"):
                    opened.append(1)
                    if len(opened) == ready.total:
                        ready.set()
                elif line.startswith(b"event: incident"):
                    self.events.append(time.time())
                    if refresh is None or refresh.done():
                        refresh = asyncio.ensure_future(refresher())
                    else:
                        again = True  # as the page's script does: one more request after this one
        finally:
            stopped.cancel()
            writer.close()
            if refresh is not None:
                await asyncio.gather(refresh, return_exceptions=True)


async def run_phase(mode, *, viewers, web_port, events_port, reference, seconds, pgids, writer_cmd, env):
    # The writer loads Django now and waits for "go", so its start-up is outside the measurement.
    writer = await asyncio.create_subprocess_exec(
        *writer_cmd,
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    # Each viewer starts from the incident's newest entry, as a freshly loaded page does.
    await warm(viewers)
    stop = asyncio.Event()
    ready = asyncio.Event()
    ready.total = len(viewers)
    opened: list = []
    if mode == "push":
        tasks = [asyncio.ensure_future(v.push(events_port, reference, stop, ready, opened)) for v in viewers]
        await asyncio.wait_for(ready.wait(), 60)
    else:
        tasks = [
            asyncio.ensure_future(v.poll(stop, offset=i * POLL_SECONDS / len(viewers))) for i, v in enumerate(viewers)
        ]
        await asyncio.sleep(POLL_SECONDS)  # every viewer polls at its pace before the measurement starts
    cpu_before = {pgid: group_cpu_seconds(pgid) for pgid in pgids}
    wall_before, started = time.monotonic(), time.time()
    out, err = await writer.communicate(b"go\n")
    if writer.returncode:
        raise RuntimeError(err.decode()[-2000:])
    await asyncio.sleep(max(0.0, wall_before + seconds - time.monotonic()))
    wall = time.monotonic() - wall_before
    cpu = {pgid: group_cpu_seconds(pgid) - before for pgid, before in cpu_before.items()}
    window = (started, started + wall)
    await asyncio.sleep(POLL_SECONDS + 1)  # the last note reaches every viewer (outside the CPU window)
    stop.set()
    await asyncio.gather(*tasks)
    lines = [line.split() for line in out.decode().splitlines() if line.startswith("COMMIT ")]
    commits = [(int(entry), float(stamp)) for _, entry, stamp in lines]
    return commits, cpu, wall, window


def summarise(mode, viewers, commits, cpu, wall, window):
    seen_ms, event_ms, missing = [], [], 0
    for entry_id, committed in commits:
        for viewer in viewers:
            when = viewer.seen.get(entry_id)
            if when is None:
                missing += 1
            else:
                seen_ms.append((when - committed) * 1000)
            if mode == "push":
                later = [t for t in viewer.events if t >= committed - 0.001]
                if later:
                    event_ms.append((min(later) - committed) * 1000)
    # Cursor requests answered inside the CPU window: polling asks for 100/s from 200 viewers; when the machine
    # cannot serve that, polling's CPU is understated and the ratio favours it (the rate shows it).
    answered = sum(1 for viewer in viewers for moment in viewer.answered if window[0] <= moment < window[1])
    return {
        "requests_per_s": answered / wall,
        "seen_p50": percentile(seen_ms, 0.50),
        "seen_p95": percentile(seen_ms, 0.95),
        "event_p50": percentile(event_ms, 0.50),
        "event_p95": percentile(event_ms, 0.95),
        "missing": missing,
        "cpu": cpu,
        "cpu_pct": 100 * sum(cpu.values()) / wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=24.0, help="measured seconds per phase (max 120)")
    parser.add_argument("--intervals", default="2,10", help="seconds between committed notes, comma-separated")
    args = parser.parse_args()
    args.viewers = max(1, min(args.viewers, 1000))
    args.seconds = max(4.0, min(args.seconds, 120.0))
    intervals = [max(0.5, float(x)) for x in args.intervals.split(",") if x.strip()][:4]

    web_port, events_port = free_port(), free_port()
    env = environment(web_port)
    psql(ADMIN_URL, f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    psql(ADMIN_URL, f'CREATE DATABASE "{DB_NAME}"')
    servers = []
    try:
        manage(env, "migrate", "--noinput", "-v", "0")
        setup = json.loads(manage(env, "shell", "-c", SETUP.format(viewers=args.viewers)).strip().splitlines()[-1])
        number = int(setup["reference"].removeprefix("INC-"))
        gunicorn = subprocess.Popen(
            [PYTHON, "-m", "gunicorn", "incidentportal.wsgi:application", "-c", "python:incidentportal.gunicorn",
             "-b", f"127.0.0.1:{web_port}", "--log-level", "warning"],
            cwd=ROOT, env=env, start_new_session=True,
        )  # fmt: skip
        servers.append(gunicorn)
        uvicorn = subprocess.Popen(
            [PYTHON, "-m", "uvicorn", "incidentportal.asgi:application", "--host", "127.0.0.1",
             "--port", str(events_port), "--no-access-log", "--lifespan", "off", "--log-level", "warning"],
            cwd=ROOT, env=env, start_new_session=True,
        )  # fmt: skip
        servers.append(uvicorn)
        wait_for_port(web_port, "gunicorn")
        wait_for_port(events_port, "uvicorn")
        pgids = {"gunicorn": gunicorn.pid, "uvicorn": uvicorn.pid}

        results = {}
        for interval in intervals:
            count = max(1, int(args.seconds / interval))
            for mode in ("poll", "push"):
                viewers = [Viewer(web_port, key, setup["path"], setup["cursor"]) for key in setup["sessions"]]
                code = WRITER.format(number=number, count=count, interval=interval)
                commits, cpu, wall, window = asyncio.run(
                    run_phase(
                        mode,
                        viewers=viewers,
                        web_port=web_port,
                        events_port=events_port,
                        reference=setup["reference"],
                        seconds=args.seconds,
                        pgids=list(pgids.values()),
                        writer_cmd=[PYTHON, "manage.py", "shell", "-c", code],
                        env=env,
                    )
                )
                cpu_named = {name: cpu[pgid] for name, pgid in pgids.items()}
                results[(interval, mode)] = summary = summarise(mode, viewers, commits, cpu_named, wall, window)
                print(
                    f"interval {interval:g}s {mode}: {len(commits)} notes; seen p50 {summary['seen_p50']:.0f} ms "
                    f"p95 {summary['seen_p95']:.0f} ms"
                    + (
                        f"; event p50 {summary['event_p50']:.0f} ms p95 {summary['event_p95']:.0f} ms"
                        if mode == "push"
                        else ""
                    )
                    + f"; missing {summary['missing']}; {summary['requests_per_s']:.0f} requests/s; "
                    f"CPU gunicorn {cpu_named['gunicorn']:.2f}s uvicorn {cpu_named['uvicorn']:.2f}s "
                    f"over {wall:.1f}s = {summary['cpu_pct']:.1f}%",
                    flush=True,
                )
    finally:
        for server in servers:
            try:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(server.pid, signal.SIGKILL)
        psql(ADMIN_URL, f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')

    parts = [f"viewers={args.viewers}"]
    for index, interval in enumerate(intervals):
        suffix = "" if index == 0 else f"_i{interval:g}"
        push, poll = results[(interval, "push")], results[(interval, "poll")]
        parts += [
            f"interval_s{suffix}={interval:g}",
            f"event_p50_ms{suffix}={push['event_p50']:.0f}",
            f"event_p95_ms{suffix}={push['event_p95']:.0f}",
            f"fetched_p95_ms{suffix}={push['seen_p95']:.0f}",
            f"poll_p95_ms{suffix}={poll['seen_p95']:.0f}",
            f"cpu_push_pct{suffix}={push['cpu_pct']:.1f}",
            f"cpu_poll_pct{suffix}={poll['cpu_pct']:.1f}",
            f"cpu_ratio{suffix}={push['cpu_pct'] / poll['cpu_pct']:.2f}",
            f"poll_rps{suffix}={poll['requests_per_s']:.0f}",
            f"push_rps{suffix}={push['requests_per_s']:.0f}",
            f"missing{suffix}={push['missing'] + poll['missing']}",
        ]
    print(f"load average {os.getloadavg()[0]:.1f}")
    print("RESULT " + " ".join(parts) + f" load1={os.getloadavg()[0]:.1f}")
    return 0


async def warm(viewers) -> None:
    # Opens each viewer's keep-alive connection and warms every gunicorn worker (imports, DB connections).
    await asyncio.gather(*(v.fetch() for v in viewers))
    random.shuffle(viewers)


if __name__ == "__main__":
    sys.exit(main())
