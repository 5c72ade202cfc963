from django.urls import path

from . import views

app_name = "profiles"

urlpatterns = [
    path("", views.profile, name="profile"),
    path("time-zone/guess/", views.guess_time_zone, name="guess_time_zone"),
]
