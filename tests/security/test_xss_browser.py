"""The XSS corpus in a real browser: Chromium loads the pages that show it (the incident page with its
timeline, five whys and updates, the public status page, the post-mortem) and no dialog ever fires, and no
script is even attempted (CSP would report a blocked inline script as a securitypolicyviolation)."""

import os

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import UserFactory

from .test_xss_and_csp import seed_corpus_everywhere

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs a loop in this thread

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
COLLECT_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline') + ' ' + (e.sample || ''));
});
"""


@pytest.fixture
def chromium_page():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (make chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context()
        context.set_default_timeout(15_000)
        yield context
        context.close()
        browser.close()


def pages_showing_the_corpus(incident):
    urls = [reverse("incidents:detail", kwargs={"reference": incident.reference}), "/status/"]
    postmortem = getattr(incident, "postmortem", None)
    if postmortem is not None and hasattr(postmortem, "get_absolute_url"):
        urls.append(postmortem.get_absolute_url())
    return urls


def test_corpus_never_fires_a_dialog_in_chromium(live_server, chromium_page):
    incident = seed_corpus_everywhere()
    viewer = UserFactory(is_superuser=True, is_staff=True)
    client = Client()
    client.force_login(viewer)
    chromium_page.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    chromium_page.add_init_script(COLLECT_VIOLATIONS)
    page = chromium_page.new_page()
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    for path in pages_showing_the_corpus(incident):
        response = page.goto(live_server.url + path)
        assert response.status == 200, path
        page.wait_for_load_state("load")
        text = page.inner_text("body")
        assert "alert(" in text, f"{path} does not show the corpus as text"
        violations = page.evaluate("window.__cspViolations")
        script_violations = [v for v in violations if v.startswith("script-src")]
        assert not script_violations, f"{path}: {script_violations}"
    assert dialogs == []
    # The listener itself works: a script the test runs (outside the page's CSP) does raise a dialog.
    page.evaluate("alert('listener check')")
    assert dialogs == ["listener check"]
