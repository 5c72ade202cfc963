import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from incidents.services.entries import add_timeline_entry
from incidents.services.roles import add_responder
from postmortems.emails import report_recipients
from postmortems.models import PostMortem
from postmortems.services.action_items import add_action_item
from postmortems.services.editing import schedule_meeting, update_content
from postmortems.services.publishing import change_postmortem_status, resend_report
from tests.factories import ResponderFactory, SecurityFactory, ViewerFactory
from tests.postmortems.factories import postmortem_for, resolved_incident, run_enqueued

pytestmark = pytest.mark.django_db

HOSTILE = (
    "**Quick detection** <script>alert('x')</script> <img src=x onerror=alert(1)> "
    "[click](javascript:alert(1)) [docs](https://example.com/runbook)"
)


@pytest.fixture
def stakeholders(settings):
    settings.POSTMORTEM_STAKEHOLDER_EMAILS = ["cto@example.com", "Support@Example.com"]
    settings.SITE_URL = "https://portal.example.com"
    return settings.POSTMORTEM_STAKEHOLDER_EMAILS


def publish(postmortem, by, django_capture_on_commit_callbacks):
    postmortem = change_postmortem_status(postmortem=postmortem, to="in_review", by=by)
    with django_capture_on_commit_callbacks() as callbacks:
        postmortem = change_postmortem_status(postmortem=postmortem, to="published", by=by)
    assert run_enqueued(callbacks) == 1
    return postmortem


def test_published_report_is_multipart_with_sanitised_html_and_absolute_links(
    responder, stakeholders, django_capture_on_commit_callbacks
):
    incident = resolved_incident(by=responder, title="Checkout API slow")
    postmortem = postmortem_for(incident)
    update_content(postmortem=postmortem, by=responder, what_went_well=HOSTILE, revenue_impact="$4,000")
    add_action_item(
        postmortem=postmortem,
        by=responder,
        title="Add migration validation checks",
        owner=responder,
        due_date=timezone.localdate() + timedelta(days=5),
        kind="prevent",
        priority="high",
    )
    publish(postmortem, responder, django_capture_on_commit_callbacks)

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.subject == f"[P1] Post-mortem {incident.reference}: Checkout API slow"
    assert len(message.alternatives) == 1
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    text = message.body

    # Plain-text part: the guide's template, with absolute links.
    assert "## What Went Well" in text and "## Action Items" in text
    assert "1. [ ] Add migration validation checks (Owner:" in text
    assert f"https://portal.example.com/postmortems/{postmortem.pk}/" in text
    assert "- Revenue Impact: $4,000" in text

    # HTML part: sanitised Markdown, CSS inlined, every link absolute.
    assert "<strong>Quick detection</strong>" in html
    assert "<script" not in html and "onerror" not in html and "javascript:" not in html
    assert "<style" not in html and 'style="' in html
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs and all(href.startswith(("https://", "http://", "mailto:")) for href in hrefs)
    assert f"https://portal.example.com/postmortems/{postmortem.pk}/" in hrefs
    assert f"https://portal.example.com/incidents/{incident.reference}/" in hrefs
    assert "https://example.com/runbook" in hrefs
    assert "Add migration validation checks" in html and "2 hours 15 minutes" in html

    postmortem.refresh_from_db()
    assert postmortem.report_sent_at is not None


def test_distribution_is_responders_attendees_and_stakeholders_once_each(
    responder, stakeholders, django_capture_on_commit_callbacks
):
    helper = ResponderFactory(email="helper@example.com")
    guest = ViewerFactory(email="guest@example.com")
    incident = resolved_incident(by=responder)
    add_responder(incident=incident, user=helper, by=responder)
    postmortem = postmortem_for(incident)
    schedule_meeting(
        postmortem=postmortem,
        by=responder,
        meeting_at=postmortem.due_at - timedelta(hours=1),
        attendees=[responder, guest],
    )
    # Stakeholder address of an attendee in another case: counted once.
    guest.email = "SUPPORT@example.com"
    guest.save()
    recipients = report_recipients(PostMortem.objects.get(pk=postmortem.pk))
    assert recipients == [responder.email, helper.email, "SUPPORT@example.com", "cto@example.com"]
    publish(postmortem, responder, django_capture_on_commit_callbacks)
    assert mail.outbox[0].to == recipients


def test_restricted_incident_report_goes_only_to_people_who_may_see_it(
    responder, stakeholders, django_capture_on_commit_callbacks
):
    security = SecurityFactory(email="sec@example.com")
    outsider = ResponderFactory(email="outsider@example.com")
    incident = resolved_incident(by=responder, is_restricted=True)
    postmortem = postmortem_for(incident)
    postmortem.attendees.add(security, outsider)
    recipients = report_recipients(postmortem)
    assert set(recipients) == {responder.email, "sec@example.com"}


def test_resend_sends_the_report_again(responder, stakeholders, django_capture_on_commit_callbacks):
    postmortem = publish(postmortem_for(resolved_incident(by=responder)), responder, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks() as callbacks:
        resend_report(postmortem=postmortem, by=responder)
    run_enqueued(callbacks)
    assert len(mail.outbox) == 2
    assert mail.outbox[0].subject == mail.outbox[1].subject


def test_report_render_costs_a_fixed_number_of_queries(responder, django_assert_max_num_queries):
    from postmortems.emails import render_report_html
    from postmortems.report import build_report

    incident = resolved_incident(by=responder)
    for n in range(30):
        add_timeline_entry(incident=incident, by=responder, body=f"note {n}")
    postmortem = postmortem_for(incident)
    with django_assert_max_num_queries(6):
        render_report_html(build_report(postmortem.pk))


def test_line_breaks_in_a_title_do_not_break_the_subject(responder, django_capture_on_commit_callbacks):
    from incidents.models import Incident

    incident = resolved_incident(by=responder)
    Incident.objects.filter(pk=incident.pk).update(title="Checkout\r\nBcc: victim@example.com")
    publish(postmortem_for(incident), responder, django_capture_on_commit_callbacks)
    assert mail.outbox[0].subject.endswith("Checkout Bcc: victim@example.com")
    assert mail.outbox[0].bcc == []
