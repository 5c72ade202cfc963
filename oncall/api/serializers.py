"""On-call API shapes: who is on call (now or at a time), teams, rotations, overrides."""

from rest_framework import serializers

from oncall.models import Override, Person, Rotation, RotationMember, Slot, Team


class PersonRefSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Person
        fields = ["id", "name", "email", "timezone", "username"]
        read_only_fields = fields


class PersonSerializer(PersonRefSerializer):
    teams = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)

    class Meta(PersonRefSerializer.Meta):
        fields = [*PersonRefSerializer.Meta.fields, "is_active", "teams"]
        read_only_fields = fields


class TeamSerializer(serializers.ModelSerializer):
    team_lead = PersonRefSerializer(read_only=True, allow_null=True)
    members = PersonRefSerializer(many=True, read_only=True)

    class Meta:
        model = Team
        fields = ["id", "name", "slug", "description", "team_lead", "members"]
        read_only_fields = fields


class RotationMemberSerializer(serializers.ModelSerializer):
    person = PersonRefSerializer(read_only=True)

    class Meta:
        model = RotationMember
        fields = ["slot", "position", "person"]
        read_only_fields = fields


class RotationSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    members = RotationMemberSerializer(many=True, read_only=True)

    class Meta:
        model = Rotation
        fields = [
            "id",
            "team",
            "name",
            "description",
            "timezone",
            "shift_length_days",
            "handoff_weekday",
            "handoff_time",
            "start_date",
            "is_active",
            "members",
        ]
        read_only_fields = fields


class OverrideSerializer(serializers.ModelSerializer):
    person = PersonRefSerializer(read_only=True)
    rotation = serializers.PrimaryKeyRelatedField(read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Override
        fields = ["id", "rotation", "slot", "person", "start", "end", "reason", "created_by", "created_at"]
        read_only_fields = fields


class OverrideCreateSerializer(serializers.Serializer):
    rotation = serializers.PrimaryKeyRelatedField(queryset=Rotation.objects.all())
    slot = serializers.ChoiceField(choices=Slot.choices, default=Slot.PRIMARY)
    person = serializers.PrimaryKeyRelatedField(queryset=Person.objects.filter(is_active=True))
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)


class ShiftSerializer(serializers.Serializer):
    person = PersonRefSerializer(allow_null=True, help_text="Empty for a gap: nobody to page.")
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    is_override = serializers.SerializerMethodField()

    def get_is_override(self, shift) -> bool:
        return getattr(shift, "override", None) is not None


class SlotNowSerializer(serializers.Serializer):
    slot = serializers.ChoiceField(choices=Slot.choices)
    label = serializers.CharField()
    current = ShiftSerializer()
    following = ShiftSerializer(allow_null=True)


class RotationNowSerializer(serializers.Serializer):
    rotation = serializers.IntegerField(source="rotation.pk")
    name = serializers.CharField(source="rotation.name")
    next_handoff = serializers.DateTimeField()
    slots = SlotNowSerializer(many=True)


class TeamNowSerializer(serializers.Serializer):
    team = serializers.SlugField(source="team.slug")
    name = serializers.CharField(source="team.name")
    rotations = RotationNowSerializer(many=True)


class AddRespondersSerializer(serializers.Serializer):
    """Page another team (its slug) or one person (their id), with a message."""

    team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all(), required=False, allow_null=True)
    person = serializers.PrimaryKeyRelatedField(
        queryset=Person.objects.filter(is_active=True), required=False, allow_null=True
    )
    message = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")

    def validate(self, attrs):
        if bool(attrs.get("team")) == bool(attrs.get("person")):
            raise serializers.ValidationError({"team": ["Give either a team (slug) or a person (id)."]})
        return attrs


class ResponderNotificationSerializer(serializers.Serializer):
    recipient = serializers.CharField()
    channel = serializers.CharField()
    state = serializers.CharField(source="state_label")
    sent_at = serializers.DateTimeField(allow_null=True)


class AddedResponderSerializer(serializers.Serializer):
    """An added responder's page and what is known about it."""

    id = serializers.IntegerField(source="pk")
    # Plain fields (not related fields): the serializer has no model, so the schema needs their types spelled out.
    team = serializers.CharField(source="team.slug", read_only=True, allow_null=True, default=None)
    person = serializers.IntegerField(source="target_person.pk", read_only=True, allow_null=True, default=None)
    target = serializers.CharField(source="target_label")
    message = serializers.CharField()
    state = serializers.CharField()
    escalation_level = serializers.IntegerField(source="level_number", allow_null=True)
    started_at = serializers.DateTimeField()
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    notifications = ResponderNotificationSerializer(many=True, source="rows")
