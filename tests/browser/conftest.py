"""Browser tests: Playwright's sync API driving Debian's Chromium against pytest-django's live_server."""

import os

import pytest

# Playwright's sync API runs an event loop in this thread; Django refuses ORM calls from a thread with a running
# loop unless told that this is deliberate (the test code itself is synchronous).
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(autouse=True)
def guide_data(transactional_db):
    """The guide's severity levels, checklists, runbooks and groups, as the migration seeds them.

    A transactional test ends with a flush. serialized_rollback should bring the migrated data back for the next
    one, but once Playwright's sync API runs in this thread the restore does not happen (Django's connection
    handler keeps per-context state), so re-seed here; the seed is idempotent."""
    import importlib

    from django.apps import apps

    from incidents.models import SeverityPolicy

    if not SeverityPolicy.objects.exists():
        importlib.import_module("incidents.migrations.0002_seed_guide").seed(apps, None)


# Module scope: other test modules start Playwright themselves, and a second sync Playwright cannot start while
# one is still running in this thread.
@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (make chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def new_context(browser):
    contexts = []

    def make(**kwargs):
        context = browser.new_context(**{"viewport": {"width": 1400, "height": 900}, **kwargs})
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
