"""The public status page in a real browser: it renders under the Content-Security-Policy without a single
violation, and a visitor can subscribe with the form and confirm from the email."""

import os
import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from incidents.statuspage import tasks
from incidents.statuspage.models import Subscriber
from tests.browser.axe import assert_accessible
from tests.factories import ResponderFactory, ServiceFactory, declare

from .factories import maintenance, post_update

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def page():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (make chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        context.set_default_timeout(10_000)
        page = context.new_page()
        page.console_errors = []
        page.on("console", lambda message: message.type == "error" and page.console_errors.append(message.text))
        yield page
        context.close()
        browser.close()


@pytest.fixture
def run_tasks_inline(monkeypatch):
    # The live server commits for real; run what would go to the broker in-process instead.
    monkeypatch.setattr(tasks.send_confirmation_email, "delay", lambda *args: tasks.send_confirmation_email(*args))
    monkeypatch.setattr(tasks.send_update_emails, "delay", lambda *args: tasks.send_update_emails(*args))


def test_status_page_renders_under_csp_and_a_visitor_subscribes(live_server, page, run_tasks_inline):
    responder = ResponderFactory()
    api, web = ServiceFactory(name="API"), ServiceFactory(name="Web app")
    incident = declare(by=responder, level="P1", services=[api])
    post_update(
        incident,
        by=responder,
        title="API Performance Issues",
        description="<script>alert('x')</script> Some requests are slow.",
        workaround="Retry.",
        affected_services=[api],
        next_update_at=timezone.now() + timedelta(minutes=30),
    )
    maintenance(services=[web], title="Web app deploy freeze")

    response = page.goto(f"{live_server.url}/status/")
    assert response.status == 200
    assert "script-src" in response.headers.get("content-security-policy", "")
    assert page.locator(".overall").inner_text().startswith("Partial outage")
    assert page.locator(f"#service-{api.slug} .state").inner_text() == "Partial outage"
    assert page.locator(f"#service-{web.slug} .state").inner_text() == "Operational"
    card = page.locator(".public-incident").first.inner_text()
    assert card.startswith("API Performance Issues") and "investigating" in card.lower()
    assert card.count("API Performance Issues") == 1
    assert "<script>alert('x')</script>" in page.locator(".status-update").first.inner_text()  # shown, inert
    assert "Web app deploy freeze" in page.inner_text("body")
    page.screenshot(path="/tmp/statuspage.png", full_page=False)
    assert_accessible(page)

    page.click("text=Subscribe to updates")
    page.fill("input[name=email]", "visitor@example.com")
    page.check("input[name=scope][value=some]")
    page.check("label:has-text('Web app') input")
    page.click("button:has-text('Subscribe')")
    page.wait_for_url("**/status/subscribe/sent/")
    assert_accessible(page)
    assert "Check your inbox" in page.inner_text("h1")

    [message] = mail.outbox
    url = re.search(r"http\S+/status/subscribe/confirm/\S+", message.body).group(0)
    page.goto(url.replace("http://localhost:8000", live_server.url))
    page.click("button:has-text('Confirm subscription')")
    assert "You are subscribed" in page.inner_text("h1")
    assert "Web app" in page.inner_text("main")
    subscriber = Subscriber.objects.get(email="visitor@example.com")
    assert subscriber.is_active and list(subscriber.services.all()) == [web]
    assert page.console_errors == []
