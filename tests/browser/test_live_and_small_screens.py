"""Live push and small screens in a real browser.

Push needs an ASGI server (a WSGI server cannot hold an event stream open): these tests serve the portal with
uvicorn in a thread, against the test database and the test Redis. The screenshots in docs/screenshots/ (390 px
and 1366 px wide) are the README's."""

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from incidents.live.hub import HUB_CLIENT_NAME
from incidents.models import Role
from incidents.services.entries import add_timeline_entry
from incidents.services.roles import assign_role
from incidents.services.status import change_status
from tests.browser.axe import assert_accessible
from tests.factories import ResponderFactory, ServiceFactory, declare

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 900}


@pytest.fixture
def asgi_server(transactional_db):
    """The portal under uvicorn (the ASGI server of the Procfile), static files served by Django's handler."""
    import socket

    import uvicorn
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    from incidentportal.asgi import application

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        ASGIStaticFilesHandler(application), host="127.0.0.1", port=port, lifespan="off", log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def log_in(page, base_url, user):
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base_url}/")


def wait_until_live(page):
    from playwright.sync_api import expect

    expect(page.locator('[sse-connect][data-live-state="open"]')).to_have_count(1)


def test_a_note_is_pushed_to_the_incident_page_and_polling_stops_while_the_stream_is_open(asgi_server, new_context):
    from playwright.sync_api import expect

    responder = ResponderFactory()
    incident = declare(by=responder, level="P1", title="Checkout latency")
    page = new_context().new_page()
    log_in(page, asgi_server, responder)
    requests = []
    page.on("request", lambda request: requests.append(request.url) if "?after=" in request.url else None)
    page.goto(f"{asgi_server}{incident.get_absolute_url()}")
    wait_until_live(page)
    page.wait_for_timeout(500)  # the catch-up request made when the stream opened
    requests.clear()
    page.wait_for_timeout(4500)  # two poll periods: while the stream is open nothing polls
    assert requests == []

    add_timeline_entry(incident=incident, by=responder, body="Pushed: rolled back **api-7**.")
    expect(page.locator("#timeline-entries")).to_contain_text("Pushed: rolled back api-7.")
    assert len(requests) == 1, requests  # one cursor request, made because of the event

    # The stream drops (Redis connection of the hub killed): the page falls back to polling and catches up.
    server = redis.Redis.from_url(settings.REDIS_URL)
    for client in server.client_list():
        if client.get("name") == HUB_CLIENT_NAME:
            server.client_kill_filter(_id=client["id"])
    add_timeline_entry(incident=incident, by=responder, body="Written while the stream was down.")
    expect(page.locator("#timeline-entries")).to_contain_text("Written while the stream was down.", timeout=15_000)
    wait_until_live(page)  # and the stream comes back
    add_timeline_entry(incident=incident, by=responder, body="Pushed again.")
    expect(page.locator("#timeline-entries")).to_contain_text("Pushed again.")
    assert page.locator("#timeline-entries li", has_text="Pushed again.").count() == 1


def test_dashboard_and_incident_list_update_live(asgi_server, new_context):
    from playwright.sync_api import expect

    responder = ResponderFactory()
    context = new_context()
    dashboard = context.new_page()
    log_in(dashboard, asgi_server, responder)
    listing = context.new_page()
    listing.goto(f"{asgi_server}/incidents/")
    wait_until_live(dashboard)
    wait_until_live(listing)
    incident = declare(by=responder, level="P0", title="Database server down")
    expect(dashboard.locator(".sev-group.sev-p0")).to_contain_text("Database server down")
    expect(listing.locator("#results")).to_contain_text("Database server down")
    change_status(incident=incident, to="identified", by=responder)
    expect(listing.locator("#results tr", has_text=incident.reference)).to_contain_text("Identified")


def _bad_day(responder):
    lead = ResponderFactory(first_name="Jane", last_name="Smith")
    ServiceFactory(name="Backend API", slug="backend-api")
    now = timezone.now()
    incident = declare(by=responder, level="P1", title="API slow response times", detected_at=now)
    assign_role(incident=incident, role=Role.TECHNICAL_LEAD, holder=lead, by=responder)
    for body in (
        "p95 latency on `/api/orders` at 5.2 s since 14:02.",
        "Rolled back the **14:00 migration**.",
        "Adding the missing index on `orders.customer_id`.",
    ):
        add_timeline_entry(incident=incident, by=lead, body=body)
    declare(by=lead, level="P2", title="CSV export intermittently failing", detected_at=now - timedelta(hours=1))
    return incident


def test_small_screen_collapses_the_navigation_and_puts_the_responder_actions_first(asgi_server, new_context):
    from playwright.sync_api import expect

    responder = ResponderFactory(username="john.doe", first_name="John", last_name="Doe")
    incident = _bad_day(responder)
    phone = new_context(viewport=PHONE, is_mobile=True, has_touch=True).new_page()
    log_in(phone, asgi_server, responder)

    menu = phone.get_by_role("button", name="Menu")
    expect(menu).to_be_visible()
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(phone.get_by_role("navigation", name="Main")).to_be_hidden()
    phone.screenshot(path=str(SCREENSHOTS / "dashboard-390.png"), full_page=False)
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(phone.get_by_role("link", name="Incidents", exact=True)).to_be_visible()
    phone.screenshot(path=str(SCREENSHOTS / "menu-390.png"), full_page=False)
    assert_accessible(phone)
    phone.keyboard.press("Escape")
    expect(phone.get_by_role("navigation", name="Main")).to_be_hidden()

    phone.goto(f"{asgi_server}{incident.get_absolute_url()}")
    actions = phone.get_by_role("group", name="Responder actions")
    expect(actions.get_by_role("button", name="Acknowledge")).to_be_in_viewport()
    expect(actions.get_by_role("link", name="Change status")).to_be_in_viewport()

    def top(selector):
        return phone.locator(selector).bounding_box()["y"]

    # The cards come in the order a responder needs them: note, status, then the timeline.
    assert top("#card-note") < top("#card-status") < top("#card-timeline")
    phone.screenshot(path=str(SCREENSHOTS / "incident-390.png"), full_page=False)
    assert_accessible(phone)

    actions.get_by_role("link", name="Change status").click()
    expect(phone.get_by_role("button", name="Change status")).to_be_in_viewport()
    actions = phone.get_by_role("group", name="Responder actions")
    phone.evaluate("window.scrollTo(0, 0)")
    actions.get_by_role("button", name="Acknowledge").click()
    expect(phone.locator("#paging-panel")).to_contain_text("Acknowledged by John Doe")


def test_wide_screen_keeps_the_two_columns_and_the_full_navigation(asgi_server, new_context):
    from playwright.sync_api import expect

    responder = ResponderFactory(username="john.doe", first_name="John", last_name="Doe")
    incident = _bad_day(responder)
    page = new_context(viewport=LAPTOP).new_page()
    log_in(page, asgi_server, responder)
    expect(page.get_by_role("button", name="Menu")).to_be_hidden()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "dashboard-1366.png"), full_page=False)
    page.goto(f"{asgi_server}{incident.get_absolute_url()}")
    expect(page.get_by_role("group", name="Responder actions")).to_be_hidden()
    status, timeline = page.locator("#card-status").bounding_box(), page.locator("#card-timeline").bounding_box()
    assert status["x"] > timeline["x"] + timeline["width"] - 1  # the status card sits in the side column
    page.screenshot(path=str(SCREENSHOTS / "incident-1366.png"), full_page=False)
    assert_accessible(page)
