"""Public status page: service states, scheduled maintenance, subscribers. Mounted at /status/, no login."""

from django.urls import path

from . import staff_views, views

app_name = "statuspage"

urlpatterns = [
    path("", views.index, name="index"),
    path("feed.atom", views.feed, name="feed"),
    path("maintenance.ics", views.maintenance_ics, name="maintenance_ics"),
    path("subscribe/", views.subscribe, name="subscribe"),
    path("subscribe/sent/", views.subscribe_sent, name="subscribe_sent"),
    path("subscribe/confirm/<str:token>/", views.confirm, name="confirm"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    # Staff: pin service states, announce maintenance.
    path("manage/", staff_views.manage, name="manage"),
    path("manage/services/<slug:slug>/state/", staff_views.set_override, name="set_override"),
    path("manage/maintenance/", staff_views.schedule, name="schedule"),
    path("manage/maintenance/<int:pk>/cancel/", staff_views.cancel, name="cancel"),
]
