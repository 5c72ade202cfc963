"""The status page as responders drive it from the incident page: per-service states chosen in each
status-page update, the "Resolved" prompt after resolving or closing, and the link to the staff page."""

import pytest
from django.urls import reverse

from incidents.models import Role, Status, StatusUpdate
from incidents.services.roles import assign_role
from incidents.services.status import change_status
from tests.factories import ResponderFactory, ServiceFactory, ViewerFactory, declare

from .factories import post_update

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def url(name, incident):
    return reverse(f"incidents:{name}", kwargs={"reference": incident.reference})


def test_status_page_form_prefills_each_affected_service_from_the_severity(client, responder):
    api, web, internal = (
        ServiceFactory(name="Backend API"),
        ServiceFactory(name="Web App"),
        ServiceFactory(name="Billing batch", is_public=False),
    )
    incident = declare(by=responder, level="P0", services=[api, internal])
    client.force_login(responder)
    body = client.get(incident.get_absolute_url()).content.decode()
    api_select = body[body.index(f'name="component_{api.pk}"') :]
    assert api_select.index('value="major_outage" selected') < api_select.index("</select>")
    web_select = body[body.index(f'name="component_{web.pk}"') :]
    assert web_select.index('value="" selected') < web_select.index("</select>")
    assert f'name="component_{internal.pk}"' not in body  # internal services have no public state

    response = client.post(
        url("post_external_update", incident),
        {
            "status": "identified",
            "title": "Errors on the API",
            "description": "Some requests fail.",
            f"component_{api.pk}": "partial_outage",
            f"component_{web.pk}": "",
            "publish": "on",
        },
    )
    assert response.status_code == 302
    update = StatusUpdate.objects.get(kind="external")
    assert {c.service.name: c.state for c in update.component_states.all()} == {"Backend API": "partial_outage"}
    public = client.get("/status/").content.decode()
    assert "Partial outage" in public and "Major outage" not in public

    # The next update starts from what was published.
    body = client.get(incident.get_absolute_url()).content.decode()
    api_select = body[body.index(f'name="component_{api.pk}"') :]
    assert api_select.index('value="partial_outage" selected') < api_select.index("</select>")


def test_unknown_component_state_is_a_form_error(client, responder):
    api = ServiceFactory(name="API")
    incident = declare(by=responder, services=[api])
    client.force_login(responder)
    response = client.post(
        url("post_external_update", incident),
        {"status": "identified", "title": "t", "description": "d", f"component_{api.pk}": "on_fire"},
        **HTMX,
    )
    assert response.status_code == 422
    assert "on_fire is not one of the available choices" in response.content.decode()
    assert not StatusUpdate.objects.exists()


@pytest.mark.parametrize("final", [Status.RESOLVED, Status.CLOSED])
def test_resolving_prompts_the_comms_lead_with_a_prefilled_resolved_update(client, responder, manager, final):
    api = ServiceFactory(name="Backend API")
    comms = ResponderFactory(first_name="Casey", last_name="Comms")
    incident = declare(by=responder, level="P1", services=[api])
    assign_role(incident=incident, role=Role.COMMUNICATIONS_LEAD, holder=comms, by=responder)
    post_update(incident, by=comms, status="identified", title="Slow API", affected_services=[api])
    client.force_login(comms)
    assert "Tell the status page it is over" not in client.get(incident.get_absolute_url()).content.decode()

    change_status(incident=incident, to=Status.RESOLVED, by=responder)
    if final == Status.CLOSED:
        change_status(incident=incident, to=Status.CLOSED, by=manager, override_reason="Test closure.")
    body = client.get(incident.get_absolute_url()).content.decode()
    assert "Tell the status page it is over" in body
    assert "still says <strong>Identified</strong>" in body and "As Communications Lead, publish" in body
    prompt = body[body.index('id="status-page-prompt"') :]
    prompt = prompt[: prompt.index("</form>")]
    assert 'value="Slow API"' in prompt and "This incident has been resolved" in prompt
    assert 'value="operational" selected' in prompt

    # One click: the prefilled form as it is.
    fields = {"status": "resolved", "publish": "on", "title": "Slow API"}
    fields["description"] = prompt.split('name="description"')[1].split(">", 1)[1].split("</textarea>")[0].strip()
    fields[f"component_{api.pk}"] = "operational"
    response = client.post(url("publish_resolution", incident), fields, **HTMX)
    assert response.status_code == 200
    assert "Tell the status page it is over" not in response.content.decode()
    update = StatusUpdate.objects.filter(kind="external").latest("id")
    assert (update.status, update.is_published, update.next_update_at) == ("resolved", True, None)
    assert "Tell the status page it is over" not in client.get(incident.get_absolute_url()).content.decode()
    public = " ".join(client.get("/status/").content.decode().split())
    assert 'Slow API <span class="status status-resolved">Resolved</span>' in public
    assert "This incident has been resolved and the affected services are operating normally." in public


def test_no_prompt_when_nothing_was_published(client, responder):
    incident = declare(by=responder, level="P1")
    change_status(incident=incident, to=Status.RESOLVED, by=responder)
    client.force_login(responder)
    assert "Tell the status page it is over" not in client.get(incident.get_absolute_url()).content.decode()


def test_closed_incident_takes_only_a_resolved_status_page_update(responder, manager):
    incident = declare(by=responder, level="P1")
    change_status(incident=incident, to=Status.RESOLVED, by=responder)
    change_status(incident=incident, to=Status.CLOSED, by=manager, override_reason="Test closure.")
    with pytest.raises(Exception, match="is closed"):
        post_update(incident, by=responder, status="monitoring")
    with pytest.raises(Exception, match="is closed"):
        post_update(incident, by=responder, kind="internal", status="resolved")
    assert post_update(incident, by=responder, status="resolved").is_published


def test_navigation_links_the_staff_status_page_for_responders_only(client, responder):
    client.force_login(responder)
    assert 'href="/status/manage/"' in client.get("/").content.decode()
    client.force_login(ViewerFactory())
    assert 'href="/status/manage/"' not in client.get("/").content.decode()
