"""What every API view shares: token authentication, permissions from the portal's groups, per-token rate
limits, one JSON error shape, and a schema that documents those errors on every operation.

Error shape (every 4xx): {"detail": human message, "code": machine code, "field": the input at fault or null,
"errors": {field: [messages]}}.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404
from drf_spectacular.openapi import AutoSchema
from rest_framework import exceptions, serializers
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import exception_handler as drf_exception_handler

from incidents import access
from incidents.alerting import ratelimit
from incidents.alerting.models import ApiToken
from incidents.errors import DomainError

# --- Permissions ---------------------------------------------------------------------------------------------------


class PortalPermission(BasePermission):
    """Reading needs a signed-in, active user (viewer and up). Writing needs `write_check` of the view:
    responder by default (acts on incidents); on-call data uses manager."""

    message = "You need the responder role to do this."

    def has_permission(self, request, view):
        user = request.user
        if not access.can_view(user):
            return False
        if request.method in SAFE_METHODS:
            return True
        check = getattr(view, "write_check", access.can_respond)
        if not check(user):
            self.message = getattr(view, "write_denied_message", self.message)
            return False
        return True


# --- Throttling ---------------------------------------------------------------------------------------------------


class ApiTokenThrottle(BaseThrottle):
    """Requests made with a personal token are limited per token (API_TOKEN_RATE_LIMIT_PER_MINUTE); browser
    sessions are not throttled here."""

    def allow_request(self, request, view):
        token = request.auth
        if not isinstance(token, ApiToken):
            return True
        verdict = ratelimit.hit(f"token:{token.pk}", settings.API_TOKEN_RATE_LIMIT_PER_MINUTE)
        self._wait = verdict.retry_after
        return verdict.allowed

    def wait(self):
        return getattr(self, "_wait", 60)


# --- Errors --------------------------------------------------------------------------------------------------------


def _flatten(detail, prefix="") -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            out.update(_flatten(value, name))
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            out[prefix or "non_field_errors"] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                out.update(_flatten(item, f"{prefix}[{index}]"))
    else:
        out[prefix or "non_field_errors"] = [str(detail)]
    return out


def error_body(detail: str, *, code: str, field: str | None = None, errors: dict | None = None) -> dict:
    if errors is None:
        errors = {field or "non_field_errors": [detail]}
    return {"detail": detail, "code": code, "field": field, "errors": errors}


def portal_exception_handler(exc, context):
    if isinstance(exc, DomainError):
        code = {409: "conflict", 403: "permission_denied"}.get(exc.status_code, "invalid")
        return Response(error_body(exc.message, code=code, field=exc.field), status=exc.status_code)
    if isinstance(exc, ObjectDoesNotExist | Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        field = next(iter(errors))
        message = errors[field][0]
        detail = message if field == "non_field_errors" else f"{field}: {message}"
        return Response(
            error_body(detail, code="invalid", field=None if field == "non_field_errors" else field, errors=errors),
            status=400,
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
    response.data = error_body(str(detail), code=str(codes) if isinstance(codes, str) else "error")
    return response


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="A human message.")
    code = serializers.CharField(help_text="invalid, conflict, permission_denied, not_found, not_authenticated ...")
    field = serializers.CharField(allow_null=True, help_text="The input at fault, where there is one.")
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


ERROR_CODES_READ = ("400", "401", "403", "404", "429")
ERROR_CODES_WRITE = ("400", "401", "403", "404", "409", "429")


class PortalAutoSchema(AutoSchema):
    """Documents the shared error responses on every operation, so clients (and the schema fuzzer) know them."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        codes = ERROR_CODES_READ if self.method in SAFE_METHODS else ERROR_CODES_WRITE
        for code in codes:
            if code not in responses:
                responses[code] = self._get_response_for_code(ErrorSerializer, code, direction=direction)
        return responses


class PortalAPIMixin:
    """Mixed into every viewset of the portal API."""

    permission_classes = [PortalPermission]
    throttle_classes = [ApiTokenThrottle]
    schema = PortalAutoSchema()

    def get_exception_handler(self):
        return portal_exception_handler
