"""Request hygiene shared by every page and API endpoint.

NUL characters: PostgreSQL text cannot hold U+0000, so a lookup or filter with one fails in the database (a 500).
They are refused here, once, before any view runs: in the path, 404 (no object has such a name); in a query
parameter or a form field, 400 naming it. JSON bodies of the API are checked by its parser
(incidents.api.parsers), webhook bodies by the webhook views.
"""

from __future__ import annotations

from django.http import Http404, HttpResponseBadRequest, JsonResponse
from django.views.defaults import page_not_found

from incidents.api.base import error_body

NUL = "\x00"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _is_api(request) -> bool:
    return request.path_info.startswith("/api/")


def _nul_in(querydict) -> str | None:
    """The name of the first parameter whose name or a value holds a NUL character."""
    for name, values in querydict.lists():
        if NUL in name:
            return name.replace(NUL, "\\x00")
        if any(isinstance(value, str) and NUL in value for value in values):
            return name
    return None


def _bad_request(request, field: str, where: str):
    message = f"{field}: the {where} contains a NUL character (\\x00), which is not allowed."
    if _is_api(request):
        return JsonResponse(error_body(message, code="invalid", field=field), status=400)
    return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")


class RefuseNulCharactersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if NUL in request.path_info:
            if _is_api(request):
                return JsonResponse(error_body("Not found.", code="not_found"), status=404)
            return page_not_found(request, Http404())
        field = _nul_in(request.GET)
        if field is not None:
            return _bad_request(request, field, "query parameter")
        if request.method == "POST" and request.content_type in FORM_TYPES:
            field = _nul_in(request.POST)
            if field is not None:
                return _bad_request(request, field, "form field")
        return self.get_response(request)
