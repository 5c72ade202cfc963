"""Reads for alerting: recent changes next to an incident, its alert groups, integration error counts."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Count

from .models import AlertGroup, ChangeEvent, Integration


def recent_changes_for(incident, *, hours: int | None = None, limit: int = 20) -> list[ChangeEvent]:
    """Change events (deploys, migrations, config changes) to the incident's services in the hours before it
    was detected, newest first: the triage checklist's "what changed recently?". One query."""
    hours = hours if hours is not None else settings.ALERTING_RECENT_CHANGES_HOURS
    start = incident.detected_at
    return list(
        ChangeEvent.objects.filter(
            service__in=incident.services.all(),
            occurred_at__gte=start - timedelta(hours=hours),
            occurred_at__lte=incident.declared_at,
        )
        .select_related("service")
        .order_by("-occurred_at", "-id")[:limit]
    )


def alert_groups_for(incident, *, limit: int = 100) -> list[AlertGroup]:
    return list(
        AlertGroup.objects.filter(incident=incident)
        .select_related("integration", "service")
        .order_by("-first_seen_at")[:limit]
    )


def integrations_with_error_counts():
    return Integration.objects.annotate(error_count=Count("errors")).order_by("name")
