from django.urls import path

from . import views

app_name = "live"

urlpatterns = [
    path("incidents/", views.stream, name="incidents"),
    path("incidents/<str:reference>/", views.stream, name="incident"),
]
