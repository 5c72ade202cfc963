"""Debian's Prometheus (`/usr/bin/prometheus`, installed by `make prometheus`) on loopback, scraping a tiny loopback
target whose metrics the test sets, so probes query the real server: its PromQL parser, its HTTP API, its errors.

A temporary config and storage directory, a 1 s scrape interval; startup waits (bounded) until the target's metric
is queryable, and the process is stopped (terminate, then kill) when the fixture ends."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler

from .servers import closed_port, http_server

PROMETHEUS = "/usr/bin/prometheus"
READY_TIMEOUT_SECONDS = 60.0


class Target:
    """The scrape target's metrics, in the Prometheus text format; the test sets them before Prometheus starts."""

    def __init__(self, metrics: dict[str, float]):
        self.metrics = dict(metrics)
        self.lock = threading.Lock()

    def exposition(self) -> bytes:
        with self.lock:
            lines = [f"{name} {value}" for name, value in self.metrics.items()]
        return ("\n".join(lines) + "\n").encode()


def _target_handler(target: Target):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802 - http.server's name
            body = target.exposition() if self.path.startswith("/metrics") else b"not found\n"
            self.send_response(200 if self.path.startswith("/metrics") else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def query(base: str, promql: str) -> dict:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


@contextmanager
def real_prometheus(metrics: dict[str, float]):
    """Yields (base URL, Target). Waits until every metric in `metrics` has been scraped."""
    target = Target(metrics)
    with http_server(_target_handler(target)) as target_port, tempfile.TemporaryDirectory(prefix="prom-") as work:
        port = closed_port()
        config = os.path.join(work, "prometheus.yml")
        with open(config, "w") as file:
            file.write(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n"
                "  - job_name: portal-test\n"
                f"    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
            )
        log = open(os.path.join(work, "prometheus.log"), "wb")  # noqa: SIM115 - closed below
        process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={os.path.join(work, 'data')}",
             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, cwd=work,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + READY_TIMEOUT_SECONDS
            missing = set(metrics)
            while missing and time.monotonic() < deadline:
                if process.poll() is not None:
                    break
                with suppress(OSError, ValueError, KeyError):  # not listening yet, or not scraped yet
                    missing = {name for name in missing if not query(base, name)["data"]["result"]}
                if missing:
                    time.sleep(0.25)
            if missing:
                log.flush()
                with open(log.name, "rb") as output:
                    tail = output.read()[-2000:].decode(errors="replace")
                raise RuntimeError(f"Prometheus did not scrape {sorted(missing)} in time:\n{tail}")
            yield base, target
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            log.close()


def available() -> bool:
    return os.access(PROMETHEUS, os.X_OK) or shutil.which("prometheus") is not None
