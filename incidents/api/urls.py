"""The portal API at /api/v1/ (the on-call and post-mortem APIs add their own routes beside these)."""

from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("incidents", views.IncidentViewSet, basename="incident")
router.register("services", views.ServiceViewSet, basename="service")
router.register("severities", views.SeverityViewSet, basename="severity")
router.register("alert-groups", views.AlertGroupViewSet, basename="alert-group")
router.register("tokens", views.ApiTokenViewSet, basename="api-token")

urlpatterns = router.urls  # the inbound integrations (/api/v1/integrations/) are mounted first by the root URLconf
