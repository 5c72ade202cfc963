"""The answer to an exception that no view handled (`handler500` in incidentportal/urls.py).

When the database cannot be reached (a connection refused or timed out, a connection lost mid-query: Django's
OperationalError and InterfaceError), the failure is the server's and passes: 503 with Retry-After, so browsers,
webhook senders and load balancers retry instead of recording an error. The exception may come from a middleware
(the session or the signed-in user are read from the database before any view runs), which a view-level handler
would never see. Any other exception is a bug: Django's plain 500, logged with its traceback as before.
"""

from __future__ import annotations

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.views.defaults import server_error

from incidents.api.base import error_body

RETRY_AFTER_SECONDS = 5
UNAVAILABLE = (OperationalError, InterfaceError)
MESSAGE = "The portal cannot reach its database just now. Nothing was saved; retry in a few seconds."


def database_unavailable(error: BaseException | None) -> bool:
    while error is not None:
        if isinstance(error, UNAVAILABLE):
            return True
        error = error.__cause__ or error.__context__
    return False


def server_error_or_unavailable(request, *args, **kwargs):
    if not database_unavailable(sys.exc_info()[1]):
        return server_error(request, *args, **kwargs)
    if request.path_info.startswith("/api/"):
        response = JsonResponse(error_body(MESSAGE, code="unavailable"), status=503)
    else:
        response = HttpResponse(MESSAGE, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response
