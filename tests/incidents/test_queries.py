"""Query budgets: the dashboard, incident list and incident page cost a fixed number of SQL queries, whatever
the number of incidents, timeline entries, roles, checklist items, runbooks or updates."""

import pytest
from django.utils import timezone

from incidents.models import Role, Runbook, Status, TimelineEntry, UpdateKind
from incidents.services.checklist import attach_runbook
from incidents.services.entries import add_timeline_entry, record_five_whys
from incidents.services.roles import assign_role
from incidents.services.status import change_status
from incidents.services.updates import post_status_update
from tests.factories import ResponderFactory, ServiceFactory, declare

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}

# Every page pays 6 before its own reads: session, user, the user's groups (visibility and permissions, 2),
# the header's "on call now" (on-call area, 2) and "my open pages" (paging area, 1). The dashboard also includes
# the post-mortems area's action items (1). The incident page's paging panel reads the newest page and its
# notifications (paging area, 2).
DASHBOARD_BUDGET = 11  # + active incidents, their current roles, recently resolved, certificates expiring
LIST_BUDGET = 9  # + one page of incidents (keyset, no COUNT), their services, the service filter's choices
INCIDENT_BUDGET = (
    27  # + incident, roles, services, timeline page, checklist, runbooks, updates, five whys, form choices,
    # the latest published status-page update and its component states, the details form's services, chat channel,
    # related incidents and duplicates (one query), the services' triage probes
)


def build(size: int, responder):
    """`size` active incidents with every role held, notes, a runbook, updates and resolved ones beside them."""
    people = [ResponderFactory() for _ in range(4)]
    api = ServiceFactory(name=f"API {size}", slug=f"api-{size}")
    runbooks = list(Runbook.objects.all()[: min(size, 3)])
    incidents = []
    for n in range(size):
        incident = declare(by=responder, level=f"P{n % 4}", title=f"Incident {n}", services=[api])
        for role, person in zip([Role.TECHNICAL_LEAD, Role.COMMUNICATIONS_LEAD, Role.SCRIBE], people, strict=False):
            assign_role(incident=incident, role=role, holder=person, by=responder)
        for runbook in runbooks:
            attach_runbook(incident=incident, runbook=runbook, by=responder)
        post_status_update(
            incident=incident, kind=UpdateKind.INTERNAL, status="investigating", by=responder, what_we_know="x"
        )
        post_status_update(
            incident=incident,
            kind=UpdateKind.EXTERNAL,
            status="investigating",
            by=responder,
            title="t",
            description="d",
            affected_services=[api],
        )
        record_five_whys(incident=incident, problem="p", whys=["a", "b"], root_cause="c", by=responder)
        incidents.append(incident)
    TimelineEntry.objects.bulk_create(
        TimelineEntry(incident=incidents[0], occurred_at=timezone.now(), kind="note", body="n", body_html="<p>n</p>")
        for _ in range(size * 30)
    )
    for incident in incidents[: size // 2]:
        change_status(incident=incident, to=Status.RESOLVED, by=responder)
    return incidents


@pytest.fixture(params=[2, 24], ids=["small", "large"])
def data(request, responder, client):
    incidents = build(request.param, responder)
    client.force_login(responder)
    client.get("/")  # warm the session and content types
    return incidents


def test_dashboard_query_budget(client, data, django_assert_max_num_queries):
    with django_assert_max_num_queries(DASHBOARD_BUDGET):
        assert client.get("/").status_code == 200
    with django_assert_max_num_queries(DASHBOARD_BUDGET):
        assert client.get("/", **HTMX).status_code == 200


def test_incident_list_query_budget(client, data, django_assert_max_num_queries):
    with django_assert_max_num_queries(LIST_BUDGET):
        assert client.get("/incidents/").status_code == 200
    slug = data[0].services.first().slug
    filtered = f"/incidents/?severity=P0&severity=P1&status=resolved&q=Incident&service={slug}"
    with django_assert_max_num_queries(LIST_BUDGET + 1):  # + resolving the service slug of the filter
        assert client.get(filtered).status_code == 200


def test_incident_page_query_budget(client, data, django_assert_max_num_queries):
    busy = data[0]
    with django_assert_max_num_queries(INCIDENT_BUDGET):
        response = client.get(busy.get_absolute_url())
    assert response.status_code == 200


def test_timeline_poll_query_budget(client, data, responder, django_assert_max_num_queries):
    busy = data[0]
    last = TimelineEntry.objects.filter(incident=busy).latest("id").id
    with django_assert_max_num_queries(4):
        assert client.get(busy.get_absolute_url() + f"?after={last}", **HTMX).status_code == 204
    add_timeline_entry(incident=busy, by=responder, body="new")
    with django_assert_max_num_queries(INCIDENT_BUDGET):
        assert client.get(busy.get_absolute_url() + f"?after={last}", **HTMX).status_code == 200
