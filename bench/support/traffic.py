"""Traffic for bench/cluster.py, through the load balancer: webhook senders at a steady rate and web-UI probes.
Every loop ends by itself (a count and a deadline); results are plain lists for the scenario to check against the
database."""

from __future__ import annotations

import http.client
import http.server
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import psycopg


def percentile(values, q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Client:
    """One keep-alive HTTP/1.1 connection that reconnects after an error; status 0 = no answer (refused, reset,
    timed out)."""

    def __init__(self, host: str, port: int = 80, timeout: float = 35.0):
        self.host, self.port, self.timeout = host, port, timeout
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        """(status, body, seconds, headers)."""
        started = time.monotonic()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.conn.request(method, path, body=body, headers=headers or {})
            response = self.conn.getresponse()
            data = response.read()
            if response.getheader("connection", "").lower() == "close":
                self.close()
            return response.status, data, time.monotonic() - started, dict(response.getheaders())
        except (OSError, http.client.HTTPException):
            self.close()
            return 0, b"", time.monotonic() - started, {}

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class Webhooks:
    """PagerDuty Events v2 triggers, one new dedup key each, `rate` a second for `seconds`, retried like a sender
    does (5xx, 429 or no answer: again after a second, at most `attempts` times in all)."""

    host: str
    routing_key: str
    prefix: str
    rate: float
    seconds: float
    threads: int = 8
    attempts: int = 5
    statuses: Counter = field(default_factory=Counter)  # every answer, retries included
    accepted: dict = field(default_factory=dict)  # dedup key -> time of its 2xx
    refused: dict = field(default_factory=dict)  # dedup key -> its last status (never a 2xx)
    answers: list = field(default_factory=list)  # (time, status, seconds)

    def start(self) -> Webhooks:
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._total = int(self.rate * self.seconds)
        self._workers = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.threads)]
        for worker in self._workers:
            worker.start()
        return self

    def _run(self, index: int) -> None:
        client = Client(self.host)
        for n in range(index, self._total, self.threads):
            delay = self._t0 + n / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            key = f"{self.prefix}-{n}"
            body = json.dumps(
                {
                    "routing_key": self.routing_key,
                    "event_action": "trigger",
                    "dedup_key": key,
                    "payload": {"summary": f"Check {key}", "source": f"host-{n % 20}", "severity": "warning"},
                }
            ).encode()
            status = 0
            for attempt in range(self.attempts):
                status, _data, seconds, _headers = client.request(
                    "POST",
                    "/api/v1/integrations/pagerduty/v2/enqueue",
                    body,
                    {"Content-Type": "application/json", "Host": self.host},
                )
                with self._lock:
                    self.statuses[status] += 1
                    self.answers.append((time.time(), status, seconds))
                if 200 <= status < 300 or (400 <= status < 500 and status != 429):
                    break
                if attempt + 1 < self.attempts:
                    time.sleep(1.0)
            with self._lock:
                if 200 <= status < 300:
                    self.accepted[key] = time.time()
                else:
                    self.refused[key] = status
        client.close()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))


class Probe(threading.Thread):
    """A signed-in person's browser: GETs `paths` in turn (session cookie), one every `interval` seconds, until
    `stop()` or `seconds` have passed. Records (time, path, status, seconds)."""

    def __init__(self, host: str, paths: list[str], cookie: str, *, interval: float = 0.25, seconds: float = 600):
        super().__init__(daemon=True)
        self.host, self.paths, self.cookie, self.interval, self.seconds = host, paths, cookie, interval, seconds
        self.samples: list[tuple[float, str, int, float]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        client = Client(self.host)
        deadline = time.monotonic() + self.seconds
        n = 0
        while not self._stop_event.is_set() and time.monotonic() < deadline:
            path = self.paths[n % len(self.paths)]
            n += 1
            status, _data, seconds, _headers = client.request(
                "GET", path, headers={"Cookie": self.cookie, "Host": self.host, "Accept": "text/html"}
            )
            self.samples.append((time.time(), path, status, seconds))
            self._stop_event.wait(self.interval)
        client.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(60)


class LockWatch(threading.Thread):
    """Samples, twice a second, which statements wait for a lock and which statement holds it (pg_stat_activity):
    where a slow request spends its time when the cores are not the reason."""

    SQL = """
        SELECT w.pid, left(regexp_replace(w.query, '\\s+', ' ', 'g'), 90),
               left(regexp_replace(b.query, '\\s+', ' ', 'g'), 90)
        FROM pg_stat_activity w
        JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS blocker(pid) ON true
        JOIN pg_stat_activity b ON b.pid = blocker.pid
        WHERE w.wait_event_type = 'Lock'
    """

    def __init__(self, database_url: str, seconds: float):
        super().__init__(daemon=True)
        self.url, self.seconds = database_url, seconds
        self.waits: Counter = Counter()
        self.samples = 0
        self.watched_pid: int | None = None  # a backend whose waits are also kept apart (watched)
        self.watched: Counter = Counter()
        self._stop_event = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.seconds
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop_event.is_set() and time.monotonic() < deadline:
                self.samples += 1
                for pid, waiting, holding in conn.execute(self.SQL).fetchall():
                    self.waits[(waiting, holding)] += 1
                    if pid == self.watched_pid:
                        self.watched[(waiting, holding)] += 1
                self._stop_event.wait(0.5)

    def stop(self) -> list[str]:
        self._stop_event.set()
        self.join(10)
        lines = [f"{n}x waiting: {w} | held by: {h}" for (w, h), n in self.waits.most_common(6)]
        return lines + [f"{n}x (watched) waiting: {w} | held by: {h}" for (w, h), n in self.watched.most_common(4)]


class SwitchMonitor:
    """A dead-man's-switch monitor (healthchecks.io's role) on this script's own host: counts the portal's pings."""

    def __init__(self, address: str, port: int):
        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                hits.append(time.time())
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((address, port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
