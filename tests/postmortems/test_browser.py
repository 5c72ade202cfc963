"""The emailed post-mortem report, rendered by Chromium the way a mail client would show its HTML part (no
stylesheet, only the inlined styles), checked for layout, and kept as docs/screenshots/postmortem-report.png."""

import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import time_machine

from incidents.models import Role
from incidents.services.entries import add_timeline_entry, record_five_whys
from incidents.services.roles import assign_role
from incidents.services.status import acknowledge_incident, change_status
from postmortems.emails import render_report_html
from postmortems.report import build_report
from postmortems.services.action_items import add_action_item
from postmortems.services.editing import schedule_meeting, update_content, update_timeline
from postmortems.services.publishing import change_postmortem_status
from tests.factories import ResponderFactory, ServiceFactory, declare

# Playwright's sync API runs an event loop in this thread; the test itself is synchronous.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "postmortem-report.png"


def at(text):
    return datetime.fromisoformat(f"2025-01-15T{text}:00+00:00")


def guide_example():
    """The guide's worked post-mortem (a migration without its index), walked through the portal."""
    commander = ResponderFactory(first_name="John", last_name="Doe", username="jdoe")
    lead = ResponderFactory(first_name="Priya", last_name="Raman", username="praman")
    api = ServiceFactory(name="Backend API", slug="backend-api")
    with time_machine.travel(at("14:35"), tick=False):
        incident = declare(
            by=commander,
            title="API slow response times",
            detected_at=at("14:32"),
            services=[api],
            summary="Database migration script failed to create a required index; API responses slowed "
            "to 8-12 s for most users.",
        )
        assign_role(incident=incident, role=Role.TECHNICAL_LEAD, holder=lead, by=commander)
    with time_machine.travel(at("14:37"), tick=False):
        acknowledge_incident(incident=incident, by=lead)
    with time_machine.travel(at("14:41"), tick=False):
        for when, text in (
            ("14:00", "Database migration deployed"),
            ("14:32", "Slow response alerts triggered"),
            ("14:40", "Root cause identified (missing index on `user_progress`)"),
        ):
            add_timeline_entry(incident=incident, by=commander, body=text, occurred_at=at(when))
        change_status(incident=incident, to="identified", by=commander)
    with time_machine.travel(at("14:55"), tick=False):
        add_timeline_entry(incident=incident, by=lead, body="Fix deployed: index created")
    with time_machine.travel(at("15:10"), tick=False):
        change_status(incident=incident, to="monitoring", by=commander, note="Monitoring shows improvement")
    with time_machine.travel(at("16:45"), tick=False):
        record_five_whys(
            incident=incident,
            problem="API responses took 8-12 seconds",
            whys=[
                "Queries on user_progress did full table scans",
                "The index was missing",
                "The migration failed to create it",
                "Index creation is not validated after migrations",
            ],
            root_cause="Database migration script failed to create the required index on `user_progress`, "
            "causing full table scans.",
            by=commander,
        )
        incident = change_status(incident=incident, to="resolved", by=commander)
    postmortem = incident.postmortem
    with time_machine.travel(at("17:30"), tick=False):
        wanted = {
            "Database migration deployed": None,
            "Slow response alerts triggered": None,
            "Incident declared": "Incident declared (P1)",
            "Root cause identified": None,
            "Fix deployed": None,
            "Monitoring": "Monitoring shows improvement",
            "to **Resolved**": "Incident resolved",
        }
        included, texts = [], {}
        for entry in incident.timeline.all():
            for needle, text in wanted.items():
                if needle in entry.body and "Five whys" not in entry.body:
                    included.append(f"entry:{entry.pk}")
                    if text:
                        texts[f"entry:{entry.pk}"] = text
        update_timeline(postmortem=postmortem, by=commander, include=included, texts=texts)
        update_content(
            postmortem=postmortem,
            by=commander,
            users_affected="30%",
            revenue_impact="about $4,000",
            what_went_well="- Quick detection (3 minutes)\n- Effective triage\n- Clear communication",
            what_could_be_improved="- Migration testing process\n- Index creation validation\n- Rollback procedures",
            lessons_learned="- Always verify indexes after migrations\n- Need better pre-deployment testing\n"
            "- Communication worked well",
        )
        schedule_meeting(
            postmortem=postmortem,
            by=commander,
            meeting_at=at("17:30") + timedelta(hours=20),
            location="Room 4 / video call",
        )
        for title, owner, days, kind, priority in (
            ("Add migration validation checks", lead, 5, "prevent", "high"),
            ("Update deployment checklist", commander, 2, "process", "medium"),
            ("Improve monitoring for slow queries", lead, 10, "detect", "high"),
            ("Document rollback procedure", commander, 4, "mitigate", "low"),
        ):
            add_action_item(
                postmortem=postmortem,
                by=commander,
                title=title,
                owner=owner,
                due_date=at("17:30").date() + timedelta(days=days),
                kind=kind,
                priority=priority,
            )
        postmortem = change_postmortem_status(postmortem=postmortem, to="in_review", by=commander)
        postmortem = change_postmortem_status(postmortem=postmortem, to="published", by=commander)
    return postmortem


def test_report_email_renders_cleanly_in_chromium(settings):
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    settings.SITE_URL = "https://incidents.example.com"
    postmortem = guide_example()
    html = render_report_html(build_report(postmortem.pk))
    assert "<style" not in html

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 760, "height": 1000})
            page.set_content(html)
            # Styles come only from the inlined attributes, as in a mail client.
            assert page.eval_on_selector(".cta", "e => getComputedStyle(e).backgroundColor") == "rgb(30, 64, 175)"
            assert page.eval_on_selector(".banner", "e => getComputedStyle(e).backgroundColor") == "rgb(17, 24, 39)"
            assert page.evaluate("document.documentElement.scrollWidth") <= 760  # no horizontal scrolling
            container = page.eval_on_selector(".container", "e => e.getBoundingClientRect().width")
            assert 600 <= container <= 700
            headings = page.eval_on_selector_all("h2", "els => els.map(e => e.textContent.trim())")
            assert headings == [
                "Incident Summary",
                "Impact",
                "Timeline",
                "Root Cause",
                "What Went Well",
                "What Could Be Improved",
                "Action Items",
                "Lessons Learned",
            ]
            times = page.eval_on_selector_all(".timeline td.when", "els => els.map(e => e.textContent)")
            assert times == ["14:00", "14:32", "14:35", "14:40", "14:55", "15:10", "16:45"]
            assert page.eval_on_selector(".cta", "e => e.href") == (
                f"https://incidents.example.com/postmortems/{postmortem.pk}/"
            )
            assert page.locator(".items tr").count() == 5  # header + four action items
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 20_000


def _logged_in_page(browser, live_server, client, user):
    client.force_login(user)
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    page = context.new_page()
    page.set_default_timeout(10_000)
    return page


def test_live_preview_and_metrics_page_in_chromium(live_server, client, settings):
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import expect, sync_playwright

    postmortem = guide_example()
    commander = postmortem.owner
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = _logged_in_page(browser, live_server, client, commander)
            errors = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            # Published: editing is closed, so reopen a fresh draft from another resolved incident.
            with time_machine.travel(at("18:00"), tick=False):
                incident = declare(by=commander, title="Cache stampede")
                change_status(incident=incident, to="resolved", by=commander)
            draft = incident.postmortem
            page.goto(f"{live_server.url}/postmortems/{draft.pk}/edit/")
            page.fill("#id_what_went_well", "**Fast rollback** <script>alert(1)</script>")
            expect(page.locator("#preview-what_went_well strong")).to_have_text("Fast rollback")
            assert page.locator("#preview-what_went_well script").count() == 0
            page.screenshot(path="/tmp/postmortem-edit.png", full_page=False)

            page.goto(f"{live_server.url}/postmortems/{postmortem.pk}/")
            expect(page.locator("h1")).to_have_text(postmortem.title)
            page.screenshot(path="/tmp/postmortem-detail.png", full_page=True)

            page.goto(f"{live_server.url}/metrics/?start=2025-01-01&end=2025-03-31")
            assert page.locator("svg.chart").count() == 5
            page.screenshot(path="/tmp/postmortem-metrics.png", full_page=True)
            assert not [e for e in errors if "Content Security Policy" in e], errors
        finally:
            browser.close()
