from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from incidents.statuspage import selectors
from incidents.statuspage.models import MaintenanceWindow, ServiceState, ServiceStatusOverride
from tests.factories import ServiceFactory

from .factories import maintenance

pytestmark = pytest.mark.django_db

URL = "/status/manage/"


def test_manage_page_needs_login(client):
    response = client.get(URL)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert client.post(f"{URL}maintenance/").status_code == 302


def test_responder_pins_and_clears_a_service_state(client, responder):
    api = ServiceFactory(name="API")
    client.force_login(responder)
    page = client.get(URL)
    assert page.status_code == 200 and "API" in page.content.decode()
    assert "Schedule maintenance" not in page.content.decode()  # managers only

    response = client.post(
        f"/status/manage/services/{api.slug}/state/",
        {"state": "partial_outage", "message": "EU only.", "action": "pin"},
    )
    assert response.status_code == 302
    row = selectors.status_page().services[0]
    assert (row.state, row.message) == (ServiceState.PARTIAL_OUTAGE, "EU only.")
    assert ServiceStatusOverride.objects.get().set_by == responder

    client.post(f"/status/manage/services/{api.slug}/state/", {"action": "clear"})
    assert selectors.status_page().services[0].state == ServiceState.OPERATIONAL


def test_viewer_cannot_pin_states(client, viewer):
    api = ServiceFactory(name="API")
    client.force_login(viewer)
    response = client.post(f"/status/manage/services/{api.slug}/state/", {"state": "major_outage", "action": "pin"})
    assert response.status_code == 403
    assert "responder role" in response.content.decode()
    assert not ServiceStatusOverride.objects.exists()


def test_bad_state_is_a_clear_error(client, responder):
    api = ServiceFactory(name="API")
    client.force_login(responder)
    response = client.post(f"/status/manage/services/{api.slug}/state/", {"state": "on_fire", "action": "pin"})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert client.post("/status/manage/services/no-such-service/state/", {"state": "major_outage"}).status_code == 404


def test_manager_schedules_maintenance_and_bad_dates_are_form_errors(client, manager):
    db = ServiceFactory(name="Database")
    internal = ServiceFactory(name="Batch jobs", is_public=False)
    client.force_login(manager)
    day = (timezone.now() + timedelta(days=30)).date().isoformat()
    data = {
        "title": "Database upgrade",
        "description": "Writes pause briefly.",
        "services": [db.pk, internal.pk],
        "starts_at": f"{day}T10:00",
        "ends_at": f"{day}T09:00",
    }
    response = client.post("/status/manage/maintenance/", data)
    assert response.status_code == 400
    assert "The maintenance must end after it starts." in response.content.decode()
    response = client.post(
        "/status/manage/maintenance/", {**data, "starts_at": "2099-01-15T10:00", "ends_at": "2099-01-15T12:00"}
    )
    assert response.status_code == 400 and "The maintenance must start between" in response.content.decode()
    response = client.post("/status/manage/maintenance/", {**data, "starts_at": "yesterday-ish"})
    assert response.status_code == 400 and "Enter a valid date/time." in response.content.decode()
    assert not MaintenanceWindow.objects.exists()

    response = client.post("/status/manage/maintenance/", {**data, "ends_at": f"{day}T12:00"})
    assert response.status_code == 302
    window = MaintenanceWindow.objects.get()
    assert window.starts_at.isoformat() == f"{day}T10:00:00+00:00"
    assert set(window.services.all()) == {db, internal}  # suppression covers private services too
    public_page = client.get("/status/").content.decode()
    assert "Database upgrade" in public_page and "Batch jobs" not in public_page


def test_responder_cannot_schedule_maintenance(client, responder):
    db = ServiceFactory(name="Database")
    client.force_login(responder)
    response = client.post(
        "/status/manage/maintenance/",
        {"title": "Sneaky", "services": [db.pk], "starts_at": "2030-01-15T10:00", "ends_at": "2030-01-15T11:00"},
    )
    assert response.status_code == 403
    assert not MaintenanceWindow.objects.exists()


def test_cancelling_deletes_upcoming_and_ends_running_windows(client, manager):
    db = ServiceFactory(name="Database")
    upcoming = maintenance(services=[db], starts_in=timedelta(hours=3))
    running = maintenance(services=[db], starts_in=timedelta(minutes=-10))
    client.force_login(manager)
    assert client.post(f"/status/manage/maintenance/{upcoming.pk}/cancel/").status_code == 302
    assert not MaintenanceWindow.objects.filter(pk=upcoming.pk).exists()
    assert selectors.is_under_maintenance(db)
    client.post(f"/status/manage/maintenance/{running.pk}/cancel/")
    assert not selectors.is_under_maintenance(db)
    running.refresh_from_db()
    assert running.ends_at <= timezone.now()
    with time_machine.travel(timezone.now() + timedelta(minutes=1)):
        response = client.post(f"/status/manage/maintenance/{running.pk}/cancel/", follow=True)
    assert "already over" in response.content.decode()


def test_staff_page_lists_maintenance_of_internal_services_too(client, manager):
    batch = ServiceFactory(name="Batch jobs", is_public=False)
    maintenance(services=[batch], title="Reindex the warehouse")
    client.force_login(manager)
    body = client.get(URL).content.decode()
    assert "Reindex the warehouse" in body and "Batch jobs" in body and "(internal)" in body
