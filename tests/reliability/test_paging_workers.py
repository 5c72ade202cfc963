"""The paging engine with real worker processes: kill -9 mid-work, a flushed Redis, duplicated Celery messages,
acknowledgements racing escalations. Deliveries are counted by idempotency key at a recording backend that
appends to a file the workers cannot roll back. Bounded: every wait has a timeout, every process is killed."""

import random
import subprocess
import sys
import time
import zlib
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from incidents.services.status import acknowledge_incident
from oncall.paging.models import Notification, Page, SentMark

from .backends import read_deliveries
from .harness import ROOT, wait_until

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SETTLE = 120  # seconds: the bound on every wait for the workers


def _declare_pages(count: int, *, due_in: float, prefix: str):
    """`count` P1 incidents of distinct teams; level 1 (the team lead) falls due `due_in` seconds from now."""
    from tests.factories import ResponderFactory, declare
    from tests.paging.factories import paged_team

    by = ResponderFactory()
    pages = []
    for i in range(count):
        # Two notification rules per person (email and SMS, both at once), each on its own number.
        team = paged_team(name=f"{prefix} {i}", oncall_channels=("email", "sms"), lead_channels=("email", "sms"))
        for offset, person in enumerate((team.oncall, team.lead)):
            person.phone = f"+1415{zlib.crc32(prefix.encode()) % 1000:03d}{i:02d}{offset}0"
            person.save(update_fields=["phone"])
        incident = declare(by=by, level="P1", services=[team.service], title=f"{prefix} incident {i}")
        page = Page.objects.get(incident=incident)
        due = timezone.now() + timedelta(seconds=due_in)
        # The guide's P1 path fires level 1 thirty minutes after the start: start the pass 30 min before `due`.
        Page.objects.filter(pk=page.pk).update(pass_started_at=due - timedelta(minutes=30), escalate_at=due)
        pages.append(page)
    return pages, by


def _escalated(pages) -> bool:
    return Page.objects.filter(pk__in=[p.pk for p in pages], escalation_level__gte=1).count() == len(pages)


def _settled() -> bool:
    return not Notification.objects.filter(status=Notification.Status.PENDING).exists()


def _assert_each_sent_exactly_once(cluster):
    deliveries = read_deliveries(cluster.deliveries)
    counts = Counter(key for _t, _pid, key in deliveries)
    duplicated = {key: n for key, n in counts.items() if n > 1}
    assert not duplicated, f"delivered more than once: {duplicated}"
    sent = set(Notification.objects.filter(status=Notification.Status.SENT).values_list("idempotency_key", flat=True))
    assert sent == set(counts), f"lost: {sent - set(counts)}; unknown: {set(counts) - sent}"
    return deliveries


def test_kill_9_with_claimed_timers_and_unsent_notifications_loses_and_doubles_nothing(make_cluster):
    # Pages already due, held by a process that claimed them (the tick's own claim) and is then killed.
    held, _ = _declare_pages(4, due_in=-1, prefix="Held")
    # One row per sender transaction (the default): the victim dies holding a claimed, unsent row.
    cluster = make_cluster(RELIABILITY_SEND_DELAY=0.4, PAGING_RATE_LIMIT_SECONDS=0, PAGING_SENDER_BATCH=1)
    claimer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import django, time; django.setup()\n"
            "from django.db import transaction\n"
            "from django.utils import timezone\n"
            "from oncall.paging.models import Page\n"
            "from oncall.paging.services.engine import claim_page_rows\n"
            "transaction.atomic().__enter__()\n"
            "pages = claim_page_rows(Page.objects.due(timezone.now()), 100)\n"
            "print('claimed', len(pages), flush=True)\n"
            "time.sleep(600)\n",
        ],
        cwd=ROOT,
        env=cluster.env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert claimer.stdout.readline().split() == ["claimed", str(len(held))]
        fresh, _ = _declare_pages(8, due_in=3, prefix="Fresh")
        victim = cluster.worker("victim")
        cluster.worker("survivor")
        cluster.beat()
        # Kill the victim in the middle of a send: it holds a claimed, unsent notification.
        wait_until(
            lambda: any(pid == victim.pid for pid, _key in cluster.started_sends()),
            timeout=SETTLE,
            message="the victim starting a send",
        )
        victim.kill()
        # The held timers are not done while their claimer lives ...
        time.sleep(2)
        assert Page.objects.filter(pk__in=[p.pk for p in held], escalation_level__gte=1).count() == 0
        # ... and are done by the survivor once it dies (its transaction rolls back, the locks go).
        claimer.kill()
        claimer.wait(timeout=10)
        wait_until(lambda: _escalated(held + fresh), timeout=SETTLE, message="every due escalation")
        wait_until(_settled, timeout=SETTLE, message="every notification handled")
    finally:
        if claimer.poll() is None:
            claimer.kill()
        claimer.wait(timeout=10)
        claimer.stdout.close()
    deliveries = _assert_each_sent_exactly_once(cluster)
    # Level 0 (declared) and level 1 (escalated) of every page went out, to the engineer and to the team lead,
    # by both of their rules.
    assert Notification.objects.filter(status=Notification.Status.SENT, level=1).count() == 2 * len(held + fresh)
    assert Notification.objects.filter(status=Notification.Status.SENT, level=0).count() == 2 * len(held + fresh)
    victim_sends = [key for pid, key in cluster.started_sends() if pid == victim.pid]
    assert victim_sends and victim_sends[-1] in {key for _t, _p, key in deliveries}  # redone by the survivor


def test_kill_9_in_the_middle_of_a_batch_neither_repeats_its_sends_nor_loses_the_rest(make_cluster):
    """A sender that claimed a batch and sent part of it dies before the batch commits: its transaction rolls back,
    its rows are pending again, and the rows it had sent are recorded as sent from their sent marks, not sent twice;
    the rest go out once."""
    pages, _ = _declare_pages(6, due_in=-1, prefix="Batch")  # level 0 of each: 12 rows due now
    # One batch for everything due, and time enough to send it all: the victim is killed inside it.
    cluster = make_cluster(
        RELIABILITY_SEND_DELAY=0.3, PAGING_RATE_LIMIT_SECONDS=0, PAGING_SENDER_BATCH=50, PAGING_SENDER_BATCH_SECONDS=60
    )
    from incidentportal.celery import app

    victim = cluster.worker("victim", queues="notifications,default")
    app.send_task("oncall.paging.tasks.deliver_notifications", queue="notifications")
    wait_until(
        lambda: len([key for pid, key in cluster.started_sends() if pid == victim.pid]) >= 4,
        timeout=SETTLE,
        message="the victim starting its fourth send of the batch",
    )
    victim.kill()
    sent_by_victim = {key for _t, pid, key in read_deliveries(cluster.deliveries) if pid == victim.pid}
    assert len(sent_by_victim) >= 3  # sent inside the batch that never committed
    assert not Notification.objects.filter(status=Notification.Status.SENT).exists()  # it rolled back
    assert SentMark.objects.count() == len(sent_by_victim)  # ... but the marks were committed, one per send
    cluster.worker("survivor", queues="timers,notifications,default")
    cluster.beat()
    wait_until(lambda: _escalated(pages), timeout=SETTLE, message="every due escalation")
    wait_until(_settled, timeout=SETTLE, message="every notification handled")
    deliveries = _assert_each_sent_exactly_once(cluster)
    assert Notification.objects.filter(status=Notification.Status.SENT).count() == 4 * len(pages)
    # The victim's sends were recorded as its, not redone by the survivor; no mark is left behind.
    assert {key for _t, pid, key in deliveries if pid == victim.pid} == sent_by_victim
    assert not SentMark.objects.exists()


def test_flushed_redis_loses_no_escalation(make_cluster, redis_client):
    pages, _ = _declare_pages(10, due_in=4, prefix="Flush")
    cluster = make_cluster(PAGING_RATE_LIMIT_SECONDS=0)
    cluster.worker("one")
    cluster.worker("two")
    cluster.beat()
    # Wipe every queued and unacknowledged message, repeatedly, while the escalations fall due.
    for _ in range(6):
        redis_client.flushdb()
        time.sleep(1)
    wait_until(lambda: _escalated(pages), timeout=SETTLE, message="every due escalation")
    wait_until(_settled, timeout=SETTLE, message="every notification handled")
    _assert_each_sent_exactly_once(cluster)
    assert Notification.objects.filter(status=Notification.Status.SENT).count() == 4 * len(pages)


def test_pending_work_with_no_worker_and_a_flushed_broker_is_caught_up_on_start(make_cluster, redis_client):
    pages, _ = _declare_pages(5, due_in=-60, prefix="Backlog")
    redis_client.flushdb()  # whatever was enqueued while no worker ran is gone
    cluster = make_cluster(PAGING_RATE_LIMIT_SECONDS=0)
    cluster.worker("late")
    cluster.beat()
    wait_until(lambda: _escalated(pages), timeout=SETTLE, message="catch-up escalations")
    wait_until(_settled, timeout=SETTLE, message="catch-up deliveries")
    _assert_each_sent_exactly_once(cluster)


def test_the_same_celery_message_delivered_twice_sends_once(make_cluster):
    from incidentportal.celery import app

    pages, _ = _declare_pages(6, due_in=-1, prefix="Twice")
    cluster = make_cluster(PAGING_RATE_LIMIT_SECONDS=0, RELIABILITY_SEND_DELAY=0.05)
    cluster.worker("a")
    cluster.worker("b")
    # No beat: only these messages (each published twice with the same id) and the on-commit wake-ups run.
    for name, queue in (
        ("oncall.paging.tasks.escalation_tick", "timers"),
        ("oncall.paging.tasks.deliver_notifications", "notifications"),
    ):
        for _ in range(2):
            app.send_task(name, task_id=f"same-{name}", queue=queue)
    wait_until(lambda: _escalated(pages), timeout=SETTLE, message="escalations")
    for _ in range(2):
        app.send_task("oncall.paging.tasks.deliver_notifications", task_id="same-again", queue="notifications")
    wait_until(_settled, timeout=SETTLE, message="deliveries")
    _assert_each_sent_exactly_once(cluster)
    assert Notification.objects.filter(status=Notification.Status.SENT).count() == 4 * len(pages)


def test_acknowledge_racing_the_escalation_never_lets_a_notification_out_after_it(make_cluster):
    from incidentportal.celery import app

    cluster = make_cluster(PAGING_RATE_LIMIT_SECONDS=0, RELIABILITY_SEND_DELAY=0.02)
    cluster.worker("timers", queues="timers")
    cluster.worker("sender", queues="notifications,default")
    cluster.beat()
    acknowledged_at = {}
    outcomes = Counter()
    for round_ in range(25):
        (page,), by = _declare_pages(1, due_in=0.5, prefix=f"Race {round_}")
        due = Page.objects.get(pk=page.pk).escalate_at
        # Around the deadline: beat's tick (every 0.5 s) and this extra one race the acknowledgement.
        jitter = random.uniform(-0.1, 0.8)
        time.sleep(max(0.0, (due - timezone.now()).total_seconds() + jitter))
        app.send_task("oncall.paging.tasks.escalation_tick", queue="timers")
        acknowledge_incident(incident=page.incident, by=by)
        acknowledged_at[page.pk] = time.time()  # the acknowledgement has committed
        page.refresh_from_db()
        outcomes["escalated first" if (page.escalation_level or 0) >= 1 else "acknowledged first"] += 1
    wait_until(_settled, timeout=SETTLE, message="senders idle")
    time.sleep(2)  # a tick or sender that would wrongly act after the acknowledgement has had its chance
    deliveries = read_deliveries(cluster.deliveries)
    keys = {row.idempotency_key: row for row in Notification.objects.select_related("page")}
    for delivered_at, _pid, key in deliveries:
        row = keys[key]
        assert delivered_at < acknowledged_at[row.page_id], f"{key} delivered after its acknowledgement committed"
    for page in Page.objects.filter(pk__in=acknowledged_at):
        assert page.state == Page.State.ACKNOWLEDGED
        late = page.notifications.filter(created_at__gt=page.acknowledged_at)
        assert not late.exists(), "an escalation was written after the acknowledgement"
        assert not page.notifications.filter(status=Notification.Status.PENDING).exists()
    print("race outcomes:", dict(outcomes))
    assert sum(outcomes.values()) == 25
