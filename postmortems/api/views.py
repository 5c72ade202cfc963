"""The post-mortem API (read, plus an action item's status). Visibility follows the incident's, through
PostMortem/ActionItem .visible_to; the one write calls the same service as the pages."""

from django.db.models import Prefetch
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from incidents.api.base import PortalAPIMixin
from postmortems.models import ActionItem, PostMortem, PostMortemStatus, PostMortemTimelineItem
from postmortems.services.action_items import change_action_item_status

from . import serializers as s


class NewestFirst(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50
    max_page_size = 200
    page_size_query_param = "page_size"


class DueFirst(NewestFirst):
    ordering = ("due_date", "id")


@extend_schema_view(
    list=extend_schema(parameters=[OpenApiParameter("status", str, enum=PostMortemStatus.values)]),
)
class PostMortemViewSet(PortalAPIMixin, viewsets.ReadOnlyModelViewSet):
    """Post-mortems of the incidents you may see, newest first."""

    pagination_class = NewestFirst

    def get_serializer_class(self):
        return s.PostMortemSerializer if self.action == "retrieve" else s.PostMortemListSerializer

    def get_queryset(self):
        queryset = PostMortem.objects.visible_to(self.request.user).select_related(
            "incident", "incident__severity", "owner"
        )
        if self.action == "retrieve":
            return queryset.prefetch_related(
                "attendees",
                Prefetch("action_items", queryset=ActionItem.objects.select_related("incident", "owner")),
                Prefetch(
                    "timeline_items",
                    queryset=PostMortemTimelineItem.objects.filter(is_included=True),
                    to_attr="included_lines",
                ),
            )
        status = self.request.query_params.get("status", "")
        return queryset.filter(status=status) if status in PostMortemStatus.values else queryset


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("mine", bool, description="Only action items you own."),
            OpenApiParameter("overdue", bool, description="Only open items past their due date."),
            OpenApiParameter("status", str),
        ]
    ),
)
class ActionItemViewSet(PortalAPIMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Action items of the incidents you may see, soonest due first."""

    serializer_class = s.ActionItemSerializer
    pagination_class = DueFirst

    def get_queryset(self):
        queryset = ActionItem.objects.visible_to(self.request.user).select_related("incident", "owner")
        params = self.request.query_params
        if params.get("mine") in {"1", "true"}:
            queryset = queryset.filter(owner=self.request.user)
        if params.get("overdue") in {"1", "true"}:
            queryset = queryset.overdue(timezone.localdate())
        if params.get("status"):
            queryset = queryset.filter(status=params["status"])
        return queryset

    @extend_schema(request=s.ActionItemStatusSerializer, responses=s.ActionItemSerializer)
    @action(detail=True, methods=["post"], url_path="status")
    def set_status(self, request, pk=None):
        """Open, in progress, done or won't do. Responders and the item's owner may change it."""
        item = self.get_object()
        serializer = s.ActionItemStatusSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        item = change_action_item_status(item=item, to=serializer.validated_data["status"], by=request.user)
        return Response(s.ActionItemSerializer(item).data)

    def get_permissions(self):
        # The owner of an item may set its status without the responder role; the service checks exactly that.
        if self.action == "set_status":
            return [IsAuthenticated()]
        return super().get_permissions()
