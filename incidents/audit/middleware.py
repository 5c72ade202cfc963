from .context import request_context


class AuditContextMiddleware:
    """Makes the current request (and so its user, read lazily) the audit context of everything it changes,
    and tags the response with the request id that the audit records carry."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path_info
        source = "api" if path.startswith("/api/") else "admin" if path.startswith("/admin/") else "web"
        with request_context(request, source=source) as request_id:
            response = self.get_response(request)
        response.headers.setdefault("X-Request-ID", request_id)
        return response
