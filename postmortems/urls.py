"""Mounted at / : the post-mortem pages under postmortems/ and the metrics page at metrics/."""

from django.urls import path

from . import metrics_views, views

app_name = "postmortems"

postmortem = "postmortems/<int:pk>/"
action_item = "postmortems/action-items/<int:item_id>/"

urlpatterns = [
    path("postmortems/", views.postmortem_list, name="list"),
    path("postmortems/action-items/mine/", views.my_action_items, name="my_action_items"),
    path("postmortems/action-items/overdue/", views.overdue_action_items, name="overdue_action_items"),
    path(action_item + "edit/", views.edit_action_item, name="edit_action_item"),
    path(action_item + "status/", views.action_item_status, name="action_item_status"),
    path("postmortems/incident/<str:reference>/", views.for_incident, name="for_incident"),
    path(postmortem, views.detail, name="detail"),
    path(postmortem + "edit/", views.edit, name="edit"),
    path(postmortem + "preview/", views.preview, name="preview"),
    path(postmortem + "timeline/", views.timeline, name="timeline"),
    path(postmortem + "timeline/add/", views.timeline_add, name="timeline_add"),
    path(postmortem + "meeting/", views.schedule, name="schedule"),
    path(postmortem + "status/", views.change_status, name="change_status"),
    path(postmortem + "resend/", views.resend, name="resend"),
    path(postmortem + "action-items/", views.add_action_item, name="add_action_item"),
    path(postmortem + "report.md", views.download_markdown, name="download_markdown"),
    path(postmortem + "email/", views.email_preview, name="email_preview"),
    path("metrics/", metrics_views.metrics, name="metrics"),
    path("metrics/export.csv", metrics_views.metrics_csv, name="metrics_csv"),
]
