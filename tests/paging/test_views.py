"""Paging in the browser: the panel on the incident page, acknowledge (htmx and plain), the one-click link
(no login, GET confirms, POST acknowledges, single use, expiry, tampering), my pages, the header item, admin."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from oncall.paging import links
from oncall.paging.models import Notification, Page
from tests.factories import ManagerFactory, ResponderFactory, declare
from tests.oncall.factories import PersonFactory
from tests.paging.factories import paged_team, with_methods

pytestmark = pytest.mark.django_db

MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    with time_machine.travel(MONDAY_10, tick=False) as traveller:
        yield traveller


@pytest.fixture
def paged(clock, responder):
    team = paged_team()
    incident = declare(by=responder, level="P1", services=[team.service])
    return team, incident


def test_incident_page_shows_who_is_paged_the_level_and_next_escalation(client, responder, paged):
    _team, incident = paged
    client.force_login(responder)
    html = client.get(incident.get_absolute_url()).content.decode()
    assert 'id="paging-panel"' in html
    assert "level 1" in html and "next escalation" in html and "10:30 UTC" in html
    assert "Platform Engineer (Primary on-call of Platform)" in html
    assert reverse("paging:acknowledge", args=[incident.reference]) in html


def test_acknowledge_from_the_panel_with_htmx(client, responder, paged):
    _team, incident = paged
    client.force_login(responder)
    url = reverse("paging:acknowledge", args=[incident.reference])
    response = client.post(url, headers={"HX-Request": "true"})
    assert response.status_code == 200
    html = response.content.decode()
    # One acknowledgement, one line: who, when, through which channel and at which paging level.
    assert "Acknowledged" in html and "via portal, paging level 1; escalation stopped" in html
    assert "Page acknowledged by" not in html and html.count("cknowledged") == 1
    assert incident.timeline.filter(body__icontains="acknowledged").exclude(kind="checklist").count() == 1
    assert 'id="acknowledge-button"' not in html
    assert response["HX-Trigger"] == "timeline-refresh"
    assert Page.objects.get(incident=incident).state == Page.State.ACKNOWLEDGED


def test_acknowledge_without_htmx_redirects_back(client, responder, paged):
    _team, incident = paged
    client.force_login(responder)
    response = client.post(reverse("paging:acknowledge", args=[incident.reference]))
    assert response.status_code == 302 and response["Location"] == incident.get_absolute_url()


def test_viewer_cannot_acknowledge(client, viewer, paged):
    _team, incident = paged
    client.force_login(viewer)
    response = client.post(reverse("paging:acknowledge", args=[incident.reference]), headers={"HX-Request": "true"})
    assert response.status_code == 403
    assert Page.objects.get(incident=incident).state == Page.State.ACTIVE


def test_acknowledge_of_an_unknown_or_hidden_incident_is_404(client, responder, clock):
    client.force_login(responder)
    assert client.post(reverse("paging:acknowledge", args=["INC-999"])).status_code == 404
    hidden = declare(by=ManagerFactory(groups=["incident_manager", "responder"]), level="P1", is_restricted=True)
    assert client.post(reverse("paging:acknowledge", args=[hidden.reference])).status_code == 404


def test_acknowledge_a_closed_incident_is_a_clear_error(client, manager, clock):
    incident = declare(by=manager, level="P2")
    from incidents.services.status import change_status

    change_status(incident=incident, to="resolved", by=manager)
    change_status(incident=incident, to="closed", by=manager, override_reason="Test")
    client.force_login(manager)
    response = client.post(reverse("paging:acknowledge", args=[incident.reference]), headers={"HX-Request": "true"})
    assert response.status_code == 409 and "is closed" in response.content.decode()


def _link_for(incident) -> str:
    row = Notification.objects.filter(incident=incident, channel="email").first()
    return reverse("paging:acknowledge_link", args=[links.ack_token(row)])


def test_link_get_only_confirms_and_post_acknowledges_without_login(client, paged):
    team, incident = paged
    url = _link_for(incident)
    page = client.get(url)
    assert page.status_code == 200 and "Acknowledge INC-" in page.content.decode()
    assert Page.objects.get(incident=incident).state == Page.State.ACTIVE  # a link scanner's GET does nothing
    done = client.post(url)
    assert done.status_code == 200 and "Acknowledged." in done.content.decode()
    acked = Page.objects.get(incident=incident)
    assert acked.state == Page.State.ACKNOWLEDGED and acked.acknowledged_by_person == team.oncall
    assert acked.acknowledged_via == "link in the page message"
    incident.refresh_from_db()
    assert incident.acknowledged_at is not None
    again = client.post(url)
    assert again.status_code == 400 and "already been used" in again.content.decode()


def test_link_of_a_responder_acknowledges_as_their_account(client, clock):
    user = ResponderFactory()
    team = paged_team()
    team.oncall.user = user
    team.oncall.save()
    incident = declare(by=ResponderFactory(), level="P1", services=[team.service])
    client.post(_link_for(incident))
    incident.refresh_from_db()
    assert incident.acknowledged_by == user


def test_expired_or_tampered_link_is_refused(client, paged, clock):
    _team, incident = paged
    url = _link_for(incident)
    assert client.get(url[:-3] + "xx/").status_code == 400
    clock.move_to(MONDAY_10 + timedelta(hours=25))
    response = client.post(url)
    assert response.status_code == 400 and "expired" in response.content.decode()
    assert Page.objects.get(incident=incident).state == Page.State.ACTIVE


def test_link_after_someone_else_acknowledged_says_so(client, responder, paged):
    from incidents.services.status import acknowledge_incident

    _team, incident = paged

    acknowledge_incident(incident=incident, by=responder)
    response = client.post(_link_for(incident))
    assert response.status_code == 200 and "Nothing left to acknowledge" in response.content.decode()


def test_my_pages_lists_pages_that_reached_me_open_first(client, clock):
    user = ResponderFactory()
    team = paged_team()
    team.oncall.user = user
    team.oncall.save()
    older = declare(by=ResponderFactory(), level="P2", services=[team.service], title="Older")

    from incidents.services.status import acknowledge_incident

    acknowledge_incident(incident=older, by=user)
    clock.move_to(MONDAY_10 + timedelta(minutes=1))
    newer = declare(by=ResponderFactory(), level="P1", services=[team.service], title="Newer")
    declare(by=ResponderFactory(), level="P1", title="Not mine")
    client.force_login(user)
    html = client.get(reverse("paging:mine")).content.decode()
    assert html.index(newer.reference) < html.index(older.reference)
    assert "Not mine" not in html
    assert "Paged: <strong>1</strong>" in html  # the header item


def test_my_pages_without_a_contact_entry_explains(client, responder):
    client.force_login(responder)
    html = client.get(reverse("paging:mine")).content.decode()
    assert "not linked to an on-call contact" in html


def test_my_pages_costs_a_fixed_number_of_queries(client, clock, django_assert_max_num_queries):
    user = ResponderFactory()
    person = with_methods(PersonFactory(user=user), "email")
    team = paged_team()
    team.oncall.user = None
    for _ in range(5):
        incident = declare(by=ResponderFactory(), level="P1", services=[team.service])
        Notification.objects.filter(incident=incident).update(person=person)
    client.force_login(user)
    with django_assert_max_num_queries(12):
        assert client.get(reverse("paging:mine")).status_code == 200


def test_admin_lists_notifications_with_filters(client, paged):
    admin_user = ManagerFactory(is_superuser=True)
    client.force_login(admin_user)
    url = reverse("admin:paging_notification_changelist")
    assert client.get(url).status_code == 200
    response = client.get(url, {"status__exact": "pending", "channel__exact": "email"})
    assert response.status_code == 200 and "Platform Engineer" in response.content.decode()
    assert client.get(reverse("admin:paging_page_changelist")).status_code == 200


def test_admin_acknowledge_action_calls_the_service(client, paged):
    _team, incident = paged
    admin_user = ManagerFactory(is_superuser=True)
    client.force_login(admin_user)
    page = Page.objects.get(incident=incident)
    response = client.post(
        reverse("admin:paging_page_changelist"), {"action": "acknowledge", "_selected_action": [page.pk]}
    )
    assert response.status_code == 302
    page.refresh_from_db()
    assert page.state == Page.State.ACKNOWLEDGED and page.acknowledged_by == admin_user
