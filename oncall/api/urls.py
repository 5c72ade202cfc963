from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("oncall/now", views.OnCallNowViewSet, basename="oncall-now")
router.register("oncall/teams", views.TeamViewSet, basename="oncall-team")
router.register("oncall/people", views.PersonViewSet, basename="oncall-person")
router.register("oncall/rotations", views.RotationViewSet, basename="oncall-rotation")
router.register("oncall/overrides", views.OverrideViewSet, basename="oncall-override")

urlpatterns = [
    path(
        "incidents/<str:reference>/responders/",
        views.IncidentRespondersView.as_view({"get": "list", "post": "create"}),
        name="incident-responders",
    ),
    *router.urls,
]
