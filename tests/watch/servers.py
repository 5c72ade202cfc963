"""Real servers on 127.0.0.1 for the probe and certificate tests: an HTTP(S) health endpoint that can be slow, fail,
hang or redirect; a stand-in speaking Prometheus's documented HTTP API (/api/v1/query) for fixed answers (Debian's
real Prometheus runs in tests/watch/prometheus.py); TLS servers with certificates made by trustme. Each runs in a
daemon thread and is shut down by its fixture; every sleep is bounded."""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HANG_SECONDS = 3.0  # longer than any probe timeout in the tests, bounded so the thread ends
SLOW_SECONDS = 0.4  # slow, but within the default probe timeout (3 s)


class HealthHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _answer(self, status: int, body: bytes = b"ok", headers: dict | None = None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 - http.server's name
        path = urlsplit(self.path).path
        if path == "/healthz":
            self._answer(200, b'{"status": "ok"}')
        elif path == "/broken":
            self._answer(500, b"internal error")
        elif path == "/slow":
            time.sleep(SLOW_SECONDS)
            self._answer(200, b'{"status": "ok"}')
        elif path == "/hang":
            time.sleep(HANG_SECONDS)
            self._answer(200)
        elif path == "/huge":
            self._answer(200, b"x" * (5 * 1024 * 1024))
        elif path == "/moved":
            self._answer(302, b"", {"Location": "/healthz"})
        elif path == "/elsewhere":
            self._answer(302, b"", {"Location": "http://203.0.113.9/steal"})
        elif path == "/loop":
            self._answer(302, b"", {"Location": "/loop"})
        else:
            self._answer(404, b"not found")


# Values the fake Prometheus answers, by query, in the documented vector/scalar shapes.
PROMQL = {
    "up": ("vector", "1"),
    'sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))': ("vector", "0.12"),
    "pg_stat_activity_count": ("vector", "87"),
    "scalar(1)": ("scalar", "1"),
    "absent_metric": ("vector", None),
}


class PrometheusHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _json(self, status: int, document: dict):
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        parts = urlsplit(self.path)
        if parts.path != "/api/v1/query":
            return self._json(404, {"status": "error", "errorType": "not_found", "error": "not found"})
        params = parse_qs(parts.query)
        query = params.get("query", [""])[0]
        timeout = params.get("timeout", ["1s"])[0]
        if not re.fullmatch(r"[0-9]+(ms|s|m)", timeout):
            # Like the real server (tests/watch/test_prometheus_real.py): durations are whole numbers with a unit.
            error = f'invalid parameter "timeout": cannot parse "{timeout}" to a valid duration'
            return self._json(400, {"status": "error", "errorType": "bad_data", "error": error})
        if query not in PROMQL:
            # What Prometheus answers for a query it cannot parse (HTTP 400, errorType bad_data).
            error = f'invalid parameter "query": 1:1: parse error: unexpected "{query[:1]}"'
            return self._json(400, {"status": "error", "errorType": "bad_data", "error": error})
        kind, value = PROMQL[query]
        now = time.time()
        if kind == "scalar":
            data = {"resultType": "scalar", "result": [now, value]}
        else:
            result = [] if value is None else [{"metric": {"job": "api"}, "value": [now, value]}]
            data = {"resultType": "vector", "result": result}
        self._json(200, {"status": "success", "data": data})


@contextmanager
def http_server(handler, *, context: ssl.SSLContext | None = None):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    # A probe that times out closes its end first; the handler's broken pipe is expected, not worth a traceback.
    server.handle_error = lambda request, client_address: None
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=HANG_SECONDS + 2)


@contextmanager
def tls_server(cert):
    """A TLS server presenting `cert` (a trustme LeafCert) that completes handshakes and closes."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            conn.settimeout(2)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=3)
        listener.close()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
