"""The load generator of bench/ingest.py: bounded asyncio clients over raw keep-alive HTTP/1.1 connections, the
PagerDuty and Alertmanager request bodies they send, and the latency statistics they keep."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time


class Stats:
    def __init__(self):
        self.latencies: list[float] = []
        self.status: dict[int, int] = {}


async def _read_response(reader) -> tuple[int, bool]:
    """(status, whether the server keeps the connection open)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    match = re.search(rb"(?i)content-length:\s*(\d+)", head)
    length = int(match.group(1)) if match else 0
    if length:
        await reader.readexactly(length)
    return status, re.search(rb"(?i)\r\nconnection:\s*close", head) is None


async def drive(port: int, requests: list[bytes], concurrency: int, stats: Stats) -> float:
    """Send every request once over `concurrency` keep-alive connections; returns the wall time."""
    queue = list(reversed(requests))

    async def connection():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                request = queue.pop()
                started = time.perf_counter()
                for attempt in range(3):
                    try:
                        writer.write(request)
                        await writer.drain()
                        status, keep_alive = await _read_response(reader)
                        if not keep_alive:  # gunicorn's sync workers close after every response
                            writer.close()
                            reader, writer = await asyncio.open_connection("127.0.0.1", port)
                        break
                    except (asyncio.IncompleteReadError, ConnectionError):
                        # gunicorn recycled the connection: reconnect and resend (the request never ran).
                        writer.close()
                        reader, writer = await asyncio.open_connection("127.0.0.1", port)
                        if attempt == 2:
                            raise
                stats.latencies.append(time.perf_counter() - started)
                stats.status[status] = stats.status.get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return time.perf_counter() - started


def http_post(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: keep-alive",
    ]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def pagerduty_requests(port: int, key: str, count: int, seed: int) -> tuple[list[bytes], int]:
    rng = random.Random(seed)
    keys: list[str] = []
    out = []
    for n in range(count):
        if keys and rng.random() < 0.10:
            dedup = rng.choice(keys)  # a repeat: folds into the open group
        else:
            dedup = f"bench-{seed}-{n}"
            keys.append(dedup)
        body = {
            "routing_key": key,
            "event_action": "trigger",
            "dedup_key": dedup,
            "payload": {
                "summary": f"Disk 95% on host-{n % 50}",
                "source": f"host-{n % 50}",
                "severity": "warning",
                "component": "disk",
                "custom_details": {"free": "5%"},
            },
        }
        out.append(http_post(port, "/api/v1/integrations/pagerduty/v2/enqueue", json.dumps(body).encode(), {}))
    return out, len(keys)


def alertmanager_requests(port: int, key: str, batches: int, per_batch: int, seed: int) -> list[bytes]:
    out = []
    for b in range(batches):
        alerts = [
            {
                "status": "firing",
                "labels": {"alertname": "HighLatency", "instance": f"web-{b}-{i}:9100", "severity": "warning"},
                "annotations": {"summary": f"p99 latency high on web-{b}-{i}"},
                "startsAt": "2026-01-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example.com/graph",
                "fingerprint": f"{seed:x}{b:06x}{i:04x}",
            }
            for i in range(per_batch)
        ]
        body = {
            "version": "4",
            "groupKey": f"bench-{b}",
            "status": "firing",
            "receiver": "portal",
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "",
            "alerts": alerts,
        }
        out.append(
            http_post(
                port,
                "/api/v1/integrations/alertmanager/",
                json.dumps(body).encode(),
                {"Authorization": f"Bearer {key}"},
            )
        )
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]
