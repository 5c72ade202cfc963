from django.urls import path

from . import views

app_name = "oncall"

urlpatterns = [
    path("", views.on_call_now, name="now"),
    path("rotations/<int:pk>/", views.rotation_calendar, name="rotation"),
    path("rotations/<int:pk>/calendar.ics", views.rotation_ics, name="rotation_ics"),
    path("overrides/new/", views.override_create, name="override_create"),
    path("overrides/<int:pk>/cancel/", views.override_cancel, name="override_cancel"),
    path("calendar/", views.calendar_feeds, name="calendar_feeds"),
    path("calendar/rotate/", views.calendar_rotate, name="calendar_rotate"),
    path("ics/<str:token>/mine.ics", views.person_ics, name="person_ics"),
    path("ics/<str:token>/rotations/<int:pk>.ics", views.rotation_ics_by_token, name="rotation_ics_token"),
]
