"""Layout defects on the incident page, measured in a real browser: a long runbook step keeps its number on its
own line's start (not alone above it), and the role select shows "Incident Commander" whole."""

import pytest

from incidents.models import Runbook
from incidents.services.checklist import attach_runbook
from tests.factories import ResponderFactory, declare

from .axe import assert_accessible

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

PASSWORD = "correct horse battery staple"


def test_runbook_steps_and_role_select_lay_out_whole(live_server, new_context):
    responder = ResponderFactory()
    incident = declare(by=responder, level="P1")
    runbook = Runbook.objects.get(slug="database-connection-exhaustion")
    attach_runbook(incident=incident, runbook=runbook, by=responder)

    page = new_context(viewport={"width": 1366, "height": 900}).new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(responder.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}{incident.get_absolute_url()}")

    steps = page.locator(".runbook-phase ol.checklist > li")
    assert steps.count() == 5
    for index in range(5):
        item, text = steps.nth(index), steps.nth(index).locator(".text")
        # The first line of the step's text starts on the item's first line: the number is beside it.
        assert text.bounding_box()["y"] - item.bounding_box()["y"] < 8, index

    select = page.locator("#card-roles select[name=role]")
    select.select_option(label="Incident Commander")
    fits = select.evaluate(
        """(el) => {
          const probe = document.createElement("span");
          probe.style.font = getComputedStyle(el).font;
          probe.style.position = "absolute";
          probe.textContent = el.options[el.selectedIndex].text;
          document.body.appendChild(probe);
          const needed = probe.getBoundingClientRect().width;
          probe.remove();
          return el.clientWidth - needed;
        }"""
    )
    assert fits > 16  # room for the text and the arrow
    assert_accessible(page)
