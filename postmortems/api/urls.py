from django.urls import re_path
from rest_framework.routers import SimpleRouter

from incidents.api.errors import api_not_found

from . import views

router = SimpleRouter()
router.register("postmortems", views.PostMortemViewSet, basename="postmortem")
router.register("action-items", views.ActionItemViewSet, basename="action-item")

urlpatterns = [
    *router.urls,
    # Last of the /api/v1/ includes: any path no API route matched answers JSON 404, not the HTML page.
    re_path(r"^.*$", api_not_found),
]
