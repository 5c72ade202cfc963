from django.urls import re_path

from incidents.api.errors import api_not_found

urlpatterns = [
    # Last of the /api/v1/ includes: any path no API route matched answers JSON 404, not the HTML page.
    re_path(r"^.*$", api_not_found),
]
