"""Groups and permissions in the admin: non-staff groups are refused, every admin queryset applies the incident
visibility rule, and the audit trail cannot be edited from the admin by anyone."""

import pytest
from django.contrib import admin
from django.test import Client, RequestFactory

from incidents.audit.evidence import collect_related
from incidents.audit.models import AuditRecord
from incidents.models import Incident
from tests.factories import ResponderFactory, UserFactory, ViewerFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("factory", [ViewerFactory, ResponderFactory])
def test_admin_refuses_viewers_and_responders(client, factory):
    client.force_login(factory())
    for url in ("/admin/", "/admin/incidents/incident/", "/admin/audit/auditrecord/", "/admin/auth/user/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url


def test_managers_use_the_admin_through_group_permissions(restricted_world):
    client = Client()
    client.force_login(restricted_world["outsider_manager"])
    assert client.get("/admin/").status_code == 200
    changelist = client.get("/admin/incidents/incident/")
    assert changelist.status_code == 200
    assert restricted_world["public"].title.encode() in changelist.content
    assert restricted_world["markers"][0].encode() not in changelist.content
    # Managers administer on-call data, but do not manage users and permissions (admins do).
    assert client.get("/admin/oncall/team/").status_code == 200
    assert client.get("/admin/auth/user/").status_code == 403


def _request_as(user):
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def _leaking_admins(user, incident):
    """ModelAdmins whose queryset, for `user`, contains a row of the incident (or linked to it)."""
    linked = collect_related(incident)
    leaking = []
    for model, model_admin in admin.site._registry.items():
        rows = linked.get(model._meta.label_lower, [])
        pks = [incident.pk] if model is Incident else [row.pk for row in rows]
        if not pks:
            continue
        if model_admin.get_queryset(_request_as(user)).filter(pk__in=pks).exists():
            leaking.append(model._meta.label_lower)
    return sorted(leaking)


def test_every_admin_queryset_hides_restricted_incident_data_from_managers_not_on_it(restricted_world):
    incident = restricted_world["incident"]
    assert _leaking_admins(restricted_world["outsider_manager"], incident) == []


def test_admin_querysets_show_restricted_incident_data_to_its_responders_and_security(restricted_world):
    incident = restricted_world["incident"]
    from incidents.services.roles import add_responder

    manager_on_incident = UserFactory(is_staff=True, groups=["incident_manager", "responder"])
    add_responder(incident=incident, user=manager_on_incident, by=restricted_world["insider"])
    visible = _leaking_admins(manager_on_incident, incident)
    assert "incidents.incident" in visible and "incidents.timelineentry" in visible
    assert _leaking_admins(restricted_world["insider"], incident) == visible


def test_audit_admin_is_read_only_even_for_superusers(restricted_world):
    client = Client()
    client.force_login(restricted_world["superuser"])
    record = AuditRecord.objects.filter(incident_id=restricted_world["incident"].pk).first()
    assert client.get("/admin/audit/auditrecord/").status_code == 200
    assert (
        client.get("/admin/audit/auditrecord/?action__exact=changed&object_type=incidents.incident").status_code == 200
    )
    assert client.get(f"/admin/audit/auditrecord/{record.pk}/change/").status_code == 200
    assert client.get("/admin/audit/auditrecord/add/").status_code == 403
    assert client.post(f"/admin/audit/auditrecord/{record.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(f"/admin/audit/auditrecord/{record.pk}/change/", {"action": "x"}).status_code == 403
    assert AuditRecord.objects.filter(pk=record.pk, action=record.action).exists()
