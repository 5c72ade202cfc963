"""Five whys recorded after resolution reach the post-mortem: it shows the incident's current five whys until it
is published, and keeps the published ones after that."""

import pytest

from incidents.models import Status
from incidents.services.entries import record_five_whys
from incidents.services.status import change_status
from postmortems.models import PostMortem
from postmortems.services.publishing import change_postmortem_status
from tests.factories import declare

pytestmark = pytest.mark.django_db


def whys(incident, by, *answers, root_cause=""):
    record_five_whys(incident=incident, problem="API slow", whys=list(answers), root_cause=root_cause, by=by)


def test_post_mortem_shows_the_current_five_whys_until_published(client, responder):
    incident = declare(by=responder)
    whys(incident, responder, "Queries slow")
    change_status(incident=incident, to=Status.RESOLVED, by=responder)
    postmortem = PostMortem.objects.get(incident=incident)
    client.force_login(responder)

    # Finished after resolution: the draft copied nothing stale, the page shows the latest.
    whys(incident, responder, "Queries slow", "Index missing", root_cause="Migration skipped the index.")
    body = client.get(postmortem.get_absolute_url()).content.decode()
    assert "Problem: API slow" in body and "Why? Index missing" in body

    change_postmortem_status(postmortem=postmortem, to="in_review", by=responder)
    change_postmortem_status(postmortem=postmortem, to="published", by=responder)
    postmortem.refresh_from_db()
    assert postmortem.five_whys == {
        "problem": "API slow",
        "whys": ["Queries slow", "Index missing"],
        "root_cause": "Migration skipped the index.",
    }

    # Published: later edits on the incident no longer change the report.
    whys(incident, responder, "Something else entirely")
    body = client.get(postmortem.get_absolute_url()).content.decode()
    assert "Why? Index missing" in body and "Something else entirely" not in body
