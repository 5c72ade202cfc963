"""Actions check the groups: every non-GET request to every URL of a (public) incident, sent by a viewer with
plausible form data, changes nothing (every change would be in the audit trail). The same requests from the
incident's own responder do change it, so the data is good enough to reach the service layer."""

import pytest
from django.test import Client

from incidents.audit.models import AuditRecord
from incidents.models import Runbook, SeverityPolicy
from tests.factories import ResponderFactory, ViewerFactory, declare

from .urlsweep import GET_ONLY_ROUTES, build_sweep

pytestmark = pytest.mark.django_db


def plausible_form(incident, user):
    """Field names the portal's forms and API use, with valid values."""
    item = incident.checklist_items.filter(checked_at__isnull=True).first()
    return {
        "body": "Restarted the pool.",
        "kind": "note",
        "status": "identified",
        "current_status": incident.status,
        "note": "Found it.",
        "severity": str(SeverityPolicy.objects.get(level="P0").pk),
        "current_severity": str(incident.severity_id),
        "reason": "Wider impact.",
        "role": "scribe",
        "holder": str(user.pk),
        "claim": "on",
        "checked": "on",
        "item": str(item.pk) if item else "",
        "runbook": str(Runbook.objects.exclude(incident_links__incident=incident).first().pk),
        "problem": "Checkout failed.",
        "why_1": "The pool was exhausted.",
        "root_cause": "No limit.",
        "what_we_know": "Errors at 50%.",
        "what_we_are_doing": "Rolling back.",
        "title": "Checkout errors",
        "description": "Some payments fail.",
    }


def post_everywhere(client, incident, user):
    changed, errors = [], []
    for target in build_sweep(incident).targets:
        if not target.incident_specific or target.template in GET_ONLY_ROUTES:
            continue
        before = AuditRecord.objects.count()
        response = client.post(target.url, plausible_form(incident, user))
        if response.status_code >= 500:
            errors.append(f"POST {target.url} -> {response.status_code}")
        if AuditRecord.objects.count() != before:
            changed.append(target.template)
    return changed, errors


def test_viewers_change_nothing_through_any_url():
    incident = declare(by=ResponderFactory(), title="Checkout failing")
    viewer = ViewerFactory()
    client = Client(raise_request_exception=False)
    client.force_login(viewer)
    changed, errors = post_everywhere(client, incident, viewer)
    assert not errors, errors
    assert not changed, f"a viewer changed the incident through: {changed}"


def test_the_same_requests_from_a_responder_on_the_incident_do_change_it():
    commander = ResponderFactory()
    incident = declare(by=commander, title="Checkout failing")
    client = Client(raise_request_exception=False)
    client.force_login(commander)
    changed, errors = post_everywhere(client, incident, commander)
    assert not errors, errors
    assert len(set(changed)) >= 3, changed
