"""POST /api/v1/incidents/<reference>/triage/: "Run triage" for API clients (incidents.watch.services.request_triage,
the same service, permission rule and timeline entry as the button on the incident page). The probes run in a
worker; the answer says which will run and the timeline cursor after which their results appear."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from incidents import selectors as incident_selectors
from incidents.api.base import PortalAPIMixin
from incidents.api.views import REFERENCE_PARAMETER
from incidents.models import Incident

from . import selectors, services


class TriageProbeSerializer(serializers.Serializer):
    service = serializers.CharField(help_text="The service's slug.")
    name = serializers.CharField()
    kind = serializers.CharField(help_text="http, tcp or prometheus.")


class TriageStartedSerializer(serializers.Serializer):
    started = serializers.BooleanField(help_text="False when the incident's services have no active probes.")
    detail = serializers.CharField()
    probes = TriageProbeSerializer(many=True)
    timeline_after = serializers.IntegerField(
        help_text="The results are timeline entries (event_type triage_results, one per service) with a larger id: "
        "GET /api/v1/incidents/{reference}/timeline/?after=<this>."
    )


class IncidentTriageView(PortalAPIMixin, viewsets.ViewSet):
    @extend_schema(
        summary="Run triage: every probe of the incident's services (results on the timeline)",
        parameters=[REFERENCE_PARAMETER],
        request=None,
        responses={202: TriageStartedSerializer, 200: TriageStartedSerializer},
    )
    def create(self, request, reference=None):
        try:
            incident = incident_selectors.access_incident(reference=reference, user=request.user)
        except Incident.DoesNotExist:
            raise NotFound("No incident with that reference.")
        after = selectors.last_timeline_id(incident)
        probes = services.request_triage(incident=incident, by=request.user)
        count = len(probes)
        body = {
            "started": bool(probes),
            "detail": (
                f"Triage started: {count} probe{'s' if count != 1 else ''}; results appear on the timeline."
                if probes
                else "The affected services have no triage probes."
            ),
            "probes": [{"service": p.service.slug, "name": p.name, "kind": p.kind} for p in probes],
            "timeline_after": after,
        }
        return Response(body, status=status.HTTP_202_ACCEPTED if probes else status.HTTP_200_OK)
