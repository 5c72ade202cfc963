"""The incidents API: thin adapters that parse, call incidents.services, and format.

Every read of incidents goes through Incident.objects.visible_to (directly or via selectors.access_incident):
a restricted incident the caller may not see answers 404, exactly like one that does not exist.
"""

from __future__ import annotations

from datetime import UTC

import django_filters
from django import forms
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from incidents import merging, selectors
from incidents.alerting import selectors as alerting_selectors
from incidents.alerting.models import AlertGroup, ApiToken
from incidents.alerting.services.tokens import create_api_token, revoke_api_token
from incidents.models import (
    ACTIVE_STATUSES,
    ChecklistItem,
    Incident,
    Service,
    SeverityPolicy,
    Status,
    StatusUpdate,
)
from incidents.services import roles as roles_services
from incidents.services import status as status_services
from incidents.services.checklist import tick_checklist_item
from incidents.services.entries import add_timeline_entry
from incidents.services.updates import post_status_update

from . import serializers as s
from .base import PortalAPIMixin

INCIDENT_LOOKUP = r"[Ii][Nn][Cc]-[0-9]{1,9}|[0-9]{1,9}"


class IncidentCursorPagination(CursorPagination):
    ordering = "-number"  # unique and in declaration order: a stable cursor
    page_size = 50
    max_page_size = 200
    page_size_query_param = "page_size"


class UTCIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    """ISO 8601, converted to UTC here: PostgreSQL refuses offsets beyond +-15:59 that Python accepts."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        if timezone.is_naive(value):
            value = timezone.make_aware(value, UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("That date is out of range.", code="overflow")


class UTCIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCIsoDateTimeField


class IncidentFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Status.choices)
    severity = django_filters.MultipleChoiceFilter(
        field_name="severity__level", choices=[(f"P{n}", f"P{n}") for n in range(4)], help_text="P0-P3."
    )
    service = django_filters.CharFilter(field_name="services__slug", help_text="A service slug.")
    active = django_filters.BooleanFilter(
        method="filter_active", help_text="true: Investigating/Identified/Monitoring."
    )
    is_restricted = django_filters.BooleanFilter()
    declared_after = UTCIsoDateTimeFilter(field_name="declared_at", lookup_expr="gte")
    declared_before = UTCIsoDateTimeFilter(field_name="declared_at", lookup_expr="lt")

    class Meta:
        model = Incident
        fields = ["status", "severity", "service", "active", "is_restricted", "declared_after", "declared_before"]

    def filter_active(self, queryset, name, value):
        return queryset.filter(status__in=ACTIVE_STATUSES) if value else queryset.exclude(status__in=ACTIVE_STATUSES)


REFERENCE_PARAMETER = OpenApiParameter(
    "reference",
    str,
    OpenApiParameter.PATH,
    description="INC-123 (or just 123).",
    pattern=f"^({INCIDENT_LOOKUP})$",
)
# The collection (/api/v1/incidents/) has no {reference}: the class-wide parameter is taken off its operations,
# or the document is invalid OpenAPI and client generators fail on it.
NO_REFERENCE = OpenApiParameter("reference", str, OpenApiParameter.PATH, exclude=True)


@extend_schema_view(
    list=extend_schema(summary="List incidents you can see (filters, cursor pagination)", parameters=[NO_REFERENCE]),
    retrieve=extend_schema(summary="One incident by reference (INC-123)"),
)
@extend_schema(parameters=[REFERENCE_PARAMETER])
class IncidentViewSet(PortalAPIMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = s.IncidentSerializer
    pagination_class = IncidentCursorPagination
    filterset_class = IncidentFilter
    lookup_field = "reference"
    lookup_value_regex = INCIDENT_LOOKUP

    def get_queryset(self):
        return (
            Incident.objects.visible_to(self.request.user)
            .select_related("severity", "acknowledged_by")
            .prefetch_related(selectors.CURRENT_ROLES, "services")
            .distinct()
        )

    def get_object(self):
        number = selectors.parse_reference(self.kwargs["reference"])
        if number is None:
            raise NotFound("No incident with that reference.")
        try:
            return self.get_queryset().get(number=number)
        except Incident.DoesNotExist:
            raise NotFound("No incident with that reference.")

    def _incident(self) -> Incident:
        """The incident of a nested route, visible to the caller, or 404."""
        try:
            return selectors.access_incident(reference=self.kwargs["reference"], user=self.request.user)
        except Incident.DoesNotExist:
            raise NotFound("No incident with that reference.")

    def _answer(self, incident: Incident, code=status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().get(pk=incident.pk)
        return Response(s.IncidentSerializer(fresh, context=self.get_serializer_context()).data, status=code)

    @extend_schema(
        summary="Declare an incident",
        request=s.DeclareSerializer,
        responses={201: s.IncidentSerializer},
        parameters=[NO_REFERENCE],
    )
    def create(self, request):
        form = s.DeclareSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        incident = status_services.declare_incident(
            title=data["title"],
            severity=data["severity"],
            by=request.user,
            summary=data["summary"],
            services=data.get("services", []),
            detection_source=data["detection_source"],
            impact=data["impact"],
            users_affected_percent=data.get("users_affected_percent"),
            is_restricted=data["is_restricted"],
            detected_at=data.get("detected_at"),
            incident_commander=data.get("incident_commander"),
            runbook=data.get("runbook"),
        )
        return self._answer(incident, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change status (409 when the transition is not allowed)",
        request=s.StatusChangeSerializer,
        responses={200: s.IncidentSerializer},
    )
    @action(detail=True, methods=["post"], url_path="status")
    def change_status(self, request, reference=None):
        incident = self._incident()
        form = s.StatusChangeSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        incident = status_services.change_status(
            incident=incident,
            by=request.user,
            to=form.validated_data["status"],
            note=form.validated_data["note"],
            override_reason=form.validated_data["override_reason"],
        )
        return self._answer(incident)

    @extend_schema(summary="Change severity", request=s.SeverityChangeSerializer, responses={200: s.IncidentSerializer})
    @action(detail=True, methods=["post"], url_path="severity")
    def change_severity(self, request, reference=None):
        incident = self._incident()
        form = s.SeverityChangeSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        incident = status_services.change_severity(
            incident=incident,
            severity=form.validated_data["severity"],
            by=request.user,
            reason=form.validated_data["reason"],
        )
        return self._answer(incident)

    @extend_schema(summary="Assign a role", request=s.RoleAssignSerializer, responses={200: s.IncidentSerializer})
    @action(detail=True, methods=["post"], url_path="roles")
    def assign_role(self, request, reference=None):
        incident = self._incident()
        form = s.RoleAssignSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        roles_services.assign_role(
            incident=incident, role=form.validated_data["role"], holder=form.validated_data["holder"], by=request.user
        )
        return self._answer(incident)

    @extend_schema(summary="Acknowledge (idempotent)", request=None, responses={200: s.IncidentSerializer})
    @action(detail=True, methods=["post"], url_path="acknowledge")
    def acknowledge(self, request, reference=None):
        incident = status_services.acknowledge_incident(incident=self._incident(), by=request.user)
        return self._answer(incident)

    @extend_schema(
        methods=["GET"],
        summary="Timeline entries after a cursor",
        parameters=[
            OpenApiParameter("after", int, description="Only entries with a larger id (the last id you have)."),
            OpenApiParameter("limit", int, description="At most this many entries (1-500, default 200)."),
        ],
        responses={200: s.TimelinePageSerializer},
    )
    @extend_schema(
        methods=["POST"],
        summary="Add a note or action to the timeline",
        request=s.TimelineAddSerializer,
        responses={201: s.TimelineEntrySerializer},
    )
    @action(detail=True, methods=["get", "post"], url_path="timeline", pagination_class=None, filterset_class=None)
    def timeline(self, request, reference=None):
        incident = self._incident()
        if request.method == "POST":
            form = s.TimelineAddSerializer(data=request.data)
            form.is_valid(raise_exception=True)
            entry = add_timeline_entry(
                incident=incident,
                by=request.user,
                body=form.validated_data["body"],
                occurred_at=form.validated_data.get("occurred_at"),
                kind=form.validated_data["kind"],
            )
            return Response(s.TimelineEntrySerializer(entry).data, status=status.HTTP_201_CREATED)
        after = _int_param(request, "after", default=0, low=0, high=2**62)
        limit = _int_param(request, "limit", default=200, low=1, high=500)
        entries = selectors.timeline_after(incident=incident, after_id=after, limit=limit)
        next_after = entries[-1].id if entries else after
        return Response({"results": s.TimelineEntrySerializer(entries, many=True).data, "next_after": next_after})

    @extend_schema(
        methods=["GET"],
        summary="Status updates (internal and external)",
        parameters=[OpenApiParameter("kind", str, enum=["internal", "external"])],
        responses={200: s.StatusUpdateSerializer(many=True)},
    )
    @extend_schema(
        methods=["POST"],
        summary="Post an internal or status-page update",
        request=s.StatusUpdatePostSerializer,
        responses={201: s.StatusUpdateSerializer},
    )
    @action(detail=True, methods=["get", "post"], url_path="updates", pagination_class=None, filterset_class=None)
    def updates(self, request, reference=None):
        incident = self._incident()
        if request.method == "POST":
            form = s.StatusUpdatePostSerializer(data=request.data)
            form.is_valid(raise_exception=True)
            data = dict(form.validated_data)
            update = post_status_update(incident=incident, by=request.user, **data)
            return Response(s.StatusUpdateSerializer(update).data, status=status.HTTP_201_CREATED)
        queryset = StatusUpdate.objects.filter(incident=incident).select_related("posted_by")
        queryset = queryset.prefetch_related("affected_services").order_by("-posted_at", "-id")
        kind = request.query_params.get("kind")
        if kind in {"internal", "external"}:
            queryset = queryset.filter(kind=kind)
        return Response(s.StatusUpdateSerializer(queryset, many=True).data)

    @extend_schema(summary="The incident's checklists", responses={200: s.ChecklistItemSerializer(many=True)})
    @action(detail=True, methods=["get"], url_path="checklist", pagination_class=None, filterset_class=None)
    def checklist(self, request, reference=None):
        incident = self._incident()
        items = ChecklistItem.objects.filter(incident=incident).select_related("checked_by", "runbook")
        return Response(s.ChecklistItemSerializer(items, many=True).data)

    @extend_schema(
        summary="Tick or untick a checklist item",
        request=s.ChecklistTickSerializer,
        responses={200: s.ChecklistItemSerializer},
    )
    @action(detail=True, methods=["post"], url_path=r"checklist/(?P<item_id>[0-9]{1,18})", filterset_class=None)
    def tick(self, request, reference=None, item_id=None):
        incident = self._incident()
        item = ChecklistItem.objects.filter(incident=incident, pk=item_id).first()
        if item is None:
            raise NotFound("No such checklist item on this incident.")
        form = s.ChecklistTickSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        item = tick_checklist_item(item=item, by=request.user, checked=form.validated_data["checked"])
        item = ChecklistItem.objects.select_related("checked_by", "runbook").get(pk=item.pk)
        return Response(s.ChecklistItemSerializer(item).data)

    def _other_incident(self, reference: str, field: str) -> Incident:
        try:
            return selectors.access_incident(reference=reference.strip().upper(), user=self.request.user)
        except Incident.DoesNotExist:
            raise ValidationError({field: [f"No incident {reference} that you can see."]})

    @extend_schema(
        summary="Merge this incident into another (it is a duplicate)",
        request=s.MergeSerializer,
        responses={200: s.IncidentSerializer},
    )
    @action(detail=True, methods=["post"], url_path="merge", filterset_class=None)
    def merge(self, request, reference=None):
        incident = self._incident()
        form = s.MergeSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        into = self._other_incident(form.validated_data["into"], "into")
        into = merging.merge_incident(source=incident, into=into, by=request.user, reason=form.validated_data["reason"])
        return self._answer(into)

    @extend_schema(methods=["GET"], summary="Related incidents and duplicates", responses={200: s.RelatedSerializer})
    @extend_schema(
        methods=["POST"], summary="Link a related incident", request=s.RelatedLinkSerializer,
        responses={200: s.RelatedSerializer},
    )  # fmt: skip
    @action(detail=True, methods=["get", "post"], url_path="related", pagination_class=None, filterset_class=None)
    def related(self, request, reference=None):
        incident = self._incident()
        if request.method == "POST":
            form = s.RelatedLinkSerializer(data=request.data)
            form.is_valid(raise_exception=True)
            other = self._other_incident(form.validated_data["incident"], "incident")
            merging.link_related(incident=incident, other=other, by=request.user)
        visible = Incident.objects.visible_to(request.user)
        duplicate_of = visible.filter(pk=incident.duplicate_of_id).first() if incident.duplicate_of_id else None
        return Response(
            {
                "duplicate_of": duplicate_of.reference if duplicate_of else None,
                "duplicates": [i.reference for i in visible.filter(duplicate_of=incident).order_by("number")],
                "related": [i.reference for i in visible.filter(related_incidents=incident).order_by("number")],
            }
        )

    @extend_schema(summary="Alert groups linked to the incident", responses={200: s.AlertGroupSerializer(many=True)})
    @action(detail=True, methods=["get"], url_path="alerts", pagination_class=None, filterset_class=None)
    def alerts(self, request, reference=None):
        groups = alerting_selectors.alert_groups_for(self._incident())
        return Response(s.AlertGroupSerializer(groups, many=True).data)

    @extend_schema(
        summary="Changes to the incident's services before it started",
        responses={200: s.ChangeEventSerializer(many=True)},
    )
    @action(detail=True, methods=["get"], url_path="recent-changes", pagination_class=None, filterset_class=None)
    def recent_changes(self, request, reference=None):
        changes = alerting_selectors.recent_changes_for(self._incident())
        return Response(s.ChangeEventSerializer(changes, many=True).data)


def _int_param(request, name, *, default, low, high) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({name: ["Must be a whole number."]})
    if not low <= value <= high:
        raise ValidationError({name: [f"Must be between {low} and {high}."]})
    return value


class NameCursorPagination(CursorPagination):
    ordering = "name"
    page_size = 100


class ServiceViewSet(PortalAPIMixin, viewsets.ReadOnlyModelViewSet):
    """The service catalogue (managers edit it in the admin)."""

    serializer_class = s.ServiceSerializer
    queryset = Service.objects.select_related("owning_team").order_by("name")
    lookup_field = "slug"
    pagination_class = NameCursorPagination
    filterset_fields = ["is_public"]


class SeverityViewSet(PortalAPIMixin, viewsets.ReadOnlyModelViewSet):
    """The guide's severity table (P0-P3)."""

    serializer_class = s.SeveritySerializer
    queryset = SeverityPolicy.objects.order_by("rank")
    lookup_field = "level"
    lookup_value_regex = "P[0-9]"
    pagination_class = None


class AlertGroupCursorPagination(CursorPagination):
    ordering = "-id"
    page_size = 100


class AlertGroupFilter(django_filters.FilterSet):
    service = django_filters.CharFilter(field_name="service__slug")
    open = django_filters.BooleanFilter(field_name="resolved_at", lookup_expr="isnull")

    class Meta:
        model = AlertGroup
        fields = ["status", "severity", "service", "open"]


class AlertGroupViewSet(PortalAPIMixin, viewsets.ReadOnlyModelViewSet):
    """Alert groups. Groups linked to a restricted incident are listed only to those who can see it."""

    serializer_class = s.AlertGroupSerializer
    pagination_class = AlertGroupCursorPagination
    filterset_class = AlertGroupFilter

    def get_queryset(self):
        visible = Incident.objects.visible_to(self.request.user).values("pk")
        return (
            AlertGroup.objects.select_related("integration", "service", "incident")
            .filter(_incident_visible(visible))
            .order_by("-id")
        )


def _incident_visible(visible):
    return Q(incident__isnull=True) | Q(incident__in=visible)


@extend_schema_view(
    list=extend_schema(summary="Your API tokens"),
    create=extend_schema(
        summary="Create a token (the key is in this response only)", responses={201: s.ApiTokenCreatedSerializer}
    ),
    destroy=extend_schema(summary="Revoke a token"),
)
class ApiTokenViewSet(
    PortalAPIMixin, mixins.ListModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Personal API tokens: every signed-in user manages their own (viewers included: a token carries exactly
    its owner's permissions). Creating one needs a browser session, not a token; a token may revoke only
    itself. Staff revoke anyone's in the admin."""

    serializer_class = s.ApiTokenSerializer
    pagination_class = None
    lookup_value_regex = "[0-9]{1,18}"
    write_check = staticmethod(lambda user: True)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return ApiToken.objects.none()
        return ApiToken.objects.filter(user=self.request.user).order_by("-created_at", "-id")

    def create(self, request):
        if isinstance(request.auth, ApiToken):
            raise PermissionDenied(
                "API tokens are created in a signed-in browser session (this page's API or the admin), "
                "not with another token."
            )
        form = s.ApiTokenSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        token, key = create_api_token(
            user=request.user, name=form.validated_data["name"], expires_at=form.validated_data.get("expires_at")
        )
        token.key = key
        return Response(s.ApiTokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        token = self.get_object()
        using = request.auth if isinstance(request.auth, ApiToken) else None
        revoke_api_token(token=token, by=request.user, using=using)
        return Response(status=status.HTTP_204_NO_CONTENT)
