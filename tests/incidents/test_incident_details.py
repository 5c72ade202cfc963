"""update_incident_details: who may edit an incident's details, the rules on what they type, one timeline entry
naming exactly what changed (none when nothing did), an audit record with the actor; and the admin's change page
saving its descriptive fields through it, with validation that writes nothing."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.admin.sites import site
from django.test import RequestFactory
from django.urls import reverse

from incidents import selectors
from incidents.audit.context import acting_as
from incidents.audit.models import AuditRecord
from incidents.errors import DomainError, PermissionDenied
from incidents.models import EntryKind, Incident, Role, Status
from incidents.selectors import IncidentPage, incident_for_page
from incidents.services import details as details_services
from incidents.services import roles as roles_services
from incidents.services import status as status_services
from incidents.services.entries import add_timeline_entry
from tests.factories import ManagerFactory, ResponderFactory, SecurityFactory, ServiceFactory, UserFactory, declare
from tests.incidents.test_admin import change_form_data

pytestmark = pytest.mark.django_db


def details_entries(incident):
    return list(incident.timeline.filter(body__startswith="Details changed").order_by("id"))


def test_commander_edits_title_services_and_detection_in_one_entry_with_an_audit_record():
    commander = ResponderFactory()
    api, web = ServiceFactory(name="API"), ServiceFactory(name="Web")
    incident = declare(by=commander, services=[web])
    earlier = incident.declared_at - timedelta(hours=2)
    with acting_as(commander):
        details_services.update_incident_details(
            incident=incident, by=commander, title="Checkout down", services=[api], detected_at=earlier
        )
    incident.refresh_from_db()
    assert incident.title == "Checkout down" and incident.detected_at == earlier
    assert set(incident.services.values_list("name", flat=True)) == {"API"}
    [entry] = details_entries(incident)
    assert entry.author == commander
    assert "title from “API slow response times” to “Checkout down”" in entry.body
    assert "added API" in entry.body and "removed Web" in entry.body and "detection time from" in entry.body
    assert "summary" not in entry.body and "restrict" not in entry.body
    record = AuditRecord.objects.filter(object_type="incidents.incident", object_id=str(incident.pk)).first()
    assert record.actor == commander and record.after["title"] == "Checkout down"
    assert AuditRecord.objects.filter(field="services", object_id=str(incident.pk), actor=commander).exists()


def test_nothing_changed_writes_nothing():
    commander = ResponderFactory()
    incident = declare(by=commander, summary="Slow", services=[ServiceFactory()])
    entries, records = incident.timeline.count(), AuditRecord.objects.count()
    details_services.update_incident_details(
        incident=incident,
        by=commander,
        title=f"  {incident.title} ",
        summary="Slow",
        services=list(incident.services.all()),
        detected_at=incident.detected_at,
        restricted=False,
        users_affected_percent=None,
    )
    assert incident.timeline.count() == entries and AuditRecord.objects.count() == records


def test_only_the_incident_commander_or_a_manager_edits_details():
    commander, other = ResponderFactory(), ResponderFactory()
    incident = declare(by=commander)
    with pytest.raises(PermissionDenied):
        details_services.update_incident_details(incident=incident, by=other, title="Mine now")
    details_services.update_incident_details(incident=incident, by=ManagerFactory(), summary="Payments fail")
    roles_services.assign_role(incident=incident, role=Role.INCIDENT_COMMANDER, holder=other, by=commander)
    details_services.update_incident_details(
        incident=incident, by=other, impact="All EU users", users_affected_percent=40
    )
    # The former commander has handed over.
    with pytest.raises(PermissionDenied):
        details_services.update_incident_details(incident=incident, by=commander, title="Back")
    incident.refresh_from_db()
    assert incident.summary == "Payments fail" and incident.users_affected_percent == Decimal("40.00")
    assert "share of users affected from unknown to 40%" in details_entries(incident)[-1].body


def test_restricting_is_for_editors_lifting_the_restriction_for_security_or_admins():
    commander, manager, security = ResponderFactory(), ManagerFactory(), SecurityFactory()
    incident = declare(by=commander)
    details_services.update_incident_details(incident=incident, by=commander, restricted=True)
    assert "now **restricted**" in details_entries(incident)[-1].body
    with pytest.raises(PermissionDenied) as refused:
        details_services.update_incident_details(incident=incident, by=manager, restricted=False)
    assert refused.value.field == "is_restricted"
    incident.refresh_from_db()
    assert incident.is_restricted
    roles_services.assign_role(incident=incident, role=Role.INCIDENT_COMMANDER, holder=security, by=commander)
    details_services.update_incident_details(incident=incident, by=security, restricted=False)
    incident.refresh_from_db()
    assert not incident.is_restricted and "restriction lifted" in details_entries(incident)[-1].body


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"title": "   "}, "title", "short title"),
        ({"title": "x" * 201}, "title", "under 200"),
        ({"detected_at": "after"}, "detected_at", "after the incident was declared"),
        ({"detected_at": "ancient"}, "detected_at", "at most a year before the declaration"),
        ({"detected_at": None}, "detected_at", "detection time"),
        ({"users_affected_percent": "101"}, "users_affected_percent", "from 0 to 100"),
        ({"users_affected_percent": "NaN"}, "users_affected_percent", "from 0 to 100"),
        ({"detection_source": "psychic"}, "detection_source", "Unknown detection source"),
    ],
)
def test_refused_details_name_the_field_and_change_nothing(changes, field, message):
    commander = ResponderFactory()
    incident = declare(by=commander)
    if changes.get("detected_at") == "after":
        changes["detected_at"] = incident.declared_at + timedelta(seconds=30)
    elif changes.get("detected_at") == "ancient":
        changes["detected_at"] = incident.declared_at - timedelta(days=400)
    with pytest.raises(DomainError) as refused:
        details_services.update_incident_details(incident=incident, by=commander, summary="changed too", **changes)
    assert refused.value.field == field and message in refused.value.message
    incident.refresh_from_db()
    assert incident.summary == "" and not details_entries(incident)


def test_viewers_cannot_edit_details():
    incident = declare()
    with pytest.raises(PermissionDenied):
        details_services.update_incident_details(incident=incident, by=UserFactory(groups=["viewer"]), title="x")


# --- the admin --------------------------------------------------------------------------------------------


def test_admin_saves_details_through_the_service(client, manager):
    incident = declare(by=manager)
    api = ServiceFactory(name="API")
    client.force_login(manager)
    url = reverse("admin:incidents_incident_change", args=[incident.pk])
    data = change_form_data(client.get(url))
    data.update({"title": "Renamed in the admin", "services": [str(api.pk)], "is_restricted": "on"})
    response = client.post(url, data)
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.title == "Renamed in the admin" and incident.is_restricted
    assert list(incident.services.all()) == [api]
    [entry] = details_entries(incident)
    assert entry.author == manager and "added API" in entry.body and "now **restricted**" in entry.body
    assert AuditRecord.objects.filter(object_id=str(incident.pk), actor=manager, source="admin").exists()
    # Saving the page unchanged writes no entry.
    client.post(url, change_form_data(client.get(url)))
    assert len(details_entries(incident)) == 1


def test_admin_manager_cannot_lift_a_restriction_it_is_a_field_error(client):
    manager, security = ManagerFactory(), SecurityFactory()
    incident = declare(by=security, is_restricted=True)
    roles_services.add_responder(incident=incident, user=manager, by=security)
    client.force_login(manager)
    url = reverse("admin:incidents_incident_change", args=[incident.pk])
    data = change_form_data(client.get(url))
    data.pop("is_restricted")
    data["title"] = "Not saved"
    response = client.post(url, data)
    assert response.status_code == 200
    assert "security team or an admin" in response.context["adminform"].form.errors["is_restricted"][0]
    incident.refresh_from_db()
    assert incident.is_restricted and incident.title != "Not saved"


def test_admin_validation_writes_nothing(manager):
    """The change form's validation asks the services' checks; the changes happen only in save_model."""
    incident = declare(by=manager)
    request = RequestFactory().post("/")
    request.user = manager
    model_admin = site._registry[Incident]
    form_class = model_admin.get_form(request, incident, change=True)
    data = {
        "title": "New title",
        "summary": "",
        "detection_source": incident.detection_source,
        "impact": "",
        "users_affected_percent": "",
        "detected_at_0": incident.detected_at.strftime("%Y-%m-%d"),
        "detected_at_1": incident.detected_at.strftime("%H:%M:%S"),
        "new_status": Status.IDENTIFIED,
        "assign_role": "scribe",
        "role_holder": str(manager.pk),
    }
    entries, records = incident.timeline.count(), AuditRecord.objects.count()
    form = form_class(data, instance=incident)
    assert form.is_valid(), form.errors
    assert incident.timeline.count() == entries and AuditRecord.objects.count() == records
    stored = Incident.objects.get(pk=incident.pk)
    assert stored.status == Status.INVESTIGATING and stored.title != "New title"
    assert selectors.current_holder(stored, "scribe") is None


def test_admin_refusal_after_validation_saves_nothing_and_says_so(client, manager, monkeypatch):
    """Someone else changed the incident between validation and save: the service refuses, nothing stays."""
    incident = declare(by=manager)
    client.force_login(manager)
    url = reverse("admin:incidents_incident_change", args=[incident.pk])
    data = change_form_data(client.get(url))
    data.update({"title": "Lost in the race", "new_status": Status.IDENTIFIED})
    real_check = status_services.check_status_change
    calls = []

    def check_then_race(incident, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the service's own check, after the form's: someone got there first
            raise DomainError("INC is already Identified.", field="status")
        return real_check(incident, **kwargs)

    monkeypatch.setattr(status_services, "check_status_change", check_then_race)
    response = client.post(url, data, follow=True)
    assert len(calls) == 2
    assert any("Nothing was saved" in str(m) for m in response.context["messages"])
    incident.refresh_from_db()
    assert incident.title != "Lost in the race" and not details_entries(incident)


# --- back-dating: the page and the service ask one rule --------------------------------------------------


@pytest.mark.parametrize(("who", "may"), [("commander", True), ("scribe", True), ("manager", True), ("other", False)])
def test_page_offers_backdating_exactly_when_the_service_accepts_it(who, may):
    commander, scribe, other = ResponderFactory(), ResponderFactory(), ResponderFactory()
    incident = declare(by=commander)
    roles_services.assign_role(incident=incident, role=Role.SCRIBE, holder=scribe, by=commander)
    user = {"commander": commander, "scribe": scribe, "manager": ManagerFactory(), "other": other}[who]
    page = IncidentPage(user, incident_for_page(reference=incident.reference, user=user))
    assert page.can_backdate is may
    earlier = incident.declared_at - timedelta(minutes=5)
    if may:
        add_timeline_entry(incident=incident, by=user, body="Deploy started", occurred_at=earlier)
    else:
        with pytest.raises(PermissionDenied):
            add_timeline_entry(incident=incident, by=user, body="Deploy started", occurred_at=earlier)
    assert incident.timeline.filter(kind=EntryKind.NOTE, body="Deploy started").exists() is may
