"""Serializers of the post-mortem API: read models, plus the one write (an action item's status)."""

from rest_framework import serializers

from postmortems.models import ActionItem, ActionItemStatus, PostMortem, PostMortemTimelineItem


def _person(user):
    if user is None:
        return None
    return {"id": user.pk, "username": user.get_username(), "name": user.get_full_name() or user.get_username()}


class ActionItemSerializer(serializers.ModelSerializer):
    incident = serializers.CharField(source="incident.reference", read_only=True)
    owner = serializers.SerializerMethodField()
    type = serializers.CharField(source="kind", read_only=True)
    is_overdue = serializers.BooleanField(read_only=True)

    class Meta:
        model = ActionItem
        fields = [
            "id",
            "postmortem",
            "incident",
            "title",
            "description",
            "owner",
            "due_date",
            "priority",
            "type",
            "status",
            "is_overdue",
            "created_at",
            "completed_at",
        ]
        read_only_fields = fields

    def get_owner(self, item) -> dict | None:
        return _person(item.owner)


class ActionItemStatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=ActionItemStatus.choices)


class TimelineLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = PostMortemTimelineItem
        fields = ["occurred_at", "text"]


class PostMortemListSerializer(serializers.ModelSerializer):
    incident = serializers.CharField(source="incident.reference", read_only=True)
    severity = serializers.CharField(source="incident.severity.level", read_only=True)
    owner = serializers.SerializerMethodField()

    class Meta:
        model = PostMortem
        fields = ["id", "incident", "severity", "title", "status", "owner", "due_at", "meeting_at", "published_at"]
        read_only_fields = fields

    def get_owner(self, postmortem) -> dict | None:
        return _person(postmortem.owner)


class PostMortemSerializer(PostMortemListSerializer):
    """One post-mortem with the guide's template sections (Markdown), its timeline lines and action items."""

    timeline = TimelineLineSerializer(source="included_lines", many=True, read_only=True)
    action_items = ActionItemSerializer(many=True, read_only=True)
    attendees = serializers.SerializerMethodField()

    class Meta(PostMortemListSerializer.Meta):
        fields = PostMortemListSerializer.Meta.fields + [
            "meeting_location",
            "attendees",
            "summary",
            "impact",
            "users_affected",
            "revenue_impact",
            "timeline",
            "root_cause",
            "what_went_well",
            "what_could_be_improved",
            "action_items",
            "lessons_learned",
            "report_sent_at",
        ]
        read_only_fields = fields

    def get_attendees(self, postmortem) -> list[dict]:
        return [_person(user) for user in postmortem.attendees.all()]
