"""A restricted incident's title never reaches, by email, someone who cannot see the incident (issue 17, finding 2).

Action items and post-mortems of a restricted incident can be owned only by people who may see it (the page, the
API-backed service, the admin all refuse others on the owner field), and every email is checked again at send
time, since an incident can become restricted, or an owner leave its responders, after the item was assigned."""

from datetime import date, timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from incidents.errors import DomainError
from incidents.models import IncidentResponder
from oncall.paging import delivery
from postmortems import emails
from postmortems.models import ActionItem
from postmortems.services import action_items as action_items_services
from postmortems.services.editing import assign_owner, schedule_meeting
from tests.factories import ResponderFactory, SecurityFactory, declare
from tests.paging.factories import paged_team
from tests.postmortems.factories import postmortem_for, resolved_incident, tick

pytestmark = pytest.mark.django_db

TITLE = "Customer card numbers exfiltrated"


@pytest.fixture
def security():
    return SecurityFactory(email="sec@example.com")


@pytest.fixture
def restricted_postmortem(security):
    return postmortem_for(resolved_incident(by=security, title=TITLE, is_restricted=True))


@pytest.fixture
def outsider():
    return ResponderFactory(username="outsider", email="outsider@example.com")


def _due():
    return timezone.localdate() + timedelta(days=5)


def test_service_refuses_an_owner_who_cannot_see_the_incident(restricted_postmortem, security, outsider):
    with pytest.raises(DomainError) as refused:
        action_items_services.add_action_item(
            postmortem=restricted_postmortem, by=security, title="Rotate keys", owner=outsider, due_date=_due()
        )
    assert refused.value.field == "owner"
    assert "cannot see" in refused.value.message and restricted_postmortem.incident.reference in refused.value.message
    assert not ActionItem.objects.exists()


def test_page_refuses_the_owner_on_the_field(client, restricted_postmortem, security, outsider):
    client.force_login(security)
    url = reverse("postmortems:add_action_item", kwargs={"pk": restricted_postmortem.pk})
    data = {"title": "Rotate keys", "owner": outsider.pk, "due_date": _due(), "priority": "high", "kind": "prevent"}
    response = client.post(url, data)
    assert response.status_code == 400
    assert "cannot see" in str(response.context["action_item_form"].errors["owner"])
    assert not ActionItem.objects.exists()


def test_reassigning_an_item_to_an_outsider_is_refused(client, restricted_postmortem, security, outsider):
    item = action_items_services.add_action_item(
        postmortem=restricted_postmortem, by=security, title="Rotate keys", owner=security, due_date=_due()
    )
    with pytest.raises(DomainError) as refused:
        action_items_services.update_action_item(item=item, by=security, owner=outsider)
    assert refused.value.field == "owner"
    item.refresh_from_db()
    assert item.owner == security


def test_admin_refuses_the_owner_on_the_field(client, restricted_postmortem, outsider):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    response = client.post(
        reverse("admin:postmortems_actionitem_add"),
        {
            "postmortem": restricted_postmortem.pk,
            "title": "Rotate keys",
            "description": "",
            "owner": outsider.pk,
            "due_date": _due().isoformat(),
            "priority": "low",
            "kind": "process",
        },
    )
    assert response.status_code == 200
    assert "cannot see" in str(response.context["adminform"].form.errors["owner"])
    assert not ActionItem.objects.exists()


def test_postmortem_owner_must_see_the_incident(restricted_postmortem, security, outsider):
    with pytest.raises(DomainError) as refused:
        assign_owner(postmortem=restricted_postmortem, owner=outsider, by=security)
    assert refused.value.field == "owner"


def test_a_responder_of_the_restricted_incident_may_own_an_item(restricted_postmortem, security, outsider):
    IncidentResponder.objects.create(incident=restricted_postmortem.incident, user=outsider)
    item = action_items_services.add_action_item(
        postmortem=restricted_postmortem, by=security, title="Rotate keys", owner=outsider, due_date=_due()
    )
    assert item.owner == outsider


# --- at send time ---------------------------------------------------------------------------------------------


def test_reminder_is_not_mailed_to_an_owner_who_can_no_longer_see_the_incident(
    security, outsider, django_capture_on_commit_callbacks
):
    with time_machine.travel("2025-01-16T09:00:00+00:00", tick=False):
        incident = resolved_incident(by=security, title=TITLE)
        postmortem = postmortem_for(incident)
        schedule_meeting(postmortem=postmortem, by=security, meeting_at=postmortem.due_at)
        item = action_items_services.add_action_item(
            postmortem=postmortem, by=security, title="Rotate keys", owner=outsider, due_date=date(2025, 1, 20)
        )
    # Restricted afterwards: the owner was fine when assigned, not any more.
    type(incident).objects.filter(pk=incident.pk).update(is_restricted=True)
    with time_machine.travel("2025-01-21T00:00:01+00:00", tick=False):
        assert tick(django_capture_on_commit_callbacks)["overdue"] == 1
    assert mail.outbox == []
    # A responder of the incident (who may see it) still gets it.
    IncidentResponder.objects.create(incident=incident, user=outsider)
    assert emails.send_action_item_reminder(item.pk, "overdue") == 1
    assert TITLE in mail.outbox[0].body


def test_schedule_reminder_is_not_mailed_to_an_owner_who_cannot_see_the_incident(security, outsider):
    incident = resolved_incident(by=security, title=TITLE)
    postmortem = postmortem_for(incident)
    assign_owner(postmortem=postmortem, owner=outsider, by=security)
    type(incident).objects.filter(pk=incident.pk).update(is_restricted=True)
    # No Incident Commander left to ask: the reminder would go to the post-mortem's owner.
    incident.role_assignments.update(relieved_at=timezone.now())
    assert emails.send_schedule_reminder(postmortem.pk) == 0
    assert all(TITLE not in m.subject + m.body for m in mail.outbox)


def test_report_of_a_restricted_incident_goes_only_to_those_who_see_it(security, outsider, settings):
    settings.POSTMORTEM_STAKEHOLDER_EMAILS = ["board@example.com"]
    incident = resolved_incident(by=security, title=TITLE)
    postmortem = postmortem_for(incident)
    IncidentResponder.objects.create(incident=incident, user=outsider)
    postmortem.attendees.add(outsider)
    type(incident).objects.filter(pk=incident.pk).update(is_restricted=True)
    IncidentResponder.objects.filter(incident=incident, user=outsider).delete()
    assert emails.report_recipients(postmortem_for(incident)) == ["sec@example.com"]


def test_a_page_queued_before_the_incident_became_restricted_is_mailed_without_its_title(mailoutbox):
    team = paged_team(oncall_channels=("email",))
    with time_machine.travel("2026-03-02T10:00:00+00:00", tick=False):
        incident = declare(by=ResponderFactory(), level="P1", services=[team.service], title=TITLE)
        type(incident).objects.filter(pk=incident.pk).update(is_restricted=True)  # after the page was queued
        delivery.deliver_due_notifications()
    (email,) = mailoutbox
    assert TITLE not in email.subject + email.body and incident.reference in email.subject
