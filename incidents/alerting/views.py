"""Inbound webhook endpoints (/api/v1/integrations/<kind>/...). Thin: identify and authenticate the integration,
bound the body, rate-limit, decode, parse into normalised events, call the service, answer.

These are plain Django views rather than DRF views: they sit on the hot path of alert storms and need none of
DRF's negotiation. They are documented in the OpenAPI schema by incidents.alerting.openapi.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import math
import re
import time
from hashlib import sha256

from django.conf import settings
from django.db import DatabaseError
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from . import parsers, ratelimit
from .models import Integration, IntegrationKind
from .services.changes import UnknownService, record_change_events
from .services.ingestion import ingest_alert_events
from .services.integrations import claim_signature, find_integration_by_key, forget_signature, log_integration_error

log = logging.getLogger(__name__)


class Refusal(Exception):
    """A request we answer with a 4xx. Logged in the integration's error log."""

    def __init__(self, status: int, code: str, message: str, *, field=None, errors=None, retry_after=None, log=True):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.errors = errors or [message]
        self.retry_after = retry_after
        self.log = log


def _error_response(kind: str, refusal: Refusal) -> JsonResponse:
    if kind == IntegrationKind.PAGERDUTY:
        # PagerDuty's own shapes, so its senders' error handling keeps working.
        status_word = {400: "invalid event", 401: "unauthorized", 413: "request too large", 429: "throttle event"}
        body = {
            "status": status_word.get(refusal.status, "error"),
            "message": refusal.message,
            "errors": refusal.errors,
        }
    else:
        body = {
            "status": "error",
            "code": refusal.code,
            "message": refusal.message,
            "field": refusal.field,
            "errors": refusal.errors,
        }
    response = JsonResponse(body, status=refusal.status)
    if refusal.retry_after:
        response["Retry-After"] = str(refusal.retry_after)
    if refusal.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="integrations"'
    if refusal.status == 405:
        response["Allow"] = "POST"
    return response


def _read_body(request) -> bytes:
    limit = settings.ALERTING_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise Refusal(400, "bad_content_length", "The Content-Length header is not a number.", field="Content-Length")
    if declared > limit:
        raise Refusal(413, "body_too_large", f"The body is {declared} bytes; the limit is {limit}.", field="body")
    body = request.read(limit + 1)
    if len(body) > limit:
        raise Refusal(413, "body_too_large", f"The body is larger than the limit of {limit} bytes.", field="body")
    return body


def _credential(request) -> str:
    """The integration key from `Authorization: Bearer <key>` or the password of HTTP basic auth (what
    Alertmanager's and Grafana's http configs can send). Never from the query string."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme in {"bearer", "token"}:
        return value.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Refusal(
                401, "bad_credentials", "The basic-auth credentials are not valid base64.", field="Authorization"
            )
        return decoded.partition(":")[2]
    return ""


def _by_key(request, kind: str) -> Integration:
    key = _credential(request)
    if not key:
        raise Refusal(
            401,
            "missing_credentials",
            "Send the integration key as 'Authorization: Bearer <key>'.",
            field="Authorization",
        )
    integration = find_integration_by_key(key)
    if integration is None or integration.kind != kind:
        raise Refusal(
            401, "bad_credentials", "The integration key is not valid for this endpoint.", field="Authorization"
        )
    return integration


def _by_public_id(kind: str, public_id) -> Integration:
    integration = Integration.objects.filter(public_id=public_id, kind=kind, is_active=True).first()
    if integration is None:
        raise Refusal(
            401, "unknown_integration", "No active integration of this kind has that id.", field="integration"
        )
    return integration


# Unix seconds, ASCII digits only: int() would take "１２３" or 400 digits (and then overflow a float).
TIMESTAMP = re.compile(r"[0-9]{1,12}")


def _verify_signature(request, integration: Integration, body: bytes, *, header: str, field: str) -> str:
    """Check the HMAC of the body (and the timestamp, where the integration has one); return the signature."""
    signature = request.headers.get(header, "").strip()
    if not signature:
        raise Refusal(401, "missing_signature", f"The {header} header is missing.", field=header)
    signed = body
    if integration.kind == IntegrationKind.GRAFANA and integration.hmac_timestamp_header:
        stamp = request.headers.get(integration.hmac_timestamp_header, "").strip()
        if not TIMESTAMP.fullmatch(stamp):
            raise Refusal(
                401,
                "missing_timestamp",
                f"The {integration.hmac_timestamp_header} header is missing or not a Unix time in seconds.",
                field=integration.hmac_timestamp_header,
            )
        age = abs(time.time() - int(stamp))
        if age > settings.ALERTING_SIGNATURE_MAX_AGE_SECONDS:
            raise Refusal(401, "stale_signature", "The signature timestamp is too old (replay?).", field=field)
        signed = stamp.encode() + b":" + body
    expected = hmac.new(integration.hmac_secret.encode(), signed, sha256).hexdigest()
    if signature.lower().startswith("sha256="):
        signature = signature[7:]
    if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
        raise Refusal(401, "bad_signature", f"The {header} does not match the body.", field=header)
    return expected


def _claim(integration: Integration, signature: str) -> None:
    if not claim_signature(integration, signature):
        raise Refusal(
            409,
            "replayed",
            "This exact delivery (same body and signature) was already accepted: a replay is refused.",
            field="signature",
        )


def _rate_limit(integration: Integration) -> None:
    limit = integration.rate_limit_per_minute or settings.ALERTING_RATE_LIMIT_PER_MINUTE
    verdict = ratelimit.hit(f"integration:{integration.pk}", limit)
    if not verdict.allowed:
        raise Refusal(
            429,
            "rate_limited",
            f"More than {limit} requests this minute for this integration; retry after {verdict.retry_after}s.",
            retry_after=verdict.retry_after,
            log=verdict.first_refusal,
        )


SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _reject_constant(name: str):
    # Python's json accepts NaN and Infinity; JSON (and PostgreSQL's jsonb) does not.
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400: Python makes it infinity, which cannot be stored
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _decode(body: bytes):
    if not body.strip():
        raise Refusal(400, "empty_body", "The body is empty; send a JSON document.", field="body")
    if b"\\u0000" in body:
        # PostgreSQL text cannot hold NUL characters: refuse them here rather than fail the write.
        raise Refusal(400, "nul_character", "The body contains a NUL character (\\u0000).", field="body")
    try:
        data = json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)
        if SURROGATE_ESCAPE.search(body):
            # Escaped surrogates are fine in pairs; a lone one cannot be stored as UTF-8 text.
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        return data
    except UnicodeEncodeError:
        raise Refusal(
            400, "invalid_unicode", "The body contains an unpaired surrogate (\\ud800-\\udfff).", field="body"
        )
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
        raise Refusal(400, "malformed_json", f"The body is not valid JSON: {exc}.", field="body")
    except RecursionError:
        raise Refusal(400, "too_deep", "The JSON document is nested too deeply.", field="body")


def _endpoint(kind: str, *, by: str):
    """Build the view for one integration kind. `by` says how the integration is identified: "key" (Authorization
    header), "public_id" (in the path, then authenticated by its HMAC signature) or "routing_key" (PagerDuty)."""

    @csrf_exempt
    def view(request, public_id=None):
        integration = None
        body = b""
        signature = None
        try:
            if request.method != "POST":
                raise Refusal(405, "method_not_allowed", "Send events with POST.", log=False)
            if by == "key":
                integration = _by_key(request, kind)
            elif by == "public_id":
                integration = _by_public_id(kind, public_id)
            body = _read_body(request)
            if by == "routing_key":
                data = _decode(body)
                integration = _pagerduty_integration(data)
            if kind == IntegrationKind.SENTRY:
                if not integration.hmac_secret:
                    raise Refusal(
                        401, "no_secret", "Set this integration's client secret to verify Sentry.", field="hmac_secret"
                    )
                signature = _verify_signature(
                    request, integration, body, header="Sentry-Hook-Signature", field="signature"
                )
            elif kind == IntegrationKind.GRAFANA and (integration.hmac_secret or by == "public_id"):
                if not integration.hmac_secret:
                    raise Refusal(
                        401,
                        "no_secret",
                        "Without an HMAC secret, send the key in the Authorization header.",
                        field="Authorization",
                    )
                signature = _verify_signature(
                    request, integration, body, header="X-Grafana-Alerting-Signature", field="signature"
                )
            _rate_limit(integration)
            if signature is not None:
                _claim(integration, signature)  # after the rate limit: a 429'd delivery may be retried as is
            if by != "routing_key":
                data = _decode(body)
            return _handle(kind, integration, data, request)
        except Refusal as refusal:
            if refusal.log:
                log_integration_error(
                    kind=kind,
                    integration=integration,
                    status_code=refusal.status,
                    code=refusal.code,
                    message=refusal.message,
                    field=refusal.field,
                    remote_addr=request.META.get("REMOTE_ADDR"),
                    body=body,
                )
            return _error_response(kind, refusal)
        except DatabaseError:
            # Nothing was committed; 503 tells the sender to retry (all of these senders do).
            log.exception("integration %s: database error", kind)
            if signature is not None:
                try:
                    forget_signature(integration, signature)  # so the identical retry is accepted
                except DatabaseError:
                    log.exception("integration %s: could not forget the signature of a failed delivery", kind)
            return _error_response(
                kind, Refusal(503, "unavailable", "The portal could not store the event; retry.", retry_after=5)
            )

    view.__name__ = f"ingest_{kind}"
    return view


def _pagerduty_integration(data) -> Integration:
    key = data.get("routing_key") if isinstance(data, dict) else None
    if not isinstance(key, str) or not key:
        raise Refusal(401, "missing_routing_key", "'routing_key' is missing.", field="routing_key")
    integration = find_integration_by_key(key)
    if integration is None or integration.kind != IntegrationKind.PAGERDUTY:
        raise Refusal(401, "bad_routing_key", "Invalid routing key.", field="routing_key")
    return integration


PARSERS = {
    IntegrationKind.ALERTMANAGER: parsers.parse_alertmanager,
    IntegrationKind.GRAFANA: parsers.parse_grafana,
    IntegrationKind.SENTRY: parsers.parse_sentry,
    IntegrationKind.PAGERDUTY: parsers.parse_pagerduty,
    IntegrationKind.GENERIC: parsers.parse_generic,
}


def _handle(kind, integration, data, request) -> JsonResponse:
    if kind == IntegrationKind.CHANGE:
        try:
            changes = parsers.parse_changes(data)
            rows = record_change_events(integration=integration, changes=changes)
        except parsers.PayloadError as exc:
            raise Refusal(400, "invalid_payload", exc.message, field=exc.field, errors=exc.errors)
        except UnknownService as exc:
            raise Refusal(400, "unknown_service", str(exc), field=exc.field)
        return JsonResponse({"status": "success", "changes": [row.pk for row in rows]}, status=202)
    try:
        events = PARSERS[kind](data, request.headers)
    except parsers.PayloadError as exc:
        raise Refusal(400, "invalid_payload", exc.message, field=exc.field, errors=exc.errors)
    outcomes = ingest_alert_events(integration=integration, events=events) if events else []
    if kind == IntegrationKind.PAGERDUTY:
        return JsonResponse(
            {"status": "success", "message": "Event processed", "dedup_key": outcomes[0].dedup_key}, status=202
        )
    return JsonResponse(
        {"status": "success", "events": len(outcomes), "results": [o.as_dict() for o in outcomes]}, status=202
    )


alertmanager = _endpoint(IntegrationKind.ALERTMANAGER, by="key")
grafana = _endpoint(IntegrationKind.GRAFANA, by="key")
grafana_signed = _endpoint(IntegrationKind.GRAFANA, by="public_id")
sentry = _endpoint(IntegrationKind.SENTRY, by="public_id")
pagerduty = _endpoint(IntegrationKind.PAGERDUTY, by="routing_key")
generic = _endpoint(IntegrationKind.GENERIC, by="key")
change = _endpoint(IntegrationKind.CHANGE, by="key")
