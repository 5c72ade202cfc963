import pytest

# A title and phrases that appear nowhere else, so finding any of them in a response is a leak.
SECRET_TITLE = "Zebracorn exfiltration QX7"
SECRET_NOTE = "Quokka-lantern forensic note 55"
SECRET_UPDATE = "Marmalade-vortex public notice 91"


@pytest.fixture
def restricted_world(db, settings):
    """A restricted (security) incident with everything the portal can hang off an incident, an insider
    (security), a public incident beside it, and outsiders: a responder and a staff incident manager who are
    not on it. Other areas' records (post-mortem, action items) are added through their services."""
    from datetime import timedelta

    from django.utils import timezone

    from incidents.audit.context import acting_as
    from incidents.audit.services import export_evidence
    from incidents.models import Role, Runbook
    from incidents.services import status as status_services
    from incidents.services.checklist import tick_checklist_item
    from incidents.services.entries import add_timeline_entry, record_five_whys
    from incidents.services.roles import assign_role
    from incidents.services.updates import post_status_update
    from tests.factories import (
        ResponderFactory,
        SecurityFactory,
        ServiceFactory,
        UserFactory,
        declare,
        timers_running,
    )

    timers_running(settings)  # /healthz is part of the sweep: 200 as on a running portal

    security = SecurityFactory(username="sec-lead", is_staff=True)
    scribe = ResponderFactory(username="insider-scribe")
    service = ServiceFactory(name="Customer accounts", slug="customer-accounts", is_public=True)
    with acting_as(security):
        public = declare(by=ResponderFactory(), title="Search is slow", services=[service])
        incident = declare(
            by=security,
            title=SECRET_TITLE,
            summary=f"{SECRET_TITLE} summary",
            impact=f"{SECRET_TITLE} impact",
            is_restricted=True,
            level="P0",
            services=[service],
            runbook=Runbook.objects.first(),
        )
        assign_role(incident=incident, role=Role.SCRIBE, holder=scribe, by=security)
        add_timeline_entry(incident=incident, by=security, body=SECRET_NOTE)
        tick_checklist_item(item=incident.checklist_items.first(), by=security)
        record_five_whys(
            incident=incident,
            problem=f"{SECRET_TITLE} problem",
            whys=[SECRET_NOTE],
            root_cause=SECRET_NOTE,
            by=security,
        )
        post_status_update(
            incident=incident, kind="internal", status="investigating", by=security, what_we_know=SECRET_NOTE
        )
        # Even a published external update of a restricted incident must never reach the public.
        post_status_update(
            incident=incident,
            kind="external",
            status="investigating",
            by=security,
            title=SECRET_UPDATE,
            description=SECRET_UPDATE,
            affected_services=[service],
            publish=True,
        )
        status_services.change_status(incident=incident, to="resolved", by=security)
        _enrich_from_other_areas(incident, security, scribe, timezone.now() + timedelta(days=7))
        export_evidence(incident=incident, by=security)
    return {
        "incident": incident,
        "public": public,
        "insider": security,
        "markers": [SECRET_TITLE, SECRET_NOTE, SECRET_UPDATE],
        "outsider": ResponderFactory(username="outsider-responder"),
        "outsider_manager": UserFactory(username="outsider-manager", is_staff=True, groups=["incident_manager"]),
        "superuser": UserFactory(username="root", is_staff=True, is_superuser=True),
    }


def _enrich_from_other_areas(incident, by, owner, due):
    """An alert group attached to the incident; the post-mortem (drafted by change_status(resolved)) with an
    action item."""
    from django.utils import timezone

    from incidents.alerting.models import AlertEvent, AlertGroup
    from incidents.alerting.services.integrations import create_integration

    integration, _ = create_integration(kind="generic", name="Sweep monitor")
    now = timezone.now()
    group = AlertGroup.objects.create(
        integration=integration,
        dedup_key="sweep-alert",
        summary=f"{SECRET_NOTE} alert",
        incident=incident,
        first_seen_at=now,
        last_seen_at=now,
    )
    AlertEvent.objects.create(
        integration=integration, group=group, action="trigger", dedup_key="sweep-alert", summary=f"{SECRET_NOTE} event"
    )
    try:
        from postmortems.models import PostMortem
        from postmortems.services.action_items import add_action_item
        from postmortems.services.drafting import ensure_draft_for
    except ImportError:  # the post-mortem area is not in this tree
        return
    postmortem = PostMortem.objects.filter(incident=incident).first() or ensure_draft_for(incident=incident, by=by)
    add_action_item(postmortem=postmortem, by=by, title=f"{SECRET_NOTE} action", owner=owner, due_date=due.date())
