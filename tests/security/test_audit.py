"""The append-only audit trail: database-enforced, written by signals in the change's own transaction,
attributed to the acting user (web, API, services), readable by admins and the security team only."""

import csv
import io

import pytest
from celery import shared_task
from django.contrib.auth.models import Group, Permission
from django.db import DatabaseError, connection, transaction
from django.test import RequestFactory
from rest_framework.authentication import BaseAuthentication
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from incidents.audit.context import acting_as
from incidents.audit.middleware import AuditContextMiddleware
from incidents.audit.models import AppendOnlyError, AuditAction, AuditRecord
from incidents.audit.recorder import record_change
from incidents.models import Role, Status
from incidents.services.roles import assign_role
from incidents.services.status import change_status
from tests.factories import ManagerFactory, ResponderFactory, SecurityFactory, UserFactory, declare

pytestmark = pytest.mark.django_db


def records_for(obj, **filters):
    label = f"{obj._meta.app_label}.{obj._meta.model_name}"
    return AuditRecord.objects.filter(object_type=label, object_id=str(obj.pk), **filters).order_by("id")


@pytest.fixture
def one_record(db):
    return record_change(action=AuditAction.CHANGED, object_type_label="tests.thing", object_id="1", after={"a": 1})


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditrecord SET action = 'tampered' WHERE id = %s",
        "DELETE FROM audit_auditrecord WHERE id = %s",
    ],
)
def test_database_refuses_update_and_delete_from_raw_sql(one_record, statement):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, [one_record.pk])
    one_record.refresh_from_db()
    assert one_record.action == AuditAction.CHANGED


def test_database_refuses_changes_to_evidence_exports(responder):
    from incidents.audit.services import export_evidence

    incident = declare(by=responder)
    export = export_evidence(incident=incident, by=responder)
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_evidenceexport SET manifest_sha256 = 'x' WHERE id = %s", [export.pk])


def test_orm_refuses_update_and_delete(one_record):
    one_record.action = "tampered"
    with pytest.raises(AppendOnlyError):
        one_record.save()
    with pytest.raises(AppendOnlyError):
        one_record.delete()
    with pytest.raises(AppendOnlyError):
        AuditRecord.objects.filter(pk=one_record.pk).update(action="tampered")
    with pytest.raises(AppendOnlyError):
        AuditRecord.objects.all().delete()


def test_incident_status_change_is_recorded_with_before_after_and_actor(responder):
    with acting_as(responder, source="test"):
        incident = declare(by=responder)
        change_status(incident=incident, to=Status.IDENTIFIED, by=responder)
    created = records_for(incident, action=AuditAction.CREATED).get()
    assert created.after["title"] == incident.title and created.after["status"] == "investigating"
    assert created.actor == responder and created.actor_username == responder.username
    assert created.incident_id == incident.pk and created.source == "test"
    change = records_for(incident, action=AuditAction.CHANGED).last()
    assert change.before["status"] == "investigating" and change.after["status"] == "identified"
    assert change.before["identified_at"] is None and change.after["identified_at"]
    assert "updated_at" not in change.after  # auto_now noise is not a change on its own
    assert change.actor == responder


def test_role_handover_records_relief_and_new_assignment(responder):
    other = ResponderFactory()
    with acting_as(responder):
        incident = declare(by=responder)
        assign_role(incident=incident, role=Role.INCIDENT_COMMANDER, holder=other, by=responder)
    assignments = AuditRecord.objects.filter(object_type="incidents.roleassignment", incident_id=incident.pk)
    relieved = assignments.get(action=AuditAction.CHANGED)
    assert relieved.before == {"relieved_at": None} and relieved.after["relieved_at"]
    new = assignments.filter(action=AuditAction.CREATED).order_by("id").last()
    assert new.after["holder"] == other.pk and new.after["role"] == Role.INCIDENT_COMMANDER
    assert new.actor == responder


def test_many_to_many_service_changes_are_recorded(responder):
    from tests.factories import ServiceFactory

    api, db_service = ServiceFactory(name="API"), ServiceFactory(name="Database")
    incident = declare(by=responder, services=[api])
    incident.services.add(db_service)
    incident.services.clear()
    added = records_for(incident, action=AuditAction.RELATED_ADDED, field="services")
    assert [r.after["services"] for r in added] == [
        [{"id": api.pk, "repr": "API"}],
        [{"id": db_service.pk, "repr": "Database"}],
    ]
    cleared = records_for(incident, action=AuditAction.RELATED_CLEARED).get()
    assert {item["id"] for item in cleared.before["services"]} == {api.pk, db_service.pk}
    assert cleared.after == {"services": []}


def test_permission_and_group_changes_are_recorded():
    admin = UserFactory(is_superuser=True, is_staff=True)
    user = UserFactory()
    group = Group.objects.get(name="responder")
    permission = Permission.objects.get(codename="change_incident")
    last_before = AuditRecord.objects.order_by("id").last().id
    with acting_as(admin):
        user.groups.add(group)
        user.user_permissions.add(permission)
        group.permissions.remove(permission)
        group.permissions.add(permission)
        user.is_superuser = True
        user.set_password("a new secret password")
        user.save()
        user.groups.remove(group)
    assert records_for(user, action=AuditAction.RELATED_ADDED, field="groups").get().after == {
        "groups": [{"id": group.pk, "repr": "responder"}]
    }
    assert records_for(user, action=AuditAction.RELATED_ADDED, field="user_permissions").exists()
    assert records_for(group, field="permissions").count() == 2
    change = records_for(user, action=AuditAction.CHANGED).get()
    assert change.before["is_superuser"] is False and change.after["is_superuser"] is True
    assert change.after["password"] == "[redacted]"  # the fact it changed, never the hash
    assert records_for(user, action=AuditAction.RELATED_REMOVED).get().before["groups"][0]["repr"] == "responder"
    assert set(AuditRecord.objects.filter(id__gt=last_before).values_list("actor", flat=True)) == {admin.pk}


def test_deletion_keeps_the_full_row_in_before(responder):
    from tests.factories import ServiceFactory

    service = ServiceFactory(name="Billing", description="Charges cards")
    pk = service.pk
    service.delete()
    deleted = AuditRecord.objects.get(object_type="incidents.service", object_id=str(pk), action=AuditAction.DELETED)
    assert deleted.before["name"] == "Billing" and deleted.before["description"] == "Charges cards"
    assert deleted.object_repr == "Billing"


def test_record_is_written_in_the_same_transaction_as_the_change():
    before = AuditRecord.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        Group.objects.create(name="rolled back")
        assert AuditRecord.objects.count() == before + 1
        raise RuntimeError("abort")
    assert AuditRecord.objects.count() == before


def test_saving_without_changes_records_nothing(responder):
    incident = declare(by=responder)
    count = AuditRecord.objects.count()
    incident.save()  # only updated_at moves
    assert AuditRecord.objects.count() == count


def test_web_request_attributes_change_to_user_with_request_id_and_ip(client):
    admin = UserFactory(is_superuser=True, is_staff=True)
    group = Group.objects.create(name="on-call leads")
    client.force_login(admin)
    response = client.post(f"/admin/auth/group/{group.pk}/change/", {"name": "incident leads", "permissions": []})
    assert response.status_code == 302
    record = records_for(group, action=AuditAction.CHANGED).get()
    assert record.before == {"name": "on-call leads"} and record.after == {"name": "incident leads"}
    assert record.actor == admin and record.source == "admin" and record.ip_address == "127.0.0.1"
    assert record.request_id == response["X-Request-ID"]


class _HeaderTokenAuthentication(BaseAuthentication):
    """Stands in for token auth: the user is known only inside the view, after every middleware ran."""

    def authenticate(self, request):
        from django.contrib.auth.models import User

        username = request.headers.get("X-Test-User")
        return (User.objects.get(username=username), None) if username else None


@api_view(["POST"])
@authentication_classes([_HeaderTokenAuthentication])
@permission_classes([IsAuthenticated])
def _api_rename_group(request, pk):
    group = Group.objects.get(pk=pk)
    group.name = request.data["name"]
    group.save()
    return Response({"ok": True})


def test_api_user_authenticated_inside_the_view_is_the_actor():
    api_user = UserFactory(username="automation")
    group = Group.objects.create(name="before api")
    request = RequestFactory().post(
        "/api/v1/x/", {"name": "after api"}, content_type="application/json", HTTP_X_TEST_USER="automation"
    )
    # AuthenticationMiddleware did not run: the actor can only come from DRF's authentication, read lazily.
    response = AuditContextMiddleware(lambda r: _api_rename_group(r, pk=group.pk))(request)
    assert response.status_code == 200
    record = records_for(group, action=AuditAction.CHANGED).get()
    assert record.actor == api_user and record.source == "api"


def test_audit_page_filters_and_csv_export(client):
    admin = UserFactory(is_superuser=True, is_staff=True)
    responder = ResponderFactory(username="alice")
    with acting_as(responder):
        incident = declare(by=responder, title="Checkout down")
        change_status(incident=incident, to=Status.IDENTIFIED, by=responder)
    client.force_login(admin)
    page = client.get("/audit/", {"object_type": "incidents.incident", "action": "changed", "user": "alice"})
    assert page.status_code == 200
    assert list(page.context["page"].object_list) == list(records_for(incident, action=AuditAction.CHANGED))
    by_incident = client.get("/audit/", {"incident": incident.reference})
    assert {r.incident_id for r in by_incident.context["page"].object_list} == {incident.pk}
    export = client.get("/audit/export.csv", {"incident": incident.reference})
    assert export["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert len(rows) == AuditRecord.objects.filter(incident_id=incident.pk).count() > 3
    assert {"created", "changed"} <= {row["action"] for row in rows}


def test_audit_page_query_count_is_fixed(client, django_assert_max_num_queries):
    admin = UserFactory(is_superuser=True, is_staff=True)
    responder = ResponderFactory()
    with acting_as(responder):
        for _ in range(3):
            declare(by=responder)
    client.force_login(admin)
    with django_assert_max_num_queries(8):
        assert client.get("/audit/").status_code == 200


def test_csv_cells_cannot_become_spreadsheet_formulas(client):
    admin = UserFactory(is_superuser=True, is_staff=True)
    record_change(action="changed", object_type_label="x.y", object_id="1", object_repr='=HYPERLINK("http://evil")')
    client.force_login(admin)
    body = b"".join(client.get("/audit/export.csv").streaming_content).decode()
    assert "'=HYPERLINK" in body


@pytest.mark.parametrize("factory", [ResponderFactory, ManagerFactory])
def test_audit_trail_is_for_admins_and_security_only(client, factory):
    client.force_login(factory())
    assert client.get("/audit/").status_code == 403
    assert client.get("/audit/export.csv").status_code == 403
    assert client.get("/admin/audit/auditrecord/").status_code in (302, 403)


def test_restricted_incident_records_follow_incident_visibility(client):
    from incidents.models import Incident

    admin_group_member = UserFactory(is_staff=True, groups=["admin"])
    security = SecurityFactory(is_staff=True)
    with acting_as(security):
        secret = declare(by=security, title="Credential leak", is_restricted=True)
        public = declare(by=security, title="Slow search")
    may_see_secret = Incident.objects.visible_to(admin_group_member).filter(pk=secret.pk).exists()
    client.force_login(admin_group_member)
    shown = {r.incident_id for r in client.get("/audit/").context["page"].object_list}
    changelist = client.get("/admin/audit/auditrecord/")
    assert public.pk in shown
    assert (secret.pk in shown) is may_see_secret
    assert changelist.status_code == 200
    assert (b"Credential leak" in changelist.content) is may_see_secret
    client.force_login(security)
    assert secret.pk in {r.incident_id for r in client.get("/audit/?incident=" + secret.reference).context["page"]}


def test_api_token_request_is_attributed_to_the_token_owner():
    """Through the real API: DRF token authentication runs inside the view, after the audit middleware."""
    from django.test import Client

    from incidents.alerting.services.tokens import create_api_token
    from incidents.models import Incident

    owner = ResponderFactory(username="deploy-bot")
    _, key = create_api_token(user=owner, name="deploys")
    response = Client().post(
        "/api/v1/incidents/",
        {"title": "Checkout failing", "severity": "P1"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 201, response.content
    incident = Incident.objects.get(number=response.json()["number"])
    created = records_for(incident, action=AuditAction.CREATED).get()
    assert created.actor == owner and created.source == "api"
    assert created.request_id == response["X-Request-ID"]


def test_on_call_data_and_post_mortem_changes_are_recorded(responder):
    from oncall.models import Person, Team
    from postmortems.models import PostMortem
    from postmortems.services.editing import update_content

    manager = ManagerFactory()
    with acting_as(manager):
        person = Person.objects.create(name="Ada Oncall", email="ada@example.com")
        team = Team.objects.create(name="Payments", slug="payments")
        team.members.add(person)
        team.team_lead = person
        team.save()
    assert records_for(person, action=AuditAction.CREATED).get().after["email"] == "ada@example.com"
    assert records_for(team, action=AuditAction.RELATED_ADDED, field="members").get().after == {
        "members": [{"id": person.pk, "repr": "Ada Oncall"}]
    }
    assert records_for(team, action=AuditAction.CHANGED).get().after == {"team_lead": person.pk}

    with acting_as(responder):
        incident = declare(by=responder)
        change_status(incident=incident, to=Status.RESOLVED, by=responder)
        postmortem = PostMortem.objects.get(incident=incident)
        old_summary = postmortem.summary
        update_content(postmortem=postmortem, by=responder, summary="The cache expired.")
    change = records_for(postmortem, action=AuditAction.CHANGED).last()
    assert change.before == {"summary": old_summary} and change.after == {"summary": "The cache expired."}
    assert change.incident_id == incident.pk and change.actor == responder


def test_values_json_does_not_know_are_recorded_as_text():
    class Odd:
        def __str__(self):
            return "odd value"

    record = record_change(action="changed", object_type_label="x.y", object_id="1", after={"value": Odd()})
    record.refresh_from_db()
    assert record.after == {"value": "odd value"}


@shared_task(name="tests.security.rename_group")
def _rename_group_task(pk, name):
    group = Group.objects.get(pk=pk)
    group.name = name
    group.save()


def test_changes_made_by_a_celery_task_name_the_task():
    group = Group.objects.create(name="before task")
    result = _rename_group_task.apply(args=[group.pk, "after task"])
    assert result.successful()
    record = records_for(group, action=AuditAction.CHANGED).get()
    assert record.source == "task:rename_group" and record.actor is None
    assert record.request_id == result.id
