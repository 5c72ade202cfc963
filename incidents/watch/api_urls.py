"""The watch app's API routes, mounted by the root URLconf under /api/v1/."""

from django.urls import path

from . import api

urlpatterns = [
    path(
        "incidents/<str:reference>/triage/", api.IncidentTriageView.as_view({"post": "create"}), name="incident-triage"
    ),
]
