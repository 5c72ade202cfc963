"""/healthz with real processes: a Celery worker and beat on Redis and the test database. While beat runs the
timers tick and /healthz answers 200; when beat dies (kill -9) /healthz answers 503 within two tick periods of the
last tick, and 200 again once a new beat runs. Bounded: every wait has a timeout, every process is killed."""

import time
from datetime import datetime

import pytest

from .harness import wait_until

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

TICK = 1.0  # seconds: TIMER_TICK_SECONDS of the workers, beat and this process
POLL = 0.1
SETTLE = 90  # the bound on every wait


def _healthz(client):
    response = client.get("/healthz")
    return response.status_code, response.json()


def test_healthz_goes_503_within_two_tick_periods_when_beat_stops(make_cluster, client, settings):
    settings.TIMER_TICK_SECONDS = TICK
    cluster = make_cluster(tick_seconds=TICK)
    cluster.worker("health-worker")
    beat = cluster.beat()
    wait_until(lambda: _healthz(client)[0] == 200, timeout=SETTLE, message="/healthz 200 with beat running")

    beat.kill()
    deadline = time.monotonic() + SETTLE
    last_ok_body = None
    while time.monotonic() < deadline:
        status, body = _healthz(client)
        if status == 503:
            break
        last_ok_body = body
        time.sleep(POLL)
    else:
        pytest.fail(f"/healthz still 200 {SETTLE}s after beat died")

    stale = {name: timer for name, timer in body["checks"]["timers"]["timers"].items() if timer["state"] == "stale"}
    assert {"paging-escalation-tick", "paging-outbox-tick"} & set(stale), body
    assert [name for name, check in body["checks"].items() if not check["ok"]] == ["timers"], body
    checked_at = datetime.fromisoformat(body["checked_at"])
    previous_check = datetime.fromisoformat(last_ok_body["checked_at"]) if last_ok_body else None
    for name, timer in stale.items():
        assert timer["stale_after_seconds"] == 2 * TICK
        assert timer["age_seconds"] > 2 * TICK
        if previous_check is not None:
            # The check before said 200: the 503 came at the first look after the last tick turned two periods old.
            gap = (checked_at - previous_check).total_seconds()
            assert timer["age_seconds"] <= 2 * TICK + gap, (name, timer, gap)

    cluster.beat()
    wait_until(lambda: _healthz(client)[0] == 200, timeout=SETTLE, message="/healthz 200 again with a new beat")
