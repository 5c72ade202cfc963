"""/api/schema/, /api/docs/ (Swagger UI) and /api/redoc/, all served from local static files (sidecar).

The inbound webhooks are plain Django views (they sit on the alert-storm hot path), so they are added to the
generated schema by a postprocessing hook with the formats written out here.
"""

from __future__ import annotations

from csp.constants import SELF, UNSAFE_INLINE
from csp.decorators import csp_replace, csp_update
from django.utils.decorators import method_decorator
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "incidents.api.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal API token (ipt_...), created on /api/v1/tokens/ or by an admin.",
        }


INGEST_ERROR = {
    "type": "object",
    "required": ["status", "message", "errors"],
    "properties": {
        "status": {"type": "string", "example": "error"},
        "code": {
            "type": "string",
            "description": "missing_credentials, bad_credentials, bad_signature, malformed_json, invalid_payload, "
            "body_too_large, rate_limited, unknown_service ...",
        },
        "message": {"type": "string"},
        "field": {"type": "string", "nullable": True, "description": "The input at fault."},
        "errors": {"type": "array", "items": {"type": "string"}},
    },
}

INGEST_RESULT = {
    "type": "object",
    "required": ["status", "events", "results"],
    "properties": {
        "status": {"type": "string", "enum": ["success"]},
        "events": {"type": "integer"},
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "dedup_key": {"type": "string"},
                    "action": {"type": "string", "enum": ["trigger", "acknowledge", "resolve"]},
                    "result": {
                        "type": "string",
                        "enum": ["opened", "deduplicated", "acknowledged", "resolved", "no_open_group"],
                    },
                    "alert_group": {"type": "integer", "nullable": True},
                    "incident": {"type": "string", "nullable": True, "example": "INC-42"},
                },
            },
        },
    },
}

LABELS = {"type": "object", "additionalProperties": {"type": "string"}}

ALERTMANAGER_BODY = {
    "type": "object",
    "description": "Alertmanager webhook_config payload, version 4 (Grafana sends the same envelope, version 1, "
    "plus title/state/message and per-alert values/dashboardURL/panelURL/silenceURL). Each alert is one event, "
    "deduplicated by its fingerprint; its own status decides trigger or resolve.",
    "required": ["alerts"],
    "properties": {
        "version": {"type": "string", "example": "4"},
        "groupKey": {"type": "string"},
        "truncatedAlerts": {"type": "integer"},
        "status": {"type": "string", "enum": ["firing", "resolved"]},
        "receiver": {"type": "string"},
        "groupLabels": LABELS,
        "commonLabels": LABELS,
        "commonAnnotations": LABELS,
        "externalURL": {"type": "string"},
        "alerts": {
            "type": "array",
            "maxItems": 1000,
            "items": {
                "type": "object",
                "required": ["status"],
                "properties": {
                    "status": {"type": "string", "enum": ["firing", "resolved"]},
                    "labels": LABELS,
                    "annotations": LABELS,
                    "startsAt": {"type": "string", "format": "date-time"},
                    "endsAt": {"type": "string", "format": "date-time"},
                    "generatorURL": {"type": "string"},
                    "fingerprint": {"type": "string", "maxLength": 255},
                },
            },
        },
    },
}

GENERIC_EVENT = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["trigger", "acknowledge", "resolve"], "default": "trigger"},
        "dedup_key": {
            "type": "string",
            "maxLength": 255,
            "description": "Events with the same key fold into one open alert group. Required to acknowledge or "
            "resolve; generated for a trigger without one.",
        },
        "summary": {"type": "string", "maxLength": 1024, "description": "Required for trigger."},
        "severity": {"type": "string", "enum": ["critical", "error", "warning", "info"], "default": "error"},
        "source": {"type": "string", "maxLength": 255},
        "service": {"type": "string", "description": "A service slug; routes the alert to that service."},
        "labels": LABELS,
        "link": {"type": "string", "format": "uri"},
        "occurred_at": {"type": "string", "format": "date-time"},
    },
}

CHANGE_EVENT = {
    "type": "object",
    "required": ["summary"],
    "properties": {
        "summary": {"type": "string", "maxLength": 1024},
        "kind": {"type": "string", "enum": ["deploy", "migration", "config", "feature_flag", "other"]},
        "service": {"type": "string", "description": "A service slug (unknown slugs are refused)."},
        "description": {"type": "string"},
        "link": {"type": "string", "format": "uri"},
        "source": {"type": "string"},
        "occurred_at": {"type": "string", "format": "date-time"},
        "details": {"type": "object"},
    },
}

PAGERDUTY_BODY = {
    "type": "object",
    "description": "PagerDuty Events API v2. routing_key is the integration's key.",
    "required": ["routing_key", "event_action"],
    "properties": {
        "routing_key": {"type": "string"},
        "event_action": {"type": "string", "enum": ["trigger", "acknowledge", "resolve"]},
        "dedup_key": {"type": "string", "maxLength": 255},
        "payload": {
            "type": "object",
            "required": ["summary", "source", "severity"],
            "properties": {
                "summary": {"type": "string", "maxLength": 1024},
                "source": {"type": "string"},
                "severity": {"type": "string", "enum": ["critical", "error", "warning", "info"]},
                "timestamp": {"type": "string", "format": "date-time"},
                "component": {"type": "string"},
                "group": {"type": "string"},
                "class": {"type": "string"},
                "custom_details": {"type": "object"},
            },
        },
        "client": {"type": "string"},
        "client_url": {"type": "string"},
        "links": {"type": "array", "items": {"type": "object"}},
        "images": {"type": "array", "items": {"type": "object"}},
    },
}

PAGERDUTY_ERROR = {
    "type": "object",
    "required": ["status", "message", "errors"],
    "properties": {
        "status": {"type": "string", "example": "invalid event"},
        "message": {"type": "string", "example": "Event object is invalid"},
        "errors": {"type": "array", "items": {"type": "string"}},
    },
}


def _json(schema):
    return {"content": {"application/json": {"schema": schema}}}


def _errors(error_schema, codes=("400", "401", "405", "409", "413", "429", "503")):
    described = {
        "400": "Malformed JSON, wrong types, unknown actions: names the field.",
        "401": "Missing or wrong key, or a bad signature.",
        "405": "Only POST is accepted.",
        "409": "A replay: this exact signed delivery (body and signature) was already accepted.",
        "413": "The body is larger than ALERTING_MAX_BODY_BYTES.",
        "429": "Rate limited; see Retry-After.",
        "503": "The database could not store the events; retry.",
    }
    return {code: {"description": described[code], **_json(error_schema)} for code in codes}


def _operation(summary, description, body, ok_schema, *, security, error_schema=INGEST_ERROR, params=(), ok="202"):
    return {
        "post": {
            "operationId": summary.lower().replace(" ", "_").replace("-", "_"),
            "summary": summary,
            "description": description,
            "tags": ["integrations"],
            "security": security,
            "parameters": list(params),
            "requestBody": {"required": True, **_json(body)},
            "responses": {ok: {"description": "Committed in PostgreSQL.", **_json(ok_schema)}, **_errors(error_schema)},
        }
    }


PUBLIC_ID = {"name": "public_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}


def integration_paths() -> dict:
    key = [{"integrationKey": []}]
    return {
        "/api/v1/integrations/alertmanager/": _operation(
            "Alertmanager webhook",
            "Point an Alertmanager webhook_config here with `http_config.authorization.credentials` set to the key.",
            ALERTMANAGER_BODY,
            INGEST_RESULT,
            security=key,
        ),
        "/api/v1/integrations/grafana/": _operation(
            "Grafana webhook",
            "A Grafana webhook contact point with the key as Authorization header credentials. If the integration "
            "has an HMAC secret, X-Grafana-Alerting-Signature must also match.",
            ALERTMANAGER_BODY,
            INGEST_RESULT,
            security=key,
        ),
        "/api/v1/integrations/grafana/{public_id}/": _operation(
            "Grafana signed webhook",
            "Authenticated by X-Grafana-Alerting-Signature alone: hex HMAC-SHA256 of the body (or of "
            "'timestamp:body' when a timestamp header is configured).",
            ALERTMANAGER_BODY,
            INGEST_RESULT,
            security=[],
            params=[PUBLIC_ID, {"name": "X-Grafana-Alerting-Signature", "in": "header", "schema": {"type": "string"}}],
        ),
        "/api/v1/integrations/sentry/{public_id}/": _operation(
            "Sentry webhook",
            "Sentry integration platform webhooks: Sentry-Hook-Resource issue, event_alert or metric_alert; "
            "Sentry-Hook-Signature is the hex HMAC-SHA256 of the body with the client secret.",
            {"type": "object"},
            INGEST_RESULT,
            security=[],
            params=[
                PUBLIC_ID,
                {"name": "Sentry-Hook-Resource", "in": "header", "schema": {"type": "string"}},
                {"name": "Sentry-Hook-Signature", "in": "header", "schema": {"type": "string"}},
            ],
        ),
        "/api/v1/integrations/pagerduty/v2/enqueue": _operation(
            "PagerDuty Events v2 enqueue",
            "Drop-in for https://events.pagerduty.com/v2/enqueue: answers 202 with the dedup_key.",
            PAGERDUTY_BODY,
            {
                "type": "object",
                "required": ["status", "message", "dedup_key"],
                "properties": {
                    "status": {"type": "string", "example": "success"},
                    "message": {"type": "string", "example": "Event processed"},
                    "dedup_key": {"type": "string"},
                },
            },
            security=[],
            error_schema=PAGERDUTY_ERROR,
        ),
        "/api/v1/integrations/generic/": _operation(
            "Generic JSON events",
            'One event object, or {"events": [...]} with up to 1000 events, all committed together or not at all.',
            {
                "oneOf": [
                    GENERIC_EVENT,
                    {
                        "type": "object",
                        "required": ["events"],
                        "properties": {
                            "events": {"type": "array", "items": GENERIC_EVENT, "minItems": 1, "maxItems": 1000}
                        },
                    },
                ]
            },
            INGEST_RESULT,
            security=key,
        ),
        "/api/v1/integrations/change/": _operation(
            "Change events",
            'A deploy, migration or config change (or {"changes": [...]}); shown as recent changes on incidents '
            "of that service.",
            {
                "oneOf": [
                    CHANGE_EVENT,
                    {
                        "type": "object",
                        "required": ["changes"],
                        "properties": {
                            "changes": {"type": "array", "items": CHANGE_EVENT, "minItems": 1, "maxItems": 1000}
                        },
                    },
                ]
            },
            {
                "type": "object",
                "properties": {
                    "status": {"type": "string"},
                    "changes": {"type": "array", "items": {"type": "integer"}},
                },
            },
            security=key,
        ),
    }


def add_integrations(result, generator, request, public):
    result.setdefault("paths", {}).update(integration_paths())
    schemes = result.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes["integrationKey"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An integration's key (Authorization: Bearer <key>, or the password of HTTP basic auth).",
    }
    return result


SCHEMA_SETTINGS = {
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "incidents.api.schema.add_integrations"],
    "ENUM_NAME_OVERRIDES": {
        "IncidentStatusEnum": "incidents.models.Status",
        "UpdateStatusEnum": "incidents.models.UpdateStatus",
        "UpdateKindEnum": "incidents.models.UpdateKind",
        "EntryKindEnum": "incidents.models.EntryKind",
        "EventTypeEnum": "incidents.models.EventType",
        "AlertGroupStatusEnum": "incidents.alerting.models.GroupStatus",
        "ChangeKindEnum": "incidents.alerting.models.ChangeKind",
    },
}

schema_view = SpectacularAPIView.as_view(custom_settings=SCHEMA_SETTINGS)

# The documentation pages load their scripts from local static files; their UIs set inline styles (and Redoc
# starts a worker from a blob), which the portal's strict CSP would block, so these two pages relax just that.
# style-src is replaced, not extended: beside a nonce, browsers ignore 'unsafe-inline'.
_docs_styles = csp_replace({"style-src": [SELF, UNSAFE_INLINE]})
_docs_worker = csp_update({"worker-src": [SELF, "blob:"]})


@method_decorator([_docs_styles, _docs_worker], name="dispatch")
class SwaggerView(SpectacularSwaggerSplitView):
    url_name = "api-schema"


@method_decorator([_docs_styles, _docs_worker], name="dispatch")
class RedocView(SpectacularRedocView):
    url_name = "api-schema"
    template_name = "api/redoc.html"


swagger_view = SwaggerView.as_view()
redoc_view = RedocView.as_view()
