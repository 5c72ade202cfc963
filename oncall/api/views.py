"""On-call API: who is on call now or at a given time, per team; teams, people, rotations (read) and overrides
(read for everyone; created and cancelled through oncall.services, which lets managers cover for anyone and
responders only for themselves)."""

from datetime import UTC

from django.db.models import Prefetch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.fields import DateTimeField
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from incidents import selectors as incident_selectors
from incidents.api.base import PortalAPIMixin
from incidents.models import Incident
from oncall import selectors, services
from oncall.models import Override, Person, Rotation, RotationMember, Team
from oncall.paging import selectors as paging_selectors
from oncall.paging.services.responders import add_responders

from . import serializers as s


def _moment(request, name: str):
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    try:
        moment = DateTimeField().to_internal_value(raw).astimezone(UTC)
    except (ValidationError, OverflowError, ValueError):
        raise ValidationError({name: ["Give an ISO 8601 date-time, e.g. 2026-01-31T09:00:00Z."]})
    # The rotation maths looks days around the moment in the rotation's zone; keep clear of datetime's limits.
    if not 1900 <= moment.year <= 9998:
        raise ValidationError({name: ["Give a date-time between the years 1900 and 9998."]})
    return moment


class OnCallNowViewSet(PortalAPIMixin, viewsets.ViewSet):
    @extend_schema(
        summary="Who is on call per team, now or at a time",
        parameters=[
            OpenApiParameter("at", OpenApiTypes.DATETIME, description="ISO 8601 date-time (default: now)."),
            OpenApiParameter("team", str, description="Only this team (slug)."),
        ],
        responses={200: s.TeamNowSerializer(many=True)},
    )
    def list(self, request):
        teams = selectors.on_call_now(at=_moment(request, "at"))
        slug = request.query_params.get("team")
        if slug:
            teams = [t for t in teams if t.team.slug == slug]
        return Response(s.TeamNowSerializer(teams, many=True).data)


class ByNamePagination(CursorPagination):
    ordering = "name"
    page_size = 100


class ByIdPagination(CursorPagination):
    ordering = "-id"
    page_size = 100


class TeamViewSet(PortalAPIMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.TeamSerializer
    queryset = Team.objects.select_related("team_lead__user").prefetch_related(
        Prefetch("members", queryset=Person.objects.select_related("user"))
    )
    lookup_field = "slug"
    pagination_class = ByNamePagination


class PersonViewSet(PortalAPIMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.PersonSerializer
    queryset = Person.objects.select_related("user").prefetch_related("teams")
    pagination_class = ByNamePagination
    filterset_fields = ["is_active"]


class RotationViewSet(PortalAPIMixin, viewsets.ReadOnlyModelViewSet):
    """Rotations with their ordered members. Managers edit rotations in the admin."""

    serializer_class = s.RotationSerializer
    queryset = Rotation.objects.select_related("team").prefetch_related(
        Prefetch("members", queryset=RotationMember.objects.select_related("person__user"))
    )
    pagination_class = ByNamePagination
    filterset_fields = ["team", "is_active"]


class OverrideViewSet(
    PortalAPIMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = s.OverrideSerializer
    pagination_class = ByIdPagination
    filterset_fields = ["rotation", "slot", "person"]

    def get_queryset(self):
        return Override.objects.select_related("person__user", "created_by").order_by("-id")

    @extend_schema(request=s.OverrideCreateSerializer, responses={201: s.OverrideSerializer})
    def create(self, request):
        form = s.OverrideCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        override = services.create_override(by=request.user, **form.validated_data)
        return Response(
            s.OverrideSerializer(self.get_queryset().get(pk=override.pk)).data, status=status.HTTP_201_CREATED
        )

    def destroy(self, request, pk=None):
        services.cancel_override(override=self.get_object(), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class IncidentRespondersView(PortalAPIMixin, viewsets.ViewSet):
    """Added responders of an incident: GET lists them with their paging state; POST pages another team (through
    its escalation policy) or a person, with a message (oncall.paging.services.responders.add_responders)."""

    def _incident(self, request, reference: str) -> Incident:
        try:
            return incident_selectors.incident_for_page(reference=reference, user=request.user)
        except Incident.DoesNotExist:
            raise NotFound("No incident with that reference.")

    @extend_schema(summary="Added responders of an incident", responses={200: s.AddedResponderSerializer(many=True)})
    def list(self, request, reference=None):
        incident = self._incident(request, reference)
        return Response(
            s.AddedResponderSerializer(paging_selectors.paging_state(incident=incident).added, many=True).data
        )

    @extend_schema(
        summary="Page another team or a person for an incident",
        request=s.AddRespondersSerializer,
        responses={201: s.AddedResponderSerializer},
    )
    def create(self, request, reference=None):
        incident = self._incident(request, reference)
        form = s.AddRespondersSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        page = add_responders(incident=incident, by=request.user, **form.validated_data)
        added = {p.pk: p for p in paging_selectors.paging_state(incident=incident).added}
        return Response(s.AddedResponderSerializer(added[page.pk]).data, status=status.HTTP_201_CREATED)
