from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpResponseRedirect, JsonResponse
from django.urls import reverse

from .second_factor import ENROL, pending_step


class SecondFactorRequiredMiddleware:
    """A session that owes its second factor reaches only the two-factor pages, log-out and static files; pages
    (the admin included) redirect there, the API answers 403."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        step = pending_step(request)
        if step is None or self._open(request.path_info):
            return self.get_response(request)
        target = reverse("accounts:two-factor-setup" if step == ENROL else "accounts:two-factor-verify")
        if request.path_info.startswith("/api/"):
            return JsonResponse(
                {"detail": "Two-factor verification is required: sign in again in the browser.", "field": "otp"},
                status=403,
            )
        if request.method == "GET":
            target = f"{target}?{urlencode({'next': request.get_full_path()})}"
        if request.headers.get("HX-Request"):
            response = JsonResponse({"detail": "Two-factor verification is required."}, status=403)
            response["HX-Redirect"] = target
            return response
        return HttpResponseRedirect(target)

    @staticmethod
    def _open(path: str) -> bool:
        return path.startswith((reverse("accounts:two-factor-verify"), reverse("accounts:two-factor-setup"))) or (
            path in (reverse("logout"), reverse("login")) or path.startswith(settings.STATIC_URL)
        )
