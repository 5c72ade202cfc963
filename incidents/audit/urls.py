"""The append-only audit trail and evidence bundles."""

from django.urls import path

from . import views

app_name = "audit"

urlpatterns = [
    path("", views.records, name="records"),
    path("export.csv", views.export_csv, name="export_csv"),
    path("evidence/verify/", views.evidence_verify, name="evidence_verify"),
    path("evidence/<str:reference>/", views.evidence, name="evidence"),
    path("evidence/<str:reference>/<int:export_id>/download/", views.evidence_download, name="evidence_download"),
]
