from .context import request_context

# Inbound integrations (alert and change webhooks), as incidentportal/wsgi.py routes them.
WEBHOOK_PREFIX = "/api/v1/integrations/"


class AuditContextMiddleware:
    """Makes the current request (and so its user, read lazily) the audit context of everything it changes,
    and tags the response with the request id that the audit records carry (generated here, never the client's)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with request_context(request, source=source_of(request.path_info)) as request_id:
            response = self.get_response(request)
        # Ours, also when the client sent one (that one is kept in the records as client_request_id).
        response.headers["X-Request-ID"] = request_id
        return response


def source_of(path: str) -> str:
    if path.startswith(WEBHOOK_PREFIX):
        return "webhook"
    if path.startswith("/api/"):
        return "api"
    return "admin" if path.startswith("/admin/") else "web"
