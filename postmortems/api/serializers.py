"""Post-mortem API shapes (read): post-mortems in the guide's template and their action items."""

from rest_framework import serializers

from incidents.api.serializers import UserRefSerializer
from postmortems.models import ActionItem, PostMortem, PostMortemTimelineItem


class ActionItemSerializer(serializers.ModelSerializer):
    incident = serializers.SerializerMethodField()
    postmortem = serializers.PrimaryKeyRelatedField(read_only=True)
    owner = UserRefSerializer(read_only=True)
    type = serializers.CharField(source="kind", read_only=True)
    is_overdue = serializers.BooleanField(read_only=True)

    class Meta:
        model = ActionItem
        fields = [
            "id",
            "incident",
            "postmortem",
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

    def get_incident(self, item) -> str:
        return f"INC-{item.incident.number}"


class TimelineItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = PostMortemTimelineItem
        fields = ["occurred_at", "text", "text_html"]
        read_only_fields = fields


class PostMortemSerializer(serializers.ModelSerializer):
    incident = serializers.SerializerMethodField()
    owner = UserRefSerializer(read_only=True, allow_null=True)
    timeline = serializers.SerializerMethodField()
    action_items = ActionItemSerializer(many=True, read_only=True)

    class Meta:
        model = PostMortem
        fields = [
            "id",
            "incident",
            "title",
            "status",
            "owner",
            "due_at",
            "meeting_at",
            "meeting_location",
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
            "created_at",
            "updated_at",
            "published_at",
        ]
        read_only_fields = fields

    def get_incident(self, postmortem) -> str:
        return f"INC-{postmortem.incident.number}"

    def get_timeline(self, postmortem) -> TimelineItemSerializer(many=True):
        # Only the lines chosen for the post-mortem (the incident's own timeline has every entry).
        items = [item for item in postmortem.timeline_items.all() if item.is_included]
        return TimelineItemSerializer(items, many=True).data
