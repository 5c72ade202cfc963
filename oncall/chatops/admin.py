from django.contrib import admin, messages

from . import outbox
from .models import ChatIdentity, ChatOutbox, InboundRequest, IncidentChannel
from .slack_api import ChatError


@admin.register(ChatIdentity)
class ChatIdentityAdmin(admin.ModelAdmin):
    list_display = ["person", "slack_user_id", "mattermost_user_id", "linked_at"]
    search_fields = ["person__name", "person__email", "slack_user_id", "mattermost_user_id"]
    autocomplete_fields = ["person"]
    actions = ["relink_by_email"]

    @admin.action(description="Link to Slack by email (users.lookupByEmail)")
    def relink_by_email(self, request, queryset):
        for identity in queryset.select_related("person__user"):
            identity.slack_user_id = ""
            identity.save(update_fields=["slack_user_id"])
            try:
                slack_id = outbox.slack_user_for(identity.person)
            except ChatError as error:
                self.message_user(request, f"{identity.person}: {error.message}", messages.ERROR)
            else:
                self.message_user(request, f"{identity.person} is Slack user {slack_id}.", messages.SUCCESS)


@admin.register(IncidentChannel)
class IncidentChannelAdmin(admin.ModelAdmin):
    list_display = ["incident", "name", "channel_id", "is_private", "created_at", "archived_at"]
    readonly_fields = ["incident", "provider", "channel_id", "name", "is_private", "created_at", "archived_at"]
    search_fields = ["name", "channel_id"]


@admin.register(ChatOutbox)
class ChatOutboxAdmin(admin.ModelAdmin):
    list_display = ["id", "incident", "action", "status", "attempts", "scheduled_for", "sent_at", "last_error"]
    list_filter = ["status", "action"]
    readonly_fields = [f.name for f in ChatOutbox._meta.fields]


@admin.register(InboundRequest)
class InboundRequestAdmin(admin.ModelAdmin):
    list_display = ["received_at", "provider", "kind", "dedupe_key", "duplicates", "processed_at", "outcome"]
    list_filter = ["provider", "kind"]
    readonly_fields = [f.name for f in InboundRequest._meta.fields]
