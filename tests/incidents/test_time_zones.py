"""Time, one way: each user's time zone (guessed once from the browser, then theirs to choose) is used by every
page, form and email to them, in one format with UTC on hover and a `<time datetime>` of at most milliseconds."""

import re
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.template import Context, Template
from django.utils import timezone

from incidents.models import TimelineEntry
from incidents.profiles import services as profiles
from incidents.profiles.models import Profile
from incidents.profiles.zones import localise_moments
from incidents.services.details import update_incident_details
from incidents.services.updates import post_status_update
from tests.factories import ResponderFactory, ServiceFactory, UserFactory, declare

pytestmark = pytest.mark.django_db

# A winter and a summer moment, so the zone's abbreviation changes with daylight saving.
WINTER = datetime(2026, 12, 1, 14, 47, 5, 123456, tzinfo=UTC)
SUMMER = datetime(2026, 7, 1, 14, 47, tzinfo=UTC)
TIME_TAG = re.compile(r'<time datetime="([^"]+)"')


def render(source, **context):
    return Template("{% load when %}" + source).render(Context(context))


def test_one_format_with_utc_on_hover_and_milliseconds_at_most():
    with timezone.override("Europe/Berlin"):
        html = render("{{ moment|when }}", moment=WINTER)
        summer = render("{{ moment|when }}", moment=SUMMER)
        text = render("{{ moment|when_text }}", moment=WINTER)
    assert html == (
        '<time datetime="2026-12-01T14:47:05.123Z" title="2026-12-01 14:47 UTC">Tue 1 Dec 2026, 15:47 CET</time>'
    )
    assert "Wed 1 Jul 2026, 16:47 CEST" in summer
    assert text == "Tue 1 Dec 2026, 15:47 CET (2026-12-01 14:47 UTC)"
    assert render("{{ day|when }}", day=date(2026, 12, 1)) == '<time datetime="2026-12-01">Tue 1 Dec 2026</time>'
    assert render("{{ nothing|when }}", nothing=None) == ""


def test_on_call_times_show_the_viewers_zone_and_the_rotations_where_it_differs():
    with timezone.override("Europe/Berlin"):
        both = render("{{ moment|when_both:'America/New_York' }}", moment=WINTER)
        same = render("{{ moment|when_both:'Europe/Paris' }}", moment=WINTER)
    assert "Tue 1 Dec 2026, 15:47 CET</time>" in both and "(Tue 1 Dec 2026, 09:47 EST)" in both
    assert "other-zone" not in same  # Paris and Berlin read the same


def _page_for(client, user, path):
    client.force_login(user)
    return client.get(path).content.decode()


def test_pages_show_times_in_the_users_zone(client):
    user = ResponderFactory()
    Profile.objects.create(user=user, time_zone="Asia/Tokyo")
    with time_machine.travel(WINTER, tick=False):
        incident = declare(by=user)
    html = _page_for(client, user, incident.get_absolute_url())
    assert "Tue 1 Dec 2026, 23:47 JST" in html  # declared, and the timeline's first entry
    assert 'title="2026-12-01 14:47 UTC"' in html
    for value in TIME_TAG.findall(html):
        assert re.fullmatch(r"[\d-]+(T[\d:]+(\.\d{1,3})?Z)?", value), value
    listing = _page_for(client, user, "/incidents/")
    assert "Tue 1 Dec 2026, 23:47 JST" in listing


def test_first_visit_guesses_the_zone_from_the_browser_once(client):
    user = ResponderFactory()
    html = _page_for(client, user, "/")
    assert 'data-time-zone-guess="/profile/time-zone/guess/"' in html
    assert client.post("/profile/time-zone/guess/", {"time_zone": "Europe/Lisbon"}).status_code == 204
    assert "data-time-zone-guess" not in client.get("/").content.decode()
    # Stored once: a later guess (another browser, a trip) changes nothing; only the user does.
    assert client.post("/profile/time-zone/guess/", {"time_zone": "Asia/Tokyo"}).status_code == 204
    assert Profile.objects.get(user=user).time_zone == "Europe/Lisbon"
    response = client.post("/profile/time-zone/guess/", {"time_zone": "Mars/Olympus"})
    assert response.status_code == 400 and response.json()["field"] == "time_zone"


def test_the_profile_page_sets_the_zone_and_refuses_nonsense(client):
    user = ResponderFactory()
    Profile.objects.create(user=user, time_zone="UTC", time_zone_source=Profile.Source.BROWSER)
    client.force_login(user)
    response = client.post("/profile/", {"time_zone": "America/New_York"}, follow=True)
    assert "Times are now shown in America/New_York" in response.content.decode()
    assert Profile.objects.get(user=user).time_zone_source == Profile.Source.USER
    with time_machine.travel(WINTER, tick=False):
        assert "Tue 1 Dec 2026, 09:47 EST" in client.get("/profile/").content.decode()
    bad = client.post("/profile/", {"time_zone": "Europe/Atlantis"})
    assert bad.status_code == 400 and "Select a valid choice" in bad.content.decode()
    assert Profile.objects.get(user=user).time_zone == "America/New_York"


def test_forms_name_their_zone_and_read_typed_times_in_it(client):
    user = ResponderFactory()
    profiles.set_time_zone(user=user, time_zone="Europe/Berlin")
    with time_machine.travel(WINTER, tick=False):
        incident = declare(by=user)
        client.force_login(user)
        html = client.get(incident.get_absolute_url()).content.decode()
        assert "Happened at (Europe/Berlin, CET)" in html
        client.post(
            f"{incident.get_absolute_url()}notes/",
            {"body": "Database failover started.", "kind": "note", "occurred_at": "2026-12-01T15:30"},
        )
    entry = TimelineEntry.objects.get(incident=incident, body="Database failover started.")
    assert entry.occurred_at == datetime(2026, 12, 1, 14, 30, tzinfo=UTC)  # 15:30 in Berlin


def test_an_email_to_a_user_uses_their_zone(settings):
    from postmortems.emails import send_schedule_reminder
    from postmortems.models import PostMortem

    user = ResponderFactory(email="ic@example.com")
    profiles.set_time_zone(user=user, time_zone="America/Los_Angeles")
    with time_machine.travel(WINTER, tick=False):
        incident = declare(by=user)
        postmortem = PostMortem.objects.create(
            incident=incident, title="Post-mortem", owner=user, due_at=WINTER + timedelta(hours=48)
        )
    assert send_schedule_reminder(postmortem.pk) == 1
    assert "Thu 3 Dec 2026, 06:47 PST (2026-12-03 14:47 UTC)" in mail.outbox[-1].body


def test_moments_inside_timeline_entries_show_in_the_readers_zone(client):
    """Entries are written once for every reader (UTC, the one format); the page shows each reader's zone."""
    user = ResponderFactory()
    profiles.set_time_zone(user=user, time_zone="Asia/Tokyo")
    with time_machine.travel(WINTER, tick=False):
        incident = declare(by=user)
        update_incident_details(incident=incident, by=user, detected_at=WINTER - timedelta(hours=1))
    entry = incident.timeline.get(body__contains="detection time from")
    assert "Tue 1 Dec 2026, 13:47 UTC" in entry.body  # stored: UTC, named
    html = _page_for(client, user, incident.get_absolute_url())
    assert (
        '<time datetime="2026-12-01T13:47:00.000Z" title="2026-12-01 13:47 UTC">Tue 1 Dec 2026, 22:47 JST</time>'
        in html
    )


def test_admin_lists_write_moments_the_one_way_in_the_readers_zone(client):
    admin_user = UserFactory(username="root", is_staff=True, is_superuser=True)
    profiles.set_time_zone(user=admin_user, time_zone="Europe/Berlin")
    with time_machine.travel(WINTER, tick=False):
        declare(by=admin_user)
    html = _page_for(client, admin_user, "/admin/incidents/incident/")
    assert "Tue 1 Dec 2026, 15:47 CET" in html  # declared_at, in the reader's zone, the zone named
    assert "Times in Europe/Berlin, CET" in html or "Times in Europe/Berlin, CEST" in html


def test_public_status_page_writes_utc_the_one_way(client):
    """Anonymous readers have no zone: the public page is the same for everyone, in UTC, named."""
    responder = ResponderFactory()
    with time_machine.travel(WINTER, tick=False):
        incident = declare(by=responder, level="P1", services=[ServiceFactory(name="API")])
        post_status_update(
            incident=incident,
            kind="external",
            status="investigating",
            by=responder,
            publish=True,
            title="Slow API",
            description="Slow.",
            next_update_at=WINTER + timedelta(minutes=30),
        )
    html = client.get("/status/").content.decode()
    assert 'title="2026-12-01 14:47 UTC">Tue 1 Dec 2026, 14:47 UTC</time>' in html  # posted
    assert ">Tue 1 Dec 2026, 15:17 UTC</time>" in html  # next update


def test_localising_entry_text_touches_text_only():
    html = '<p>due Tue 1 Dec 2026, 15:30 UTC <a title="Tue 1 Dec 2026, 15:30 UTC" href="/x">link</a></p>'
    with timezone.override("Asia/Tokyo"):
        shown = localise_moments(html)
    assert shown == (
        '<p>due <time datetime="2026-12-01T15:30:00.000Z" title="2026-12-01 15:30 UTC">Wed 2 Dec 2026, 00:30 JST'
        '</time> <a title="Tue 1 Dec 2026, 15:30 UTC" href="/x">link</a></p>'
    )
    assert localise_moments("<p>Fri 31 Feb 2026, 10:00 UTC</p>") == "<p>Fri 31 Feb 2026, 10:00 UTC</p>"  # no such day
