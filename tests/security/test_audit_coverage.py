"""Every audited model (incidents/audit/registry.py), written through each interface that can write it (pages,
API, admin, tasks and webhooks), leaves an audit record naming the right actor: the signed-in user, the token's
owner, the admin user, and "the portal" (no actor) for timers and inbound integrations.

The admin part is enumerated, not listed: every audited model whose admin page lets a superuser change it is
changed there (one text field edited) and must leave a record. The other interfaces are a table; a model added to
an audited app without a row in it (or a reason for having none) fails the first test."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib import admin
from django.db import models
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from incidents.alerting.models import AlertGroup, ApiToken, ChangeEvent, Heartbeat
from incidents.audit.context import acting_as
from incidents.audit.models import AuditRecord
from incidents.audit.registry import is_audited
from incidents.models import Role, Runbook, StatusUpdate
from incidents.statuspage.models import Subscriber
from oncall.models import NotificationRule, Override, Slot
from oncall.paging import links
from oncall.paging.models import Notification, Page
from oncall.paging.tasks import escalation_tick
from oncall.services import calendar_feed_for
from postmortems.models import ActionItem, PostMortem
from tests.api.factories import fixture_bytes, make_integration, make_token
from tests.factories import ManagerFactory, ResponderFactory, UserFactory, declare
from tests.incidents.test_admin import change_form_data
from tests.oncall.factories import RotationFactory, add_members
from tests.paging.factories import paged_team

pytestmark = pytest.mark.django_db

PD_URL = "/api/v1/integrations/pagerduty/v2/enqueue"


def label(model) -> str:
    return f"{model._meta.app_label}.{model._meta.model_name}"


AUDITED = sorted(label(model) for model in apps.get_models() if is_audited(model))


class World:
    """A responder who is the Incident Commander of a paged incident, a manager, a superuser."""

    def __init__(self, client):
        self.client = client
        self.team = paged_team()
        self.responder = ResponderFactory()
        self.team.oncall.user = self.responder
        self.team.oncall.save()
        self.manager = ManagerFactory()
        self.root = UserFactory(username="root", is_staff=True, is_superuser=True)
        self.incident = declare(by=self.responder, services=[self.team.service])

    def page(self, user=None):
        self.client.force_login(user or self.responder)
        return self.client

    def api(self, user=None):
        api = APIClient()
        _token, key = make_token(user or self.responder)
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return api

    def url(self, name, **kwargs):
        return reverse(name, kwargs={"reference": self.incident.reference, **kwargs})


def ok(response, *codes):
    context = getattr(response, "context", None) or {}
    errors = context["form"].errors if "form" in context and hasattr(context["form"], "errors") else ""
    assert response.status_code in (codes or (200, 201, 202, 302)), (response.status_code, errors or response.content)
    return response


def latest(model, **filters):
    return model._default_manager.filter(**filters).order_by("-pk").first()


# --- writers: (world) -> (object written, expected actor) ----------------------------------------------------------


def page_declare(w):
    data = {"title": "Checkout down", "severity": str(w.incident.severity_id), "detection_source": "team_member"}
    ok(w.page().post(reverse("incidents:declare"), data))
    return latest(type(w.incident), title="Checkout down"), w.responder


def api_declare(w):
    ok(w.api().post("/api/v1/incidents/", {"title": "Search down", "severity": "P2"}, format="json"))
    return latest(type(w.incident), title="Search down"), w.responder


def webhook_declare(w):
    from incidents.alerting.models import RouteAction

    _integration, key = make_integration("pagerduty", default_action=RouteAction.DECLARE)
    ok(w.client.post(PD_URL, fixture_bytes("pagerduty_trigger.json", ROUTING_KEY=key), content_type="application/json"))
    return latest(type(w.incident), detection_source="monitoring_alert"), None


def page_note(w):
    ok(w.page().post(w.url("incidents:add_note"), {"body": "Looking at the database", "kind": "note"}))
    return latest(w.incident.timeline.model, body="Looking at the database"), w.responder


def api_note(w):
    ok(w.api().post(f"/api/v1/incidents/{w.incident.reference}/timeline/", {"body": "Via API"}, format="json"))
    return latest(w.incident.timeline.model, body="Via API"), w.responder


def page_assign_role(w):
    holder = ResponderFactory()
    ok(w.page().post(w.url("incidents:assign_role"), {"role": Role.SCRIBE, "holder": holder.pk}))
    return latest(w.incident.role_assignments.model, holder=holder), w.responder


def api_assign_role(w):
    holder = ResponderFactory()
    api = w.api()
    ok(api.post(f"/api/v1/incidents/{w.incident.reference}/roles/", {"role": "scribe", "holder": holder.username}))
    return latest(w.incident.role_assignments.model, holder=holder), w.responder


def page_tick(w):
    item = w.incident.checklist_items.order_by("pk").first()
    ok(w.page().post(w.url("incidents:tick_checklist_item", item_id=item.pk), {"checked": "on"}))
    return item, w.responder


def api_tick(w):
    item = w.incident.checklist_items.order_by("pk").last()
    ok(w.api().post(f"/api/v1/incidents/{w.incident.reference}/checklist/{item.pk}/", {"checked": True}, format="json"))
    return item, w.responder


def page_internal_update(w):
    data = {"status": "investigating", "what_we_know": "Slow queries", "what_we_are_doing": "Adding an index"}
    ok(w.page().post(w.url("incidents:post_internal_update"), data))
    return latest(StatusUpdate, incident=w.incident), w.responder


def api_update(w):
    data = {"kind": "internal", "status": "investigating", "what_we_know": "Via API"}
    ok(w.api().post(f"/api/v1/incidents/{w.incident.reference}/updates/", data, format="json"))
    return latest(StatusUpdate, what_we_know="Via API"), w.responder


def page_acknowledge_joins(w):
    other = ResponderFactory()
    ok(w.page(other).post(w.url("incidents:acknowledge")))
    return latest(w.incident.responder_links.model, user=other), other


def api_acknowledge_joins(w):
    other = ResponderFactory()
    ok(w.api(other).post(f"/api/v1/incidents/{w.incident.reference}/acknowledge/"))
    return latest(w.incident.responder_links.model, user=other), other


def page_five_whys(w):
    data = {"problem": "API slow", "whys": "Queries slow\nMissing index", "root_cause": "Missing index"}
    ok(w.page().post(w.url("incidents:record_five_whys"), data))
    return w.incident.five_whys, w.responder


def page_attach_runbook(w):
    runbook = Runbook.objects.get(slug="ddos-attack")
    ok(w.page().post(w.url("incidents:attach_runbook"), {"runbook": runbook.pk}))
    return latest(w.incident.runbook_links.model, runbook=runbook), w.responder


def webhook_alert_group(w):
    _integration, key = make_integration("pagerduty")
    ok(w.client.post(PD_URL, fixture_bytes("pagerduty_trigger.json", ROUTING_KEY=key), content_type="application/json"))
    return latest(AlertGroup), None


def webhook_acknowledge_alert_group(w):
    _integration, key = make_integration("pagerduty")
    for name in ("pagerduty_trigger.json", "pagerduty_acknowledge.json"):
        ok(w.client.post(PD_URL, fixture_bytes(name, ROUTING_KEY=key), content_type="application/json"))
    group = latest(AlertGroup)
    assert AuditRecord.objects.filter(object_id=str(group.pk), after__status="acknowledged").exists()
    return group, None


def webhook_change_event(w):
    _, key = make_integration("change", default_service=w.team.service)
    body = fixture_bytes("change_deploy.json").replace(b'"checkout"', f'"{w.team.service.slug}"'.encode())
    ok(
        w.client.post(
            "/api/v1/integrations/change/",
            body,
            content_type="application/json",
            headers={"authorization": f"Bearer {key}"},
        )
    )
    return latest(ChangeEvent), None


def page_acknowledge_page(w):
    ok(w.page().post(reverse("paging:acknowledge", kwargs={"reference": w.incident.reference})))
    return latest(Page, incident=w.incident), w.responder


def link_acknowledge_page(w):
    notification = Notification.objects.filter(incident=w.incident, person=w.team.oncall).exclude(ack_nonce="").first()
    ok(w.client.post(reverse("paging:acknowledge_link", kwargs={"token": links.ack_token(notification)})))
    return latest(Page, incident=w.incident), w.responder


def task_escalation(w):
    page = latest(Page, incident=w.incident)
    Page.objects.filter(pk=page.pk).update(escalate_at=timezone.now() - timedelta(seconds=1))
    escalation_tick.apply()
    return page, None


def page_override(w):
    rotation = RotationFactory(team=w.team.team)
    add_members(rotation, Slot.PRIMARY, [w.team.oncall])
    start = timezone.now().replace(second=0, microsecond=0) + timedelta(days=1)
    data = {
        "rotation": rotation.pk,
        "slot": Slot.PRIMARY,
        "person": w.team.oncall.pk,
        "start": start.strftime("%Y-%m-%dT%H:%M"),
        "end": (start + timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M"),
        "reason": "Swap",
    }
    ok(w.page().post(reverse("oncall:override_create"), data))
    return latest(Override, rotation=rotation), w.responder


def api_override(w):
    rotation = RotationFactory(team=w.team.team)
    add_members(rotation, Slot.PRIMARY, [w.team.oncall])
    start = timezone.now().replace(second=0, microsecond=0) + timedelta(days=2)
    data = {
        "rotation": rotation.pk,
        "slot": Slot.PRIMARY,
        "person": w.team.oncall.pk,
        "start": start.isoformat(),
        "end": (start + timedelta(hours=8)).isoformat(),
    }
    ok(w.api(w.manager).post("/api/v1/oncall/overrides/", data, format="json"))
    return latest(Override, rotation=rotation), w.manager


def page_notification_rule(w):
    method = w.team.oncall.contact_methods.order_by("position").last()
    ok(w.page().post(reverse("paging:add_rule"), {"delay_minutes": 5, "contact_method": method.pk}))
    return latest(NotificationRule, person=w.team.oncall), w.responder


def page_subscribe(w):
    ok(w.client.post(reverse("statuspage:subscribe"), {"email": "someone@example.com", "scope": "all"}))
    return Subscriber.objects.get(email="someone@example.com"), None


def api_token(w):
    ok(w.page().post("/api/v1/tokens/", {"name": "laptop"}))
    return latest(ApiToken, name="laptop"), w.responder


def _resolved(w):
    from incidents.services.status import change_status

    with acting_as(w.responder):  # as if through the incident page
        change_status(incident=w.incident, to="resolved", by=w.responder)
    return PostMortem.objects.get(incident=w.incident)


def page_postmortem_edit(w):
    postmortem = _resolved(w)
    response = w.page().get(reverse("postmortems:edit", kwargs={"pk": postmortem.pk}))
    form = response.context["form"]
    data = {name: form[name].value() or "" for name in form.fields}
    data["title"] = "Post-mortem: API slow (edited)"
    ok(w.page().post(reverse("postmortems:edit", kwargs={"pk": postmortem.pk}), data))
    return postmortem, w.responder


def page_action_item(w):
    postmortem = _resolved(w)
    data = {
        "title": "Add the index",
        "owner": w.responder.pk,
        "due_date": (timezone.now() + timedelta(days=7)).date(),
        "priority": "medium",
        "kind": "prevent",
    }
    ok(w.page().post(reverse("postmortems:add_action_item", kwargs={"pk": postmortem.pk}), data))
    return latest(ActionItem, title="Add the index"), w.responder


WRITERS = {
    "incidents.incident": {"page": page_declare, "api": api_declare, "webhook": webhook_declare},
    "incidents.timelineentry": {"page": page_note, "api": api_note},
    "incidents.roleassignment": {"page": page_assign_role, "api": api_assign_role},
    "incidents.checklistitem": {"page": page_tick, "api": api_tick},
    "incidents.statusupdate": {"page": page_internal_update, "api": api_update},
    "incidents.incidentresponder": {"page": page_acknowledge_joins, "api": api_acknowledge_joins},
    "incidents.fivewhys": {"page": page_five_whys},
    "incidents.incidentrunbook": {"page": page_attach_runbook},
    "alerting.alertgroup": {"webhook": webhook_alert_group, "webhook acknowledge": webhook_acknowledge_alert_group},
    "alerting.changeevent": {"webhook": webhook_change_event},
    "alerting.apitoken": {"page": api_token},
    "paging.page": {"page": page_acknowledge_page, "link": link_acknowledge_page, "task": task_escalation},
    "oncall.override": {"page": page_override, "api": api_override},
    "statuspage.subscriber": {"page": page_subscribe},
    "oncall.notificationrule": {"page": page_notification_rule},
    "postmortems.postmortem": {"page": page_postmortem_edit},
    "postmortems.actionitem": {"page": page_action_item},
}

# Written only as part of another model's write, or only by management commands: no interface of their own.
NO_INTERFACE_OF_THEIR_OWN = {
    "auth.permission": "created by migrate",
    "incidents.runbookstep": "edited inline on its runbook's admin page (the runbook's record)",
    "alerting.routingrule": "edited inline on its integration's admin page",
    "oncall.contactmethod": "edited inline on its person's admin page",
    "oncall.rotationmember": "edited inline on its rotation's admin page",
    "oncall.escalationtarget": "edited inline on its level's admin page",
    "statuspage.componentstate": "derived by the status page from incidents and overrides",
    "postmortems.postmortemtimelineitem": "copied from the incident timeline when the post-mortem is drafted",
    "paging.acknowledgelinkuse": "written by the acknowledge link, with its page (see paging.page, link)",
    "paging.reminder": "written by the reminder tick with the page it reminds about",
    "accounts.ssoidentity": "written by the OpenID Connect sign-in (tests/accounts/test_sso.py, a real provider)",
}


def admin_changeable() -> list[str]:
    request = RequestFactory().get("/")
    request.user = UserFactory.build(is_superuser=True, is_staff=True, is_active=True)
    found = []
    for model, model_admin in admin.site._registry.items():
        if is_audited(model) and model_admin.has_change_permission(request):
            found.append(label(model))
    return sorted(found)


def test_every_audited_model_is_written_through_some_interface_in_this_test():
    covered = set(WRITERS) | set(admin_changeable()) | set(NO_INTERFACE_OF_THEIR_OWN)
    assert set(AUDITED) - covered == set(), "add the new model's writers to WRITERS"
    assert covered - set(AUDITED) == set(), "a model listed here is no longer audited"


CASES = [(model, interface) for model, writers in sorted(WRITERS.items()) for interface in writers]


@pytest.mark.parametrize(("model_label", "interface"), CASES, ids=[f"{m}-{i}" for m, i in CASES])
def test_write_through_interface_leaves_an_audit_record_with_the_actor(client, model_label, interface):
    world = World(client)
    start = AuditRecord.objects.order_by("-id").values_list("id", flat=True).first() or 0
    obj, actor = WRITERS[model_label][interface](world)
    assert obj is not None and label(type(obj)) == model_label
    records = AuditRecord.objects.filter(id__gt=start, object_type=model_label, object_id=str(obj.pk))
    assert records.exists(), f"{model_label} written through {interface} left no audit record"
    assert {record.actor_id for record in records} == {actor.pk if actor else None}


# --- admin: enumerated ---------------------------------------------------------------------------------------------

SKIP_TEXT = ("slug", "url", "email", "phone", "key", "token", "timezone", "address", "code", "command", "dedup")
PREFERRED = ("name", "title", "first_name", "description", "summary", "message", "reason", "text")


def _text_field(form, model) -> str | None:
    names = sorted(form.fields, key=lambda n: PREFERRED.index(n) if n in PREFERRED else len(PREFERRED))
    for name in names:
        field = form.fields[name]
        try:
            model_field = model._meta.get_field(name)
        except Exception:
            continue
        if (
            isinstance(model_field, models.CharField | models.TextField)
            and not model_field.choices
            and not any(part in name for part in SKIP_TEXT)
            and not field.disabled
        ):
            return name
    return None


def _object_for(model, world):
    obj = model._default_manager.order_by("pk").first()
    if obj is None:
        maker = ADMIN_OBJECTS.get(label(model))
        assert maker, f"no {label(model)} to change in the admin: add a maker to ADMIN_OBJECTS"
        obj = maker(world)
    return obj


def _integration(w):
    return make_integration("generic")[0]


def _maintenance(w):
    from tests.statuspage.factories import maintenance

    return maintenance(services=[w.team.service])


def _status_override(w):
    from incidents.statuspage.models import ServiceStatusOverride

    return ServiceStatusOverride.objects.create(service=w.team.service, state="degraded_performance", message="Slow")


ADMIN_EDITS = {"statuspage.subscriber": ("email", "edited@example.com")}


def _subscriber(w):
    return Subscriber.objects.create(email="admin-edit@example.com")


def _webhook_endpoint(w):
    from oncall.paging.models import WebhookEndpoint

    return WebhookEndpoint.objects.create(name="Ops bot", url="https://ops.example.com/hook")


def _override(w):
    rotation = RotationFactory(team=w.team.team)
    add_members(rotation, Slot.PRIMARY, [w.team.oncall])
    start = timezone.now() + timedelta(days=1)
    return Override.objects.create(rotation=rotation, person=w.team.oncall, start=start, end=start + timedelta(hours=4))


def _action_item(w):
    postmortem = _resolved(w)
    return ActionItem.objects.create(
        postmortem=postmortem,
        incident=postmortem.incident,
        title="Fix it",
        owner=w.responder,
        due_date=timezone.now().date() + timedelta(days=3),
    )


ADMIN_OBJECTS = {
    "alerting.integration": _integration,
    "statuspage.maintenancewindow": _maintenance,
    "statuspage.servicestatusoverride": _status_override,
    "statuspage.subscriber": _subscriber,
    "paging.webhookendpoint": _webhook_endpoint,
    "oncall.override": _override,
    "postmortems.postmortem": _resolved,
    "postmortems.actionitem": _action_item,
    "alerting.apitoken": lambda w: make_token(w.root)[0],
    "alerting.changeevent": lambda w: ChangeEvent.objects.create(summary="Deploy v2", occurred_at=timezone.now()),
    "alerting.alertgroup": lambda w: webhook_alert_group(w)[0],
    "oncall.calendarfeed": lambda w: calendar_feed_for(w.team.oncall),
    "alerting.heartbeat": lambda w: Heartbeat.objects.create(name="nightly backup", period=timedelta(hours=24)),
}


@pytest.mark.parametrize("model_label", admin_changeable())
def test_admin_change_leaves_an_audit_record_with_the_admin_user(client, model_label):
    world = World(client)
    model = apps.get_model(model_label)
    obj = _object_for(model, world)
    client.force_login(world.root)
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[obj.pk])
    response = client.get(url)
    assert response.status_code == 200
    form = response.context["adminform"].form
    data = change_form_data(response)
    start = AuditRecord.objects.order_by("-id").values_list("id", flat=True).first() or 0
    if not form.fields:
        # Every field read-only (groups, pages, feeds change only through their services): the admin cannot write.
        client.post(url, data)
        assert not AuditRecord.objects.filter(id__gt=start, object_type=model_label).exists()
        return
    if model_label in ADMIN_EDITS:
        name, value = ADMIN_EDITS[model_label]
    else:
        name = _text_field(form, model)
        assert name, f"{model_label}: no text field to edit on its admin page: add it to ADMIN_EDITS"
        value = (str(data.get(form[name].html_name) or "") + " (edited)")[-150:]
    data[form[name].html_name] = value
    response = client.post(url, data)
    errors = response.context["adminform"].form.errors if response.context and "adminform" in response.context else ""
    assert response.status_code == 302, errors
    records = AuditRecord.objects.filter(id__gt=start, object_type=model_label, object_id=str(obj.pk))
    assert records.exists(), f"changing {model_label} in the admin left no audit record"
    assert {(r.actor_id, r.source) for r in records} == {(world.root.pk, "admin")}
