from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from incidents.errors import DomainError, PermissionDenied
from incidents.statuspage import rollups, selectors
from incidents.statuspage import services as statuspage_services
from incidents.statuspage.models import MaintenanceWindow, ServiceState
from tests.factories import ManagerFactory, ServiceFactory, declare

from .factories import maintenance, post_update

pytestmark = pytest.mark.django_db


def test_is_under_maintenance_only_inside_the_window():
    db, api = ServiceFactory(name="Database"), ServiceFactory(name="API")
    window = maintenance(services=[db])
    assert not selectors.is_under_maintenance(db, window.starts_at - timedelta(seconds=1))
    assert selectors.is_under_maintenance(db, window.starts_at)
    assert selectors.is_under_maintenance(db.pk, window.ends_at - timedelta(seconds=1))
    assert not selectors.is_under_maintenance(db, window.ends_at)
    assert not selectors.is_under_maintenance(api, window.starts_at)
    assert selectors.services_under_maintenance([db.pk, api.pk], window.starts_at) == {db.pk}
    with time_machine.travel(window.starts_at + timedelta(minutes=5)):
        assert selectors.is_under_maintenance(db)  # default: now


def test_status_page_shows_upcoming_then_in_progress_maintenance(client):
    db = ServiceFactory(name="Database")
    window = maintenance(services=[db], title="Database upgrade to 16", description="Writes pause for a minute.")

    body = client.get("/status/").content.decode()
    assert "Scheduled maintenance" in body and "Database upgrade to 16" in body
    assert "Writes pause for a minute." in body
    assert "Maintenance in progress" not in body
    assert "Under maintenance" not in body

    with time_machine.travel(window.starts_at + timedelta(minutes=1)):
        page = selectors.status_page()
        assert [w.pk for w in page.maintenance_in_progress] == [window.pk]
        assert page.maintenance_upcoming == []
        assert page.services[0].state == ServiceState.UNDER_MAINTENANCE
        body = client.get("/status/").content.decode()
        assert "Maintenance in progress" in body and "Under maintenance" in body

    with time_machine.travel(window.ends_at + timedelta(days=1)):
        page = selectors.status_page()
        assert page.services[0].state == ServiceState.OPERATIONAL
        assert [w.pk for w in page.past_maintenance] == [window.pk]
        (day,) = rollups.history(page)
        assert day.day == window.starts_at.date() and "Database upgrade to 16" in day.html
        assert "Completed maintenance: Database upgrade to 16" in client.get("/status/").content.decode()


def test_an_incident_during_maintenance_shows_the_worse_state(responder):
    db = ServiceFactory(name="Database")
    window = maintenance(services=[db], starts_in=timedelta(minutes=-1))
    incident = declare(by=responder, level="P0", services=[db])
    assert window.is_in_progress()
    # Nothing published yet: the public still sees the maintenance, not an internal incident.
    assert selectors.status_page().services[0].state == ServiceState.UNDER_MAINTENANCE
    post_update(incident, by=responder, affected_services=[db])
    assert selectors.status_page().services[0].state == ServiceState.MAJOR_OUTAGE


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ends_in": timedelta(0)}, "ends_at"),
        ({"ends_in": timedelta(hours=-1)}, "ends_at"),
        ({"title": "  "}, "title"),
        ({"services": []}, "services"),
        # A year-long window would silence automatic declaration for a year.
        ({"ends_in": timedelta(days=14, seconds=1)}, "ends_at"),
        ({"starts_in": timedelta(days=367)}, "starts_at"),
        ({"starts_in": -timedelta(days=367)}, "starts_at"),
        ({"starts_in": timedelta(days=365 * 7000)}, "starts_at"),
    ],
)
def test_maintenance_window_is_validated(change, field):
    db = ServiceFactory()
    starts_at = timezone.now() + change.get("starts_in", timedelta(hours=1))
    with pytest.raises(DomainError) as error:
        statuspage_services.schedule_maintenance(
            title=change.get("title", "Upgrade"),
            services=change.get("services", [db]),
            starts_at=starts_at,
            ends_at=starts_at + change.get("ends_in", timedelta(hours=1)),
            by=ManagerFactory(),
        )
    assert error.value.field == field
    assert not MaintenanceWindow.objects.exists()


def test_only_managers_schedule_maintenance(responder):
    starts_at = timezone.now()
    with pytest.raises(PermissionDenied):
        statuspage_services.schedule_maintenance(
            title="Upgrade",
            services=[ServiceFactory()],
            starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=1),
            by=responder,
        )


def test_manager_creates_a_window_in_admin_and_bad_dates_are_form_errors(client):
    db = ServiceFactory(name="Database")
    manager = ManagerFactory(is_superuser=True)
    client.force_login(manager)
    day = (timezone.now() + timedelta(days=30)).date().isoformat()
    data = {
        "title": "Kernel patching",
        "description": "Short blips.",
        "services": [db.pk],
        "starts_at_0": day,
        "starts_at_1": "10:00:00",
        "ends_at_0": day,
        "ends_at_1": "09:00:00",
    }
    response = client.post("/admin/statuspage/maintenancewindow/add/", data)
    assert response.status_code == 200
    assert "The maintenance must end after it starts." in response.content.decode()
    assert not MaintenanceWindow.objects.exists()

    data["ends_at_1"] = "12:00:00"
    response = client.post("/admin/statuspage/maintenancewindow/add/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    window = MaintenanceWindow.objects.get()
    assert (window.title, window.created_by, list(window.services.all())) == ("Kernel patching", manager, [db])
    assert window.ends_at - window.starts_at == timedelta(hours=2)


def test_manager_sets_a_service_override_in_admin(client):
    db = ServiceFactory(name="Database")
    client.force_login(ManagerFactory(is_superuser=True))
    response = client.post(
        "/admin/statuspage/servicestatusoverride/add/",
        {"service": db.pk, "state": "partial_outage", "message": "Reads only."},
    )
    assert response.status_code == 302
    row = selectors.status_page().services[0]
    assert (row.state, row.cause, row.message) == (ServiceState.PARTIAL_OUTAGE, "override", "Reads only.")


def test_maintenance_of_internal_services_only_is_not_announced_but_still_suppresses(client):
    batch = ServiceFactory(name="Batch jobs", is_public=False)
    window = maintenance(services=[batch], title="Reindex the warehouse", starts_in=timedelta(minutes=-1))
    assert "Reindex the warehouse" not in client.get("/status/").content.decode()
    assert selectors.status_page().maintenance_in_progress == []
    assert selectors.is_under_maintenance(batch)
    assert window.is_in_progress()


def test_maintenance_calendar_lists_public_windows(client):
    from icalendar import Calendar

    db = ServiceFactory(name="Database")
    batch = ServiceFactory(name="Batch jobs", is_public=False)
    window = maintenance(services=[db, batch], title="Database upgrade", description="Writes pause.")
    maintenance(services=[batch], title="Warehouse reindex")

    response = client.get("/status/maintenance.ics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/calendar")
    events = Calendar.from_ical(response.content).walk("VEVENT")
    assert [str(event["summary"]) for event in events] == ["Maintenance: Database upgrade"]
    event = events[0]
    # iCalendar has whole seconds.
    assert event.decoded("dtstart") == window.starts_at.replace(microsecond=0)
    assert event.decoded("dtend") == window.ends_at.replace(microsecond=0)
    assert "Affected services: Database" in str(event["description"]) and "Batch" not in str(event["description"])
    assert client.get("/status/maintenance.ics", HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304


# --- Suppression of automatic declaration (the alert rules ask is_under_maintenance) ------------------------------


def post_alerts(client, key):
    from tests.api.factories import fixture_bytes

    return client.post(
        "/api/v1/integrations/alertmanager/",
        data=fixture_bytes("alertmanager_firing.json"),
        content_type="application/json",
        headers={"authorization": f"Bearer {key}"},
    )


def test_alerts_during_maintenance_are_recorded_without_declaring_an_incident(client):
    from incidents.alerting.models import AlertEvent, AlertGroup, RouteAction
    from incidents.models import Incident
    from tests.api.factories import make_integration

    checkout = ServiceFactory(name="Checkout", slug="checkout")
    _, key = make_integration("alertmanager", default_action=RouteAction.DECLARE)
    window = maintenance(services=[checkout], starts_in=timedelta(minutes=-5), lasts=timedelta(hours=1))

    response = post_alerts(client, key)

    assert response.status_code == 202, response.content
    assert not Incident.objects.exists()
    assert AlertEvent.objects.count() == 2  # still recorded
    assert AlertGroup.objects.count() == 2 and not AlertGroup.objects.filter(incident__isnull=False).exists()

    with time_machine.travel(window.ends_at + timedelta(minutes=1)):
        AlertGroup.objects.update(status="resolved", resolved_at=timezone.now())  # start clean after the window
        assert post_alerts(client, key).status_code == 202
    incident = Incident.objects.get()
    assert list(incident.services.all()) == [checkout]


def test_should_auto_declare_asks_the_maintenance_windows():
    from incidents.alerting.models import RouteAction
    from incidents.alerting.services.routing import should_auto_declare
    from tests.api.factories import make_integration

    checkout, search = ServiceFactory(name="Checkout"), ServiceFactory(name="Search")
    integration, _ = make_integration("alertmanager", default_action=RouteAction.DECLARE)
    window = maintenance(services=[checkout])
    inside, before = window.starts_at + timedelta(minutes=1), window.starts_at - timedelta(minutes=1)
    assert should_auto_declare(integration, checkout, before)
    assert not should_auto_declare(integration, checkout, inside)
    assert should_auto_declare(integration, search, inside)
    assert should_auto_declare(integration, None, inside)  # an alert for no service is not covered


def test_maintenance_window_limits_are_inclusive_and_an_old_window_stays_editable():
    db = ServiceFactory()
    manager = ManagerFactory()
    starts_at = timezone.now() + timedelta(days=300)
    ends_at = starts_at + timedelta(days=14)
    window = statuspage_services.schedule_maintenance(
        title="Storage migration", services=[db], starts_at=starts_at, ends_at=ends_at, by=manager
    )
    assert window.ends_at - window.starts_at == timedelta(days=14)
    # Two years on, correcting the old window's title keeps its (now far past) start.
    with time_machine.travel(starts_at + timedelta(days=730), tick=False):
        changed = statuspage_services.change_maintenance(
            window=window,
            title="Storage migration (phase 1)",
            services=[db],
            starts_at=window.starts_at,
            ends_at=window.ends_at,
            by=manager,
        )
        assert changed.title == "Storage migration (phase 1)"
        with pytest.raises(DomainError) as error:
            statuspage_services.change_maintenance(
                window=window,
                title="Storage migration",
                services=[db],
                starts_at=window.starts_at - timedelta(days=1),
                ends_at=window.ends_at - timedelta(days=1),
                by=manager,
            )
        assert error.value.field == "starts_at"
