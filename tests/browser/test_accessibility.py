"""axe-core (WCAG 2.1 AA) on the portal's main pages, with the demo data a new user sees (manage.py seed_demo):
dashboard, incident list, declare form, an incident, runbooks, on-call, a rotation calendar, post-mortems, a
post-mortem, metrics, the status page staff view and the public status page."""

import pytest
from django.core.management import call_command

from incidents.models import Incident, Runbook
from oncall.models import Rotation
from postmortems.models import PostMortem

from .axe import assert_accessible

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def log_in(page, live_server, username, password):
    page.goto(f"{live_server.url}/accounts/login/")
    assert_accessible(page)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/")


def test_main_pages_have_no_wcag_violations(live_server, new_context):
    call_command("seed_demo", verbosity=0)
    incident = Incident.objects.filter(title__icontains="API Slow Response Times").first() or Incident.objects.first()
    active = Incident.objects.active().filter(is_restricted=False).first()
    postmortem = PostMortem.objects.first()
    paths = [
        "/",
        "/incidents/",
        "/incidents/declare/",
        incident.get_absolute_url(),
        active.get_absolute_url(),
        "/runbooks/",
        Runbook.objects.first().get_absolute_url(),
        "/oncall/",
        f"/oncall/rotations/{Rotation.objects.first().pk}/",
        "/postmortems/",
        f"/postmortems/{postmortem.pk}/" if postmortem else "/postmortems/",
        "/metrics/",
        "/status/manage/",
        "/status/",
    ]
    page = new_context().new_page()
    log_in(page, live_server, "ic", "ic-demo-pass")
    failures = []
    for path in paths:
        page.goto(f"{live_server.url}{path}")
        try:
            assert_accessible(page)
        except AssertionError as error:
            failures.append(str(error))
    assert failures == [], "\n\n".join(failures)
