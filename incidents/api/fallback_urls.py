"""Mounted after every /api/v1/ include: a path no API route matched answers JSON 404, not the HTML page."""

from django.urls import re_path

from .errors import api_not_found

urlpatterns = [re_path(r"^.*$", api_not_found)]
