"""Merging a duplicate incident into another, and linking related incidents: nothing lost, nothing leaked."""

from datetime import UTC, datetime

import pytest
import time_machine

from incidents import merging
from incidents.alerting.models import AlertGroup
from incidents.audit.models import AuditRecord
from incidents.errors import DomainError, PermissionDenied
from incidents.models import EventType, Incident, Role, RoleAssignment, Status, TimelineEntry
from incidents.services.entries import add_timeline_entry
from incidents.services.roles import assign_role
from incidents.services.updates import post_status_update
from oncall.paging.models import Notification, Page
from postmortems.services.drafting import ensure_draft_for
from tests.api.factories import make_token
from tests.factories import ManagerFactory, ResponderFactory, ServiceFactory, declare
from tests.paging.factories import paged_team

pytestmark = pytest.mark.django_db

MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    with time_machine.travel(MONDAY_10, tick=False) as traveller:
        yield traveller


def alert_group(incident, key):
    from tests.api.factories import make_integration

    integration, _ = make_integration("generic", name=f"generic {key}")
    return AlertGroup.objects.create(
        integration=integration,
        dedup_key=key,
        summary=key,
        incident=incident,
        first_seen_at=incident.declared_at,
        last_seen_at=incident.declared_at,
    )


def test_merging_moves_everything_and_closes_the_duplicate(clock, responder):
    team = paged_team()
    checkout = ServiceFactory(name="Checkout", slug="checkout")
    a = declare(by=responder, level="P1", title="Payments failing", services=[team.service])
    b = declare(by=responder, level="P2", title="Checkout errors", services=[team.service, checkout])
    holder = ResponderFactory(username="bea")
    assign_role(incident=b, role=Role.TECHNICAL_LEAD, holder=holder, by=responder)
    alert_group(a, "a-1")
    alert_group(b, "b-1")
    alert_group(b, "b-2")
    add_timeline_entry(incident=b, body="Rolled back checkout 2.14", by=responder)
    before = {
        "alerts": AlertGroup.objects.count(),
        "entries": TimelineEntry.objects.count(),
        "pages": Page.objects.count(),
        "notifications": Notification.objects.count(),
    }
    b_entries = TimelineEntry.objects.filter(incident=b).count()
    assert Page.objects.filter(incident=b).exists()

    merging.merge_incident(source=b, into=a, by=responder, reason="Same outage: the payment client.")

    a.refresh_from_db()
    b.refresh_from_db()
    # Nothing lost: every alert, page and notification still exists, now on A. Four entries were added: the two merge
    # entries, the paging stop written on B, and the Technical Lead's assignment on A.
    assert AlertGroup.objects.count() == before["alerts"] and AlertGroup.objects.filter(incident=a).count() == 3
    assert Page.objects.count() == before["pages"] and not Page.objects.filter(incident=b).exists()
    assert Notification.objects.count() == before["notifications"]
    assert not Notification.objects.filter(incident=b).exists()
    assert TimelineEntry.objects.count() == before["entries"] + 4
    moved = TimelineEntry.objects.filter(incident=a, data__merged_from=b.reference)
    assert moved.count() == b_entries + 1  # B's entries and the paging-stop entry written on B before the move
    # B's pages stopped before they moved: nothing for B pages anyone any more.
    moved_pages = Page.objects.filter(incident=a, stop_reason__icontains="merged")
    assert moved_pages.exists() and all(page.state == Page.State.STOPPED for page in moved_pages)
    # B is closed as a duplicate of A and says so.
    assert (b.status, b.duplicate_of) == (Status.CLOSED, a)
    closing = TimelineEntry.objects.get(incident=b, event_type=EventType.MERGED_INTO)
    assert f"Closed as a duplicate of **{a.reference}**" in closing.body and "payment client" in closing.body
    merged_in = TimelineEntry.objects.get(incident=a, event_type=EventType.MERGED_FROM)
    assert merged_in.data["moved"]["alert groups"] == 2
    # Role holders and services follow; status-page subscribers of B's services now follow A.
    assert RoleAssignment.objects.get(incident=a, role=Role.TECHNICAL_LEAD, relieved_at__isnull=True).holder == holder
    assert set(a.services.values_list("slug", flat=True)) == {team.service.slug, "checkout"}
    # The audit trail records the duplicate's change.
    change = AuditRecord.objects.filter(
        object_type="incidents.incident", object_id=str(b.pk), after__has_key="duplicate_of"
    )
    assert change.exists()


def test_a_restricted_incident_never_merges_into_an_unrestricted_one(responder):
    manager = ManagerFactory()
    public = declare(by=responder, title="Login slow")
    secret = declare(by=responder, title="Credential stuffing", is_restricted=True)
    with pytest.raises(DomainError) as error:
        merging.merge_incident(source=secret, into=public, by=manager)
    assert error.value.field == "into" and "restricted" in error.value.message
    secret.refresh_from_db()
    assert secret.duplicate_of is None and secret.status != Status.CLOSED
    merging.merge_incident(source=public, into=secret, by=manager)  # the other way round is allowed
    public.refresh_from_db()
    assert public.duplicate_of == secret


def test_only_an_incident_commander_of_either_or_a_manager_may_merge(responder):
    a = declare(by=responder, title="A")
    b = declare(by=responder, title="B")
    bystander = ResponderFactory()
    with pytest.raises(PermissionDenied):
        merging.merge_incident(source=b, into=a, by=bystander)
    assign_role(incident=b, role=Role.INCIDENT_COMMANDER, holder=bystander, by=responder)
    merging.merge_incident(source=b, into=a, by=bystander)
    assert Incident.objects.get(pk=b.pk).duplicate_of_id == a.pk


@pytest.mark.parametrize("case", ["itself", "already", "closed-target"])
def test_impossible_merges_are_refused_naming_the_field(case, responder):
    manager = ManagerFactory()
    a = declare(by=responder, title="A")
    b = declare(by=responder, title="B")
    if case == "itself":
        target, field = b, "into"
    elif case == "already":
        c = declare(by=responder, title="C")
        merging.merge_incident(source=b, into=c, by=manager)
        b.refresh_from_db()
        target, field = a, "incident"
    else:
        Incident.objects.filter(pk=a.pk).update(status=Status.CLOSED)
        a.refresh_from_db()
        target, field = a, "into"
    with pytest.raises(DomainError) as error:
        merging.merge_incident(source=b, into=target, by=manager)
    assert error.value.field == field


def test_the_duplicates_page_redirects_and_both_pages_show_the_link(client, responder):
    manager = ManagerFactory()
    a = declare(by=responder, title="Payments failing")
    b = declare(by=responder, title="Checkout errors")
    c = declare(by=responder, title="Search slow")
    client.force_login(manager)
    response = client.post(f"/incidents/{b.reference}/merge/", {"into": a.reference.lower(), "reason": "same"})
    assert response.status_code == 302 and response["Location"] == a.get_absolute_url()
    audit = AuditRecord.objects.filter(object_type="incidents.incident", object_id=str(b.pk), action="changed")
    assert {record.actor_username for record in audit} == {manager.username}
    redirected = client.get(f"/incidents/{b.reference}/")
    assert redirected.status_code == 302 and redirected["Location"] == a.get_absolute_url()
    page = client.get(a.get_absolute_url()).content.decode()
    assert "Merged here as duplicates" in page and b.reference in page and f"from {b.reference}" in page

    client.post(f"/incidents/{a.reference}/related/", {"other": c.reference})
    assert c.reference in client.get(a.get_absolute_url()).content.decode()
    assert f"{a.reference} Payments failing" in client.get(c.get_absolute_url()).content.decode()
    assert set(c.related_incidents.values_list("pk", flat=True)) == {a.pk}
    Incident.objects.filter(pk=c.pk).update(status=Status.RESOLVED, resolved_at=c.declared_at)
    postmortem = ensure_draft_for(incident=Incident.objects.get(pk=c.pk), by=None)
    report = client.get(postmortem.get_absolute_url()).content.decode()
    assert "Related incidents:" in report and f"{a.reference} Payments failing" in report
    client.post(f"/incidents/{c.reference}/related/{a.reference}/unlink/")
    assert not a.related_incidents.exists()

    refused = client.post(f"/incidents/{c.reference}/merge/", {"into": "INC-99999"}, follow=True)
    assert "No incident INC-99999 that you can see." in refused.content.decode()
    assert Incident.objects.get(pk=c.pk).duplicate_of is None


def test_the_api_merges_and_links(client, responder):
    manager = ManagerFactory()
    _, key = make_token(manager)
    auth = {"authorization": f"Bearer {key}"}
    a = declare(by=responder, title="A")
    b = declare(by=responder, title="B")
    c = declare(by=responder, title="C")
    bad = client.post(
        f"/api/v1/incidents/{b.reference}/merge/", {"into": "INC-0"}, headers=auth, content_type="application/json"
    )
    assert bad.status_code == 400 and bad.json()["field"] == "into" and "INC-0" in bad.json()["detail"]
    merged = client.post(
        f"/api/v1/incidents/{b.reference}/merge/", {"into": a.reference}, headers=auth, content_type="application/json"
    )
    assert merged.status_code == 200 and merged.json()["reference"] == a.reference
    again = client.post(
        f"/api/v1/incidents/{b.reference}/merge/", {"into": c.reference}, headers=auth, content_type="application/json"
    )
    assert again.status_code == 400
    linked = client.post(
        f"/api/v1/incidents/{a.reference}/related/", {"incident": c.reference}, headers=auth,
        content_type="application/json",
    )  # fmt: skip
    assert linked.status_code == 200
    assert linked.json() == {"duplicate_of": None, "duplicates": [b.reference], "related": [c.reference]}
    assert client.get(f"/api/v1/incidents/{b.reference}/related/", headers=auth).json()["duplicate_of"] == a.reference


def test_a_duplicate_is_merged_in_from_the_surviving_incidents_page(client, responder):
    a = declare(by=responder, title="Payments failing")
    b = declare(by=responder, title="Checkout errors")
    bystander = ResponderFactory()
    client.force_login(bystander)  # neither incident's commander, not a manager
    refused = client.post(f"/incidents/{a.reference}/merge-duplicate/", {"duplicate": b.reference}, follow=True)
    assert "Only the Incident Commander of either incident" in refused.content.decode()
    assert Incident.objects.get(pk=b.pk).duplicate_of is None
    client.force_login(responder)  # the commander of both
    page = client.get(a.get_absolute_url()).content.decode()
    assert "Merge a duplicate into this incident" in page
    response = client.post(
        f"/incidents/{a.reference}/merge-duplicate/", {"duplicate": b.reference.lower(), "reason": "same outage"}
    )
    assert response.status_code == 302 and response["Location"] == a.get_absolute_url()
    assert Incident.objects.get(pk=b.pk).duplicate_of_id == a.pk
    assert client.get(b.get_absolute_url())["Location"] == a.get_absolute_url()
    missing = client.post(f"/incidents/{a.reference}/merge-duplicate/", {"duplicate": ""}, follow=True)
    assert "reference, e.g. INC-12" in missing.content.decode()


def test_status_page_subscribers_of_the_duplicate_follow_the_surviving_incident(responder):
    from incidents.statuspage.models import Subscriber
    from incidents.statuspage.selectors import subscribers_for_update

    payments = ServiceFactory(name="Payments", slug="payments", is_public=True)
    checkout = ServiceFactory(name="Checkout", slug="checkout", is_public=True)
    reader = Subscriber.objects.create(email="reader@example.com", all_services=False, confirmed_at=MONDAY_10)
    reader.services.set([checkout])
    a = declare(by=responder, title="Payments failing", services=[payments])
    b = declare(by=responder, title="Checkout errors", services=[checkout])

    def next_update_reaches_reader(incident) -> bool:
        update = post_status_update(
            incident=incident, kind="external", status=incident.status, by=responder, title="Investigating",
            description="We are looking into it.",
        )  # fmt: skip
        return reader in subscribers_for_update(update)

    assert not next_update_reaches_reader(a)  # before: the reader follows B's service only
    merging.merge_incident(source=b, into=a, by=responder)
    assert next_update_reaches_reader(Incident.objects.get(pk=a.pk))
