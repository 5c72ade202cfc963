"""The responder pages through the Django client: every page and action, the htmx partials, bad input
(missing fields, illegal transitions, stale forms) as form errors, and permissions (viewers read, cannot act)."""

from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from incidents import selectors
from incidents.models import (
    ChecklistItem,
    ChecklistPhase,
    EntryKind,
    Incident,
    Role,
    Runbook,
    Status,
    StatusUpdate,
    TimelineEntry,
)
from incidents.services import roles as roles_services
from incidents.services import status as status_services
from incidents.services.entries import add_timeline_entry
from tests.factories import ResponderFactory, SecurityFactory, ServiceFactory, ViewerFactory, declare, severity

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def url(name, incident, **kwargs):
    return reverse(f"incidents:{name}", kwargs={"reference": incident.reference, **kwargs})


@pytest.fixture
def incident(responder):
    return declare(by=responder, level="P1", title="API slow response times")


@pytest.fixture
def rclient(client, responder):
    client.force_login(responder)
    return client


# --- login, dashboard ---------------------------------------------------------------------------------------


def test_pages_need_login(client, incident):
    for path in ["/", "/incidents/", incident.get_absolute_url(), "/runbooks/", "/incidents/declare/"]:
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_login_page_and_log_in_and_out(client, responder):
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert b'<label for="id_username">' in page.content
    response = client.post(
        "/accounts/login/", {"username": responder.username, "password": "correct horse battery staple"}
    )
    assert response.status_code == 302 and response["Location"] == "/"
    dashboard = client.get("/")
    assert (
        responder.get_username().encode() in dashboard.content
        or responder.get_full_name().encode() in dashboard.content
    )
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_login_with_wrong_password_shows_error(client, responder):
    response = client.post("/accounts/login/", {"username": responder.username, "password": "nope"})
    assert response.status_code == 200
    assert b"form-errors" in response.content


def test_dashboard_groups_active_incidents_by_severity(rclient, responder):
    p0 = declare(by=responder, level="P0", title="Database down")
    p2 = declare(by=responder, level="P2", title="Export broken")
    resolved = declare(by=responder, level="P3", title="Typo on login page")
    status_services.change_status(incident=resolved, to=Status.RESOLVED, by=responder)
    response = rclient.get("/")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.index(p0.reference) < html.index(p2.reference)  # most severe first
    assert 'class="sev-group sev-p0"' in html and 'class="sev-group sev-p2"' in html
    # the resolved one is listed under "Recently resolved", not among the active ones
    assert "Recently resolved" in html and resolved.reference in html
    active_part = html[: html.index("Recently resolved")]
    assert f"{resolved.reference} Typo" not in active_part.split("Needs an update")[0]
    assert "Incident Commander" in html  # role chips name the roles


def test_dashboard_countdown_turns_amber_then_red(rclient, responder, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    incident = declare(by=responder, level="P1")
    assert 'class="countdown ok"' in rclient.get("/").content.decode()
    time_machine.shift(timedelta(minutes=45))  # 15 of 60 minutes left: last third
    assert 'class="countdown warn"' in rclient.get("/").content.decode()
    time_machine.shift(timedelta(minutes=20))
    html = rclient.get("/").content.decode()
    assert 'class="countdown bad"' in html and "overdue by" in html
    status_services.acknowledge_incident(incident=incident, by=responder)
    assert "missed (target 1 h)" in rclient.get("/").content.decode()


def test_dashboard_lists_incidents_that_missed_their_update_cadence(rclient, responder, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    late = declare(by=responder, level="P0", title="Payments failing")
    time_machine.shift(timedelta(minutes=16))
    fresh = declare(by=responder, level="P0", title="Auth down")
    html = rclient.get("/").content.decode()
    needs = html[html.index("Needs an update") : html.index("Recently resolved")]
    assert late.reference in needs and fresh.reference not in needs


def test_dashboard_htmx_poll_returns_only_the_body(rclient, incident):
    response = rclient.get("/", **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="dashboard-body"')
    assert 'hx-trigger="every 10s, poll-now, sse:incident"' in html and "data-poll-visible" in html
    assert "<html" not in html


def test_dashboard_hides_restricted_incidents_from_others(client, responder):
    secret = declare(by=SecurityFactory(), level="P0", title="Data breach", is_restricted=True)
    client.force_login(responder)
    assert secret.reference not in client.get("/").content.decode()
    insider = SecurityFactory()
    client.force_login(insider)
    html = client.get("/").content.decode()
    assert secret.reference in html and "restricted-badge" in html


def test_dashboard_action_items_section_only_when_model_and_partial_exist(rclient, incident):
    from django.apps import apps
    from django.template import TemplateDoesNotExist
    from django.template.loader import get_template

    html = rclient.get("/").content.decode()
    try:
        apps.get_model("postmortems", "ActionItem")
        get_template("postmortems/partials/my_action_items.html")
    except (LookupError, TemplateDoesNotExist):
        assert "My open action items" not in html
    else:
        assert "My open action items" in html


# --- declare ------------------------------------------------------------------------------------------------


def test_declare_form_shows_the_guide_for_each_severity(rclient):
    html = rclient.get("/incidents/declare/").content.decode()
    assert "Complete service outage" in html and "Database server down" in html
    assert "Cosmetic or minor issue" in html and "UI glitches" in html
    assert "Respond within 15 min; updates every 15 min." in html  # P0
    assert "Respond within 4 h; updates every 1 h." in html  # P2
    assert "Respond by the next business day." in html  # P3
    assert '<label for="id_title">' in html


def test_declare_creates_incident_and_redirects_to_it(rclient, responder):
    service = ServiceFactory(name="Backend API", slug="backend-api")
    runbook = Runbook.objects.first()
    other = ResponderFactory()
    response = rclient.post(
        "/incidents/declare/",
        {
            "title": "API slow response times",
            "severity": severity("P1").pk,
            "services": [service.pk],
            "detection_source": "monitoring_alert",
            "impact": "30% of requests over 5s",
            "users_affected_percent": "30",
            "runbook": runbook.pk,
            "incident_commander": other.pk,
        },
    )
    incident = Incident.objects.get()
    assert response.status_code == 302 and response["Location"] == incident.get_absolute_url()
    assert incident.severity.level == "P1" and list(incident.services.all()) == [service]
    assert selectors.current_holder(incident, Role.INCIDENT_COMMANDER) == other
    assert incident.runbook_links.filter(runbook=runbook).exists()
    page = rclient.get(response["Location"]).content.decode()
    assert "API slow response times" in page and "declared" in page


def test_declare_missing_fields_is_a_form_error(rclient):
    response = rclient.post("/incidents/declare/", {"title": "", "detection_source": "user_report"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "This field is required." in html
    assert Incident.objects.count() == 0


def test_declare_in_the_future_is_a_field_error(rclient):
    future = (timezone.now() + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    response = rclient.post(
        "/incidents/declare/",
        {"title": "x", "severity": severity("P2").pk, "detection_source": "user_report", "detected_at": future},
    )
    assert response.status_code == 400
    assert "Detection time cannot be in the future." in response.content.decode()


def test_viewer_cannot_declare(client):
    client.force_login(ViewerFactory())
    assert client.get("/incidents/declare/").status_code == 403
    assert client.post("/incidents/declare/", {"title": "x"}).status_code == 403
    assert Incident.objects.count() == 0


# --- incident page ------------------------------------------------------------------------------------------


def test_incident_page_header(rclient, incident):
    html = rclient.get(incident.get_absolute_url()).content.decode()
    assert incident.reference in html and "API slow response times" in html
    assert "Impact is confirmed; the cause is not yet known." in html  # the status meaning
    assert "Incident Commander" in html and "Not acknowledged yet" in html
    assert 'id="paging-panel"' in html
    assert "Triage" in html and "Closure" in html  # checklists copied from the guide


def test_incident_page_is_404_for_unknown_and_restricted(rclient):
    secret = declare(by=SecurityFactory(), level="P0", title="Breach", is_restricted=True)
    assert rclient.get(secret.get_absolute_url()).status_code == 404
    assert rclient.get("/incidents/INC-99999/").status_code == 404
    assert rclient.get("/incidents/garbage/").status_code == 404
    # the poll must not leak either
    poll = rclient.get(secret.get_absolute_url() + "?after=0", **HTMX)
    assert poll.status_code == 204


def test_viewer_reads_but_cannot_act(client, incident):
    viewer = ViewerFactory()
    client.force_login(viewer)
    page = client.get(incident.get_absolute_url())
    assert page.status_code == 200
    assert b"responder role" in page.content
    item = incident.checklist_items.first()
    posts = [
        (url("acknowledge", incident), {}),
        (url("change_status", incident), {"status": "identified", "current_status": "investigating"}),
        (url("change_severity", incident), {"severity": severity("P0").pk, "reason": "x", "current_severity": "P1"}),
        (url("assign_role", incident), {"role": "scribe", "claim": "on"}),
        (url("tick_checklist_item", incident, item_id=item.pk), {"checked": "on"}),
        (url("attach_runbook", incident), {"runbook": Runbook.objects.first().pk}),
        (url("record_five_whys", incident), {"problem": "p"}),
        (url("post_internal_update", incident), {"status": "investigating", "what_we_know": "x"}),
        (url("post_external_update", incident), {"status": "investigating", "title": "t", "description": "d"}),
        (url("add_note", incident), {"body": "hello", "kind": "note"}),
    ]
    before = TimelineEntry.objects.count()
    for path, data in posts:
        assert client.post(path, data).status_code == 403, path
        assert client.post(path, data, **HTMX).status_code == 403, path
    assert TimelineEntry.objects.count() == before
    incident.refresh_from_db()
    assert incident.acknowledged_at is None


def test_acknowledge_full_page_and_htmx(rclient, responder, incident):
    response = rclient.post(url("acknowledge", incident))
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.acknowledged_by == responder
    # a second click (stale button) is harmless
    again = rclient.post(url("acknowledge", incident), **HTMX)
    assert again.status_code == 200
    assert 'id="incident-header"' in again.content.decode() and "Acknowledged" in again.content.decode()
    assert again["HX-Trigger"] == "timeline-refresh"


def test_change_status_htmx_redraws_card_and_header(rclient, incident):
    response = rclient.post(
        url("change_status", incident),
        {"status": "identified", "current_status": "investigating", "note": "found it"},
        **HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="card-status"')
    assert 'id="incident-header" class' in html and 'hx-swap-oob="true"' in html
    incident.refresh_from_db()
    assert incident.status == Status.IDENTIFIED


def test_change_status_shows_each_states_meaning(rclient, incident):
    html = rclient.get(incident.get_absolute_url()).content.decode()
    assert "The cause is known and a fix or mitigation is being worked on." in html
    assert "A fix or mitigation is in place; watching that it holds." in html


def test_illegal_transition_is_a_form_error_not_a_500(rclient, incident):
    # Investigating -> Closed is not allowed: the choice is not even offered, so the form refuses it.
    response = rclient.post(
        url("change_status", incident), {"status": "closed", "current_status": "investigating"}, **HTMX
    )
    assert response.status_code == 422
    assert "Select a valid choice" in response.content.decode()
    full = rclient.post(url("change_status", incident), {"status": "closed", "current_status": "investigating"})
    assert full.status_code == 400 and b"<html" in full.content


def test_closing_with_open_closure_checklist_is_a_form_error(rclient, responder, incident):
    status_services.change_status(incident=incident, to=Status.RESOLVED, by=responder)
    response = rclient.post(url("change_status", incident), {"status": "closed", "current_status": "resolved"}, **HTMX)
    assert response.status_code == 422
    assert "Complete the closure checklist before closing" in response.content.decode()
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED


def test_stale_status_form_is_refused(rclient, responder, incident):
    status_services.change_status(incident=incident, to=Status.IDENTIFIED, by=ResponderFactory())
    # The page was drawn while it was still Investigating: the user meant to move *from* Investigating.
    response = rclient.post(
        url("change_status", incident), {"status": "monitoring", "current_status": "investigating"}, **HTMX
    )
    assert response.status_code == 422
    assert "became Identified while this form was open" in response.content.decode()
    incident.refresh_from_db()
    assert incident.status == Status.IDENTIFIED


def test_change_severity_needs_reason(rclient, incident):
    missing = rclient.post(
        url("change_severity", incident),
        {"severity": severity("P0").pk, "reason": "", "current_severity": "P1"},
        **HTMX,
    )
    assert missing.status_code == 422 and "This field is required." in missing.content.decode()
    same = rclient.post(
        url("change_severity", incident),
        {"severity": severity("P1").pk, "reason": "x", "current_severity": "P1"},
        **HTMX,
    )
    assert same.status_code == 422 and "is already P1" in same.content.decode()
    ok = rclient.post(
        url("change_severity", incident),
        {"severity": severity("P0").pk, "reason": "all users affected", "current_severity": "P1"},
    )
    assert ok.status_code == 302
    incident.refresh_from_db()
    assert incident.severity.level == "P0"


def test_stale_severity_form_is_refused(rclient, responder, incident):
    status_services.change_severity(incident=incident, severity=severity("P0"), by=responder, reason="worse")
    response = rclient.post(
        url("change_severity", incident),
        {"severity": severity("P2").pk, "reason": "x", "current_severity": "P1"},
        **HTMX,
    )
    assert response.status_code == 422 and "became P0 while this form was open" in response.content.decode()


def test_assign_and_claim_roles(rclient, responder, incident):
    other = ResponderFactory()
    assert rclient.post(url("assign_role", incident), {"role": "technical_lead", "holder": other.pk}).status_code == 302
    assert selectors.current_holder(incident, Role.TECHNICAL_LEAD) == other
    claim = rclient.post(url("assign_role", incident), {"role": "scribe", "claim": "on"}, **HTMX)
    assert claim.status_code == 200 and 'id="card-roles"' in claim.content.decode()
    assert selectors.current_holder(incident, Role.SCRIBE) == responder


def test_assign_role_errors(rclient, responder, incident):
    nobody = rclient.post(url("assign_role", incident), {"role": "scribe"}, **HTMX)
    assert nobody.status_code == 422 and "Choose who takes the role" in nobody.content.decode()
    already = rclient.post(url("assign_role", incident), {"role": "incident_commander", "holder": responder.pk}, **HTMX)
    assert already.status_code == 422 and "is already Incident Commander" in already.content.decode()
    bad_role = rclient.post(url("assign_role", incident), {"role": "boss", "holder": responder.pk})
    assert bad_role.status_code == 400


def test_tick_and_untick_checklist_item(rclient, responder, incident):
    item = incident.checklist_items.filter(phase=ChecklistPhase.TRIAGE).first()
    response = rclient.post(url("tick_checklist_item", incident, item_id=item.pk), {"checked": "on"}, **HTMX)
    assert response.status_code == 200 and 'id="card-checklists"' in response.content.decode()
    item.refresh_from_db()
    assert item.checked_by == responder
    assert rclient.post(url("tick_checklist_item", incident, item_id=item.pk), {"checked": ""}).status_code == 302
    item.refresh_from_db()
    assert not item.is_checked


def test_tick_item_of_another_incident_is_404(rclient, responder, incident):
    other = declare(by=responder, level="P3")
    item = other.checklist_items.first()
    assert rclient.post(url("tick_checklist_item", incident, item_id=item.pk), {"checked": "on"}).status_code == 404


def test_tick_on_closed_incident_is_an_error_not_a_500(rclient, manager, incident):
    status_services.change_status(incident=incident, to=Status.RESOLVED, by=manager)
    status_services.change_status(incident=incident, to=Status.CLOSED, by=manager, override_reason="test")
    item = incident.checklist_items.first()
    htmx = rclient.post(url("tick_checklist_item", incident, item_id=item.pk), {"checked": "on"}, **HTMX)
    assert htmx.status_code == 422 and "closed; its checklists are final" in htmx.content.decode()
    full = rclient.post(url("tick_checklist_item", incident, item_id=item.pk), {"checked": "on"}, follow=True)
    assert full.status_code == 200 and "closed; its checklists are final" in full.content.decode()


def test_attach_runbook_and_tick_its_actions(rclient, incident):
    runbook = Runbook.objects.first()
    response = rclient.post(url("attach_runbook", incident), {"runbook": runbook.pk}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and runbook.title in html
    step = ChecklistItem.objects.filter(incident=incident, runbook=runbook).first()
    assert step.text in html
    assert rclient.post(url("tick_checklist_item", incident, item_id=step.pk), {"checked": "on"}).status_code == 302
    again = rclient.post(url("attach_runbook", incident), {"runbook": runbook.pk}, **HTMX)
    assert again.status_code == 422 and "already attached" in again.content.decode()


def test_record_five_whys(rclient, incident):
    data = {"problem": "API slow", "why_1": "DB slow", "why_2": "missing index", "why_3": "", "root_cause": "migration"}
    response = rclient.post(url("record_five_whys", incident), data, **HTMX)
    assert response.status_code == 200
    five = incident.five_whys
    assert five.whys == ["DB slow", "missing index"] and five.root_cause == "migration"
    assert "missing index" in response.content.decode()
    missing = rclient.post(url("record_five_whys", incident), {"problem": ""}, **HTMX)
    assert missing.status_code == 422 and "This field is required." in missing.content.decode()


def test_post_internal_update_resets_cadence(rclient, incident):
    response = rclient.post(
        url("post_internal_update", incident),
        {"status": "investigating", "what_we_know": "DB slow", "what_we_are_doing": "indexing", "impact": "30%"},
        **HTMX,
    )
    assert response.status_code == 200 and "DB slow" in response.content.decode()
    assert StatusUpdate.objects.filter(incident=incident, kind="internal").count() == 1
    empty = rclient.post(url("post_internal_update", incident), {"status": "investigating"}, **HTMX)
    assert empty.status_code == 422 and "Say what we know" in empty.content.decode()
    past = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    late = rclient.post(
        url("post_internal_update", incident), {"status": "fixing", "what_we_know": "x", "next_update_at": past}, **HTMX
    )
    assert late.status_code == 422 and "must be in the future" in late.content.decode()
    wrong = rclient.post(url("post_internal_update", incident), {"status": "identified", "what_we_know": "x"}, **HTMX)
    assert wrong.status_code == 422


def test_post_external_update_and_publish(rclient, incident):
    service = ServiceFactory()
    response = rclient.post(
        url("post_external_update", incident),
        {
            "status": "identified",
            "title": "API Performance Issues",
            "description": "Some users see delays.",
            f"component_{service.pk}": "partial_outage",
            "workaround": "Retry",
            "publish": "on",
        },
    )
    assert response.status_code == 302
    update = StatusUpdate.objects.get(kind="external")
    assert update.is_published and list(update.affected_services.all()) == [service]
    assert [(c.service, c.state) for c in update.component_states.all()] == [(service, "partial_outage")]
    missing = rclient.post(url("post_external_update", incident), {"status": "identified", "description": "x"}, **HTMX)
    assert missing.status_code == 422 and "brief description" in missing.content.decode()


def test_add_note_and_preview(rclient, incident):
    preview = rclient.post(url("preview_note", incident), {"body": "**bold** <script>x</script>"}, **HTMX)
    assert "<strong>bold</strong>" in preview.content.decode() and "<script>" not in preview.content.decode()
    response = rclient.post(url("add_note", incident), {"body": "Restarted *workers*", "kind": "action"}, **HTMX)
    assert response.status_code == 200 and response["HX-Trigger"] == "timeline-refresh"
    entry = TimelineEntry.objects.filter(incident=incident, kind=EntryKind.ACTION).latest("id")
    assert entry.body_html == "<p>Restarted <em>workers</em></p>"
    empty = rclient.post(url("add_note", incident), {"body": "   ", "kind": "note"}, **HTMX)
    assert empty.status_code == 422


def test_backdating_is_for_the_scribe(client, incident):
    scribe, other = ResponderFactory(), ResponderFactory()
    roles_services.assign_role(incident=incident, role=Role.SCRIBE, holder=scribe, by=scribe)
    earlier = (timezone.now() - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M")
    client.force_login(other)
    assert b'name="occurred_at"' not in client.get(incident.get_absolute_url()).content
    assert (
        client.post(url("add_note", incident), {"body": "x", "kind": "note", "occurred_at": earlier}).status_code == 403
    )
    client.force_login(scribe)
    assert b'name="occurred_at"' in client.get(incident.get_absolute_url()).content
    assert (
        client.post(
            url("add_note", incident), {"body": "DB failover began", "kind": "note", "occurred_at": earlier}
        ).status_code
        == 302
    )
    entry = TimelineEntry.objects.get(body="DB failover began")
    assert entry.is_backdated
    assert "back-dated" in client.get(incident.get_absolute_url()).content.decode()


# --- live timeline ------------------------------------------------------------------------------------------


def test_timeline_poll_returns_only_new_entries(rclient, responder, incident):
    last = TimelineEntry.objects.filter(incident=incident).latest("id").id
    unchanged = rclient.get(incident.get_absolute_url() + f"?after={last}", **HTMX)
    assert unchanged.status_code == 204
    add_timeline_entry(incident=incident, by=responder, body="first new")
    add_timeline_entry(incident=incident, by=responder, body="second new")
    response = rclient.get(incident.get_absolute_url() + f"?after={last}", **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "first new" in html and "second new" in html
    assert "Incident declared" not in html  # old entries are not sent again
    newest = TimelineEntry.objects.latest("id").id
    assert f"after={newest}" in html  # the new cursor
    assert 'hx-swap-oob="afterbegin:#timeline-entries"' in html


def test_unchanged_timeline_poll_costs_one_query_beyond_auth(rclient, incident, django_assert_num_queries):
    last = TimelineEntry.objects.filter(incident=incident).latest("id").id
    path = incident.get_absolute_url() + f"?after={last}"
    rclient.get(path, **HTMX)  # warm the session
    # session, user, user's groups (visibility), and the one cursor query on the timeline
    with django_assert_num_queries(4):
        assert rclient.get(path, **HTMX).status_code == 204


def test_timeline_filter_by_kind(rclient, responder, incident):
    add_timeline_entry(incident=incident, by=responder, body="a plain note")
    response = rclient.get(incident.get_absolute_url() + "?kind=role&partial=timeline", **HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="card-timeline"')
    assert "Incident Commander" in html and "a plain note" not in html
    full = rclient.get(incident.get_absolute_url() + "?kind=note").content.decode()
    assert "a plain note" in full


def test_timeline_shows_latest_200_and_loads_older(rclient, responder, incident):
    TimelineEntry.objects.bulk_create(
        TimelineEntry(
            incident=incident, occurred_at=timezone.now(), kind="note", body=f"n{i}", body_html=f"<p>entry-{i}</p>"
        )
        for i in range(250)
    )
    html = rclient.get(incident.get_absolute_url()).content.decode()
    assert html.count('class="entry kind-') == 200
    assert "<p>entry-249</p>" in html and "entry-10<" not in html
    assert "Load older entries" in html
    oldest_shown = min(
        TimelineEntry.objects.filter(incident=incident).order_by("-id").values_list("id", flat=True)[:200]
    )
    older = rclient.get(incident.get_absolute_url() + f"?before={oldest_shown}", **HTMX).content.decode()
    assert "entry-10<" in older and "<p>entry-249</p>" not in older
    assert 'hx-swap-oob="beforeend:#timeline-entries"' in older
    assert "Load older entries" not in older  # 51 left: all shown
    no_js = rclient.get(incident.get_absolute_url() + f"?before={oldest_shown}").content.decode()
    assert "entry-10<" in no_js and "<html" in no_js


# --- list ---------------------------------------------------------------------------------------------------


def test_incident_list_filters(rclient, responder):
    api = ServiceFactory(name="Backend API", slug="api")
    a = declare(by=responder, level="P0", title="Database down", services=[api])
    b = declare(by=responder, level="P3", title="Typo on login page")
    status_services.change_status(incident=b, to=Status.RESOLVED, by=responder)

    def refs(query):
        html = rclient.get("/incidents/" + query).content.decode()
        return {ref for ref in (a.reference, b.reference) if f">{ref}<" in html}

    assert refs("") == {a.reference, b.reference}
    assert refs("?severity=P0") == {a.reference}
    assert refs("?status=resolved") == {b.reference}
    assert refs("?service=api") == {a.reference}
    assert refs("?q=typo") == {b.reference}
    assert refs(f"?q={a.reference}") == {a.reference}
    today = timezone.now().date()
    assert refs(f"?declared_from={today}&declared_to={today}") == {a.reference, b.reference}
    assert refs(f"?declared_from={today + timedelta(days=1)}") == set()


def test_incident_list_bad_filter_is_an_error(rclient):
    response = rclient.get("/incidents/?declared_from=2026-02-02&declared_to=2026-01-01")
    assert response.status_code == 400 and "before the start date" in response.content.decode()
    assert rclient.get("/incidents/?declared_from=notadate").status_code == 400
    assert rclient.get("/incidents/?after=garbage").status_code == 200


def test_incident_list_keyset_pagination(rclient, responder):
    from tests.factories import IncidentFactory

    now = timezone.now()
    made = [IncidentFactory(declared_at=now - timedelta(minutes=i)) for i in range(120)]
    first = rclient.get("/incidents/")
    html = first.content.decode()
    assert html.count("<tr class=") == 50
    assert f">{made[0].reference}<" in html and f">{made[50].reference}<" not in html
    older_url = first.context["older_url"]
    second = rclient.get("/incidents/" + older_url)
    assert (
        f">{made[50].reference}<" in second.content.decode()
        and f">{made[49].reference}<" not in second.content.decode()
    )
    newer_url = second.context["newer_url"]
    back = rclient.get("/incidents/" + newer_url)
    assert [i.pk for i in back.context["incidents"]] == [i.pk for i in made[:50]]
    third = rclient.get("/incidents/" + second.context["older_url"])
    assert len(third.context["incidents"]) == 20 and third.context["older_url"] == ""
    partial = rclient.get("/incidents/?severity=P2", **HTMX)
    assert partial.content.decode().lstrip().startswith('<section id="results"')


def test_incident_list_hides_restricted(rclient):
    secret = declare(by=SecurityFactory(), level="P0", title="Breach", is_restricted=True)
    assert f">{secret.reference}<" not in rclient.get("/incidents/").content.decode()


# --- runbooks -----------------------------------------------------------------------------------------------


def test_runbook_library(rclient):
    runbook = Runbook.objects.prefetch_related("steps").first()
    html = rclient.get("/runbooks/").content.decode()
    assert runbook.title in html
    detail = rclient.get(runbook.get_absolute_url())
    assert detail.status_code == 200
    assert runbook.steps.first().text in detail.content.decode()
    assert rclient.get("/runbooks/nope/").status_code == 404


def test_htmx_poll_after_session_expired_redirects_whole_page(client, incident):
    response = client.get("/", HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL="http://testserver/incidents/")
    assert response.status_code == 200 and response.content == b""
    assert response["HX-Redirect"] == "/accounts/login/?next=%2Fincidents%2F"


def test_detail_url_filter_matches_get_absolute_url(incident):
    from incidents.templatetags.incident_tags import detail_url

    assert detail_url(incident) == incident.get_absolute_url()


# --- bounds on the times people type ------------------------------------------------------------------------


@time_machine.travel("2026-03-01 12:00:00+00:00", tick=False)
@pytest.mark.parametrize(
    ("detected_at", "message"),
    [
        ("9999-12-31T23:59", "Detection time cannot be in the future."),
        ("2026-03-01T12:30", "Detection time cannot be in the future."),
        ("1900-01-01T00:00", "at most a year before the declaration (from Fri 28 Feb 2025, 12:00 UTC)"),
        ("0001-01-01T00:00", "at most a year before the declaration"),
        ("2025-02-28T11:59", "at most a year before the declaration"),
    ],
)
def test_declare_with_detection_time_out_of_range_is_an_error_on_the_field(rclient, detected_at, message):
    data = {"title": "x", "severity": severity("P2").pk, "detection_source": "user_report", "detected_at": detected_at}
    response = rclient.post("/incidents/declare/", data)
    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors["detected_at"])
    assert Incident.objects.count() == 0


@time_machine.travel("2026-03-01 12:00:00+00:00", tick=False)
def test_declare_retroactively_months_after_detection_is_accepted(rclient):
    data = {"title": "Old leak", "severity": severity("P2").pk, "detection_source": "user_report"}
    assert rclient.post("/incidents/declare/", {**data, "detected_at": "2025-09-01T08:00"}).status_code == 302
    assert rclient.post("/incidents/declare/", {**data, "detected_at": "2025-02-28T12:00"}).status_code == 302
    assert sorted(f"{i.detected_at:%Y-%m-%d %H:%M}" for i in Incident.objects.all()) == [
        "2025-02-28 12:00",
        "2025-09-01 08:00",
    ]


def test_timeline_entry_time_far_in_the_past_is_an_error_on_the_field(rclient, incident):
    # The declarer is the Incident Commander, who may back-date: within a year before detection.
    data = {"body": "Migration deployed", "kind": "note"}
    response = rclient.post(url("add_note", incident), {**data, "occurred_at": "1900-01-01T00:00"}, **HTMX)
    assert response.status_code == 422
    assert "at most a year before the incident was detected" in response.content.decode()
    months_ago = (incident.detected_at - timedelta(days=200)).strftime("%Y-%m-%dT%H:%M")
    assert rclient.post(url("add_note", incident), {**data, "occurred_at": months_ago}).status_code == 302
    assert TimelineEntry.objects.filter(incident=incident, body="Migration deployed").count() == 1


def test_next_update_time_far_ahead_is_an_error_on_the_field(rclient, incident):
    data = {"status": "investigating", "what_we_know": "DB slow"}
    for far in ("9999-12-31T23:59", (timezone.now() + timedelta(days=8)).strftime("%Y-%m-%dT%H:%M")):
        response = rclient.post(url("post_internal_update", incident), {**data, "next_update_at": far}, **HTMX)
        assert response.status_code == 422 and "Choose a next update within a week" in response.content.decode()
    assert not StatusUpdate.objects.filter(incident=incident).exists()
    in_two_days = (timezone.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    response = rclient.post(url("post_internal_update", incident), {**data, "next_update_at": in_two_days}, **HTMX)
    assert response.status_code == 200
