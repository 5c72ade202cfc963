"""Inbound integrations, driven with payloads written from each format's public documentation."""

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from incidents.alerting.models import (
    AlertEvent,
    AlertGroup,
    ChangeEvent,
    GroupStatus,
    IntegrationError,
    RouteAction,
    RoutingRule,
)
from incidents.alerting.selectors import recent_changes_for
from incidents.alerting.services.integrations import forget_cached_keys
from incidents.audit.models import AuditRecord
from incidents.models import DetectionSource, EntryKind, EventType, Incident, TimelineEntry
from tests.factories import ServiceFactory, declare, severity

from .factories import fixture_bytes, fixture_json, make_integration

pytestmark = pytest.mark.django_db

AM_URL = "/api/v1/integrations/alertmanager/"
PD_URL = "/api/v1/integrations/pagerduty/v2/enqueue"


def post(client, url, body: bytes, **headers):
    return client.post(url, data=body, content_type="application/json", headers=headers)


@pytest.fixture
def checkout(db):
    return ServiceFactory(name="Checkout", slug="checkout")


# --- Alertmanager ------------------------------------------------------------------------------------------------


def test_alertmanager_batch_opens_one_group_per_fingerprint_and_declares_one_incident(client, checkout):
    integration, key = make_integration("alertmanager", default_action=RouteAction.DECLARE)
    response = post(client, AM_URL, fixture_bytes("alertmanager_firing.json"), authorization=f"Bearer {key}")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["events"] == 2
    assert [r["result"] for r in body["results"]] == ["opened", "opened"]
    groups = AlertGroup.objects.filter(integration=integration)
    assert groups.count() == 2
    assert set(groups.values_list("dedup_key", flat=True)) == {"c3a1e2b4d5f60718", "d4b2f3c5e6071829"}
    incident = Incident.objects.get()
    assert incident.severity.level == "P1"  # critical -> P1
    assert incident.detection_source == DetectionSource.MONITORING_ALERT
    assert list(incident.services.all()) == [checkout]
    assert incident.created_by is None
    assert set(groups.values_list("incident", flat=True)) == {incident.pk}
    entry = TimelineEntry.objects.get(incident=incident, kind=EntryKind.ALERT)
    assert "5xx error rate above 5% on checkout-1" in entry.body and "checkout-2" in entry.body
    assert body["results"][0]["incident"] == incident.reference


def test_alert_firing_for_years_still_declares_with_detection_clamped_to_a_year(client, checkout):
    _, key = make_integration("alertmanager", default_action=RouteAction.DECLARE)
    body = fixture_bytes("alertmanager_firing.json", **{"2026-11-26T23:50": "2019-06-01T00:00"})
    response = post(client, AM_URL, body, authorization=f"Bearer {key}")
    assert response.status_code == 202, response.content
    incident = Incident.objects.get()
    assert timedelta(days=365) < incident.declared_at - incident.detected_at <= timedelta(days=366)


def test_alertmanager_repeat_folds_into_open_group_and_resolved_resolves(client, checkout):
    integration, key = make_integration("alertmanager", default_action=RouteAction.DECLARE)
    auth = {"authorization": f"Bearer {key}"}
    post(client, AM_URL, fixture_bytes("alertmanager_firing.json"), **auth)
    again = post(client, AM_URL, fixture_bytes("alertmanager_firing.json"), **auth)
    assert [r["result"] for r in again.json()["results"]] == ["deduplicated", "deduplicated"]
    assert AlertGroup.objects.count() == 2
    assert set(AlertGroup.objects.values_list("event_count", flat=True)) == {2}
    assert Incident.objects.count() == 1

    resolved = post(client, AM_URL, fixture_bytes("alertmanager_resolved.json"), **auth)
    assert resolved.status_code == 202
    assert [r["result"] for r in resolved.json()["results"]] == ["resolved", "resolved"]
    assert set(AlertGroup.objects.values_list("status", flat=True)) == {GroupStatus.RESOLVED}
    assert AlertEvent.objects.filter(integration=integration).count() == 6
    incident = Incident.objects.get()
    assert incident.timeline.filter(kind=EntryKind.ALERT, body__contains="resolved").exists()

    # A trigger after resolution opens a new group (the old ones stay as history).
    reopened = post(client, AM_URL, fixture_bytes("alertmanager_firing.json"), **auth)
    assert [r["result"] for r in reopened.json()["results"]] == ["opened", "opened"]
    assert AlertGroup.objects.count() == 4
    assert AlertGroup.objects.filter(resolved_at__isnull=True).count() == 2


def test_alertmanager_attaches_to_the_services_open_incident_instead_of_declaring(client, checkout, responder):
    existing = declare(by=responder, level="P2", services=[checkout])
    make_integration("alertmanager", default_action=RouteAction.DECLARE)
    key = make_integration("alertmanager", name="second", default_action=RouteAction.DECLARE)[1]
    post(client, AM_URL, fixture_bytes("alertmanager_firing.json"), authorization=f"Bearer {key}")
    assert Incident.objects.count() == 1
    assert set(AlertGroup.objects.values_list("incident", flat=True)) == {existing.pk}
    assert existing.timeline.filter(kind=EntryKind.ALERT).count() == 1


def test_routing_rule_matching_labels_sets_severity_and_record_only_declares_nothing(client, checkout):
    integration, key = make_integration("alertmanager", default_action=RouteAction.RECORD)
    RoutingRule.objects.create(
        integration=integration,
        position=1,
        match_labels={"env": "prod", "instance": "checkout-1:8080"},
        service=checkout,
        severity_policy=severity("P0"),
        action=RouteAction.DECLARE,
    )
    post(client, AM_URL, fixture_bytes("alertmanager_firing.json"), authorization=f"Bearer {key}")
    incident = Incident.objects.get()
    assert incident.severity.level == "P0"
    first = AlertGroup.objects.get(dedup_key="c3a1e2b4d5f60718")
    second = AlertGroup.objects.get(dedup_key="d4b2f3c5e6071829")
    assert first.incident_id == incident.pk
    assert second.incident_id is None  # the fallback route only records


def test_alertmanager_basic_auth_password_is_the_key(client, checkout):
    _, key = make_integration("alertmanager")
    credentials = base64.b64encode(f"alertmanager:{key}".encode()).decode()
    response = post(client, AM_URL, fixture_bytes("alertmanager_firing.json"), authorization=f"Basic {credentials}")
    assert response.status_code == 202


# --- Grafana -------------------------------------------------------------------------------------------------------


def _grafana_signature(secret: str, body: bytes, stamp: str | None = None) -> str:
    signed = f"{stamp}:".encode() + body if stamp else body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def test_grafana_signed_webhook_opens_and_resolves(client):
    ServiceFactory(name="Orders DB", slug="orders-db")
    integration, _ = make_integration("grafana", hmac_secret="grafana-shared-secret")
    url = f"/api/v1/integrations/grafana/{integration.public_id}/"
    firing = fixture_bytes("grafana_firing.json")
    response = post(
        client, url, firing, x_grafana_alerting_signature=_grafana_signature("grafana-shared-secret", firing)
    )
    assert response.status_code == 202, response.content
    group = AlertGroup.objects.get()
    assert group.dedup_key == "9f3c2a1b7e6d5c4b"
    assert group.severity == "warning"
    assert group.service.slug == "orders-db"
    assert group.incident is None  # default action attaches; there is no open incident to attach to
    resolved = fixture_bytes("grafana_resolved.json")
    post(client, url, resolved, x_grafana_alerting_signature=_grafana_signature("grafana-shared-secret", resolved))
    group.refresh_from_db()
    assert group.status == GroupStatus.RESOLVED


def test_grafana_timestamped_signature_and_stale_timestamp(client):
    integration, _ = make_integration(
        "grafana", hmac_secret="s3cret", hmac_timestamp_header="X-Grafana-Alerting-Timestamp"
    )
    url = f"/api/v1/integrations/grafana/{integration.public_id}/"
    body = fixture_bytes("grafana_firing.json")
    stamp = str(int(time.time()))
    ok = post(
        client,
        url,
        body,
        x_grafana_alerting_signature=_grafana_signature("s3cret", body, stamp),
        x_grafana_alerting_timestamp=stamp,
    )
    assert ok.status_code == 202
    old = str(int(time.time()) - 3600)
    stale = post(
        client,
        url,
        body,
        x_grafana_alerting_signature=_grafana_signature("s3cret", body, old),
        x_grafana_alerting_timestamp=old,
    )
    assert stale.status_code == 401
    assert stale.json()["code"] == "stale_signature"


def test_grafana_bad_signature_is_401_logged_and_writes_nothing(client):
    integration, key = make_integration("grafana", hmac_secret="right")
    body = fixture_bytes("grafana_firing.json")
    response = post(
        client,
        "/api/v1/integrations/grafana/",
        body,
        authorization=f"Bearer {key}",
        x_grafana_alerting_signature=_grafana_signature("wrong", body),
    )
    assert response.status_code == 401
    assert response.json()["field"] == "X-Grafana-Alerting-Signature"
    assert AlertGroup.objects.count() == 0 and AlertEvent.objects.count() == 0
    error = IntegrationError.objects.get()
    assert error.integration == integration and error.code == "bad_signature"


def test_grafana_path_id_without_secret_is_refused(client):
    integration, _ = make_integration("grafana")
    response = post(
        client, f"/api/v1/integrations/grafana/{integration.public_id}/", fixture_bytes("grafana_firing.json")
    )
    assert response.status_code == 401


# --- Sentry --------------------------------------------------------------------------------------------------------


def _sentry(client, integration, name, resource):
    body = fixture_bytes(name)
    signature = hmac.new(integration.hmac_secret.encode(), body, hashlib.sha256).hexdigest()
    return post(
        client,
        f"/api/v1/integrations/sentry/{integration.public_id}/",
        body,
        sentry_hook_resource=resource,
        sentry_hook_signature=signature,
        sentry_hook_timestamp=str(int(time.time())),
    )


def test_sentry_event_alert_then_issue_resolved_share_the_issue_group(client):
    payments = ServiceFactory(name="Payments", slug="payments")
    integration, _ = make_integration("sentry", hmac_secret="sentry-client-secret", default_action=RouteAction.DECLARE)
    response = _sentry(client, integration, "sentry_event_alert.json", "event_alert")
    assert response.status_code == 202, response.content
    group = AlertGroup.objects.get()
    assert group.dedup_key == "sentry-issue-1170820242"
    assert group.summary == "ZeroDivisionError: division by zero"
    assert group.service == payments
    assert Incident.objects.get().severity.level == "P2"  # error -> P2
    assert _sentry(client, integration, "sentry_issue_resolved.json", "issue").status_code == 202
    group.refresh_from_db()
    assert group.status == GroupStatus.RESOLVED


def test_sentry_metric_alert_critical_and_resolved(client):
    integration, _ = make_integration("sentry", hmac_secret="sentry-client-secret")
    assert _sentry(client, integration, "sentry_metric_alert_critical.json", "metric_alert").status_code == 202
    group = AlertGroup.objects.get()
    assert (group.dedup_key, group.severity, group.summary) == (
        "sentry-metric-53",
        "critical",
        "Critical: Too many errors",
    )
    assert _sentry(client, integration, "sentry_metric_alert_resolved.json", "metric_alert").status_code == 202
    group.refresh_from_db()
    assert group.status == GroupStatus.RESOLVED


def test_sentry_issue_created_and_installation_resource_is_accepted_but_ignored(client):
    integration, _ = make_integration("sentry", hmac_secret="sentry-client-secret")
    assert _sentry(client, integration, "sentry_issue_created.json", "issue").status_code == 202
    assert AlertGroup.objects.count() == 1
    # Another delivery (a byte-identical one would be refused as a replay).
    body = json.dumps({**fixture_json("sentry_issue_created.json"), "action": "deleted"}).encode()
    signature = hmac.new(integration.hmac_secret.encode(), body, hashlib.sha256).hexdigest()
    response = post(
        client,
        f"/api/v1/integrations/sentry/{integration.public_id}/",
        body,
        sentry_hook_resource="installation",
        sentry_hook_signature=signature,
    )
    assert response.status_code == 202
    assert AlertGroup.objects.count() == 1


def test_sentry_bad_signature_and_unknown_resource(client):
    integration, _ = make_integration("sentry", hmac_secret="sentry-client-secret")
    body = fixture_bytes("sentry_issue_created.json")
    url = f"/api/v1/integrations/sentry/{integration.public_id}/"
    bad = post(client, url, body, sentry_hook_resource="issue", sentry_hook_signature="0" * 64)
    assert bad.status_code == 401 and bad.json()["code"] == "bad_signature"
    missing = post(client, url, body, sentry_hook_resource="issue")
    assert missing.status_code == 401 and missing.json()["field"] == "Sentry-Hook-Signature"
    unknown = _sentry(client, integration, "sentry_issue_created.json", "invoice")
    assert unknown.status_code == 400 and unknown.json()["field"] == "Sentry-Hook-Resource"
    assert AlertGroup.objects.count() == 0
    assert IntegrationError.objects.filter(integration=integration).count() == 3


# --- PagerDuty Events API v2 ---------------------------------------------------------------------------------------


def test_pagerduty_trigger_acknowledge_resolve(client):
    integration, key = make_integration("pagerduty")
    trigger = post(client, PD_URL, fixture_bytes("pagerduty_trigger.json", ROUTING_KEY=key))
    assert trigger.status_code == 202
    assert trigger.json() == {"status": "success", "message": "Event processed", "dedup_key": "samplekeyhere"}
    group = AlertGroup.objects.get()
    assert group.severity == "critical" and group.source == "prod-datapipe03.example.com"
    assert group.labels["component"] == "mysql" and group.labels["free space"] == "1%"
    ack = post(client, PD_URL, fixture_bytes("pagerduty_acknowledge.json", ROUTING_KEY=key))
    assert ack.status_code == 202
    group.refresh_from_db()
    assert group.status == GroupStatus.ACKNOWLEDGED
    resolve = post(client, PD_URL, fixture_bytes("pagerduty_resolve.json", ROUTING_KEY=key))
    assert resolve.status_code == 202 and resolve.json()["dedup_key"] == "samplekeyhere"
    group.refresh_from_db()
    assert group.status == GroupStatus.RESOLVED
    assert AlertEvent.objects.filter(group=group).count() == 3


def test_pagerduty_trigger_without_dedup_key_gets_one(client):
    _, key = make_integration("pagerduty")
    body = json.loads(fixture_bytes("pagerduty_trigger.json", ROUTING_KEY=key))
    del body["dedup_key"]
    response = post(client, PD_URL, json.dumps(body).encode())
    assert response.status_code == 202
    assert AlertGroup.objects.get().dedup_key == response.json()["dedup_key"]


def test_pagerduty_invalid_event_lists_every_problem_like_pagerduty(client):
    integration, key = make_integration("pagerduty")
    body = {"routing_key": key, "event_action": "explode", "dedup_key": "x" * 256, "payload": {"severity": "bad"}}
    response = post(client, PD_URL, json.dumps(body).encode())
    assert response.status_code == 400
    data = response.json()
    assert data["status"] == "invalid event" and data["message"] == "Event object is invalid"
    assert any("event_action" in e for e in data["errors"])
    assert any("dedup_key" in e for e in data["errors"])
    assert any("payload.summary" in e for e in data["errors"])
    assert IntegrationError.objects.get(integration=integration).field == "event_action"


def test_pagerduty_unknown_routing_key_is_401(client):
    response = post(client, PD_URL, fixture_bytes("pagerduty_trigger.json", ROUTING_KEY="0" * 32))
    assert response.status_code == 401
    assert response.json()["status"] == "unauthorized"
    assert IntegrationError.objects.get().code == "bad_routing_key"


def test_resolve_for_unknown_key_is_recorded_without_group(client):
    _, key = make_integration("pagerduty")
    response = post(client, PD_URL, fixture_bytes("pagerduty_resolve.json", ROUTING_KEY=key))
    assert response.status_code == 202
    event = AlertEvent.objects.get()
    assert event.group is None and event.action == "resolve"


# --- Generic JSON and change events --------------------------------------------------------------------------------


def test_generic_batch_and_single_event(client, checkout):
    _, key = make_integration("generic")
    response = post(
        client, "/api/v1/integrations/generic/", fixture_bytes("generic_batch.json"), authorization=f"Bearer {key}"
    )
    assert response.status_code == 202, response.content
    assert AlertGroup.objects.filter(service=checkout).count() == 2
    single = {"action": "resolve", "dedup_key": "latency-api-eu"}
    response = post(client, "/api/v1/integrations/generic/", json.dumps(single).encode(), authorization=f"Bearer {key}")
    assert response.json()["results"][0]["result"] == "resolved"


def test_batch_that_triggers_and_resolves_one_key_applies_in_order(client):
    _, key = make_integration("generic")
    body = {
        "events": [
            {"dedup_key": "flap", "summary": "flapping check"},
            {"action": "resolve", "dedup_key": "flap"},
            {"dedup_key": "flap", "summary": "flapping check"},
        ]
    }
    response = post(client, "/api/v1/integrations/generic/", json.dumps(body).encode(), authorization=f"Bearer {key}")
    assert [r["result"] for r in response.json()["results"]] == ["opened", "resolved", "opened"]
    assert AlertGroup.objects.filter(dedup_key="flap").count() == 2
    assert AlertGroup.objects.filter(dedup_key="flap", resolved_at__isnull=True).count() == 1


def test_change_events_show_as_recent_changes_before_the_incident(client, checkout, responder):
    _, key = make_integration("change")
    response = post(
        client, "/api/v1/integrations/change/", fixture_bytes("change_deploy.json"), authorization=f"Bearer {key}"
    )
    assert response.status_code == 202, response.content
    change = ChangeEvent.objects.get()
    assert change.service == checkout and change.kind == "deploy" and change.details["commit"] == "9f1c2ab"
    other = ServiceFactory(name="Search", slug="search")
    ChangeEvent.objects.create(service=other, summary="unrelated", occurred_at=timezone.now() - timedelta(hours=1))
    ChangeEvent.objects.create(service=checkout, summary="too old", occurred_at=change.occurred_at - timedelta(days=3))
    incident = declare(by=responder, services=[checkout])
    assert [c.summary for c in recent_changes_for(incident)] == ["Deploy checkout v2.14.0"]


def test_a_change_to_a_service_with_an_open_incident_is_on_its_timeline(client, checkout, responder):
    """Change events reach an open incident of the changed service as a change_detected entry, at the time of the
    change, shown with the alerts; an incident of another service gets none."""
    incident = declare(by=responder, services=[checkout])
    elsewhere = declare(by=responder, services=[ServiceFactory(name="Search", slug="search")])
    _, key = make_integration("change")
    response = post(
        client, "/api/v1/integrations/change/", fixture_bytes("change_deploy.json"), authorization=f"Bearer {key}"
    )
    assert response.status_code == 202, response.content
    change = ChangeEvent.objects.get()
    entry = incident.timeline.get(event_type=EventType.CHANGE_DETECTED)
    assert entry.kind == EntryKind.ALERT and entry.occurred_at == change.occurred_at and entry.author is None
    assert entry.data == {
        "change_id": change.pk,
        "kind": "deploy",
        "service_id": checkout.pk,
        "integration_id": change.integration_id,
    }
    assert "Deploy checkout v2.14.0" in entry.body and "**Checkout**" in entry.body
    assert AuditRecord.objects.filter(object_type="incidents.timelineentry", object_id=str(entry.pk)).exists()
    assert not elsewhere.timeline.filter(event_type=EventType.CHANGE_DETECTED).exists()
    client.force_login(responder)
    page = client.get(incident.get_absolute_url(), {"kind": EventType.CHANGE_DETECTED}).content.decode()
    assert "Deploy checkout v2.14.0" in page and "Change detected" in page


def test_change_event_for_unknown_service_names_the_field(client):
    _, key = make_integration("change")
    body = {"service": "nope", "summary": "Deploy"}
    response = post(client, "/api/v1/integrations/change/", json.dumps(body).encode(), authorization=f"Bearer {key}")
    assert response.status_code == 400
    assert response.json()["field"] == "service"
    assert ChangeEvent.objects.count() == 0


# --- Bad input ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        (b"{not json", "body", "malformed_json"),
        (b"", "body", "empty_body"),
        (b"[1, 2]", "body", "invalid_payload"),
        (b'{"alerts": "many"}', "alerts", "invalid_payload"),
        (b'{"alerts": [{"status": "exploded", "labels": {}}]}', "alerts[0].status", "invalid_payload"),
        (b'{"alerts": [{"status": "firing", "labels": [1]}]}', "alerts[0].labels", "invalid_payload"),
        (b'{"alerts": [{"status": "firing", "startsAt": "yesterday"}]}', "alerts[0].startsAt", "invalid_payload"),
        (b'{"alerts": [{"status": "firing", "labels": {"a": "x\\u0000"}}]}', "body", "nul_character"),
    ],
)
def test_bad_alertmanager_bodies_are_400_naming_the_field_and_logged(client, body, field, code):
    integration, key = make_integration("alertmanager")
    response = post(client, AM_URL, body, authorization=f"Bearer {key}")
    assert response.status_code == 400
    assert response.json()["field"] == field and response.json()["code"] == code
    assert IntegrationError.objects.get(integration=integration).code == code
    assert AlertGroup.objects.count() == 0 and AlertEvent.objects.count() == 0


def test_unknown_generic_action_is_400(client):
    _, key = make_integration("generic")
    body = {"events": [{"summary": "ok"}, {"action": "explode", "dedup_key": "k"}]}
    response = post(client, "/api/v1/integrations/generic/", json.dumps(body).encode(), authorization=f"Bearer {key}")
    assert response.status_code == 400 and response.json()["field"] == "events[1].action"
    assert AlertGroup.objects.count() == 0  # the valid first event is not half-written


def test_missing_and_wrong_credentials_are_401(client, checkout):
    integration, key = make_integration("alertmanager")
    other_kind_key = make_integration("generic")[1]
    body = fixture_bytes("alertmanager_firing.json")
    assert post(client, AM_URL, body).status_code == 401
    assert post(client, AM_URL, body, authorization="Bearer nope").status_code == 401
    assert post(client, AM_URL, body, authorization=f"Bearer {other_kind_key}").status_code == 401
    assert post(client, AM_URL, body, authorization=f"Bearer {key}").status_code == 202
    integration.is_active = False
    integration.save()
    # Web processes remember a key for ALERTING_KEY_CACHE_SECONDS; after that, deactivation is seen.
    assert post(client, AM_URL, body, authorization=f"Bearer {key}").status_code == 202
    forget_cached_keys()
    assert post(client, AM_URL, body, authorization=f"Bearer {key}").status_code == 401
    assert IntegrationError.objects.filter(code__in=["missing_credentials", "bad_credentials"]).count() == 4


def test_key_in_query_string_is_not_accepted(client):
    _, key = make_integration("alertmanager")
    response = post(client, f"{AM_URL}?key={key}", fixture_bytes("alertmanager_firing.json"))
    assert response.status_code == 401


def test_oversize_body_is_413(client, settings):
    settings.ALERTING_MAX_BODY_BYTES = 1000
    integration, key = make_integration("alertmanager")
    response = post(client, AM_URL, fixture_bytes("alertmanager_firing.json"), authorization=f"Bearer {key}")
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"
    assert IntegrationError.objects.get(integration=integration).status_code == 413


def test_rate_limit_per_integration_is_429_with_retry_after(client, checkout):
    integration, key = make_integration("alertmanager", rate_limit_per_minute=2)
    body = fixture_bytes("alertmanager_firing.json")
    codes = [post(client, AM_URL, body, authorization=f"Bearer {key}").status_code for _ in range(4)]
    assert codes == [202, 202, 429, 429]
    response = post(client, AM_URL, body, authorization=f"Bearer {key}")
    assert int(response["Retry-After"]) >= 1
    # Only the first refusal of the window is logged, so a flood cannot flood the error log.
    assert IntegrationError.objects.filter(integration=integration, status_code=429).count() == 1
    other, other_key = make_integration("alertmanager", name="other", rate_limit_per_minute=2)
    assert post(client, AM_URL, body, authorization=f"Bearer {other_key}").status_code == 202


def test_get_is_405(client):
    response = client.get(AM_URL)
    assert response.status_code == 405


def test_timestamps_with_offsets_postgres_refuses_are_stored_in_utc(client):
    _, key = make_integration("generic")
    body = {"summary": "clock far east", "occurred_at": "2026-01-01T00:00:00+23:59"}
    response = post(client, "/api/v1/integrations/generic/", json.dumps(body).encode(), authorization=f"Bearer {key}")
    assert response.status_code == 202, response.content
    assert AlertEvent.objects.get().occurred_at.isoformat() == "2025-12-31T00:01:00+00:00"


def test_pagerduty_batch_path_and_general_path_store_the_same_rows(client, checkout):
    """The one-statement path (record-only routing) and the general path (attach to a service) agree."""
    fast_integration, fast_key = make_integration("pagerduty", name="fast")
    slow_integration, slow_key = make_integration("pagerduty", name="slow", default_service=checkout)
    for key in (fast_key, slow_key):
        for _ in range(2):
            assert post(client, PD_URL, fixture_bytes("pagerduty_trigger.json", ROUTING_KEY=key)).status_code == 202
    for integration in (fast_integration, slow_integration):
        group = AlertGroup.objects.get(integration=integration)
        assert (group.event_count, group.summary, group.severity) == (
            2,
            "DISK at 99% on machine prod-datapipe03.example.com",
            "critical",
        )
        assert group.labels["component"] == "mysql"
        assert AlertEvent.objects.filter(group=group).count() == 2
        assert AlertEvent.objects.filter(group=group).first().payload["event_action"] == "trigger"
    assert AlertGroup.objects.get(integration=slow_integration).service == checkout


def test_recent_changes_template_tag_renders_the_changes(client, checkout, responder):
    from django.template import Context, Template

    _, key = make_integration("change")
    post(client, "/api/v1/integrations/change/", fixture_bytes("change_deploy.json"), authorization=f"Bearer {key}")
    incident = declare(by=responder, services=[checkout])
    html = Template("{% load alerting_tags %}{% recent_changes incident %}").render(Context({"incident": incident}))
    assert "Recent changes" in html and "Deploy checkout v2.14.0" in html
    assert 'href="https://ci.example.com/pipelines/4812"' in html
    quiet = declare(by=responder, services=[ServiceFactory(slug="quiet")])
    assert "No changes recorded" in Template("{% load alerting_tags %}{% recent_changes incident %}").render(
        Context({"incident": quiet})
    )


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"event_action": ["trigger"]}, "event_action"),
        ({"event_action": {"trigger": True}}, "event_action"),
        ({"payload": {"summary": "Disk full", "source": "db-1", "severity": ["critical"]}}, "payload.severity"),
        ({"payload": {"summary": "Disk full", "source": "db-1", "severity": {"level": 1}}}, "payload.severity"),
    ],
)
def test_pagerduty_lists_and_objects_where_words_belong_are_a_400_naming_the_field(client, change, named):
    integration, key = make_integration("pagerduty")
    event = {
        "routing_key": key,
        "event_action": "trigger",
        "dedup_key": "disk-full",
        "payload": {"summary": "Disk full", "source": "db-1", "severity": "critical"},
    } | change
    response = post(client, PD_URL, json.dumps(event).encode())
    assert response.status_code == 400, response.content
    assert any(named in error for error in response.json()["errors"])
    assert not AlertGroup.objects.filter(integration=integration).exists()


@pytest.mark.parametrize("number", [b"Infinity", b"-Infinity", b"NaN", b"1e400"])
def test_numbers_json_cannot_hold_are_a_400_not_a_database_error(client, number):
    integration, key = make_integration("alertmanager")
    body = fixture_bytes("alertmanager_firing.json").replace(b'"version": "4"', b'"version": "4", "x": ' + number)
    assert number in body
    response = post(client, AM_URL, body, authorization=f"Bearer {key}")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == "body"
    assert not AlertGroup.objects.filter(integration=integration).exists()
