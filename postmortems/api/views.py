"""Post-mortem API (read): post-mortems and action items, visible exactly when their incident is."""

import django_filters
from django.db.models import Prefetch
from django.utils import timezone
from rest_framework import viewsets
from rest_framework.pagination import CursorPagination

from incidents.api.base import PortalAPIMixin
from postmortems.models import OPEN_ACTION_STATUSES, ActionItem, ActionItemStatus, PostMortem, PostMortemStatus

from . import serializers as s


class NewestFirst(CursorPagination):
    ordering = "-id"
    page_size = 50


class PostMortemFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=PostMortemStatus.choices)
    incident = django_filters.NumberFilter(field_name="incident__number", help_text="The incident number (INC-n).")

    class Meta:
        model = PostMortem
        fields = ["status", "incident"]


class PostMortemViewSet(PortalAPIMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.PostMortemSerializer
    pagination_class = NewestFirst
    filterset_class = PostMortemFilter

    def get_queryset(self):
        items = ActionItem.objects.select_related("owner", "incident").order_by("due_date", "id")
        return (
            PostMortem.objects.visible_to(self.request.user)
            .select_related("incident", "owner")
            .prefetch_related("timeline_items", Prefetch("action_items", queryset=items))
        )


class ActionItemFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=ActionItemStatus.choices)
    owner = django_filters.CharFilter(field_name="owner__username", help_text="The owner's username.")
    incident = django_filters.NumberFilter(field_name="incident__number", help_text="The incident number (INC-n).")
    open = django_filters.BooleanFilter(method="filter_open")
    overdue = django_filters.BooleanFilter(method="filter_overdue")

    class Meta:
        model = ActionItem
        fields = ["status", "owner", "incident", "priority", "open", "overdue"]

    def filter_open(self, queryset, name, value):
        return (
            queryset.filter(status__in=OPEN_ACTION_STATUSES)
            if value
            else queryset.exclude(status__in=OPEN_ACTION_STATUSES)
        )

    def filter_overdue(self, queryset, name, value):
        overdue = queryset.filter(status__in=OPEN_ACTION_STATUSES, due_date__lt=timezone.localdate())
        return overdue if value else queryset.exclude(pk__in=overdue.values("pk"))


class ActionItemViewSet(PortalAPIMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.ActionItemSerializer
    pagination_class = NewestFirst
    filterset_class = ActionItemFilter

    def get_queryset(self):
        return ActionItem.objects.visible_to(self.request.user).select_related("owner", "incident")
