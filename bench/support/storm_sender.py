"""One sender of bench/cluster.py's alert storm (its own process, no Django): a monitoring system posting batches of
alerts to its integration through the balancer, on a fixed schedule over `seconds`, over a few keep-alive
connections, retrying 5xx, 429 and lost answers as Alertmanager does (at most 5 tries, a second apart, bounded).

    python bench/support/storm_sender.py '<json arguments>'     -> one JSON line on stdout

Alert i (of all senders' alerts) has dedup key i % keys and service key % len(services); this sender sends the
alerts with i % senders == index, so each dedup key always comes from the same sender (and integration).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time

ATTEMPTS = 5


def alert_body(kind: str, alerts: list[tuple[int, str]], prefix: str) -> bytes:
    if kind == "alertmanager":
        items = [
            {
                "status": "firing",
                "labels": {"alertname": "RegionDown", "service": service, "severity": "critical", "key": str(key)},
                "annotations": {"summary": f"{service}: instance {key} unreachable"},
                "startsAt": "2026-01-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": f"{prefix}{key:06d}",
            }
            for key, service in alerts
        ]
        body = {"version": "4", "groupKey": prefix, "status": "firing", "receiver": "portal", "alerts": items}
        body.update(groupLabels={}, commonLabels={}, commonAnnotations={}, externalURL="")
    else:
        body = {
            "events": [
                {
                    "action": "trigger",
                    "dedup_key": f"{prefix}{key:06d}",
                    "summary": f"{service}: check {key} failing",
                    "severity": "critical",
                    "service": service,
                }
                for key, service in alerts
            ]
        }
    return json.dumps(body).encode()


async def read_response(reader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    match = re.search(rb"(?i)content-length:\s*(\d+)", head)
    if match and int(match.group(1)):
        await reader.readexactly(int(match.group(1)))
    return status, re.search(rb"(?i)\r\nconnection:\s*close", head) is None


async def run(args: dict) -> dict:
    host, path = args["host"], args["path"]
    mine = [i for i in range(args["index"], args["alerts"], args["senders"])]
    services = args["services"]
    batches = [mine[n : n + args["batch"]] for n in range(0, len(mine), args["batch"])]
    requests = []
    for batch in batches:
        keys = [i % args["keys"] for i in batch]
        body = alert_body(args["kind"], [(key, services[key % len(services)]) for key in keys], args["prefix"])
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {args['key']}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        requests.append(((len(batch), keys), head + body))
    t0 = time.monotonic() + 0.5
    interval = args["seconds"] / max(1, len(requests))
    deadline = t0 + args["seconds"] + 90
    pending = list(reversed(list(enumerate(requests))))
    accepted_keys: set[int] = set()
    result = {"alerts": len(mine), "requests": len(requests), "accepted": 0, "statuses": {}, "latencies": []}

    async def connection():
        reader = writer = None
        while pending and time.monotonic() < deadline:
            n, ((size, keys), request) = pending.pop()
            await asyncio.sleep(max(0.0, t0 + n * interval - time.monotonic()))
            status = 0
            for _attempt in range(ATTEMPTS):
                started = time.monotonic()
                try:
                    if writer is None:
                        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, 80), 5)
                    writer.write(request)
                    await writer.drain()
                    status, keep = await asyncio.wait_for(read_response(reader), 40)
                    if not keep:
                        writer.close()
                        writer = None
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                    status = 0
                    if writer is not None:
                        writer.close()
                    writer = None
                result["latencies"].append(time.monotonic() - started)
                result["statuses"][status] = result["statuses"].get(status, 0) + 1
                if 200 <= status < 300 or (400 <= status < 500 and status != 429) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(1.0)
            if 200 <= status < 300:
                result["accepted"] += size
                accepted_keys.update(keys)
        if writer is not None:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(connection() for _ in range(args["connections"])))
    result["seconds"] = time.monotonic() - started
    result["unsent"] = sum(size for _n, ((size, _keys), _r) in pending)
    result["accepted_keys"] = len(accepted_keys)
    return result


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(json.loads(sys.argv[1])))))
