from datetime import date, timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from incidents.services import status as status_services
from postmortems.models import ActionItem, PostMortem
from postmortems.services import action_items as action_items_services
from postmortems.services.publishing import change_postmortem_status
from tests.factories import ManagerFactory, ResponderFactory, ViewerFactory, declare
from tests.postmortems.factories import postmortem_for, resolved_incident


def report_emails(callbacks):
    """The on-commit callbacks that send the post-mortem report (others, such as live pages' announcements, aside)."""
    return [callback for callback in callbacks if "send_postmortem_report" in repr(callback)]


pytestmark = pytest.mark.django_db


@pytest.fixture
def postmortem(responder):
    return postmortem_for(resolved_incident(by=responder, title="Checkout API slow"))


def _url(name, postmortem, **kwargs):
    return reverse(f"postmortems:{name}", kwargs={"pk": postmortem.pk, **kwargs})


def test_every_page_renders_for_a_responder(client, responder, postmortem):
    client.force_login(responder)
    item = action_items_services.add_action_item(
        postmortem=postmortem,
        by=responder,
        title="Add index check",
        owner=responder,
        due_date=timezone.localdate() + timedelta(days=3),
    )
    pages = [
        reverse("postmortems:list"),
        reverse("postmortems:list") + "?status=draft",
        _url("detail", postmortem),
        _url("edit", postmortem),
        _url("timeline", postmortem),
        _url("email_preview", postmortem),
        reverse("postmortems:my_action_items"),
        reverse("postmortems:my_action_items") + "?show=all",
        reverse("postmortems:edit_action_item", kwargs={"item_id": item.pk}),
        reverse("postmortems:metrics"),
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
    detail = client.get(_url("detail", postmortem)).content.decode()
    assert "Checkout API slow" in detail and "Add index check" in detail
    assert "Time to resolve" in detail


def test_dashboard_shows_my_open_action_items(client, responder, postmortem):
    action_items_services.add_action_item(
        postmortem=postmortem,
        by=responder,
        title="Document rollback procedure",
        owner=responder,
        due_date=timezone.localdate() + timedelta(days=2),
    )
    client.force_login(responder)
    response = client.get(reverse("incidents:dashboard"))
    assert response.status_code == 200
    assert "Document rollback procedure" in response.content.decode()
    client.force_login(ResponderFactory())
    assert "Document rollback procedure" not in client.get(reverse("incidents:dashboard")).content.decode()


def test_restricted_incident_postmortem_is_404_for_outsiders(client, responder):
    incident = resolved_incident(by=responder, is_restricted=True)
    postmortem = postmortem_for(incident)
    client.force_login(ResponderFactory())
    for name in ("detail", "edit", "timeline", "download_markdown", "email_preview"):
        assert client.get(_url(name, postmortem)).status_code == 404, name
    assert client.post(_url("change_status", postmortem), {"status": "in_review"}).status_code == 404
    assert client.get(reverse("postmortems:for_incident", kwargs={"reference": incident.reference})).status_code == 404
    assert postmortem.title not in client.get(reverse("postmortems:list")).content.decode()
    client.force_login(responder)
    assert client.get(_url("detail", postmortem)).status_code == 200


def test_incident_link_redirects_to_its_postmortem(client, responder, postmortem):
    client.force_login(responder)
    url = reverse("postmortems:for_incident", kwargs={"reference": postmortem.incident.reference})
    assert client.get(url)["Location"] == postmortem.get_absolute_url()
    missing = reverse("postmortems:for_incident", kwargs={"reference": "INC-99999"})
    assert client.get(missing).status_code == 404
    assert client.get(reverse("postmortems:for_incident", kwargs={"reference": "nonsense"})).status_code == 404


def test_edit_saves_sections_and_preview_renders_sanitised_markdown(client, responder, postmortem):
    client.force_login(responder)
    data = {
        "title": "Post-mortem: slow checkout",
        "users_affected": "30%",
        "revenue_impact": "$4,000",
        "summary": "Checkout was slow.",
        "impact": "EU users",
        "root_cause": "Missing index",
        "what_went_well": "- Quick detection",
        "what_could_be_improved": "- Migration testing",
        "lessons_learned": "- Verify indexes",
    }
    response = client.post(_url("edit", postmortem), data)
    assert response.status_code == 302
    postmortem.refresh_from_db()
    assert postmortem.revenue_impact == "$4,000" and postmortem.what_went_well == "- Quick detection"
    preview = client.post(
        _url("preview", postmortem) + "?field=lessons_learned",
        {"summary": "ignored", "lessons_learned": "**Bold** <script>alert(1)</script> [x](javascript:alert(1))"},
        HTTP_HX_REQUEST="true",
    )
    html = preview.content.decode()
    assert preview.status_code == 200
    assert "<strong>Bold</strong>" in html and "<script" not in html and "javascript:" not in html


def test_edit_with_empty_title_is_a_form_error_not_a_500(client, responder, postmortem):
    client.force_login(responder)
    response = client.post(_url("edit", postmortem), {"title": ""})
    assert response.status_code == 400
    assert "This field is required" in response.content.decode()


def test_viewer_cannot_edit_or_change_status(client, postmortem):
    client.force_login(ViewerFactory())
    assert client.get(_url("detail", postmortem)).status_code == 200
    assert client.get(_url("edit", postmortem)).status_code == 403
    assert client.post(_url("change_status", postmortem), {"status": "in_review"}).status_code == 403
    postmortem.refresh_from_db()
    assert postmortem.status == "draft"


def test_publish_button_only_for_those_who_may_publish(client, responder, postmortem):
    change_postmortem_status(postmortem=postmortem, to="in_review", by=responder)
    other = ResponderFactory()
    client.force_login(other)
    page = client.get(_url("detail", postmortem)).content.decode()
    assert "Publish and email the report" not in page
    assert client.post(_url("change_status", postmortem), {"status": "published"}).status_code == 403
    client.force_login(ManagerFactory())
    assert "Publish and email the report" in client.get(_url("detail", postmortem)).content.decode()


def test_publish_flow_through_the_pages(client, responder, postmortem, django_capture_on_commit_callbacks):
    client.force_login(responder)
    assert client.post(_url("change_status", postmortem), {"status": "in_review"}).status_code == 302
    with django_capture_on_commit_callbacks() as callbacks:
        assert client.post(_url("change_status", postmortem), {"status": "published"}).status_code == 302
    assert len(report_emails(callbacks)) == 1
    with django_capture_on_commit_callbacks() as callbacks:
        assert client.post(_url("resend", postmortem)).status_code == 302
    assert len(report_emails(callbacks)) == 1
    postmortem.refresh_from_db()
    assert postmortem.is_published
    assert client.get(_url("edit", postmortem)).status_code == 302  # published: back to the page


def test_invalid_transition_is_a_400_with_the_reason(client, responder, postmortem):
    client.force_login(responder)
    response = client.post(_url("change_status", postmortem), {"status": "published"})
    assert response.status_code == 400
    assert "cannot become Published" in response.content.decode()
    response = client.post(_url("resend", postmortem))
    assert response.status_code == 400
    assert "Only a published post-mortem can be sent" in response.content.decode()


def test_markdown_download_follows_the_guide_template(client, responder, postmortem):
    client.force_login(responder)
    response = client.get(_url("download_markdown", postmortem))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    assert "attachment;" in response["Content-Disposition"]
    text = response.content.decode()
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == [
        "## Incident Summary",
        "## Impact",
        "## Timeline",
        "## Root Cause",
        "## What Went Well",
        "## What Could Be Improved",
        "## Action Items",
        "## Lessons Learned",
    ]
    assert text.startswith("# Post-mortem: Checkout API slow")
    assert "- Duration: 2 hours 15 minutes" in text


def test_schedule_meeting_through_the_page(client, responder, postmortem):
    client.force_login(responder)
    meeting = timezone.localtime(postmortem.due_at - timedelta(hours=2))
    response = client.post(
        _url("schedule", postmortem),
        {"meeting_at": meeting.strftime("%Y-%m-%dT%H:%M"), "location": "Room 4", "attendees": [responder.pk]},
    )
    assert response.status_code == 302
    postmortem.refresh_from_db()
    assert postmortem.meeting_location == "Room 4"
    assert postmortem.incident.checklist_items.get(text="Post-mortem scheduled").is_checked


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"meeting_at": "not a date"},
        {"meeting_at": "2000-01-01T10:00"},  # before the resolution
        {"meeting_at": "2025-01-20T10:00", "attendees": ["999999"]},
        {"meeting_at": "2025-01-20T10:00", "attendees": ["x"]},
    ],
)
def test_bad_meeting_input_is_a_form_error(client, responder, postmortem, data):
    client.force_login(responder)
    assert client.post(_url("schedule", postmortem), data).status_code == 400


@pytest.mark.parametrize(
    ("meeting_at", "message"),
    [
        ("9999-12-31T23:59", "Choose a meeting time within a year from now"),
        ("0001-01-01T00:00", "The meeting cannot be before the incident was detected."),
    ],
)
def test_meeting_date_out_of_range_is_an_error_on_the_field(client, responder, postmortem, meeting_at, message):
    client.force_login(responder)
    response = client.post(_url("schedule", postmortem), {"meeting_at": meeting_at, "location": "Room 4"})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert response.context["meeting_form"].errors["meeting_at"][0].startswith(message)
    postmortem.refresh_from_db()
    assert postmortem.meeting_at is None


def test_action_item_due_date_far_ahead_is_an_error_on_the_field(client, responder, postmortem):
    client.force_login(responder)
    data = {"title": "Add validation", "owner": responder.pk, "priority": "high", "kind": "detect"}
    response = client.post(_url("add_action_item", postmortem), {**data, "due_date": "9999-12-31"})
    assert response.status_code == 400
    assert "Choose a due date within two years" in response.content.decode()
    assert "due_date" in response.context["action_item_form"].errors
    assert not ActionItem.objects.exists()
    due = timezone.localdate() + timedelta(days=5)
    assert client.post(_url("add_action_item", postmortem), {**data, "due_date": due}).status_code == 302
    item = ActionItem.objects.get()
    url = reverse("postmortems:edit_action_item", kwargs={"item_id": item.pk})
    response = client.post(url, {**data, "due_date": "9999-12-31"})
    assert response.status_code == 400 and "due_date" in response.context["form"].errors
    item.refresh_from_db()
    assert item.due_date == due


@pytest.mark.parametrize(
    ("occurred_at", "message"),
    [
        ("9999-12-31T23:59", "A timeline line cannot be in the future."),
        ("0001-01-01T00:00", "Choose a time within two years before the incident"),
    ],
)
def test_timeline_line_date_out_of_range_is_an_error(client, responder, postmortem, occurred_at, message):
    client.force_login(responder)
    response = client.post(_url("timeline_add", postmortem), {"occurred_at": occurred_at, "text": "Deploy"})
    assert response.status_code == 400 and message in response.content.decode()
    assert not postmortem.timeline_items.filter(text="Deploy").exists()


def test_add_action_item_and_change_its_status_with_htmx(client, responder, postmortem):
    client.force_login(responder)
    due = (timezone.localdate() + timedelta(days=5)).isoformat()
    response = client.post(
        _url("add_action_item", postmortem),
        {"title": "Add validation", "owner": responder.pk, "due_date": due, "priority": "high", "kind": "detect"},
    )
    assert response.status_code == 302
    item = ActionItem.objects.get(postmortem=postmortem)
    url = reverse("postmortems:action_item_status", kwargs={"item_id": item.pk})
    response = client.post(url, {"status": "done"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and f'id="action-{item.pk}"' in response.content.decode()
    item.refresh_from_db()
    assert item.status == "done"
    assert client.post(url, {"status": "finished"}, HTTP_HX_REQUEST="true").status_code == 422
    response = client.post(url, {"status": "open", "next": "https://evil.example/"})
    assert response["Location"] == item.get_absolute_url()


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"title": "x", "owner": "abc", "due_date": "2030-01-01", "priority": "high", "kind": "detect"},
        {"title": "x", "owner": "1", "due_date": "yesterday", "priority": "high", "kind": "detect"},
        {"title": "x", "owner": "1", "due_date": "2001-01-01", "priority": "high", "kind": "detect"},
        {"title": "x", "owner": "1", "due_date": "2030-01-01", "priority": "urgent", "kind": "detect"},
        {"title": "x" * 500, "owner": "1", "due_date": "2030-01-01", "priority": "high", "kind": "blame"},
    ],
)
def test_bad_action_item_input_is_a_form_error(client, responder, postmortem, data):
    client.force_login(responder)
    assert client.post(_url("add_action_item", postmortem), data).status_code == 400
    assert not ActionItem.objects.exists()


def test_timeline_page_selects_lines_and_adds_one(client, responder, postmortem):
    client.force_login(responder)
    page = client.get(_url("timeline", postmortem)).content.decode()
    entries = list(postmortem.incident.timeline.order_by("occurred_at", "id"))
    assert all(f'value="entry:{entry.pk}"' in page for entry in entries)
    first = entries[0]
    response = client.post(
        _url("timeline", postmortem), {"include": [f"entry:{first.pk}"], f"text-entry:{first.pk}": "Declared"}
    )
    assert response.status_code == 302
    assert list(postmortem.timeline_items.filter(is_included=True).values_list("text", flat=True)) == ["Declared"]
    response = client.post(_url("timeline_add", postmortem), {"occurred_at": "2025-01-15T13:50", "text": "Deploy"})
    assert response.status_code == 302
    added = postmortem.timeline_items.get(text="Deploy")
    assert f'value="item:{added.pk}"' in client.get(_url("timeline", postmortem)).content.decode()
    assert client.post(_url("timeline_add", postmortem), {"occurred_at": "bad", "text": ""}).status_code == 400
    assert client.post(_url("timeline", postmortem), {f"text-entry:{first.pk}": "  "}).status_code == 400
    assert client.post(_url("timeline", postmortem), {"include": ["junk", "entry:1" + "9" * 30]}).status_code == 400


def test_overdue_list_is_for_managers(client, responder, postmortem):
    with time_machine.travel(timezone.now() - timedelta(days=10), tick=False):
        item = action_items_services.add_action_item(
            postmortem=postmortem,
            by=responder,
            title="Late item",
            owner=responder,
            due_date=timezone.localdate() + timedelta(days=1),
        )
    client.force_login(responder)
    assert client.get(reverse("postmortems:overdue_action_items")).status_code == 403
    client.force_login(ManagerFactory())
    response = client.get(reverse("postmortems:overdue_action_items"))
    assert response.status_code == 200 and "Late item" in response.content.decode()
    assert item.is_overdue


@pytest.mark.parametrize(
    "query",
    [
        "?start=2025-13-01",
        "?start=2025-02-01&end=2025-01-01",
        "?start=1900-01-01&end=2025-01-01",
        "?end=9999-12-31",
        "?start=2000-01-01&end=2099-12-31",
        "?start=%00",
        "?start=9999-99-99&end=0001-01-01",
        "?end=0001-01-01",
    ],
)
def test_metrics_bad_period_is_a_400_not_a_500(client, responder, query):
    client.force_login(responder)
    assert client.get(reverse("postmortems:metrics") + query).status_code == 400
    assert client.get(reverse("postmortems:metrics_csv") + query).status_code == 400


def test_pages_need_login(client, postmortem):
    for url in (_url("detail", postmortem), reverse("postmortems:metrics"), reverse("postmortems:list")):
        assert client.get(url).status_code == 302


def test_action_item_of_hidden_incident_is_404(client, responder):
    incident = resolved_incident(by=responder, is_restricted=True)
    item = action_items_services.add_action_item(
        postmortem=postmortem_for(incident),
        by=responder,
        title="Secret fix",
        owner=responder,
        due_date=date.today() + timedelta(days=3),
    )
    client.force_login(ResponderFactory())
    assert client.get(reverse("postmortems:edit_action_item", kwargs={"item_id": item.pk})).status_code == 404
    url = reverse("postmortems:action_item_status", kwargs={"item_id": item.pk})
    assert client.post(url, {"status": "done"}).status_code == 404


def test_unresolved_incident_has_no_postmortem(responder):
    incident = declare(by=responder)
    assert not PostMortem.objects.filter(incident=incident).exists()
    status_services.change_status(incident=incident, to="identified", by=responder)
    assert not PostMortem.objects.filter(incident=incident).exists()


JUNK_VALUES = ["", " ", "x" * 30000, "\x00", "-1", "99999999999999999999999", "2025-02-30", "<script>", "[]", "%"]


def test_no_view_answers_500_to_junk(client, responder, postmortem):
    """Every form field and query parameter of every page, fed junk: a clear 4xx or a page, never a 500."""
    item = action_items_services.add_action_item(
        postmortem=postmortem,
        by=responder,
        title="Fix",
        owner=responder,
        due_date=timezone.localdate() + timedelta(days=3),
    )
    client.force_login(responder)
    entry = postmortem.timeline_items.first().entry_id
    item_urls = {
        name: reverse(f"postmortems:{name}", kwargs={"item_id": item.pk})
        for name in ("edit_action_item", "action_item_status")
    }
    posts = {
        _url("edit", postmortem): ["title", "summary", "users_affected", "revenue_impact"],
        _url("preview", postmortem) + "?field=junk": ["summary"],
        _url("preview", postmortem): ["nothing"],
        _url("timeline", postmortem): ["include", "text-entry:1", "text-item:x"],
        _url("timeline", postmortem) + "?": [f"text-entry:{entry}"],
        _url("timeline_add", postmortem): ["occurred_at", "text"],
        _url("schedule", postmortem): ["meeting_at", "attendees", "location"],
        _url("change_status", postmortem): ["status"],
        _url("add_action_item", postmortem): ["title", "owner", "due_date", "priority", "kind"],
        item_urls["edit_action_item"]: ["title", "owner", "due_date", "priority", "kind"],
        item_urls["action_item_status"]: ["status", "next"],
    }
    for url, fields in posts.items():
        for value in JUNK_VALUES:
            for htmx in ({}, {"HTTP_HX_REQUEST": "true"}):
                response = client.post(url, {field: value for field in fields}, **htmx)
                assert response.status_code < 500, (url, value)
    gets = [
        reverse("postmortems:list"),
        reverse("postmortems:my_action_items"),
        reverse("postmortems:metrics"),
        reverse("postmortems:metrics_csv"),
    ]
    for url in gets:
        for value in JUNK_VALUES:
            for param in ("status", "show", "start", "end"):
                assert client.get(url, {param: value}).status_code < 500, (url, param, value)
    assert client.get("/postmortems/99999999999999999999/").status_code == 404


def _overdue_item(responder, postmortem):
    """An item due 2025-01-20, seen on 2025-02-03: two weeks overdue."""
    with time_machine.travel("2025-01-16 09:00:00+00:00", tick=False):
        return action_items_services.add_action_item(
            postmortem=postmortem,
            by=responder,
            title="Add migration checks",
            owner=responder,
            due_date=date(2025, 1, 20),
        )


@time_machine.travel("2025-02-03 09:00:00+00:00", tick=False)
def test_overdue_action_item_edits_its_owner_and_description_keeping_its_date(client, responder, postmortem):
    item = _overdue_item(responder, postmortem)
    new_owner = ResponderFactory()
    client.force_login(responder)
    url = reverse("postmortems:edit_action_item", kwargs={"item_id": item.pk})
    response = client.post(
        url,
        {
            "title": "Add migration checks",
            "description": "Half done: the staging check runs.",
            "owner": new_owner.pk,
            "due_date": "2025-01-20",
            "priority": "high",
            "kind": "prevent",
        },
    )
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.owner == new_owner and item.description == "Half done: the staging check runs."
    assert item.priority == "high" and item.due_date == date(2025, 1, 20)


@time_machine.travel("2025-02-03 09:00:00+00:00", tick=False)
def test_overdue_action_item_moved_to_another_past_date_is_an_error_on_the_due_date(client, responder, postmortem):
    item = _overdue_item(responder, postmortem)
    client.force_login(responder)
    url = reverse("postmortems:edit_action_item", kwargs={"item_id": item.pk})
    data = {"title": "Add migration checks", "owner": responder.pk, "priority": "low", "kind": "prevent"}
    response = client.post(url, {**data, "due_date": "2025-01-27"})
    assert response.status_code == 400
    assert response.context["form"].errors["due_date"] == ["The due date cannot be in the past."]
    item.refresh_from_db()
    assert item.due_date == date(2025, 1, 20) and item.priority == "medium"
    # A date from today on is a fine new date for an overdue item.
    assert client.post(url, {**data, "due_date": "2025-02-10"}).status_code == 302
    item.refresh_from_db()
    assert item.due_date == date(2025, 2, 10)
