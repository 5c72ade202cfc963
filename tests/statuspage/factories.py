from datetime import timedelta

from django.utils import timezone

from incidents.services.updates import post_status_update
from incidents.statuspage import services as statuspage_services
from tests.factories import ManagerFactory, ResponderFactory


def post_update(incident, *, by=None, publish=True, kind="external", status="investigating", **fields):
    """A status page update (external) or an internal update, through the incidents service."""
    by = by or ResponderFactory()
    if kind == "external":
        fields.setdefault("title", "API Performance Issues")
        fields.setdefault("description", "We are currently investigating reports of slow API response times.")
    else:
        fields.setdefault("what_we_know", "Database CPU is high.")
    return post_status_update(incident=incident, kind=kind, status=status, by=by, publish=publish, **fields)


def maintenance(*, services, title="Database upgrade", starts_in=timedelta(hours=1), lasts=timedelta(hours=2), **kw):
    starts_at = timezone.now() + starts_in
    return statuspage_services.schedule_maintenance(
        title=title,
        description=kw.pop("description", "Writes may be slow."),
        services=services,
        starts_at=starts_at,
        ends_at=starts_at + lasts,
        by=kw.pop("by", None) or ManagerFactory(),
    )
