"""On-call pages: who is on call now, rotation calendar, override form, calendar feeds, the header partial."""

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from icalendar import Calendar

from oncall.models import CalendarFeed, Override, Rotation, Slot
from oncall.selectors import rotation_plans
from tests.factories import ManagerFactory, ResponderFactory, ViewerFactory

from .factories import OverrideFactory, PersonFactory, RotationFactory, add_members, guide_rotation

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 1, 14, 12, 0, tzinfo=UTC)  # Week 2 of a rotation that started Monday 2026-01-05


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def rotation(clock):
    rotation, people = guide_rotation(start_date=date(2026, 1, 5), name="Platform weekly")
    return rotation, people


def linked_responder(person):
    user = ResponderFactory()
    person.user = user
    person.save()
    return user


def test_who_is_on_call_page_shows_every_team_and_next_handoff(client, rotation):
    rotation, p = rotation
    other = RotationFactory(start_date=date(2026, 1, 5))
    add_members(other, Slot.PRIMARY, PersonFactory.create_batch(2))
    client.force_login(ViewerFactory())
    client.get(reverse("oncall:now"))  # warm the session/user caches
    with CaptureQueriesContext(connection) as small:
        client.get(reverse("oncall:now"))
    for _ in range(4):  # more teams, rotations and overrides must not cost more queries
        extra = RotationFactory(start_date=date(2026, 1, 5))
        add_members(extra, Slot.PRIMARY, PersonFactory.create_batch(2))
        OverrideFactory(rotation=extra, person=extra.team.members.first(), start=NOW, end=NOW + timedelta(hours=2))
    with CaptureQueriesContext(connection) as large:
        response = client.get(reverse("oncall:now"))
    assert len(large) == len(small)
    # The on-call part of the page: teams, rotations, members, overrides, plus two for the header line and one
    # for the "these channels reach nobody" warning (SMS and calls are only logged in the test settings).
    # (Other areas' header items add their own queries to every page; they are not counted here.)
    oncall_queries = [q["sql"] for q in large.captured_queries if 'FROM "oncall_' in q["sql"]]
    assert len(oncall_queries) <= 7
    html = response.content.decode()
    assert response.status_code == 200
    assert rotation.team.name in html and other.team.name in html
    assert p["B"].name in html  # primary in week 2
    assert "Mon 19 Jan 2026, 09:00 UTC" in html  # the next handoff
    assert "Nobody (gap)" in html  # the other rotations have no secondary


def test_who_is_on_call_page_htmx_returns_the_partial(client, rotation):
    client.force_login(ViewerFactory())
    response = client.get(reverse("oncall:now"), headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert b"<html" not in response.content and b'id="oncall-teams"' in response.content


def test_header_partial_costs_at_most_two_queries(rotation, rf):
    from django.contrib.auth.models import AnonymousUser  # noqa: F401
    from django.template import Context, Template

    rotation, p = rotation
    OverrideFactory(rotation=rotation, person=p["C"], start=NOW - timedelta(hours=1), end=NOW + timedelta(hours=1))
    request = rf.get("/")
    request.user = ViewerFactory()
    template = Template("{% load oncall_tags %}{% oncall_header %}")
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        html = template.render(Context({"request": request}))
    assert len(queries) <= 2
    assert f"{rotation.team.name}: {p['C'].name}" in html


def test_header_appears_in_the_site_header(client, rotation):
    rotation, p = rotation
    client.force_login(ViewerFactory())
    html = client.get(reverse("oncall:now")).content.decode()
    assert 'class="header-oncall"' in html and p["B"].name in html


def test_rotation_calendar_marks_overrides_and_gaps(client, rotation):
    rotation, p = rotation
    OverrideFactory(
        rotation=rotation,
        person=p["C"],
        start=datetime(2026, 1, 20, 9, tzinfo=UTC),
        end=datetime(2026, 1, 22, 9, tzinfo=UTC),
        reason="dentist",
    )
    client.force_login(ViewerFactory())
    response = client.get(reverse("oncall:rotation", args=[rotation.pk]), {"start": "2026-01-12", "weeks": 4})
    html = response.content.decode()
    assert response.status_code == 200
    assert "override" in html and "dentist" in html
    assert "Week 2" in html and "Week 5" in html
    bad = client.get(reverse("oncall:rotation", args=[rotation.pk]), {"weeks": "99"})
    assert bad.status_code == 200 and "weeks" in bad.content.decode()


def test_responder_creates_an_override_for_themself(client, rotation):
    rotation, p = rotation
    user = linked_responder(p["C"])
    client.force_login(user)
    assert client.get(reverse("oncall:override_create")).status_code == 200
    response = client.post(
        reverse("oncall:override_create"),
        {
            "rotation": rotation.pk,
            "slot": Slot.PRIMARY,
            "person": p["C"].pk,
            "start": "2026-01-15T09:00",
            "end": "2026-01-16T09:00",
            "reason": "swap",
        },
    )
    assert response.status_code == 302
    override = Override.objects.get()
    assert override.person == p["C"] and override.created_by == user
    assert override.start == datetime(2026, 1, 15, 9, tzinfo=UTC)  # rotation zone is UTC


def test_responder_cannot_create_an_override_for_someone_else(client, rotation):
    rotation, p = rotation
    client.force_login(linked_responder(p["C"]))
    response = client.post(
        reverse("oncall:override_create"),
        {
            "rotation": rotation.pk,
            "slot": Slot.PRIMARY,
            "person": p["A"].pk,
            "start": "2026-01-15T09:00",
            "end": "2026-01-16T09:00",
        },
    )
    assert response.status_code == 400
    assert "person" in response.context["form"].errors
    assert not Override.objects.exists()


def test_manager_override_errors_are_form_errors(client, rotation):
    rotation, p = rotation
    outsider = PersonFactory(name="Outsider")
    client.force_login(ManagerFactory())
    url = reverse("oncall:override_create")
    backwards = client.post(
        url,
        {
            "rotation": rotation.pk,
            "slot": Slot.PRIMARY,
            "person": p["A"].pk,
            "start": "2026-01-16T09:00",
            "end": "2026-01-15T09:00",
        },
        headers={"HX-Request": "true"},
    )
    assert backwards.status_code == 422
    assert "must end after it starts" in backwards.content.decode()
    outside = client.post(
        url,
        {
            "rotation": rotation.pk,
            "slot": Slot.PRIMARY,
            "person": outsider.pk,
            "start": "2026-01-15T09:00",
            "end": "2026-01-16T09:00",
        },
    )
    assert outside.status_code == 400
    assert "not a member" in outside.context["form"].errors["person"][0]
    ok = client.post(
        url,
        {
            "rotation": rotation.pk,
            "slot": Slot.SECONDARY,
            "person": p["A"].pk,
            "start": "2026-01-15T09:00",
            "end": "2026-01-16T09:00",
        },
        headers={"HX-Request": "true"},
    )
    assert ok.status_code == 200 and ok.headers["HX-Redirect"] == reverse("oncall:rotation", args=[rotation.pk])


def test_viewer_cannot_create_overrides(client, rotation):
    client.force_login(ViewerFactory())
    assert client.get(reverse("oncall:override_create")).status_code == 403


def test_override_times_are_read_in_the_rotations_time_zone(client, clock):
    rotation, p = guide_rotation(start_date=date(2026, 1, 5), timezone="America/New_York")
    client.force_login(ManagerFactory())
    client.post(
        reverse("oncall:override_create"),
        {
            "rotation": rotation.pk,
            "slot": Slot.PRIMARY,
            "person": p["A"].pk,
            "start": "2026-07-01T09:00",
            "end": "2026-07-02T09:00",
        },
    )
    assert Override.objects.get().start == datetime(2026, 7, 1, 13, tzinfo=UTC)  # 09:00 EDT


def _parse_events(body: bytes):
    calendar = Calendar.from_ical(body)
    return [
        (str(event.get("summary")), event.decoded("dtstart"), event.decoded("dtend"), str(event.get("uid")))
        for event in calendar.walk("VEVENT")
    ]


def test_person_feed_matches_shifts_between_and_token_rotation_revokes_it(client, rotation):
    rotation, p = rotation
    OverrideFactory(
        rotation=rotation, person=p["A"], start=datetime(2026, 1, 27, tzinfo=UTC), end=datetime(2026, 1, 28, tzinfo=UTC)
    )
    user = linked_responder(p["A"])
    client.force_login(user)
    page = client.get(reverse("oncall:calendar_feeds"))
    feed = CalendarFeed.objects.get(person=p["A"])
    assert len(feed.token) >= 40 and feed.token in page.content.decode()
    client.logout()  # calendar apps do not log in: the token is the credential
    response = client.get(reverse("oncall:person_ics", args=[feed.token]))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/calendar")
    events = _parse_events(response.content)
    plan = rotation_plans(
        Rotation.objects.filter(pk=rotation.pk),
        start=datetime(2025, 12, 1, tzinfo=UTC),
        end=datetime(2026, 6, 1, tzinfo=UTC),
    )[0]
    expected = [
        s
        for s in plan.shifts_between(datetime(2026, 1, 5, 9, tzinfo=UTC), NOW + timedelta(weeks=12))
        if s.person == p["A"]
    ]
    assert sorted((start, end) for _, start, end, _ in events) == sorted((s.start, s.end) for s in expected)
    assert all(start.tzinfo is not None and start.utcoffset() == timedelta(0) for _, start, _, _ in events)
    assert len({uid for *_, uid in events}) == len(events)
    assert any("(override)" in summary for summary, *_ in events)
    # Same shift, same UID on the next refresh.
    assert _parse_events(client.get(reverse("oncall:person_ics", args=[feed.token])).content) == events

    client.force_login(user)
    assert client.post(reverse("oncall:calendar_rotate")).status_code == 302
    client.logout()
    assert client.get(reverse("oncall:person_ics", args=[feed.token])).status_code == 404
    new_token = CalendarFeed.objects.get(person=p["A"]).token
    assert new_token != feed.token
    assert client.get(reverse("oncall:person_ics", args=[new_token])).status_code == 200


def test_rotation_feed_round_trips_through_icalendar(client, rotation):
    rotation, p = rotation
    feed = CalendarFeed.objects.create(person=p["X"])
    response = client.get(reverse("oncall:rotation_ics_token", args=[feed.token, rotation.pk]))
    assert response.status_code == 200
    calendar = Calendar.from_ical(response.content)
    assert str(calendar["VERSION"]) == "2.0" and calendar["PRODID"]
    events = _parse_events(response.content)
    plan = rotation_plans(
        Rotation.objects.filter(pk=rotation.pk),
        start=datetime(2025, 12, 1, tzinfo=UTC),
        end=datetime(2026, 6, 1, tzinfo=UTC),
    )[0]
    expected = [s for s in plan.shifts_between(datetime(2026, 1, 5, 9, tzinfo=UTC), NOW + timedelta(weeks=12))]
    assert sorted((start, end, summary.split(":")[0]) for summary, start, end, _ in events) == sorted(
        (s.start, s.end, f"{s.slot_label} on-call") for s in expected
    )
    assert client.get(reverse("oncall:rotation_ics_token", args=["not-a-token", rotation.pk])).status_code == 404


def test_logged_in_rotation_ics_requires_login(client, rotation):
    rotation, _ = rotation
    url = reverse("oncall:rotation_ics", args=[rotation.pk])
    assert client.get(url).status_code == 302
    client.force_login(ViewerFactory())
    assert client.get(url).status_code == 200


def test_override_can_be_cancelled_by_its_person_or_a_manager_only(client, rotation):
    rotation, p = rotation
    override = OverrideFactory(rotation=rotation, person=p["C"], start=NOW, end=NOW + timedelta(days=1))
    other = linked_responder(p["A"])
    client.force_login(other)
    page = client.get(reverse("oncall:rotation", args=[rotation.pk])).content.decode()
    assert "Cancel override" not in page
    assert client.post(reverse("oncall:override_cancel", args=[override.pk])).status_code == 403
    assert Override.objects.filter(pk=override.pk).exists()
    client.force_login(linked_responder(p["C"]))
    assert "Cancel override" in client.get(reverse("oncall:rotation", args=[rotation.pk])).content.decode()
    assert client.post(reverse("oncall:override_cancel", args=[override.pk])).status_code == 302
    assert not Override.objects.filter(pk=override.pk).exists()


def test_who_is_on_call_shows_handoffs_in_the_viewers_zone_and_the_rotations(client, clock):
    rotation, _ = guide_rotation(start_date=date(2026, 1, 5), timezone="America/New_York")
    client.force_login(ViewerFactory())  # no time zone of their own yet: UTC
    html = client.get(reverse("oncall:now")).content.decode()
    assert "Mon 19 Jan 2026, 14:00 UTC</time>" in html  # the viewer's zone
    assert "(Mon 19 Jan 2026, 09:00 EST)" in html  # and the rotation's wall time, where it differs
