"""Heartbeat ping URLs, mounted by the root URLconf at /api/v1/heartbeats/."""

from django.urls import path

from . import heartbeat_views

app_name = "heartbeats"

urlpatterns = [
    path("<uuid:public_id>/", heartbeat_views.heartbeat_ping, name="ping"),
    path("<uuid:public_id>/start", heartbeat_views.heartbeat_ping, {"action": "start"}, name="start"),
    path("<uuid:public_id>/fail", heartbeat_views.heartbeat_ping, {"action": "fail"}, name="fail"),
]
