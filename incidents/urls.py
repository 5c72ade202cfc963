from django.urls import path

from . import list_views, merge_views, views

app_name = "incidents"

incident = "incidents/<str:reference>/"

urlpatterns = [
    path("", list_views.dashboard, name="dashboard"),
    path("incidents/", list_views.incident_list, name="list"),
    path("incidents/declare/", views.declare, name="declare"),
    path(incident, views.detail, name="detail"),
    path(incident + "acknowledge/", views.acknowledge, name="acknowledge"),
    path(incident + "status/", views.change_status, name="change_status"),
    path(incident + "severity/", views.change_severity, name="change_severity"),
    path(incident + "roles/", views.assign_role, name="assign_role"),
    path(incident + "checklist/<int:item_id>/", views.tick_checklist_item, name="tick_checklist_item"),
    path(incident + "runbooks/", views.attach_runbook, name="attach_runbook"),
    path(incident + "five-whys/", views.record_five_whys, name="record_five_whys"),
    path(incident + "updates/internal/", views.post_internal_update, name="post_internal_update"),
    path(incident + "updates/external/", views.post_external_update, name="post_external_update"),
    path(incident + "updates/resolution/", views.publish_resolution, name="publish_resolution"),
    path(incident + "details/", views.edit_details, name="edit_details"),
    path(incident + "notes/", views.add_note, name="add_note"),
    path(incident + "notes/preview/", views.preview_note, name="preview_note"),
    path(incident + "merge/", merge_views.merge, name="merge"),
    path(incident + "merge-duplicate/", merge_views.merge_duplicate, name="merge_duplicate"),
    path(incident + "related/", merge_views.link_related, name="link_related"),
    path(incident + "related/<str:other>/unlink/", merge_views.unlink_related, name="unlink_related"),
    path("runbooks/", list_views.runbook_list, name="runbooks"),
    path("runbooks/<slug:slug>/", list_views.runbook_detail, name="runbook"),
]
