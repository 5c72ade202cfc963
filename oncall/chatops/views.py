"""Inbound HTTP from Slack and Mattermost. Each request is verified before anything is read (Slack: signing secret
and a timestamp within five minutes; Mattermost: the slash command's token), stored once under a unique key, and
answered at once; Celery does the work (tasks.process_inbound), well inside Slack's three seconds. A retry or a
duplicate (X-Slack-Retry-Num, the same event_id / trigger_id / view) finds its key taken and changes nothing."""

from __future__ import annotations

import hmac
import json
import logging
from functools import partial

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import identity, slack_api
from .models import InboundRequest

logger = logging.getLogger("oncall.chatops")


def _unauthorized(message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=401)


def _verified(request) -> bool:
    return slack_api.verify_request(
        body=request.body,
        timestamp=request.headers.get("X-Slack-Request-Timestamp", ""),
        signature=request.headers.get("X-Slack-Signature", ""),
    )


def _retry_num(request) -> int:
    try:
        return max(0, int(request.headers.get("X-Slack-Retry-Num", "0")))
    except ValueError:
        return 0


def store(*, provider: str, kind: str, key: str, payload: dict, retry_num: int = 0) -> bool:
    """Keep the request once; True when it is new (and its processing is queued after commit)."""
    try:
        with transaction.atomic():
            row = InboundRequest.objects.create(
                provider=provider, kind=kind, dedupe_key=key[:200], payload=payload, retry_num=retry_num
            )
            transaction.on_commit(partial(_enqueue, row.pk))
    except IntegrityError:
        InboundRequest.objects.filter(dedupe_key=key[:200]).update(duplicates=F("duplicates") + 1)
        return False
    return True


def _enqueue(pk: int) -> None:
    try:
        # By name (tasks is an interface beside this one); routed to the `chat` queue.
        current_app.send_task("oncall.chatops.tasks.process_inbound", args=[pk], expires=60)
    except Exception:  # noqa: BLE001 - the broker may be down: the inbound tick processes the row
        logger.warning("could not enqueue process_inbound(%s); the chat inbound tick will", pk, exc_info=True)


@csrf_exempt
@require_POST
def slack_commands(request):
    if not _verified(request):
        return _unauthorized("invalid Slack signature or timestamp")
    payload = {key: request.POST.get(key, "") for key in request.POST}
    if payload.get("command") and not payload.get("trigger_id"):
        return JsonResponse({"error": "trigger_id: missing"}, status=400)
    store(
        provider="slack",
        kind=InboundRequest.Kind.COMMAND,
        key=f"slack:command:{payload.get('trigger_id')}",
        payload=payload,
        retry_num=_retry_num(request),
    )
    return HttpResponse(status=200)  # empty: the answer is the modal or an ephemeral message from the worker


@csrf_exempt
@require_POST
def slack_interactions(request):
    if not _verified(request):
        return _unauthorized("invalid Slack signature or timestamp")
    try:
        payload = json.loads(request.POST.get("payload", ""))
    except ValueError:
        return JsonResponse({"error": "payload: not JSON"}, status=400)
    if not isinstance(payload, dict):
        return JsonResponse({"error": "payload: not an object"}, status=400)
    kind = payload.get("type", "")
    if kind == "view_submission":
        view = payload.get("view") or {}
        # Checked here so the form can say it (Slack keeps the modal open with the error under the first field).
        try:
            identity.actor_for(slack_user_id=(payload.get("user") or {}).get("id", ""))
        except identity.NotAllowed as refusal:
            first = next(iter((view.get("state") or {}).get("values") or {"title": None}))
            return JsonResponse({"response_action": "errors", "errors": {first: refusal.message[:150]}})
        key = f"slack:view:{view.get('id', '')}"
    elif kind in ("block_actions", "message_action", "shortcut"):
        key = f"slack:{kind}:{payload.get('trigger_id') or payload.get('action_ts', '')}"
    else:
        return HttpResponse(status=200)  # view_closed and others: nothing to do
    store(
        provider="slack", kind=InboundRequest.Kind.INTERACTION, key=key, payload=payload, retry_num=_retry_num(request)
    )
    return HttpResponse(status=200)


@csrf_exempt
@require_POST
def slack_events(request):
    if not _verified(request):
        return _unauthorized("invalid Slack signature or timestamp")
    try:
        payload = json.loads(request.body)
    except ValueError:
        return JsonResponse({"error": "body: not JSON"}, status=400)
    if not isinstance(payload, dict):
        return JsonResponse({"error": "body: not an object"}, status=400)
    if payload.get("type") == "url_verification":
        return JsonResponse({"challenge": payload.get("challenge", "")})
    if payload.get("type") != "event_callback" or not payload.get("event_id"):
        return HttpResponse(status=200)
    store(
        provider="slack",
        kind=InboundRequest.Kind.EVENT,
        key=f"slack:event:{payload['event_id']}",
        payload=payload,
        retry_num=_retry_num(request),
    )
    return HttpResponse(status=200)


@csrf_exempt
@require_POST
def mattermost_commands(request):
    token = request.POST.get("token", "")
    if not token or not any(hmac.compare_digest(token, known) for known in settings.MATTERMOST_COMMAND_TOKENS):
        return _unauthorized("invalid Mattermost command token")
    payload = {key: request.POST.get(key, "") for key in request.POST if key != "token"}
    if not payload.get("trigger_id"):
        return JsonResponse({"error": "trigger_id: missing"}, status=400)
    store(
        provider="mattermost",
        kind=InboundRequest.Kind.COMMAND,
        key=f"mattermost:command:{payload['trigger_id']}",
        payload=payload,
    )
    return JsonResponse({"response_type": "ephemeral", "text": "Working on it…"})
