from django.conf import settings


def portal(request):
    user = getattr(request, "user", None)

    def can_audit():
        # Called only by templates that show the link; shares the request's cached group lookup.
        from incidents import access

        return access.is_admin(user) or access.is_security(user)

    return {
        "SITE_URL": settings.SITE_URL,
        "PORTAL_NAME": "Incident Portal",
        "can_audit": can_audit,
        # django-csp 4 names the nonce CSP_NONCE (csp.context_processors.nonce); django-htmx's {% htmx_script %}
        # reads `csp_nonce`. Both are the request's lazy nonce: using it in a template puts it in the header.
        "csp_nonce": getattr(request, "csp_nonce", ""),
    }
