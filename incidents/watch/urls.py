from django.urls import path

from . import views

app_name = "watch"

urlpatterns = [
    path("services/<slug:slug>/", views.service_detail, name="service"),
    path("incidents/<str:reference>/triage/", views.run_triage, name="run_triage"),
]
