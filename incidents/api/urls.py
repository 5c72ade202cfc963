"""The portal API at /api/v1/ (the on-call and post-mortem APIs add their own routes beside these)."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("incidents", views.IncidentViewSet, basename="incident")
router.register("services", views.ServiceViewSet, basename="service")
router.register("severities", views.SeverityViewSet, basename="severity")
router.register("alert-groups", views.AlertGroupViewSet, basename="alert-group")
router.register("tokens", views.ApiTokenViewSet, basename="api-token")

urlpatterns = [
    path("integrations/", include("incidents.alerting.urls")),
    *router.urls,
]
