from django.apps import AppConfig


class ChatopsConfig(AppConfig):
    name = "oncall.chatops"
    label = "chatops"
    verbose_name = "Chat-ops (Slack, Mattermost)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Chat reacts to incidents through their lifecycle events; incidents never import this package.
        from . import subscriptions

        subscriptions.register()
