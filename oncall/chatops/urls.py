from django.urls import path

from . import views

app_name = "chatops"

urlpatterns = [
    path("slack/commands/", views.slack_commands, name="slack_commands"),
    path("slack/interactions/", views.slack_interactions, name="slack_interactions"),
    path("slack/events/", views.slack_events, name="slack_events"),
    path("mattermost/commands/", views.mattermost_commands, name="mattermost_commands"),
]
