import django_filters
from django import forms
from django.apps import apps
from django.db.models import Q

from incidents.models import Incident
from incidents.selectors import parse_reference

from .models import AuditAction, AuditRecord
from .registry import is_audited


def object_type_choices():
    labels = sorted(
        (f"{m._meta.app_label}.{m._meta.model_name}", f"{m._meta.app_config.verbose_name}: {m._meta.verbose_name}")
        for m in apps.get_models()
        if is_audited(m)
    )
    return labels


class AuditRecordFilter(django_filters.FilterSet):
    object_type = django_filters.ChoiceFilter(label="Model", choices=object_type_choices)
    action = django_filters.ChoiceFilter(choices=AuditAction.choices)
    user = django_filters.CharFilter(label="User", field_name="actor_username", lookup_expr="iexact")
    incident = django_filters.CharFilter(label="Incident", method="filter_incident")
    since = django_filters.DateFilter(
        label="From", field_name="occurred_at", lookup_expr="date__gte", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = django_filters.DateFilter(
        label="Until", field_name="occurred_at", lookup_expr="date__lte", widget=forms.DateInput(attrs={"type": "date"})
    )
    q = django_filters.CharFilter(label="Search", method="filter_search")

    class Meta:
        model = AuditRecord
        fields = []

    def filter_incident(self, queryset, name, value):
        number = parse_reference(value)
        if number is None:
            return queryset.none()
        # Records stay filterable by reference for as long as the incident exists; the id is what they carry.
        return queryset.filter(incident_id__in=Incident.objects.filter(number=number).values("pk"))

    def filter_search(self, queryset, name, value):
        value = value.strip()
        return queryset.filter(
            Q(object_repr__icontains=value)
            | Q(object_id=value)
            | Q(request_id=value)
            | Q(client_request_id=value)
            | Q(actor_username__iexact=value)
        )
