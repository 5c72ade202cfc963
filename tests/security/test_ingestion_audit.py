"""Alert ingestion and change events write their audit records (raw SQL and bulk writes that the audit signals
cannot see): a group opened, linked to an incident, acknowledged and resolved, a change recorded; both ingestion
paths write the same record; the request id on them is the portal's own, the client's X-Request-ID kept apart."""

import json
import re

import pytest

from incidents.alerting.models import AlertGroup, ChangeEvent, GroupStatus, RouteAction
from incidents.audit.models import AuditAction, AuditRecord
from incidents.models import Incident
from tests.api.factories import fixture_bytes, make_integration
from tests.factories import ServiceFactory

pytestmark = pytest.mark.django_db

PD_URL = "/api/v1/integrations/pagerduty/v2/enqueue"
AM_URL = "/api/v1/integrations/alertmanager/"


def post(client, url, body: bytes, **headers):
    return client.post(url, data=body, content_type="application/json", headers=headers)


def records_of(obj, **filters):
    label = f"{obj._meta.app_label}.{obj._meta.model_name}"
    return list(AuditRecord.objects.filter(object_type=label, object_id=str(obj.pk), **filters).order_by("id"))


def test_webhook_trigger_acknowledge_resolve_each_leave_an_audit_record(client):
    _integration, key = make_integration("pagerduty")
    response = post(client, PD_URL, fixture_bytes("pagerduty_trigger.json", ROUTING_KEY=key))
    assert response.status_code == 202
    group = AlertGroup.objects.get()
    [opened] = records_of(group)
    assert opened.action == AuditAction.CREATED and opened.source == "webhook" and opened.actor is None
    assert opened.request_id == response["X-Request-ID"] and opened.ip_address == "127.0.0.1"
    assert opened.after["id"] == group.pk and opened.after["status"] == "triggered"
    assert opened.after["dedup_key"] == "samplekeyhere" and opened.after["labels"]["component"] == "mysql"
    # A repeat folds into the group: counters only, no record.
    post(client, PD_URL, fixture_bytes("pagerduty_trigger.json", ROUTING_KEY=key))
    assert len(records_of(group)) == 1

    ack = post(client, PD_URL, fixture_bytes("pagerduty_acknowledge.json", ROUTING_KEY=key))
    assert ack.status_code == 202
    acknowledged = records_of(group)[-1]
    assert acknowledged.action == AuditAction.CHANGED and acknowledged.request_id == ack["X-Request-ID"]
    assert acknowledged.before == {"status": "triggered", "acknowledged_at": None}
    assert acknowledged.after["status"] == "acknowledged" and acknowledged.after["acknowledged_at"]
    # Acknowledging again changes nothing audited.
    post(client, PD_URL, fixture_bytes("pagerduty_acknowledge.json", ROUTING_KEY=key))
    assert len(records_of(group)) == 2

    post(client, PD_URL, fixture_bytes("pagerduty_resolve.json", ROUTING_KEY=key))
    resolved = records_of(group)[-1]
    assert resolved.before == {"status": "acknowledged", "resolved_at": None}
    assert resolved.after["status"] == "resolved" and resolved.after["resolved_at"]
    group.refresh_from_db()
    assert group.status == GroupStatus.RESOLVED


def test_group_linked_to_a_declared_incident_is_audited_on_the_incident(client):
    ServiceFactory(name="Checkout", slug="checkout")
    _integration, key = make_integration("alertmanager", default_action=RouteAction.DECLARE)
    body = fixture_bytes("alertmanager_firing.json")
    response = post(client, AM_URL, body, authorization=f"Bearer {key}")
    assert response.status_code == 202, response.content
    incident = Incident.objects.get()
    groups = list(AlertGroup.objects.order_by("id"))
    assert len(groups) == len(json.loads(body)["alerts"])
    for group in groups:
        opened, linked = records_of(group)
        assert opened.action == AuditAction.CREATED and opened.after["incident"] is None
        assert linked.action == AuditAction.CHANGED
        assert (linked.before, linked.after) == ({"incident": None}, {"incident": incident.pk})
        assert linked.incident_id == incident.pk and linked.source == "webhook"
    # Resolving through the general path records the state change, on the incident's trail too.
    post(client, AM_URL, fixture_bytes("alertmanager_resolved.json"), authorization=f"Bearer {key}")
    resolved = [records_of(group)[-1] for group in AlertGroup.objects.filter(status=GroupStatus.RESOLVED)]
    assert resolved and all(r.after["status"] == "resolved" and r.incident_id == incident.pk for r in resolved)


def test_single_statement_path_and_general_path_write_the_same_record(client):
    checkout = ServiceFactory(name="Checkout", slug="checkout")
    _fast, fast_key = make_integration("pagerduty", name="fast")
    _slow, slow_key = make_integration("pagerduty", name="slow", default_service=checkout)
    for key in (fast_key, slow_key):
        assert post(client, PD_URL, fixture_bytes("pagerduty_trigger.json", ROUTING_KEY=key)).status_code == 202
    fast_group, slow_group = AlertGroup.objects.order_by("id")
    [fast_record], [slow_record] = records_of(fast_group), records_of(slow_group)
    # Times as the audit trail's JSON writes them on both paths (each request's own clock: not compared).
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?(Z|[+-]\d\d:\d\d)", fast_record.after["first_seen_at"]
    )
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?(Z|[+-]\d\d:\d\d)", slow_record.after["first_seen_at"]
    )
    ignore = {"id", "integration", "service", "first_seen_at"}
    assert {k: v for k, v in fast_record.after.items() if k not in ignore} == {
        k: v for k, v in slow_record.after.items() if k not in ignore
    }
    assert set(fast_record.after) == set(slow_record.after)
    assert fast_record.object_repr == slow_record.object_repr == "samplekeyhere (Triggered)"


def test_change_event_is_audited(client):
    ServiceFactory(name="Checkout", slug="checkout")
    _, key = make_integration("change")
    response = post(
        client, "/api/v1/integrations/change/", fixture_bytes("change_deploy.json"), authorization=f"Bearer {key}"
    )
    assert response.status_code == 202
    change = ChangeEvent.objects.get()
    [record] = records_of(change)
    assert record.action == AuditAction.CREATED and record.source == "webhook"
    assert record.after["summary"] == change.summary and record.after["details"]["commit"] == "9f1c2ab"


@pytest.mark.parametrize(("sent", "kept"), [("alert-storm-42", "alert-storm-42"), ("bad id with spaces", "")])
def test_client_request_id_is_kept_apart_from_the_portals_request_id(client, sent, kept):
    _integration, key = make_integration("pagerduty")
    response = post(client, PD_URL, fixture_bytes("pagerduty_trigger.json", ROUTING_KEY=key), **{"X-Request-ID": sent})
    [record] = records_of(AlertGroup.objects.get())
    assert record.request_id == response["X-Request-ID"] != sent
    assert len(record.request_id) == 32 and record.client_request_id == kept


def test_web_request_ids_are_generated_even_when_the_client_sends_one(client, responder):
    from tests.factories import declare

    incident = declare(by=responder)
    client.force_login(responder)
    first = client.post(
        f"/incidents/{incident.reference}/notes/", {"body": "Looking", "kind": "note"}, headers={"X-Request-ID": "mine"}
    )
    second = client.post(
        f"/incidents/{incident.reference}/notes/", {"body": "Still", "kind": "note"}, headers={"X-Request-ID": "mine"}
    )
    assert first["X-Request-ID"] != second["X-Request-ID"] and "mine" not in (
        first["X-Request-ID"],
        second["X-Request-ID"],
    )
    records = AuditRecord.objects.filter(client_request_id="mine")
    assert {r.request_id for r in records} == {first["X-Request-ID"], second["X-Request-ID"]}
