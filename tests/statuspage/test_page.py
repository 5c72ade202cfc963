from datetime import timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from incidents.models import Status
from incidents.services.status import change_status
from incidents.statuspage import rollups, selectors
from incidents.statuspage import services as statuspage_services
from incidents.statuspage.models import HistoryRollup, ServiceState, state_for_severity
from tests.factories import ManagerFactory, ResponderFactory, SecurityFactory, ServiceFactory, declare

from .factories import maintenance, post_update

pytestmark = pytest.mark.django_db

URL = "/status/"


def state_of(page, service):
    return next(row.state for row in page.services if row.service.pk == service.pk)


def test_severity_maps_to_public_state():
    assert state_for_severity("P0") == ServiceState.MAJOR_OUTAGE
    assert state_for_severity("P1") == ServiceState.PARTIAL_OUTAGE
    assert state_for_severity("P2") == ServiceState.DEGRADED_PERFORMANCE
    assert state_for_severity("P3") == ServiceState.DEGRADED_PERFORMANCE


def test_service_state_is_worst_published_component_state_of_active_incidents(responder):
    api, web, quiet = ServiceFactory(name="API"), ServiceFactory(name="Web"), ServiceFactory(name="Search")
    post_update(declare(by=responder, level="P2", services=[api]), by=responder, affected_services=[api])
    post_update(declare(by=responder, level="P0", services=[api]), by=responder, affected_services=[api])
    # The Communications Lead chose a milder state than the severity suggests: that is what the public sees.
    post_update(
        declare(by=responder, level="P1", services=[web]), by=responder, component_states={web: "degraded_performance"}
    )
    resolved = declare(by=responder, level="P0", services=[quiet])
    post_update(resolved, by=responder, affected_services=[quiet])
    change_status(incident=resolved, to=Status.RESOLVED, by=responder)

    page = selectors.status_page()

    assert state_of(page, api) == ServiceState.MAJOR_OUTAGE
    assert state_of(page, web) == ServiceState.DEGRADED_PERFORMANCE
    assert state_of(page, quiet) == ServiceState.OPERATIONAL
    assert page.overall == ServiceState.MAJOR_OUTAGE


def test_latest_published_update_sets_the_components(responder):
    api = ServiceFactory(name="API")
    incident = declare(by=responder, level="P0", services=[api])
    post_update(incident, by=responder, affected_services=[api])
    assert state_of(selectors.status_page(), api) == ServiceState.MAJOR_OUTAGE
    post_update(incident, by=responder, status="monitoring", component_states={api: "operational"})
    assert state_of(selectors.status_page(), api) == ServiceState.OPERATIONAL
    # A draft changes nothing until it is published.
    post_update(incident, by=responder, publish=False, component_states={api: "major_outage"})
    assert state_of(selectors.status_page(), api) == ServiceState.OPERATIONAL


def test_only_public_services_are_listed(client):
    ServiceFactory(name="Public API")
    ServiceFactory(name="Internal billing batch", is_public=False)
    response = client.get(URL)
    assert response.status_code == 200
    assert "Public API" in response.content.decode()
    assert "Internal billing batch" not in response.content.decode()


def test_manual_override_wins_over_incidents(responder):
    api = ServiceFactory(name="API")
    post_update(declare(by=responder, level="P0", services=[api]), by=responder, affected_services=[api])
    statuspage_services.set_service_override(
        service=api, state=ServiceState.DEGRADED_PERFORMANCE, message="Most requests succeed.", by=responder
    )
    page = selectors.status_page()
    row = next(row for row in page.services if row.service.pk == api.pk)
    assert (row.state, row.cause, row.message) == (
        ServiceState.DEGRADED_PERFORMANCE,
        "override",
        "Most requests succeed.",
    )

    statuspage_services.clear_service_override(service=api, by=responder)
    assert state_of(selectors.status_page(), api) == ServiceState.MAJOR_OUTAGE


def test_page_shows_only_published_external_updates_of_unrestricted_incidents(client, responder):
    api = ServiceFactory(name="API")
    public = declare(by=responder, level="P1", services=[api], title="Internal title: db01 melted")
    post_update(
        public,
        by=responder,
        title="Slow API responses",
        description="Some requests take long.",
        affected_services=[api],
    )
    post_update(public, by=responder, publish=False, title="Draft wording", description="Not approved yet.")
    post_update(public, by=responder, kind="internal", what_we_know="Replica lag on db01 is 40s.")

    security = SecurityFactory()
    breach = declare(by=security, level="P0", services=[api], is_restricted=True, title="Credential leak")
    post_update(
        breach, by=security, title="Customer data exposure", description="Tokens leaked.", affected_services=[api]
    )

    body = client.get(URL).content.decode()

    assert "Slow API responses" in body
    assert "Some requests take long." in body
    for secret in (
        "Internal title",
        "db01",
        "Draft wording",
        "Not approved yet",
        "Replica lag",
        "Credential leak",
        "Customer data exposure",
        "Tokens leaked",
    ):
        assert secret not in body, secret
    # The restricted P0 does not make the service look like a major outage either.
    assert state_of(selectors.status_page(), api) == ServiceState.PARTIAL_OUTAGE


def test_incident_without_published_update_changes_nothing_public(client, responder):
    api, web = ServiceFactory(name="Backend API"), ServiceFactory(name="Web App")
    declare(by=responder, level="P3", services=[web], title="Button misaligned")
    declare(by=responder, level="P0", services=[api], title="Unannounced internal title")
    body = client.get(URL).content.decode()
    assert "All systems operational" in body
    assert "Major outage" not in body and "Degraded performance" not in body
    assert "Unannounced internal title" not in body and "Button misaligned" not in body


@time_machine.travel("2025-01-15 14:35:00+00:00", tick=False)
def test_update_is_shown_in_the_guides_status_page_template(client, responder):
    api, web = ServiceFactory(name="API"), ServiceFactory(name="Exercises")
    incident = declare(by=responder, level="P1", services=[api])
    post_update(
        incident,
        by=responder,
        status="identified",
        title="API Performance Issues",
        description="Some users may experience delays when loading exercises.",
        workaround="Retry the request after a few seconds.",
        component_states={api: "partial_outage", web: "degraded_performance"},
        next_update_at=timezone.now() + timedelta(minutes=30),
    )
    body = " ".join(client.get(URL).content.decode().split())

    assert "<h3>API Performance Issues" in body
    assert body.count("API Performance Issues") == 1 + body.count("<title>API")  # the title is not repeated
    assert '<span class="status status-identified">Identified</span>' in body
    # the public page is the same for everyone: the one format, in UTC, named
    posted = '<time datetime="2025-01-15T14:35:00.000Z" title="2025-01-15 14:35 UTC">Wed 15 Jan 2025, 14:35 UTC</time>'
    assert f"Posted {posted}" in body
    assert "Some users may experience delays when loading exercises." in body
    assert "Affected services</p>" in body
    assert 'API <span class="state state-partial_outage">Partial outage</span>' in body
    assert 'Exercises <span class="state state-degraded_performance">Degraded performance</span>' in body
    assert "Workaround</p>" in body and "Retry the request after a few seconds." in body
    assert "(if available)" not in body and "Services:" not in body
    assert "Next update" in body and ">Wed 15 Jan 2025, 15:05 UTC</time>" in body


def test_resolved_incident_reads_resolved_without_a_stale_next_update(client, responder):
    api = ServiceFactory(name="API")
    incident = declare(by=responder, level="P1", services=[api])
    post_update(
        incident,
        by=responder,
        status="identified",
        title="Slow API",
        affected_services=[api],
        next_update_at=timezone.now() + timedelta(minutes=30),
    )
    assert "Next update" in client.get(URL).content.decode()

    change_status(incident=incident, to=Status.RESOLVED, by=responder)
    body = " ".join(client.get(URL).content.decode().split())

    assert "Active incidents" not in body
    assert 'Slow API <span class="status status-resolved">Resolved</span>' in body
    assert "This incident has been resolved." in body
    assert "Next update" not in body
    assert "Identified" in body  # the history keeps what was published
    assert state_of(selectors.status_page(), api) == ServiceState.OPERATIONAL


def test_history_lists_only_days_with_something_to_report(client, responder):
    api = ServiceFactory(name="API")
    with time_machine.travel(timezone.now() - timedelta(days=95), tick=False):
        old = declare(by=responder, level="P2", services=[api])
        post_update(old, by=responder, title="Too old to show", description="Long ago.")
        change_status(incident=old, to=Status.RESOLVED, by=responder)
    with time_machine.travel(timezone.now() - timedelta(days=89), tick=False):
        recent = declare(by=responder, level="P2", services=[api])
        post_update(recent, by=responder, title="Within the window", description="Recently.")
        change_status(incident=recent, to=Status.RESOLVED, by=responder)
        post_update_day = timezone.now().date()

    page = selectors.status_page()
    history = rollups.history(page)
    assert [day.day for day in history] == [post_update_day]
    assert "Within the window" in history[0].html
    body = client.get(URL).content.decode()
    assert "Within the window" in body
    assert "Too old to show" not in body
    assert "No incidents reported" not in body
    assert body.count('class="history-day"') == 1


def test_history_day_is_rendered_again_only_when_it_changes(responder, django_assert_max_num_queries):
    api = ServiceFactory(name="API")
    with time_machine.travel(timezone.now() - timedelta(days=3), tick=False):
        incident = declare(by=responder, level="P2", services=[api])
        post_update(incident, by=responder, title="Old wording", affected_services=[api])
        change_status(incident=incident, to=Status.RESOLVED, by=responder)
    (day,) = rollups.history(selectors.status_page())
    stored = HistoryRollup.objects.get()
    assert stored.day == day.day and "Old wording" in stored.html

    page = selectors.status_page()
    with django_assert_max_num_queries(2):  # the keys and the stored days; nothing rendered
        assert rollups.history(page)[0].html == day.html

    post_update(incident, by=responder, status="resolved", title="Fixed for good")
    (day,) = rollups.history(selectors.status_page())
    assert "Fixed for good" in day.html and "This incident has been resolved." not in day.html
    assert "Fixed for good" in HistoryRollup.objects.get().html

    api.name = "Public API"
    api.save()
    assert "Public API" in rollups.history(selectors.status_page())[0].html


def test_conditional_get_answers_304_until_something_public_changes(client, responder):
    api = ServiceFactory(name="API")
    incident = declare(by=responder, level="P1", services=[api])
    post_update(incident, by=responder, title="First")

    first = client.get(URL)
    assert first.status_code == 200
    assert first["Cache-Control"] in ("public, max-age=30", "max-age=30, public")
    etag, last_modified = first["ETag"], first["Last-Modified"]

    again = client.get(URL, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""
    assert client.get(URL, HTTP_IF_MODIFIED_SINCE=last_modified).status_code == 304

    post_update(incident, by=responder, title="Second")
    changed = client.get(URL, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed["ETag"] != etag
    assert "Second" in changed.content.decode()


def test_restricted_incident_changes_do_not_move_the_etag(client):
    security = SecurityFactory()
    api = ServiceFactory(name="API")
    etag = client.get(URL)["ETag"]
    breach = declare(by=security, level="P0", is_restricted=True, services=[api])
    post_update(breach, by=security, title="Secret", affected_services=[api])
    assert client.get(URL, HTTP_IF_NONE_MATCH=etag).status_code == 304


def test_override_and_maintenance_start_move_the_etag(client, responder):
    api = ServiceFactory(name="API")
    window = maintenance(services=[api], starts_in=timedelta(minutes=10))
    etag = client.get(URL)["ETag"]
    with time_machine.travel(window.starts_at + timedelta(minutes=1)):
        started = client.get(URL, HTTP_IF_NONE_MATCH=etag)
        assert started.status_code == 200
        assert "Under maintenance" in started.content.decode()
        etag = started["ETag"]
        statuspage_services.set_service_override(service=api, state="major_outage", by=responder)
        assert client.get(URL, HTTP_IF_NONE_MATCH=etag).status_code == 200


def test_page_costs_a_fixed_number_of_queries(client, django_assert_max_num_queries):
    responder = ResponderFactory()
    service_list = [ServiceFactory(name=f"Service {n:02d}") for n in range(12)]
    for n in range(6):
        incident = declare(by=responder, level=f"P{n % 4}", services=service_list[n : n + 3])
        for m in range(3):
            post_update(incident, by=responder, title=f"Update {n}-{m}", affected_services=service_list[n : n + 2])
        if n % 2:
            change_status(incident=incident, to=Status.RESOLVED, by=responder)
    maintenance(services=service_list[:3])
    maintenance(services=service_list[3:6], starts_in=timedelta(minutes=-5))
    statuspage_services.set_service_override(service=service_list[-1], state="partial_outage", by=responder)

    with django_assert_max_num_queries(11):  # 1 fingerprint + 7 for the page + 3 to render changed days
        response = client.get(URL)
    assert response.status_code == 200
    cache.clear()
    with django_assert_max_num_queries(8):  # 1 fingerprint + 7 for the page, whatever the data
        assert client.get(URL).status_code == 200

    with django_assert_max_num_queries(1):  # a revalidation costs the fingerprint only
        assert client.get(URL, HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304

    # A cold render (nothing cached) costs the same with ten times the history: the past days' rollups are read
    # in one query, whatever their number, and nothing is queried per service, day or update.
    for days_ago in range(2, 60, 2):
        with time_machine.travel(timezone.now() - timedelta(days=days_ago), tick=False):
            past = declare(by=responder, level="P2", services=service_list[days_ago % 12 : days_ago % 12 + 2])
            for m in range(2):
                post_update(past, by=responder, title=f"Past {days_ago}-{m}", affected_services=service_list[:3])
            change_status(incident=past, to=Status.RESOLVED, by=responder)
    client.get(URL)  # the new days are rendered once
    cache.clear()
    with django_assert_max_num_queries(8):
        body = client.get(URL).content.decode()
    assert body.count('class="history-day"') == 30 and "Past 58-1" in body


def test_public_page_is_the_same_for_everyone_and_has_no_staff_navigation(client):
    ServiceFactory(name="API")
    anonymous = client.get(URL)
    client.force_login(ManagerFactory(first_name="Mallory", last_name="Manager"))
    signed_in = client.get(URL)
    for response in (anonymous, signed_in):
        body = response.content.decode()
        assert "main-nav" not in body and "Dashboard" not in body and "/admin/" not in body
        assert "Mallory" not in body
        assert "Set-Cookie" not in str(response.headers) and not response.cookies
        assert "Cookie" not in response.get("Vary", "")
    assert anonymous["ETag"] == signed_in["ETag"]


def test_status_page_needs_no_login_and_only_reads(client):
    assert client.get(reverse("statuspage:index")).status_code == 200
    assert client.post(reverse("statuspage:index")).status_code == 405


def test_renaming_a_public_service_shows_at_once(client):
    api = ServiceFactory(name="API")
    etag = client.get(URL)["ETag"]
    api.name = "Public API"
    api.save()
    response = client.get(URL, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200
    assert "Public API" in response.content.decode()
