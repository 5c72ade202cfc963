"""JSON answers for API paths that match no route (Django's default 404 page is HTML)."""

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .base import error_body


@csrf_exempt
def api_not_found(request, *args, **kwargs):
    return JsonResponse(error_body("No API endpoint at this path.", code="not_found"), status=404)
