"""The post-mortem API, mounted at /api/v1/ beside the incident and on-call APIs."""

from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("postmortems", views.PostMortemViewSet, basename="postmortem")
router.register("action-items", views.ActionItemViewSet, basename="action-item")

urlpatterns = router.urls
