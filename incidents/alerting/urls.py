"""Inbound integrations, mounted by incidents/api/urls.py at /api/v1/integrations/."""

from django.urls import path, re_path

from . import views

app_name = "alerting"

urlpatterns = [
    path("alertmanager/", views.alertmanager, name="alertmanager"),
    path("grafana/", views.grafana, name="grafana"),
    path("grafana/<uuid:public_id>/", views.grafana_signed, name="grafana-signed"),
    path("sentry/<uuid:public_id>/", views.sentry, name="sentry"),
    # The same path as PagerDuty's https://events.pagerduty.com/v2/enqueue: senders change only the host.
    re_path(r"^pagerduty/v2/enqueue/?$", views.pagerduty, name="pagerduty"),
    path("generic/", views.generic, name="generic"),
    path("change/", views.change, name="change"),
]
