"""Serializers: output shapes, and input shapes that only parse (rules live in incidents.services)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import models
from rest_framework import serializers

from incidents.alerting.models import AlertGroup, ApiToken, ChangeEvent
from incidents.models import (
    ChecklistItem,
    DetectionSource,
    Incident,
    Role,
    Runbook,
    Service,
    SeverityPolicy,
    Status,
    StatusUpdate,
    TimelineEntry,
    UpdateKind,
    UpdateStatus,
)
from incidents.statuspage.models import ServiceState

User = get_user_model()

JSON_TYPES = {bool: "a boolean", int: "a number", float: "a number", list: "an array", dict: "an object"}


class TextField(serializers.CharField):
    """Free text that must arrive as a JSON string: DRF's CharField turns 42 into "42", so a client that sends the
    wrong field (or a number where a reason belongs) would be recorded without a word."""

    default_error_messages = {"not_text": "Must be text (a JSON string), not {kind}."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_text", kind=JSON_TYPES.get(type(data), "a " + type(data).__name__))
        return super().to_internal_value(data)


class UserRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    name = serializers.SerializerMethodField()

    def get_name(self, user) -> str:
        return user.get_full_name() or user.get_username()


class SeveritySerializer(serializers.ModelSerializer):
    class Meta:
        model = SeverityPolicy
        fields = [
            "level",
            "name",
            "description",
            "impact",
            "response_target",
            "response_next_business_day",
            "escalation_delay",
            "update_cadence",
            "pages_out_of_hours",
        ]


class ServiceSerializer(serializers.ModelSerializer):
    owning_team = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)

    class Meta:
        model = Service
        fields = ["id", "name", "slug", "description", "health_check_url", "is_public", "owning_team"]


class RoleHolderSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)
    holder = UserRefSerializer()
    assigned_at = serializers.DateTimeField()


class IncidentSerializer(serializers.ModelSerializer):
    reference = serializers.CharField(read_only=True)
    severity = serializers.SlugRelatedField(slug_field="level", read_only=True)
    services = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    acknowledged_by = UserRefSerializer(read_only=True, allow_null=True)
    roles = serializers.SerializerMethodField()
    allowed_transitions = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = Incident
        fields = [
            "reference",
            "number",
            "title",
            "summary",
            "severity",
            "status",
            "detection_source",
            "services",
            "impact",
            "users_affected_percent",
            "is_restricted",
            "detected_at",
            "declared_at",
            "acknowledged_at",
            "acknowledged_by",
            "identified_at",
            "mitigated_at",
            "resolved_at",
            "closed_at",
            "response_due_at",
            "next_update_due_at",
            "updated_at",
            "roles",
            "allowed_transitions",
            "url",
        ]
        read_only_fields = fields

    def get_roles(self, incident) -> RoleHolderSerializer(many=True):
        current = getattr(incident, "current_roles", None)
        if current is None:
            current = incident.role_assignments.filter(relieved_at__isnull=True).select_related("holder")
        return RoleHolderSerializer(current, many=True).data

    def get_allowed_transitions(self, incident) -> list[str]:
        return [str(status.value) for status in incident.allowed_transitions()]

    def get_url(self, incident) -> str:
        return incident.get_absolute_url()


class DeclareSerializer(serializers.Serializer):
    title = TextField(max_length=200)
    severity = serializers.SlugRelatedField(slug_field="level", queryset=SeverityPolicy.objects.all())
    summary = TextField(required=False, allow_blank=True, default="")
    services = serializers.SlugRelatedField(
        slug_field="slug", queryset=Service.objects.all(), many=True, required=False
    )
    detection_source = serializers.ChoiceField(choices=DetectionSource.choices, default=DetectionSource.TEAM_MEMBER)
    impact = TextField(required=False, allow_blank=True, default="")
    users_affected_percent = serializers.DecimalField(
        max_digits=5, decimal_places=2, min_value=0, max_value=100, required=False, allow_null=True
    )
    is_restricted = serializers.BooleanField(default=False)
    detected_at = serializers.DateTimeField(required=False, allow_null=True)
    incident_commander = serializers.SlugRelatedField(
        slug_field="username", queryset=User.objects.filter(is_active=True), required=False, allow_null=True
    )
    runbook = serializers.SlugRelatedField(
        slug_field="slug", queryset=Runbook.objects.all(), required=False, allow_null=True
    )


class StatusChangeSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Status.choices)
    note = TextField(required=False, allow_blank=True, default="")
    override_reason = TextField(
        required=False, allow_blank=True, default="", help_text="Managers: close with the closure checklist open."
    )


class SeverityChangeSerializer(serializers.Serializer):
    severity = serializers.SlugRelatedField(slug_field="level", queryset=SeverityPolicy.objects.all())
    reason = TextField()


class MergeSerializer(serializers.Serializer):
    into = serializers.CharField(max_length=20, help_text="The incident this one duplicates, e.g. INC-12.")
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class RelatedLinkSerializer(serializers.Serializer):
    incident = serializers.CharField(max_length=20, help_text="The related incident, e.g. INC-3.")


class RelatedSerializer(serializers.Serializer):
    duplicate_of = serializers.CharField(allow_null=True)
    duplicates = serializers.ListField(child=serializers.CharField())
    related = serializers.ListField(child=serializers.CharField())


class RoleAssignSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)
    holder = serializers.SlugRelatedField(slug_field="username", queryset=User.objects.filter(is_active=True))


class TimelineEntrySerializer(serializers.ModelSerializer):
    author = UserRefSerializer(read_only=True, allow_null=True)

    class Meta:
        model = TimelineEntry
        fields = [
            "id",
            "occurred_at",
            "created_at",
            "author",
            "kind",
            "event_type",
            "data",
            "body",
            "body_html",
            "is_key_event",
        ]
        read_only_fields = fields


class TimelinePageSerializer(serializers.Serializer):
    results = TimelineEntrySerializer(many=True)
    next_after = serializers.IntegerField(help_text="Pass as ?after= to get only newer entries.")


class TimelineAddSerializer(serializers.Serializer):
    body = TextField()
    occurred_at = serializers.DateTimeField(required=False, allow_null=True)
    kind = serializers.ChoiceField(choices=[("note", "Note"), ("action", "Action")], default="note")


class StatusUpdateSerializer(serializers.ModelSerializer):
    affected_services = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    posted_by = UserRefSerializer(read_only=True, allow_null=True)

    class Meta:
        model = StatusUpdate
        fields = [
            "id",
            "kind",
            "status",
            "title",
            "what_we_know",
            "what_we_are_doing",
            "impact",
            "eta",
            "description",
            "workaround",
            "affected_services",
            "next_update_at",
            "posted_at",
            "posted_by",
            "is_published",
        ]
        read_only_fields = fields


class StatusUpdatePostSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=UpdateKind.choices)
    status = serializers.ChoiceField(choices=UpdateStatus.choices)
    title = TextField(required=False, allow_blank=True, default="", max_length=200)
    what_we_know = TextField(required=False, allow_blank=True, default="")
    what_we_are_doing = TextField(required=False, allow_blank=True, default="")
    impact = TextField(required=False, allow_blank=True, default="")
    eta = TextField(required=False, allow_blank=True, default="", max_length=100)
    description = TextField(required=False, allow_blank=True, default="")
    workaround = TextField(required=False, allow_blank=True, default="")
    affected_services = serializers.SlugRelatedField(
        slug_field="slug", queryset=Service.objects.all(), many=True, required=False
    )
    component_states = serializers.DictField(
        child=serializers.ChoiceField(choices=ServiceState.choices),
        required=False,
        help_text="Status-page updates: the public state of each service, by slug. Affected services without one "
        "get the severity's state (operational when resolved).",
    )
    next_update_at = serializers.DateTimeField(required=False, allow_null=True)
    publish = serializers.BooleanField(default=False)

    def validate_component_states(self, value):
        services = {service.slug: service for service in Service.objects.filter(slug__in=list(value))}
        unknown = sorted(set(value) - set(services))
        if unknown:
            raise serializers.ValidationError(f"Unknown services: {', '.join(unknown)}.")
        return {services[slug]: state for slug, state in value.items()}


class ChecklistItemSerializer(serializers.ModelSerializer):
    checked_by = UserRefSerializer(read_only=True, allow_null=True)
    runbook = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    is_checked = serializers.BooleanField(read_only=True)

    class Meta:
        model = ChecklistItem
        fields = ["id", "phase", "position", "text", "command", "runbook", "is_checked", "checked_at", "checked_by"]
        read_only_fields = fields


class ChecklistTickSerializer(serializers.Serializer):
    checked = serializers.BooleanField(default=True, help_text="false unticks the item.")


class AlertGroupSerializer(serializers.ModelSerializer):
    integration = serializers.CharField(source="integration.name", read_only=True)
    service = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    incident = serializers.SerializerMethodField()

    class Meta:
        model = AlertGroup
        fields = [
            "id",
            "integration",
            "dedup_key",
            "status",
            "summary",
            "source",
            "severity",
            "labels",
            "link",
            "service",
            "incident",
            "event_count",
            "first_seen_at",
            "last_seen_at",
            "acknowledged_at",
            "resolved_at",
        ]
        read_only_fields = fields

    def get_incident(self, group) -> str | None:
        return f"INC-{group.incident.number}" if group.incident_id else None


class ChangeEventSerializer(serializers.ModelSerializer):
    service = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)

    class Meta:
        model = ChangeEvent
        fields = ["id", "kind", "service", "summary", "description", "source", "link", "occurred_at", "details"]
        read_only_fields = fields


class ApiTokenSerializer(serializers.ModelSerializer):
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: TextField,
        models.TextField: TextField,
    }
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiToken
        fields = ["id", "name", "key_prefix", "created_at", "expires_at", "last_used_at", "revoked_at", "is_active"]
        read_only_fields = ["id", "key_prefix", "created_at", "last_used_at", "revoked_at", "is_active"]


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    key = serializers.CharField(read_only=True, help_text="The token itself. Shown only in this response.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "key"]
