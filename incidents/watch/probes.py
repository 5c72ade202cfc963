"""Running one probe: an HTTP(S) request, a TCP connect or a Prometheus instant query, each bounded in time and size.

Only the probe's own configured host is contacted (a redirect to another host is reported, never followed), a
response body is read to at most BODY_CAP bytes, and every step has a timeout, so a hanging or hostile target costs
at most the probe's timeout. Failures are results, never exceptions: the timeline says what was found.
"""

from __future__ import annotations

import json
import math
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin, urlsplit

import urllib3
from django.conf import settings

from .models import Comparison, Probe, ProbeKind

BODY_CAP = 64 * 1024
MAX_REDIRECTS = 3


@dataclass(frozen=True)
class ProbeResult:
    name: str
    ok: bool
    summary: str
    latency_ms: float | None = None
    value: float | None = None

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "ok": self.ok,
            "summary": self.summary,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 1),
            "value": self.value,
        }


def _ssl_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    bundle = getattr(settings, "WATCH_CA_BUNDLE", "")
    if bundle:
        context.load_verify_locations(cafile=bundle)
    return context


def _pool(timeout: float) -> urllib3.PoolManager:
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout, read=timeout),
        retries=False,
        ssl_context=_ssl_context(),
        num_pools=1,
        maxsize=1,
    )


def _read_capped(response, deadline: float) -> bytes:
    chunks, size = [], 0
    for chunk in response.stream(8192):
        chunks.append(chunk)
        size += len(chunk)
        if size >= BODY_CAP or time.monotonic() > deadline:
            break
    response.release_conn()
    return b"".join(chunks)[:BODY_CAP]


def _http_get(url: str, timeout: float, *, headers: dict | None = None) -> tuple[int, bytes, float]:
    """GET with same-host redirects only. Returns (status, body up to BODY_CAP, latency ms)."""
    started = time.monotonic()
    deadline = started + timeout
    host = urlsplit(url).hostname
    pool = _pool(timeout)
    try:
        for _ in range(MAX_REDIRECTS + 1):
            response = pool.request("GET", url, headers=headers, redirect=False, preload_content=False)
            if response.status in (301, 302, 303, 307, 308) and response.headers.get("Location"):
                target = urljoin(url, response.headers["Location"])
                response.release_conn()
                if urlsplit(target).hostname != host:
                    raise _Refused(f"redirected to another host ({urlsplit(target).hostname}); not followed")
                url = target
                continue
            body = _read_capped(response, deadline)
            return response.status, body, (time.monotonic() - started) * 1000
        raise _Refused(f"more than {MAX_REDIRECTS} redirects")
    finally:
        pool.clear()


class _Refused(Exception):
    pass


def _describe_error(error: BaseException) -> str:
    reason = getattr(error, "reason", None) or error
    text = str(reason)
    if isinstance(reason, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        detail = getattr(reason, "verify_message", "") or "verification failed"
        return f"TLS certificate invalid: {detail}"
    # Before the time-out test: urllib3's NewConnectionError (and its NameResolutionError) is a subclass of its
    # ConnectTimeoutError.
    if "Connection refused" in text:
        return "connection refused"
    if isinstance(reason, urllib3.exceptions.NameResolutionError | socket.gaierror) or any(
        words in text for words in ("Name or service not known", "nodename nor servname", "Failed to resolve")
    ):
        return "host not found"
    if isinstance(error, urllib3.exceptions.TimeoutError | TimeoutError) or "timed out" in text.lower():
        return "timed out"
    return text[:200]


def probe_http(probe: Probe) -> ProbeResult:
    try:
        status, _body, latency = _http_get(probe.url, probe.timeout_seconds)
    except _Refused as refused:
        return ProbeResult(probe.name, False, f"{probe.url}: {refused}")
    except Exception as error:  # every transport failure is a result on the timeline
        return ProbeResult(probe.name, False, f"{probe.url}: {_describe_error(error)}")
    tls = " (TLS valid)" if probe.url.lower().startswith("https:") else ""
    ok = status == probe.expected_status
    expected = "" if ok else f", expected {probe.expected_status}"
    return ProbeResult(probe.name, ok, f"{probe.url}: HTTP {status}{expected} in {latency:.0f} ms{tls}", latency)


def probe_tcp(probe: Probe) -> ProbeResult:
    started = time.monotonic()
    target = f"{probe.host}:{probe.port}"
    try:
        with socket.create_connection((probe.host, probe.port), timeout=probe.timeout_seconds):
            latency = (time.monotonic() - started) * 1000
    except Exception as error:
        return ProbeResult(probe.name, False, f"{target}: {_describe_error(error)}")
    return ProbeResult(probe.name, True, f"{target}: connected in {latency:.0f} ms", latency)


def _crosses(value: float, comparison: str, threshold: float) -> bool:
    return {
        Comparison.GT: value > threshold,
        Comparison.GE: value >= threshold,
        Comparison.LT: value < threshold,
        Comparison.LE: value <= threshold,
    }[comparison]


def probe_prometheus(probe: Probe) -> ProbeResult:
    base = getattr(settings, "PROMETHEUS_URL", "")
    if not base:
        return ProbeResult(probe.name, False, "PROMETHEUS_URL is not set: the query was not run")
    url = f"{base.rstrip('/')}/api/v1/query?" + urlencode(
        # Prometheus durations are whole numbers with a unit ("3.0s" is refused): milliseconds.
        {"query": probe.query, "timeout": f"{max(1, round(probe.timeout_seconds * 1000))}ms"}
    )
    try:
        status, body, latency = _http_get(url, probe.timeout_seconds, headers={"Accept": "application/json"})
        document = json.loads(body)
    except _Refused as refused:
        return ProbeResult(probe.name, False, f"Prometheus: {refused}")
    except ValueError:
        return ProbeResult(probe.name, False, "Prometheus answered something that is not JSON")
    except Exception as error:
        return ProbeResult(probe.name, False, f"Prometheus: {_describe_error(error)}")
    if not isinstance(document, dict) or document.get("status") != "success":
        error = document.get("error", f"HTTP {status}") if isinstance(document, dict) else f"HTTP {status}"
        return ProbeResult(probe.name, False, f"query `{probe.query}` refused: {str(error)[:200]}", latency)
    data = document.get("data") or {}
    result = data.get("result")
    try:
        if data.get("resultType") == "vector":
            if not result:
                return ProbeResult(probe.name, False, f"query `{probe.query}` returned no data", latency)
            value = float(result[0]["value"][1])
        elif data.get("resultType") == "scalar":
            value = float(result[1])
        else:
            return ProbeResult(probe.name, False, f"query `{probe.query}` is not an instant vector or scalar", latency)
    except (KeyError, IndexError, TypeError, ValueError):
        return ProbeResult(probe.name, False, f"query `{probe.query}` returned a value that is not a number", latency)
    if math.isnan(value):
        return ProbeResult(probe.name, False, f"`{probe.query}` = NaN", latency, None)
    if probe.threshold is None:
        return ProbeResult(probe.name, True, f"`{probe.query}` = {value:g}", latency, value)
    failing = _crosses(value, probe.comparison, probe.threshold)
    verdict = (
        f"{Comparison(probe.comparison).label} the threshold {probe.threshold:g}" if failing else "within threshold"
    )
    return ProbeResult(probe.name, not failing, f"`{probe.query}` = {value:g}, {verdict}", latency, value)


RUNNERS = {ProbeKind.HTTP: probe_http, ProbeKind.TCP: probe_tcp, ProbeKind.PROMETHEUS: probe_prometheus}


def run_probe(probe: Probe) -> ProbeResult:
    return RUNNERS[probe.kind](probe)
