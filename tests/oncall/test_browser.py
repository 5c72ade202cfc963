"""The override form in a real browser: htmx shows field errors in place, and a saved override lands on the
rotation calendar, marked."""

from datetime import date

import pytest
from django.urls import reverse

from oncall.models import Override
from tests.browser.conftest import browser, new_context  # noqa: F401 - shared Playwright fixtures
from tests.factories import ManagerFactory

from .factories import guide_rotation

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_override_form_shows_errors_in_place_then_saves(live_server, new_context):  # noqa: F811
    rotation, people = guide_rotation(start_date=date(2026, 1, 5), name="Platform weekly")
    manager = ManagerFactory(username="oncall-browser-manager")
    context = new_context()
    page = context.new_page()
    page.goto(f"{live_server.url}{reverse('login')}")
    page.fill("input[name=username]", manager.username)
    page.fill("input[name=password]", "correct horse battery staple")
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}{reverse('oncall:override_create')}?rotation={rotation.pk}")
    page.select_option("select[name=person]", str(people["C"].pk))
    page.fill("input[name=start]", "2030-01-09T09:00")
    page.fill("input[name=end]", "2030-01-08T09:00")
    page.click("#override-form button[type=submit]")
    page.wait_for_selector("#override-form .errorlist")
    assert "must end after it starts" in page.inner_text("#override-form")
    assert page.url.endswith(f"?rotation={rotation.pk}")  # swapped in place, no navigation

    page.fill("input[name=end]", "2030-01-10T09:00")
    page.fill("input[name=reason]", "dentist")
    page.click("#override-form button[type=submit]")
    page.wait_for_url(f"**{reverse('oncall:rotation', args=[rotation.pk])}")
    override = Override.objects.get()
    assert override.person == people["C"] and override.reason == "dentist"
    page.goto(f"{live_server.url}{reverse('oncall:rotation', args=[rotation.pk])}?start=2030-01-06")
    assert "dentist" in page.inner_text("#rotation-calendar")
    assert page.locator(".override-mark").count() >= 1
