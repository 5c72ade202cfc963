from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from incidents import admin as incidents_admin
from incidents.accounts import views as accounts_views
from incidents.api import schema as api_schema
from oncall.health import views as health_views

urlpatterns = [
    # Inbound webhooks first: the busiest URLs of the portal, resolved without trying the others (incidentportal/wsgi.py
    # serves them with a lean handler).
    path("api/v1/integrations/", include("incidents.alerting.urls")),
    path("api/v1/heartbeats/", include("incidents.alerting.heartbeat_urls")),
    # The portal watches itself (no trailing slash: what load balancers and Prometheus expect).
    path("healthz", health_views.healthz, name="healthz"),
    path("metrics", health_views.prometheus_metrics, name="prometheus-metrics"),
    # Before admin.site.urls: "view on site" through each model admin's queryset (no existence oracle).
    path("admin/r/<path:content_type_id>/<path:object_id>/", admin.site.admin_view(incidents_admin.view_on_site)),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", accounts_views.LogoutView.as_view(), name="logout"),
    path("accounts/", include("incidents.accounts.urls")),
    path("api/schema/", api_schema.schema_view, name="api-schema"),
    path("api/docs/", api_schema.swagger_view, name="api-docs"),
    path("api/redoc/", api_schema.redoc_view, name="api-redoc"),
    path("api/v1/", include("incidents.api.urls")),
    path("api/v1/", include("oncall.api.urls")),
    path("api/v1/", include("postmortems.api.urls")),
    path("api/v1/", include("incidents.watch.api_urls")),
    path("api/", include("incidents.api.fallback_urls")),  # JSON 404 for unmatched API paths; keep last of api/
    path("events/", include("incidents.live.urls")),  # Server-Sent Events, served by the ASGI process
    path("status/", include("incidents.statuspage.urls")),
    path("audit/", include("incidents.audit.urls")),
    path("profile/", include("incidents.profiles.urls")),
    path("oncall/", include("oncall.urls")),
    path("paging/", include("oncall.paging.urls")),
    path("", include("incidents.watch.urls")),
    path("chatops/", include("oncall.chatops.urls")),
    path("", include("postmortems.urls")),
    path("", include("incidents.urls")),
]

# A database that cannot be reached answers 503 with Retry-After (incidentportal/errors.py), never a 500.
handler500 = "incidentportal.errors.server_error_or_unavailable"
