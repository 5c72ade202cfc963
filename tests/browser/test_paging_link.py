"""Paging in Chromium: the incident page's paging panel, the one-click acknowledge link from the page email
(no login; a GET only shows the confirm button) and the panel after it."""

import pytest
from django.core import mail

from oncall.paging import delivery
from tests.factories import ResponderFactory, declare
from tests.paging.factories import paged_team

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

PASSWORD = "correct horse battery staple"


def test_acknowledge_link_from_the_page_email_then_the_panel_shows_it(live_server, new_context, settings, tmp_path):
    # The guide's escalation path, as the on-call migration seeds it (a flush after an earlier browser test
    # removes it; the seed is idempotent).
    import importlib

    from django.apps import apps

    importlib.import_module("oncall.migrations.0003_seed_guide_contacts_escalation").seed(apps, None)
    settings.SITE_URL = live_server.url
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    team = paged_team(oncall_channels=("email",))
    responder = ResponderFactory(first_name="Jane", last_name="Roe")
    incident = declare(by=responder, level="P1", services=[team.service], title="Checkout errors")
    delivery.deliver_due_notifications()
    link = next(word for word in mail.outbox[-1].body.split() if "/paging/ack/" in word)

    page = new_context().new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(responder.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{live_server.url}{incident.get_absolute_url()}")
    panel = page.locator("#paging-panel")
    assert "Paging · level 1" in panel.inner_text()
    assert "Platform Engineer (Primary on-call of Platform)" in panel.inner_text()
    page.screenshot(path=str(tmp_path / "panel-paging.png"))

    # The engineer's phone: no session, a GET shows a confirm button, the POST acknowledges.
    phone = new_context().new_page()
    phone.goto(link)
    phone.get_by_role("button", name=f"Acknowledge {incident.reference}").click()
    assert "Acknowledged." in phone.locator("main").inner_text()
    phone.screenshot(path=str(tmp_path / "link-done.png"))

    page.reload()
    text = page.locator("#paging-panel").inner_text()
    # One acknowledgement, one line: who, and through which channel.
    assert "Acknowledged by Platform Engineer" in text and "via link in the page" in text
    assert page.locator("#acknowledge-button").count() == 0
    page.screenshot(path=str(tmp_path / "panel-acknowledged.png"))
    print("screenshots in", tmp_path)
