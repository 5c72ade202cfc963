from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from incidents import services
from incidents.models import Status
from incidents.statuspage import selectors
from incidents.statuspage import services as statuspage_services
from incidents.statuspage.models import ServiceState, state_for_severity
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


def test_service_state_is_worst_active_unrestricted_incident(responder):
    api, web, quiet = ServiceFactory(name="API"), ServiceFactory(name="Web"), ServiceFactory(name="Search")
    declare(by=responder, level="P2", services=[api])
    declare(by=responder, level="P0", services=[api])
    declare(by=responder, level="P1", services=[web])
    resolved = declare(by=responder, level="P0", services=[quiet])
    services.change_status(incident=resolved, to=Status.RESOLVED, by=responder)

    page = selectors.status_page()

    assert state_of(page, api) == ServiceState.MAJOR_OUTAGE
    assert state_of(page, web) == ServiceState.PARTIAL_OUTAGE
    assert state_of(page, quiet) == ServiceState.OPERATIONAL
    assert page.overall == ServiceState.MAJOR_OUTAGE


def test_only_public_services_are_listed(client):
    ServiceFactory(name="Public API")
    ServiceFactory(name="Internal billing batch", is_public=False)
    response = client.get(URL)
    assert response.status_code == 200
    assert "Public API" in response.content.decode()
    assert "Internal billing batch" not in response.content.decode()


def test_manual_override_wins_over_incidents(responder):
    api = ServiceFactory(name="API")
    declare(by=responder, level="P0", services=[api])
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
    post_update(public, by=responder, title="Slow API responses", description="Some requests take long.")
    post_update(public, by=responder, publish=False, title="Draft wording", description="Not approved yet.")
    post_update(public, by=responder, kind="internal", what_we_know="Replica lag on db01 is 40s.")

    security = SecurityFactory()
    breach = declare(by=security, level="P0", services=[api], is_restricted=True, title="Credential leak")
    post_update(breach, by=security, title="Customer data exposure", description="Tokens leaked.")

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


def test_active_incident_without_published_update_affects_state_but_is_not_listed(client, responder):
    api = ServiceFactory(name="API")
    declare(by=responder, level="P0", services=[api], title="Unannounced internal title")
    body = client.get(URL).content.decode()
    assert "Major outage" in body
    assert "Unannounced internal title" not in body


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
        affected_services=[api, web],
        next_update_at=timezone.now() + timedelta(minutes=30),
    )
    body = " ".join(client.get(URL).content.decode().split())

    assert "[Identified] API Performance Issues" in body
    assert "Posted: <time" in body and "Jan 15, 14:35 UTC" in body
    assert "Some users may experience delays when loading exercises." in body
    assert 'Current status: <span class="status status-identified">Identified</span>' in body
    assert "Affected Services:" in body and "<li>API</li>" in body and "<li>Exercises</li>" in body
    assert "Workaround (if available):" in body and "Retry the request after a few seconds." in body
    assert "Next Update:" in body and "Jan 15, 15:05 UTC" in body


def test_history_covers_90_days_grouped_by_day(client, responder):
    api = ServiceFactory(name="API")
    with time_machine.travel(timezone.now() - timedelta(days=95), tick=False):
        old = declare(by=responder, level="P2", services=[api])
        post_update(old, by=responder, title="Too old to show", description="Long ago.")
        services.change_status(incident=old, to=Status.RESOLVED, by=responder)
    with time_machine.travel(timezone.now() - timedelta(days=89), tick=False):
        recent = declare(by=responder, level="P2", services=[api])
        post_update(recent, by=responder, title="Within the window", description="Recently.")
        services.change_status(incident=recent, to=Status.RESOLVED, by=responder)
        post_update_day = timezone.now().date()

    page = selectors.status_page()
    assert len(page.history) == 90
    assert page.history[0].day == timezone.now().date()
    day = next(day for day in page.history if day.day == post_update_day)
    assert [item.title for item in day.incidents] == ["Within the window"]
    body = client.get(URL).content.decode()
    assert "Within the window" in body
    assert "Too old to show" not in body
    assert "No incidents reported." in body


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
            services.change_status(incident=incident, to=Status.RESOLVED, by=responder)
    maintenance(services=service_list[:3])
    maintenance(services=service_list[3:6], starts_in=timedelta(minutes=-5))
    statuspage_services.set_service_override(service=service_list[-1], state="partial_outage", by=responder)

    with django_assert_max_num_queries(8):  # 1 fingerprint + 7 for the page, whatever the data
        response = client.get(URL)
    assert response.status_code == 200
    with django_assert_max_num_queries(1):  # a revalidation costs the fingerprint only
        assert client.get(URL, HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304


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
