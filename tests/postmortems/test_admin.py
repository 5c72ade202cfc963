from datetime import date, timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from postmortems.models import ActionItem
from postmortems.services.action_items import add_action_item
from postmortems.services.publishing import change_postmortem_status
from tests.postmortems.factories import postmortem_for, resolved_incident

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


@pytest.fixture
def item(responder):
    postmortem = postmortem_for(resolved_incident(by=responder))
    return add_action_item(
        postmortem=postmortem,
        by=responder,
        title="Add checks",
        owner=responder,
        due_date=timezone.localdate() + timedelta(days=2),
    )


def test_changelists_with_filters_render(admin_client, item):
    for url in (
        reverse("admin:postmortems_actionitem_changelist") + "?overdue=yes",
        reverse("admin:postmortems_actionitem_changelist") + "?overdue=no&status__exact=open&priority__exact=medium",
        reverse("admin:postmortems_postmortem_changelist") + "?status__exact=draft",
        reverse("admin:postmortems_postmortem_change", args=[item.postmortem_id]),
        reverse("admin:postmortems_actionitem_change", args=[item.pk]),
        reverse("admin:postmortems_actionitem_add"),
    ):
        assert admin_client.get(url).status_code == 200, url
    page = admin_client.get(reverse("admin:postmortems_actionitem_changelist") + "?overdue=no").content.decode()
    assert "Add checks" in page


def test_admin_action_marks_done_through_the_service(admin_client, item):
    response = admin_client.post(
        reverse("admin:postmortems_actionitem_changelist"),
        {"action": "mark_done", "_selected_action": [item.pk]},
    )
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.status == "done" and item.completed_at is not None
    assert item.incident.timeline.filter(body__contains="**Done**").exists()


def test_admin_edit_with_past_due_date_is_a_form_error(admin_client, item):
    url = reverse("admin:postmortems_actionitem_change", args=[item.pk])
    response = admin_client.post(
        url,
        {
            "title": "Add checks",
            "description": "",
            "owner": item.owner_id,
            "due_date": "2001-01-01",
            "priority": "high",
            "kind": "detect",
        },
    )
    assert response.status_code == 200
    assert "The due date cannot be in the past." in response.content.decode()
    item.refresh_from_db()
    assert item.priority == "medium"


def test_admin_adds_action_item_through_the_service(admin_client, item):
    due = (timezone.localdate() + timedelta(days=4)).isoformat()
    response = admin_client.post(
        reverse("admin:postmortems_actionitem_add"),
        {
            "postmortem": item.postmortem_id,
            "title": "Second",
            "description": "",
            "owner": item.owner_id,
            "due_date": due,
            "priority": "low",
            "kind": "process",
        },
    )
    assert response.status_code == 302
    second = ActionItem.objects.get(title="Second")
    assert second.incident_id == item.incident_id and second.created_by.username == "root"


def test_published_postmortem_content_cannot_be_edited_in_admin(admin_client, responder, item):
    postmortem = item.postmortem
    change_postmortem_status(postmortem=postmortem, to="in_review", by=responder)
    change_postmortem_status(postmortem=postmortem, to="published", by=responder)
    url = reverse("admin:postmortems_postmortem_change", args=[postmortem.pk])
    data = {
        "title": "Changed",
        "owner": responder.pk,
        "users_affected": "",
        "revenue_impact": "",
        "summary": "x",
        "impact": "",
        "root_cause": "",
        "what_went_well": "",
        "what_could_be_improved": "",
        "lessons_learned": "",
        "action_items-TOTAL_FORMS": "1",
        "action_items-INITIAL_FORMS": "1",
        "action_items-MIN_NUM_FORMS": "0",
        "action_items-MAX_NUM_FORMS": "1000",
        "action_items-0-id": item.pk,
        "action_items-0-postmortem": postmortem.pk,
        "timeline_items-TOTAL_FORMS": "0",
        "timeline_items-INITIAL_FORMS": "0",
        "timeline_items-MIN_NUM_FORMS": "0",
        "timeline_items-MAX_NUM_FORMS": "1000",
    }
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert "published; its content is final" in response.content.decode()
    postmortem.refresh_from_db()
    assert postmortem.title != "Changed"


def test_admin_edits_an_overdue_item_keeping_its_past_due_date(admin_client, responder):
    with time_machine.travel("2025-01-16 09:00:00+00:00", tick=False):
        overdue = add_action_item(
            postmortem=postmortem_for(resolved_incident(by=responder)),
            by=responder,
            title="Add checks",
            owner=responder,
            due_date=date(2025, 1, 20),
        )
    data = {
        "title": "Add checks",
        "description": "Started",
        "owner": responder.pk,
        "priority": "high",
        "kind": "detect",
    }
    url = reverse("admin:postmortems_actionitem_change", args=[overdue.pk])
    with time_machine.travel("2025-02-03 09:00:00+00:00", tick=False):
        assert admin_client.post(url, {**data, "due_date": "2025-01-20"}).status_code == 302
        response = admin_client.post(url, {**data, "due_date": "2025-01-27"})
    assert response.status_code == 200 and "The due date cannot be in the past." in response.content.decode()
    overdue.refresh_from_db()
    assert overdue.due_date == date(2025, 1, 20) and overdue.description == "Started" and overdue.priority == "high"
