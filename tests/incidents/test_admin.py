"""The Django admin: every incidents model's pages render for a superuser and a manager, status and severity
change only through the services, and a refused change is an error on the page, never a 500."""

from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.contrib.messages import get_messages
from django.forms import MultiWidget
from django.urls import reverse

from incidents import selectors
from incidents.models import (
    ChecklistItem,
    ChecklistPhase,
    EntryKind,
    FiveWhys,
    Incident,
    IncidentRunbook,
    Runbook,
    Status,
    StatusUpdate,
    TimelineEntry,
)
from incidents.permissions import grant_group_permissions
from incidents.services.entries import add_timeline_entry, record_five_whys
from incidents.services.status import acknowledge_incident, change_status
from incidents.services.updates import post_status_update
from tests.factories import (
    ManagerFactory,
    SecurityFactory,
    ServiceFactory,
    UserFactory,
    ViewerFactory,
    declare,
    severity,
)

pytestmark = pytest.mark.django_db

# Shown inside the incident's page (inlines) or internal bookkeeping, so they have no page of their own.
NOT_REGISTERED = {"incidentresponder", "roleassignment", "checklistitem", "runbookstep", "referencecounter"}


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def full_incident(manager):
    """An incident with a row in every incidents table, declared and worked through the services."""
    incident = declare(by=manager, runbook=Runbook.objects.get(slug="memory-leak"), services=[ServiceFactory()])
    record_five_whys(
        incident=incident,
        problem="API slow",
        whys=["Queries slow", "Missing index"],
        root_cause="Missing index",
        by=manager,
    )
    post_status_update(
        incident=incident, kind="internal", status="investigating", by=manager, what_we_know="Queries are slow."
    )
    add_timeline_entry(incident=incident, by=manager, body="Looking at `pg_stat_activity`.")
    return incident


def incidents_model_admins():
    return [
        (model, model_admin)
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label == "incidents"
    ]


def change_form_data(response) -> dict:
    """The POST data the change page would send unchanged: the main form and every inline formset."""
    data = {}

    def add_form(form):
        for name, field in form.fields.items():
            bound = form[name]
            value = bound.value()
            widget = field.widget
            if isinstance(widget, MultiWidget):
                for index, part in enumerate(widget.decompress(value)):
                    data[f"{bound.html_name}_{index}"] = "" if part is None else str(part)
            elif isinstance(value, bool):
                if value:
                    data[bound.html_name] = "on"
            elif isinstance(value, list | tuple):
                data[bound.html_name] = [str(v) for v in value]
            else:
                data[bound.html_name] = "" if value is None else str(value)

    add_form(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        add_form(inline.formset.management_form)
        for form in inline.formset.forms:
            add_form(form)
    return data


def test_every_incidents_model_has_an_admin_page():
    registered = {model._meta.model_name for model, _ in incidents_model_admins()}
    all_models = {model._meta.model_name for model in apps.get_app_config("incidents").get_models()}
    assert all_models - NOT_REGISTERED <= registered


@pytest.mark.parametrize("who", ["superuser", "manager"])
def test_changelist_and_change_page_of_every_incidents_model_render(client, who, request, full_incident):
    user = request.getfixturevalue(who)
    client.force_login(user)
    for model, _model_admin in incidents_model_admins():
        meta = model._meta
        changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        response = client.get(changelist)
        assert response.status_code == 200, (who, changelist)
        obj = model.objects.order_by("pk").first()
        assert obj is not None, f"no {meta.model_name} row to open"
        change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
        response = client.get(change)
        assert response.status_code == 200, (who, change)


def test_incident_change_page_shows_computed_durations(client, superuser, manager):
    incident = declare(by=manager)
    acknowledge_incident(incident=incident, by=manager)
    client.force_login(superuser)
    response = client.get(reverse("admin:incidents_incident_change", args=[incident.pk]))
    content = response.content.decode()
    assert "Time to acknowledge" in content and "Time to resolve" in content
    assert 'data-filter-title="severity"' in client.get(reverse("admin:incidents_incident_changelist")).content.decode()


def test_changelist_search_finds_an_incident_by_reference(client, manager):
    wanted = declare(by=manager, title="Payments down")
    other = declare(by=manager, title="Something else")
    client.force_login(manager)
    response = client.get(reverse("admin:incidents_incident_changelist"), {"q": wanted.reference})
    shown = list(response.context["cl"].result_list)
    assert wanted in shown and other not in shown


def test_restricted_incident_is_hidden_from_a_manager_outside_it_in_the_admin(client, manager):
    security = SecurityFactory()
    restricted = declare(by=security, title="Data breach", is_restricted=True)
    client.force_login(manager)
    response = client.get(reverse("admin:incidents_incident_changelist"))
    assert restricted not in list(response.context["cl"].result_list)
    assert client.get(reverse("admin:incidents_incident_change", args=[restricted.pk])).status_code == 302
    timeline = client.get(reverse("admin:incidents_timelineentry_changelist"))
    assert not any(entry.incident_id == restricted.pk for entry in timeline.context["cl"].result_list)


def test_status_action_goes_through_the_service_and_writes_the_timeline(client, manager):
    incident = declare(by=manager)
    client.force_login(manager)
    response = client.post(
        reverse("admin:incidents_incident_changelist"),
        {"action": "mark_identified", "_selected_action": [incident.pk]},
    )
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.status == Status.IDENTIFIED and incident.identified_at is not None
    assert incident.timeline.filter(kind=EntryKind.STATUS, author=manager).exists()


def test_refused_action_shows_the_domain_error_as_an_error_message(client, manager):
    incident = declare(by=manager)
    change_status(incident=incident, to=Status.RESOLVED, by=manager)
    client.force_login(manager)
    response = client.post(
        reverse("admin:incidents_incident_changelist"),
        {"action": "mark_closed", "_selected_action": [incident.pk]},
        follow=True,
    )
    assert response.status_code == 200
    errors = [m.message for m in get_messages(response.wsgi_request) if m.level_tag == "error"]
    assert any(incident.reference in m and "closure checklist" in m for m in errors), errors
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED


def test_illegal_transition_action_reports_error_and_changes_nothing(client, manager):
    incident = declare(by=manager)
    client.force_login(manager)
    response = client.post(
        reverse("admin:incidents_incident_changelist"),
        {"action": "reopen", "_selected_action": [incident.pk]},
        follow=True,
    )
    errors = [m.message for m in get_messages(response.wsgi_request) if m.level_tag == "error"]
    assert any("already Investigating" in m for m in errors), errors


def test_change_form_severity_change_goes_through_the_service(client, manager):
    incident = declare(by=manager, level="P2")
    client.force_login(manager)
    url = reverse("admin:incidents_incident_change", args=[incident.pk])
    data = change_form_data(client.get(url))
    data.update({"new_severity": str(severity("P0").pk), "severity_reason": "All users affected", "title": "Renamed"})
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    incident.refresh_from_db()
    assert incident.severity.level == "P0" and incident.title == "Renamed"
    assert incident.timeline.filter(kind=EntryKind.SEVERITY, body__contains="All users affected").exists()
    # The descriptive save did not overwrite what the service stamped.
    assert incident.response_due_at == severity("P0").response_due_at(incident.declared_at)


def test_change_form_refused_status_is_a_form_error_and_nothing_is_saved(client, manager):
    incident = declare(by=manager, level="P2")
    client.force_login(manager)
    url = reverse("admin:incidents_incident_change", args=[incident.pk])
    data = change_form_data(client.get(url))
    # Both changes at once: the severity change is valid, the status change is not; neither may stay.
    data.update(
        {
            "new_severity": str(severity("P1").pk),
            "severity_reason": "Bigger than thought",
            "new_status": Status.CLOSED,
            "title": "Should not be saved",
        }
    )
    response = client.post(url, data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "new_status" in errors and "cannot become Closed" in errors["new_status"][0]
    incident.refresh_from_db()
    assert incident.severity.level == "P2" and incident.status == Status.INVESTIGATING
    assert incident.title != "Should not be saved"
    assert not incident.timeline.filter(kind=EntryKind.SEVERITY).exists()


def test_change_form_severity_without_reason_is_a_field_error(client, manager):
    incident = declare(by=manager, level="P2")
    client.force_login(manager)
    url = reverse("admin:incidents_incident_change", args=[incident.pk])
    data = change_form_data(client.get(url))
    data["new_severity"] = str(severity("P1").pk)
    response = client.post(url, data)
    assert response.status_code == 200
    assert "severity_reason" in response.context["adminform"].form.errors


def test_change_form_assigns_role_attaches_runbook_and_closes_with_manager_override(client, manager):
    incident = declare(by=manager)
    holder = UserFactory(groups=["responder"])
    change_status(incident=incident, to=Status.RESOLVED, by=manager)
    client.force_login(manager)
    url = reverse("admin:incidents_incident_change", args=[incident.pk])
    data = change_form_data(client.get(url))
    data.update(
        {
            "assign_role": "scribe",
            "role_holder": str(holder.pk),
            "attach_runbook": str(Runbook.objects.get(slug="ddos-attack").pk),
            "new_status": Status.CLOSED,
            "override_reason": "Duplicate of an earlier incident",
        }
    )
    response = client.post(url, data)
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.status == Status.CLOSED and incident.closed_at is not None
    assert selectors.current_holder(incident, "scribe") == holder
    assert incident.checklist_items.filter(phase=ChecklistPhase.RUNBOOK).count() == 5
    assert incident.timeline.filter(body__contains="manager override").exists()


def test_history_models_are_read_only_and_incidents_cannot_be_deleted_in_the_admin(client, superuser, full_incident):
    client.force_login(superuser)
    entry = TimelineEntry.objects.filter(incident=full_incident).first()
    change_url = reverse("admin:incidents_timelineentry_change", args=[entry.pk])
    response = client.post(change_url, {"body": "rewritten"})
    assert response.status_code == 403
    entry.refresh_from_db()
    assert entry.body != "rewritten"
    for model in (TimelineEntry, StatusUpdate, FiveWhys, IncidentRunbook, Incident):
        meta = model._meta
        obj = model.objects.first()
        delete_url = reverse(f"admin:{meta.app_label}_{meta.model_name}_delete", args=[obj.pk])
        assert client.post(delete_url, {"post": "yes"}).status_code == 403, meta.model_name
        assert model.objects.filter(pk=obj.pk).exists()
    assert client.get(reverse("admin:incidents_incident_add")).status_code == 403


def test_viewer_staff_sees_incidents_but_cannot_change_them(client):
    viewer = ViewerFactory(is_staff=True)
    incident = declare()
    client.force_login(viewer)
    assert client.get(reverse("admin:incidents_incident_changelist")).status_code == 200
    response = client.get(reverse("admin:incidents_incident_change", args=[incident.pk]))
    assert response.status_code == 200 and not response.context["has_change_permission"]
    client.post(
        reverse("admin:incidents_incident_changelist"),
        {"action": "mark_identified", "_selected_action": [incident.pk]},
    )
    incident.refresh_from_db()
    assert incident.status == Status.INVESTIGATING


def test_groups_get_model_permissions_for_the_admin():
    def codenames(group):
        return set(Group.objects.get(name=group).permissions.values_list("content_type__app_label", "codename"))

    viewer, responder, manager, admin_group = (
        codenames(name) for name in ("viewer", "responder", "incident_manager", "admin")
    )
    assert ("incidents", "view_incident") in viewer
    assert not any(code.startswith(("add_", "change_", "delete_")) for _, code in viewer)
    assert ("incidents", "view_timelineentry") in responder
    assert not any(code.startswith(("add_", "change_", "delete_")) for _, code in responder)
    for action in ("add", "change", "view"):
        assert ("incidents", f"{action}_incident") in manager
        assert ("incidents", f"{action}_severitypolicy") in manager
        assert ("oncall", f"{action}_team") in manager
    assert ("incidents", "delete_incident") not in manager
    assert ("incidents", "delete_timelineentry") not in manager
    assert ("incidents", "delete_checklisttemplateitem") in manager
    assert ("oncall", "delete_person") in manager
    assert admin_group == set(Permission.objects.values_list("content_type__app_label", "codename"))


def test_granting_group_permissions_again_changes_nothing(django_assert_max_num_queries):
    before = {group.name: group.permissions.count() for group in Group.objects.all()}
    with django_assert_max_num_queries(40):
        grant_group_permissions(app_config=apps.get_app_config("incidents"))
    assert {group.name: group.permissions.count() for group in Group.objects.all()} == before


def test_manager_with_staff_flag_reaches_oncall_admin(client):
    manager = ManagerFactory()
    client.force_login(manager)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    apps_shown = {app["app_label"] for app in response.context["app_list"]}
    assert {"incidents", "oncall"} <= apps_shown


def test_change_form_refuses_detection_after_declaration(client, manager):
    incident = declare(by=manager)
    client.force_login(manager)
    url = reverse("admin:incidents_incident_change", args=[incident.pk])
    data = change_form_data(client.get(url))
    later = incident.declared_at + timedelta(hours=1)
    data["detected_at_0"], data["detected_at_1"] = later.strftime("%Y-%m-%d"), later.strftime("%H:%M:%S")
    response = client.post(url, data)
    assert response.status_code == 200
    assert "detected_at" in response.context["adminform"].form.errors
    incident.refresh_from_db()
    assert incident.detected_at <= incident.declared_at


def test_incident_page_lists_checklists_in_the_guides_phase_order(client, manager):
    incident = declare(by=manager)
    client.force_login(manager)
    response = client.get(reverse("admin:incidents_incident_change", args=[incident.pk]))
    inline = next(i for i in response.context["inline_admin_formsets"] if i.formset.model is ChecklistItem)
    phases = [form.instance.phase for form in inline.formset.forms]
    assert list(dict.fromkeys(phases)) == ["triage", "detection", "response", "resolution", "recovery", "closure"]


def test_change_form_refuses_detection_more_than_a_year_before_declaration(client, manager):
    incident = declare(by=manager)
    client.force_login(manager)
    url = reverse("admin:incidents_incident_change", args=[incident.pk])
    data = change_form_data(client.get(url))
    data["detected_at_0"], data["detected_at_1"] = "1900-01-01", "00:00:00"
    response = client.post(url, data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["detected_at"]
    assert "at most a year before the declaration" in errors[0]
    incident.refresh_from_db()
    assert incident.detected_at.year == incident.declared_at.year
    # An edit that keeps the detection time is saved.
    data = change_form_data(client.get(url))
    data["title"] = "Renamed"
    assert client.post(url, data).status_code == 302
    incident.refresh_from_db()
    assert incident.title == "Renamed"
