"""The scenarios of bench/cluster.py. Each takes the running test bed and the arguments, and returns the fields of
its RESULT line, with `correct` (nothing lost, doubled or answered 500) and `targets_met` (the time targets)."""

from __future__ import annotations

import os
import time
from datetime import timedelta

from django.utils import timezone

from incidents.alerting.models import AlertEvent
from incidents.alerting.services.integrations import create_integration

from . import cluster_paging as paging
from .traffic import Webhooks

LATENESS_TARGET = 2.0


def sleep_until(at: float) -> None:
    delay = at - time.time()
    if delay > 0:
        time.sleep(delay)


def log(message: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", flush=True)


def wait_for_escalations(bed, due_at, deadline: float) -> None:
    """Until every level-1 notification was delivered (bounded by `deadline`), then 3 s more: anything sent twice
    would show by then."""
    while time.time() < deadline:
        first, _counts = paging.escalation_deliveries(bed.deliveries, due_at)
        if len(first) >= len(due_at):
            break
        time.sleep(1.0)
    time.sleep(3.0)


def pagerduty_key(name: str) -> str:
    _integration, key = create_integration(kind="pagerduty", name=name)
    return key


def webhook_outcome(hooks: Webhooks, integration_name: str) -> dict:
    stored = set(
        AlertEvent.objects.filter(integration__name=integration_name).values_list("dedup_key", flat=True).distinct()
    )
    accepted = set(hooks.accepted)
    return {
        "webhooks": len(accepted) + len(hooks.refused),
        "webhooks_2xx": len(accepted),
        "webhooks_never_2xx": len(hooks.refused),
        "webhooks_2xx_not_stored": len(accepted - stored),
        "answers_500": hooks.statuses.get(500, 0),
        "answers": "/".join(f"{status}:{n}" for status, n in sorted(hooks.statuses.items())),
    }


def failover(bed, args) -> dict:
    """Scenario 1: worker host wk1 and then web host web1 lose power (kill -9 of all their processes) mid-storm."""
    log(f"failover: {args.incidents} escalations over {args.spread:.0f}s, webhooks at {args.webhook_rate:.0f}/s")
    page_ids = paging.make_pages(args.incidents, "fo")
    key = pagerduty_key("failover webhooks")
    first_due = timezone.now() + timedelta(seconds=6)
    due_at = paging.schedule(page_ids, first_due, args.spread)
    t_first = first_due.timestamp()
    hooks = Webhooks(
        host=bed.net.addr("lb"), routing_key=key, prefix="fo", rate=args.webhook_rate, seconds=args.spread + 8
    ).start()
    kill_worker_at, kill_web_at = t_first + 0.3 * args.spread, t_first + 0.6 * args.spread
    sleep_until(kill_worker_at)
    killed_at = time.time()
    log(f"kill -9 worker host wk1: {', '.join(bed.net.kill_host('wk1'))}")
    sleep_until(kill_web_at)
    log(f"kill -9 web host web1: {', '.join(bed.net.kill_host('web1'))}")
    hooks.join(args.spread + 120)
    wait_for_escalations(bed, due_at, t_first + args.spread + args.timeout)
    esc = paging.measure(bed.deliveries, due_at)
    # The worker host died with at most one send in flight per sender process (PAGING_SENDER_BATCH=1): such a send
    # may reach the provider twice; anything else doubled is a defect.
    in_flight = paging.repeated_in_flight(bed.deliveries, killed_at)
    around = paging.due_between(due_at, kill_worker_at, kill_worker_at + 10) + paging.due_between(
        due_at, kill_web_at, kill_web_at + 10
    )
    result = {
        "scenario": "failover",
        "escalations": esc.expected,
        "delivered": esc.delivered,
        "lost": esc.lost,
        "duplicated": esc.duplicated,
        "repeated_in_flight_at_kill": in_flight,
        "escalated_twice": esc.doubled_rows,
        "lateness_p50_s": f"{esc.p(0.5):.3f}",
        "lateness_p99_s": f"{esc.p(0.99):.3f}",
        "lateness_max_s": f"{esc.p(1.0):.3f}",
        "lateness_p99_10s_after_kills_s": f"{esc.p(0.99, around):.3f}",
        **webhook_outcome(hooks, "failover webhooks"),
    }
    result["correct"] = int(
        esc.lost == 0
        and esc.duplicated - in_flight == 0
        and in_flight <= 2  # the `notifications,default` worker's two processes
        and esc.doubled_rows == 0
        and result["webhooks_2xx_not_stored"] == 0
        and result["answers_500"] == 0
    )
    result["targets_met"] = int(esc.p(0.99) <= LATENESS_TARGET)
    result["load"] = load_average()
    # The hosts come back (a reboot): the next scenarios run on all five again.
    bed.start_workers("wk1")
    bed.start_web("web1")
    time.sleep(3)  # the balancer's health check (rise 2, every second) takes web1 back
    return result


def beats(bed, args) -> dict:
    """Scenario 2: two beats tick the whole time; half-way one is killed. Nothing may double, nothing may slow."""
    alive = bed.beats()
    log(f"beats: {len(alive)} beats; {args.beat_pages} escalations over {args.beat_spread:.0f}s")
    page_ids = paging.make_pages(args.beat_pages, "bt")
    first_due = timezone.now() + timedelta(seconds=5)
    due_at = paging.schedule(page_ids, first_due, args.beat_spread)
    t_first = first_due.timestamp()
    kill_at = t_first + args.beat_spread / 2
    victim = alive[-1]
    sent_before = {proc.host: proc.text().count("escalation-tick") for proc in alive}
    sleep_until(kill_at)
    ticks_two_beats = {proc.host: proc.text().count("escalation-tick") - sent_before[proc.host] for proc in alive}
    victim.kill()
    log(f"kill -9 the beat on {victim.host}")
    wait_for_escalations(bed, due_at, t_first + args.beat_spread + args.timeout)
    esc = paging.measure(bed.deliveries, due_at)
    before = paging.due_between(due_at, t_first, kill_at)
    after = paging.due_between(due_at, kill_at + 1, t_first + args.beat_spread + 1)
    result = {
        "scenario": "beats",
        "escalations": esc.expected,
        "lost": esc.lost,
        "duplicated": esc.duplicated,
        "escalated_twice": esc.doubled_rows,
        "escalation_ticks_sent_per_beat": "/".join(str(n) for n in ticks_two_beats.values()),
        "lateness_p50_two_beats_s": f"{esc.p(0.5, before):.3f}",
        "lateness_p99_two_beats_s": f"{esc.p(0.99, before):.3f}",
        "lateness_p50_one_beat_s": f"{esc.p(0.5, after):.3f}",
        "lateness_p99_one_beat_s": f"{esc.p(0.99, after):.3f}",
    }
    result["correct"] = int(esc.lost == 0 and esc.duplicated == 0 and esc.doubled_rows == 0)
    result["targets_met"] = int(esc.p(0.99) <= LATENESS_TARGET)
    result["load"] = load_average()
    bed.start_beat(victim.host)  # two beats again for what follows
    return result


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f}/{five:.1f}"
