"""Used by seed_demo: resolving drafts the post-mortem from the times the services stamped, before the demo story's
clock was applied to the incident; this drafts it again from the re-stamped incident and timeline."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Max

from incidents.models import EventType, Incident
from incidents.selectors import parse_reference
from postmortems.models import PostMortem
from postmortems.services.drafting import ensure_draft_for


class Command(BaseCommand):
    help = "Draft the post-mortem of a demo incident again from its re-stamped record (the old draft is discarded)."

    def add_arguments(self, parser):
        parser.add_argument("reference", help="INC-n")
        parser.add_argument("--by", required=True, help="username of the drafting user")

    @transaction.atomic
    def handle(self, *args, reference, by, **options):
        incident = Incident.objects.filter(number=parse_reference(reference) or 0).first()
        user = get_user_model().objects.filter(username=by).first()
        if incident is None or user is None:
            raise CommandError(f"No incident {reference} or no user {by}.")
        if not PostMortem.objects.filter(incident=incident).exists():
            return
        PostMortem.objects.filter(incident=incident).delete()
        # The first draft's timeline entry names the wrong due date; the new draft writes its own.
        incident.timeline.filter(event_type=EventType.POSTMORTEM_DRAFTED).delete()
        last_entry = incident.timeline.aggregate(last=Max("id"))["last"] or 0
        ensure_draft_for(incident=incident, by=user)
        PostMortem.objects.filter(incident=incident).update(created_at=incident.resolved_at)
        incident.timeline.filter(id__gt=last_entry).update(
            occurred_at=incident.resolved_at, created_at=incident.resolved_at
        )
