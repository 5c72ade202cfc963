"""Metric values against a hand-computed fixture set (times in UTC, the test settings' zone).

Period 2025-01-06 (Mon) .. 2025-01-19 (Sun), "now" 2025-01-20 01:00.
  A P1 wk1 API      detected 09:50 declared 10:00 ack 10:20 (due 11:00) mitigated 11:00 resolved 12:50
  B P1 wk2 API+Web  detected 10:00 declared 10:00 ack 11:30 (due 11:00) mitigated 12:00 resolved 13:00
  C P0 wk2 Web      detected 07:58 declared 08:00 ack 08:05 (due 08:15) still active
  D P2 wk1 -        detected 12:00 declared 12:00 no ack (due 16:00, passed) mitigated 13:00 resolved 14:00
  E P3 wk2 API      RESTRICTED, ack 09:10 within target, resolved after 1 h
  F P1 2025-01-05   outside the period
  G P2 wk2 -        declared 2025-01-19 23:00, no ack, due 2025-01-20 03:00 (not yet passed: not measured)
"""

import csv
import io
from datetime import date, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from postmortems.metrics import incident_metrics
from postmortems.models import ActionItem, PostMortem
from tests.factories import IncidentFactory, SecurityFactory, ServiceFactory, ViewerFactory, severity

pytestmark = pytest.mark.django_db

NOW = datetime.fromisoformat("2025-01-20T01:00:00+00:00")
START, END = date(2025, 1, 6), date(2025, 1, 19)


def t(text):
    return datetime.fromisoformat(f"{text}+00:00")


def m(minutes):
    return timedelta(minutes=minutes)


def incident(level, declared, *, detected=None, ack=None, due, mitigated=None, resolved=None, services=(), **kw):
    row = IncidentFactory(
        severity=severity(level),
        declared_at=t(declared),
        detected_at=t(detected or declared),
        acknowledged_at=t(ack) if ack else None,
        response_due_at=t(due),
        mitigated_at=t(mitigated) if mitigated else None,
        resolved_at=t(resolved) if resolved else None,
        **kw,
    )
    row.services.set(services)
    return row


def item(incident_row, status, due, owner):
    postmortem, _ = PostMortem.objects.get_or_create(incident=incident_row, defaults={"title": "pm", "due_at": NOW})
    return ActionItem.objects.create(
        postmortem=postmortem, incident=incident_row, title=status, owner=owner, due_date=due, status=status
    )


@pytest.fixture
def fixture_set():
    api = ServiceFactory(name="API", slug="api")
    web = ServiceFactory(name="Web", slug="web")
    a = incident(
        "P1",
        "2025-01-07T10:00",
        detected="2025-01-07T09:50",
        ack="2025-01-07T10:20",
        due="2025-01-07T11:00",
        mitigated="2025-01-07T11:00",
        resolved="2025-01-07T12:50",
        services=[api],
    )
    incident(
        "P1",
        "2025-01-14T10:00",
        ack="2025-01-14T11:30",
        due="2025-01-14T11:00",
        mitigated="2025-01-14T12:00",
        resolved="2025-01-14T13:00",
        services=[api, web],
    )
    incident(
        "P0",
        "2025-01-15T08:00",
        detected="2025-01-15T07:58",
        ack="2025-01-15T08:05",
        due="2025-01-15T08:15",
        services=[web],
    )
    incident(
        "P2", "2025-01-08T12:00", due="2025-01-08T16:00", mitigated="2025-01-08T13:00", resolved="2025-01-08T14:00"
    )
    e = incident(
        "P3",
        "2025-01-16T09:00",
        ack="2025-01-16T09:10",
        due="2025-01-17T17:00",
        resolved="2025-01-16T10:00",
        services=[api],
        is_restricted=True,
    )
    f = incident("P1", "2025-01-05T23:00", ack="2025-01-05T23:10", due="2025-01-06T00:00", services=[api])
    incident("P2", "2025-01-19T23:00", due="2025-01-20T03:00")
    owner = ViewerFactory()
    item(a, "done", date(2025, 1, 10), owner)
    item(a, "open", date(2025, 1, 18), owner)  # overdue on Jan 20
    item(a, "in_progress", date(2025, 1, 25), owner)
    item(a, "wont_do", date(2025, 1, 12), owner)
    item(e, "open", date(2025, 1, 18), owner)  # restricted: only for those who see E
    item(f, "open", date(2025, 1, 18), owner)  # outside the period
    return {"api": api, "web": web}


def rows(metrics, attribute):
    return {row.key if attribute == "by_severity" else row.label: row for row in getattr(metrics, attribute)}


def test_incidents_per_week_by_severity(fixture_set):
    metrics = incident_metrics(user=ViewerFactory(), start=START, end=END, now=NOW)
    assert [s.level for s in metrics.severities] == ["P0", "P1", "P2", "P3"]
    weekly = [(row["week"], row["counts"], row["total"]) for row in metrics.weekly_rows()]
    assert weekly == [(date(2025, 1, 6), [0, 1, 1, 0], 2), (date(2025, 1, 13), [1, 1, 1, 0], 3)]


def test_times_and_compliance_per_severity(fixture_set):
    metrics = incident_metrics(user=ViewerFactory(), start=START, end=END, now=NOW)
    by = rows(metrics, "by_severity")
    p0, p1, p2, p3 = by["P0"], by["P1"], by["P2"], by["P3"]
    assert (p0.count, p0.mtta, p0.mttr, p0.ttd, p0.ttm) == (1, m(5), None, m(2), None)
    assert (p0.ack_in_target, p0.target_measured, p0.compliance) == (1, 1, 100.0)
    assert (p1.count, p1.mtta, p1.mttr, p1.ttd, p1.ttm) == (2, m(55), m(180), m(5), m(95))
    assert (p1.ack_in_target, p1.target_measured, p1.compliance) == (1, 2, 50.0)
    assert (p2.count, p2.mtta, p2.mttr, p2.ttd, p2.ttm) == (2, None, m(120), m(0), m(60))
    assert (p2.ack_in_target, p2.target_measured, p2.compliance) == (0, 1, 0.0)
    assert (p3.count, p3.compliance) == (0, None)


def test_totals(fixture_set):
    total = incident_metrics(user=ViewerFactory(), start=START, end=END, now=NOW).total
    assert total.count == 5
    assert total.mtta == timedelta(minutes=38, seconds=20)  # (5 + 20 + 90) / 3
    assert total.mttr == timedelta(hours=2, minutes=40)  # (180 + 180 + 120) / 3
    assert total.ttd == timedelta(minutes=2, seconds=24)  # (2 + 10 + 0 + 0 + 0) / 5
    assert total.ttm == timedelta(minutes=83, seconds=20)  # (70 + 120 + 60) / 3
    assert (total.ack_in_target, total.target_measured, total.compliance) == (2, 4, 50.0)


def test_per_service(fixture_set):
    metrics = incident_metrics(user=ViewerFactory(), start=START, end=END, now=NOW)
    assert [row.label for row in metrics.by_service] == ["API", "Web", "No service"]
    by = rows(metrics, "by_service")
    assert (by["API"].count, by["API"].mtta, by["API"].mttr) == (2, m(55), m(180))
    assert (by["Web"].count, by["Web"].mtta, by["Web"].mttr) == (2, timedelta(minutes=47, seconds=30), m(180))
    assert (by["No service"].count, by["No service"].mttr) == (2, m(120))


def test_action_item_completion_and_overdue(fixture_set):
    with time_machine.travel(NOW, tick=False):
        stats = incident_metrics(user=ViewerFactory(), start=START, end=END, now=NOW).action_items
    assert (stats.total, stats.done, stats.wont_do, stats.open, stats.overdue) == (4, 1, 1, 2, 1)
    assert stats.completion == 33.3


def test_restricted_incidents_count_only_for_those_who_may_see_them(fixture_set):
    metrics = incident_metrics(user=SecurityFactory(), start=START, end=END, now=NOW)
    by = rows(metrics, "by_severity")
    assert (by["P3"].count, by["P3"].mtta, by["P3"].compliance) == (1, m(10), 100.0)
    assert metrics.total.count == 6
    assert rows(metrics, "by_service")["API"].count == 3
    assert (metrics.action_items.total, metrics.action_items.overdue) == (5, 2)


def test_csv_export_has_the_same_numbers(client, fixture_set):
    client.force_login(ViewerFactory())
    with time_machine.travel(NOW, tick=False):
        response = client.get(reverse("postmortems:metrics_csv") + "?start=2025-01-06&end=2025-01-19")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(response.content.decode())))
    assert table[0] == ["section", "group", "metric", "value"]
    assert ["incidents_per_week", "2025-01-13", "P0", "1"] in table
    assert ["severity", "P1 High", "mtta_seconds", "3300"] in table
    assert ["severity", "P1 High", "response_target_compliance_percent", "50.0"] in table
    assert ["service", "Web", "mtta_seconds", "2850"] in table
    assert ["all", "All severities", "incidents", "5"] in table
    assert ["action_items", "", "completion_percent", "33.3"] in table


def test_metrics_page_shows_charts_and_tables(client, fixture_set):
    client.force_login(ViewerFactory())
    with time_machine.travel(NOW, tick=False):
        response = client.get(reverse("postmortems:metrics") + "?start=2025-01-06&end=2025-01-19")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count("<svg") == 5
    assert "<script" not in html.split("<main", 1)[1]  # charts need no JavaScript
    assert "55m 00s" in html  # P1 MTTA in the table
    assert "50.0%" in html


def _add_incidents(count, services):
    for n in range(count):
        row = incident(
            ["P0", "P1", "P2", "P3"][n % 4],
            f"2025-01-{7 + n % 12:02d}T10:00",
            ack=f"2025-01-{7 + n % 12:02d}T10:10",
            due=f"2025-01-{7 + n % 12:02d}T11:00",
            resolved=f"2025-01-{7 + n % 12:02d}T12:00",
            services=[services[n % len(services)]],
            is_restricted=n % 5 == 0,
        )
        item(row, "open", date(2025, 1, 10 + n % 10), row.created_by or ViewerFactory(username=f"owner{n % 3}"))


def test_metrics_page_query_count_does_not_grow_with_data(client, fixture_set, django_assert_max_num_queries):
    client.force_login(ViewerFactory())
    url = reverse("postmortems:metrics") + "?start=2025-01-06&end=2025-01-19"
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    services = [ServiceFactory() for _ in range(5)] + [fixture_set["api"], fixture_set["web"]]
    _add_incidents(60, services)
    with django_assert_max_num_queries(len(small.captured_queries)):
        assert client.get(url).status_code == 200
    with django_assert_max_num_queries(12):
        assert client.get(reverse("postmortems:metrics_csv") + "?start=2025-01-06&end=2025-01-19").status_code == 200


def test_weekly_chart_axis_labels_are_whole_numbers():
    import re
    from datetime import date, timedelta

    from postmortems.charts import stacked_weekly

    weeks = [date(2025, 1, 6) + timedelta(weeks=i) for i in range(3)]
    svg = stacked_weekly(weeks=weeks, series=[("P1", [1, 3, 2]), ("P2", [0, 1, 2])], title="t", chart_id="c")
    labels = re.findall(r'text-anchor="end"[^>]*>([^<]*)<', svg)
    assert labels == ["0", "2", "4", "6", "8"]
