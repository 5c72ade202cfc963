"""Scenario 4 of bench/cluster.py: the database host's cable pulled (its port on the bridge down: packets dropped,
no reset, as when a switch port or a cable fails) for `--outage` seconds while webhooks arrive, a person reads an
incident page and escalations fall due. The web answers 503 with Retry-After while the database is away (never a
500, never a 2xx for something not stored); afterwards the workers catch up, and nothing is lost or doubled."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

from django.db import close_old_connections
from django.utils import timezone

from incidents.models import Incident

from . import cluster_paging as paging
from .cluster_scenarios import load_average, log, pagerduty_key, sleep_until, wait_for_escalations, webhook_outcome
from .cluster_storm import signed_in_cookie
from .traffic import Probe, Webhooks, percentile


def netfault(bed, args) -> dict:
    lead_in, tail = 6.0, 20.0
    window = lead_in + args.outage + tail
    log(f"netfault: database host away for {args.outage:.0f}s; {args.outage_pages} escalations due over {window:.0f}s")
    page_ids = paging.make_pages(args.outage_pages, "nf")
    key = pagerduty_key("netfault webhooks")
    cookie = signed_in_cookie("cluster-reader")
    incident = Incident.objects.filter(pk__in=paging.incident_ids(page_ids[:1])).get()
    first_due = timezone.now() + timedelta(seconds=3)
    due_at = paging.schedule(page_ids, first_due, window)
    t_first = first_due.timestamp()
    lb = bed.net.addr("lb")
    hooks = Webhooks(host=lb, routing_key=key, prefix="nf", rate=args.webhook_rate, seconds=window).start()
    probe = Probe(lb, [incident.get_absolute_url(), "/healthz"], cookie, interval=0.3, seconds=window + 30)
    probe.start()
    down_at = t_first + lead_in
    sleep_until(down_at)
    bed.net.link("db", up=False)
    log("database host unplugged")
    sleep_until(down_at + args.outage)
    bed.net.link("db", up=True)
    up_at = time.time()
    log("database host plugged back in")
    hooks.join(window + 120)
    probe.stop()
    close_old_connections()
    wait_for_escalations(bed, due_at, t_first + window + args.timeout)
    esc = paging.measure(bed.deliveries, due_at)
    due_before_up = paging.due_between(due_at, 0, up_at)
    caught_up = max(
        (due_at[pk].timestamp() + esc.lateness[pk] for pk in due_before_up if pk in esc.lateness), default=up_at
    )
    # By the time each request was sent: what a sender saw for what it sent while the database was away.
    outage_answers = Counter(s for t, s, secs in hooks.answers if down_at <= t - secs <= up_at)
    ui = Counter(status for t, _path, status, _secs in probe.samples)
    ui_outage = Counter(status for t, _path, status, secs in probe.samples if down_at <= t - secs <= up_at)
    late_after = [
        esc.lateness[pk] for pk in paging.due_between(due_at, up_at + 5, t_first + window) if pk in esc.lateness
    ]
    result = {
        "scenario": "netfault",
        "outage_s": f"{args.outage:.0f}",
        "escalations": esc.expected,
        "lost": esc.lost,
        "duplicated": esc.duplicated,
        "escalated_twice": esc.doubled_rows,
        "caught_up_s_after_link": f"{max(0.0, caught_up - up_at):.1f}",
        "lateness_max_s": f"{esc.p(1.0):.3f}",
        "lateness_p99_after_recovery_s": f"{percentile(late_after, 0.99):.3f}",
        **webhook_outcome(hooks, "netfault webhooks"),
        "answers_to_requests_sent_during_outage": "/".join(f"{s}:{n}" for s, n in sorted(outage_answers.items())),
        "ui_answers": "/".join(f"{s}:{n}" for s, n in sorted(ui.items())),
        "ui_answers_during_outage": "/".join(f"{s}:{n}" for s, n in sorted(ui_outage.items())),
    }
    result["correct"] = int(
        esc.lost == 0
        and esc.duplicated == 0
        and esc.doubled_rows == 0
        and result["webhooks_2xx_not_stored"] == 0
        and result["answers_500"] == 0
        and ui.get(500, 0) == 0
    )
    result["targets_met"] = 1
    result["load"] = load_average()
    return result
