"""A responder's outage in a real browser: log in, declare a P1, see it on the dashboard, follow it from two
browsers at once (a note written in one appears in the other without a reload), acknowledge, post an update,
tick a checklist item, resolve. Saves the README's screenshots on the way."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from incidents.models import Incident, Role, Status
from incidents.services.entries import add_timeline_entry
from incidents.services.roles import assign_role
from incidents.services.status import acknowledge_incident, change_status
from tests.factories import ResponderFactory, ServiceFactory, declare

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

PASSWORD = "correct horse battery staple"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def log_in(page, live_server, user):
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/")


def background_incidents(responder):
    """A few other incidents so the dashboard looks like a real bad day."""
    lead, scribe = (
        ResponderFactory(first_name="Jane", last_name="Smith"),
        ResponderFactory(first_name="Sam", last_name="Lee"),
    )
    now = timezone.now()
    p0 = declare(by=responder, level="P0", title="Payment system failure", detected_at=now)
    assign_role(incident=p0, role=Role.TECHNICAL_LEAD, holder=lead, by=responder)
    assign_role(incident=p0, role=Role.SCRIBE, holder=scribe, by=responder)
    acknowledge_incident(incident=p0, by=lead)
    p2 = declare(by=scribe, level="P2", title="CSV export intermittently failing", detected_at=now)
    change_status(incident=p2, to=Status.IDENTIFIED, by=scribe)
    p1 = declare(by=lead, level="P1", title="Search API returning 502s", detected_at=now)
    done = declare(by=responder, level="P3", title="Typo on the pricing page", detected_at=now)
    change_status(incident=done, to=Status.RESOLVED, by=responder)
    # Move them back in time so the dashboard shows a realistic afternoon: the P0 is 42 minutes old and has
    # missed its 15-minute update cadence; the P2 is two hours in.
    Incident.objects.filter(pk=p0.pk).update(
        detected_at=now - timedelta(minutes=44),
        declared_at=now - timedelta(minutes=42),
        acknowledged_at=now - timedelta(minutes=39),
        response_due_at=now - timedelta(minutes=27),
        next_update_due_at=now - timedelta(minutes=4),
    )
    Incident.objects.filter(pk=p1.pk).update(
        detected_at=now - timedelta(minutes=49),
        declared_at=now - timedelta(minutes=47),
        response_due_at=now + timedelta(minutes=13),
        next_update_due_at=now + timedelta(minutes=13),
    )
    Incident.objects.filter(pk=p2.pk).update(
        detected_at=now - timedelta(hours=2, minutes=10),
        declared_at=now - timedelta(hours=2),
        response_due_at=now + timedelta(hours=2),
        next_update_due_at=now + timedelta(minutes=35),
    )


def test_declare_follow_and_resolve_an_incident(live_server, new_context):
    from playwright.sync_api import expect

    commander = ResponderFactory(username="john.doe", first_name="John", last_name="Doe")
    colleague = ResponderFactory(username="jane.roe", first_name="Jane", last_name="Roe")
    ServiceFactory(name="Backend API", slug="backend-api")
    ServiceFactory(name="Database", slug="database")
    background_incidents(colleague)

    first = new_context().new_page()
    log_in(first, live_server, commander)

    # Declare a P1 with the guide's descriptions beside each level.
    first.get_by_role("link", name="Declare an incident").click()
    first.get_by_label("Title").fill("API slow response times")
    expect(first.get_by_text("Major feature unavailable")).to_be_visible()
    first.locator("label.severity-option.sev-p1").click()
    first.get_by_label("Backend API").check()
    first.locator("#id_impact").fill("30% of API requests take more than 5 s.")
    first.get_by_role("button", name="Declare incident").click()
    expect(first.locator("#incident-title")).to_contain_text("API slow response times")
    incident_url = first.url
    reference = first.locator("#incident-title .ref").inner_text()

    # It is on the dashboard, under P1.
    first.goto(f"{live_server.url}/")
    expect(first.locator(".sev-group.sev-p1")).to_contain_text(reference)

    # A second responder follows the same incident in another browser.
    second = new_context().new_page()
    log_in(second, live_server, colleague)
    second.goto(incident_url)
    first.goto(incident_url)

    first.get_by_label("Note (Markdown)").fill("Rolled back the **14:00 migration**.")
    expect(first.locator("#note-preview strong")).to_have_text("14:00 migration")
    first.get_by_role("button", name="Add", exact=True).click()
    # No reload: the 2-second cursor poll brings it to the other browser.
    expect(second.locator("#timeline-entries")).to_contain_text("Rolled back the 14:00 migration.", timeout=8_000)
    expect(first.locator("#timeline-entries")).to_contain_text("Rolled back the 14:00 migration.")
    assert first.locator("#timeline-entries li", has_text="Rolled back").count() == 1

    # Acknowledge from the second browser; the first sees the header change through the poll.
    second.get_by_role("button", name="Acknowledge", exact=True).click()
    expect(second.locator("#paging-panel")).to_contain_text("Acknowledged by Jane Roe")
    expect(first.locator("#paging-panel")).to_contain_text("Acknowledged by Jane Roe", timeout=8_000)

    # Post an internal update in the guide's template.
    first.get_by_text("Post an internal update").click()
    first.get_by_label("What we know").fill("Slow queries since the migration.")
    first.get_by_label("What we're doing").fill("Rolling back; adding the missing index.")
    first.get_by_role("button", name="Post internal update").click()
    expect(first.locator("#card-updates .update-list")).to_contain_text("Slow queries since the migration.")

    # Tick the first triage checklist item.
    triage = first.locator("details.checklist-phase", has_text="Triage")
    triage.locator(".check-toggle").first.click()
    expect(first.locator("details.checklist-phase", has_text="Triage").locator(".check-item.is-checked")).to_have_count(
        1
    )

    first.wait_for_timeout(2500)  # let the other browser's poll catch up before the pictures
    first.set_viewport_size({"width": 1400, "height": 1300})
    first.evaluate("window.scrollTo(0, 0)")
    first.keyboard.press("Escape")
    first.screenshot(path=str(SCREENSHOTS / "incident.png"), full_page=False)

    # Resolve.
    first.locator("#card-status label.choice", has_text="Resolved").click()
    first.get_by_role("button", name="Change status").click()
    expect(first.locator("#incident-status")).to_have_text("Resolved")
    expect(second.locator("#incident-status")).to_have_text("Resolved", timeout=8_000)

    # Dashboard picture: the resolved one moved to "Recently resolved".
    dashboard = new_context(viewport={"width": 1400, "height": 720}).new_page()
    log_in(dashboard, live_server, commander)
    expect(dashboard.locator("#dashboard-body")).to_contain_text("Recently resolved")
    expect(dashboard.locator(".dash-side")).to_contain_text(reference)
    dashboard.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=False)


def test_keyboard_can_reach_and_tick_a_checklist_item(live_server, new_context):
    from playwright.sync_api import expect

    responder = ResponderFactory()
    incident = declare(by=responder, level="P2", title="Keyboard check")
    page = new_context().new_page()
    log_in(page, live_server, responder)
    page.goto(f"{live_server.url}{incident.get_absolute_url()}")
    # Facts such as "IC assigned" tick themselves at declaration: take an item nobody has ticked yet, and wait for
    # the count to grow (waiting for "1" passed at once, and the test ended with its request still in flight).
    checked = page.locator(".check-item.is-checked")
    already = checked.count()
    toggle = page.locator(".check-item:not(.is-checked) .check-toggle").first
    toggle.focus()
    page.keyboard.press("Enter")
    expect(checked).to_have_count(already + 1)
    # htmx keeps focus on the redrawn button (same id), so a keyboard user carries on where they were.
    focused_id = page.evaluate("document.activeElement && document.activeElement.id")
    assert focused_id.startswith("check-")


def test_dashboard_updates_itself(live_server, new_context):
    from playwright.sync_api import expect

    responder = ResponderFactory()
    page = new_context().new_page()
    log_in(page, live_server, responder)
    expect(page.locator("#dashboard-body")).to_contain_text("All clear")
    declare(by=responder, level="P0", title="Database server down", detected_at=timezone.now() - timedelta(minutes=3))
    expect(page.locator(".sev-group.sev-p0")).to_contain_text("Database server down", timeout=15_000)


def test_timeline_polls_only_while_the_tab_is_visible(live_server, new_context):
    responder = ResponderFactory()
    incident = declare(by=responder, level="P2", title="Visibility check")
    page = new_context().new_page()
    log_in(page, live_server, responder)
    polls = []
    page.on("request", lambda request: polls.append(request.url) if "?after=" in request.url else None)
    page.goto(f"{live_server.url}{incident.get_absolute_url()}")
    page.wait_for_timeout(2500)
    assert polls, "the timeline polls every 2 s while visible"

    # Hide the tab: no more polls.
    page.evaluate(
        "Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});"
        "document.dispatchEvent(new Event('visibilitychange'));"
    )
    page.wait_for_timeout(500)  # let a poll already in flight finish
    polls.clear()
    page.wait_for_timeout(4500)
    assert polls == []

    # Visible again: it polls again (immediately, on the visibilitychange event) and catches up.
    add_timeline_entry(incident=incident, by=responder, body="written while hidden")
    page.evaluate(
        "Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'visible'});"
        "document.dispatchEvent(new Event('visibilitychange'));"
    )
    page.locator("#timeline-entries", has_text="written while hidden").wait_for(timeout=8_000)
    assert polls
