import json
import time
from urllib.parse import urlencode

import pytest

from oncall.chatops import outbox, slack_api, tasks
from oncall.chatops.models import ChatIdentity, InboundRequest
from tests.chatops.slack_server import TOKEN, FakeSlack
from tests.oncall.factories import PersonFactory

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
def slack(settings):
    fake = FakeSlack().start()
    settings.SLACK_BOT_TOKEN = TOKEN
    settings.SLACK_SIGNING_SECRET = SECRET
    settings.SLACK_API_BASE_URL = fake.api_url
    settings.SLACK_WORKSPACE_URL = "https://acme.slack.com"
    settings.SLACK_ANNOUNCEMENT_CHANNELS = {"P0": "CANNOUNCE", "P1": "CANNOUNCE"}
    settings.SLACK_RATE_LIMIT_RETRIES = 1
    settings.CHATOPS_RETRY_BACKOFF_SECONDS = 5
    # The announcement channel exists in the workspace; the bot posts to it (chat:write.public).
    from tests.chatops.slack_server import Channel

    fake.channels["CANNOUNCE"] = Channel(id="CANNOUNCE", name="incidents", is_private=False, members={"UBOT"})
    yield fake
    fake.stop()


def link(user, slack_id: str, fake: FakeSlack | None = None):
    """A Person for the user, linked to a Slack id (and known to the fake workspace by email)."""
    person = getattr(user, "person", None) or PersonFactory(name=user.get_full_name(), user=user, email=user.email)
    ChatIdentity.objects.update_or_create(person=person, defaults={"slack_user_id": slack_id})
    if fake is not None:
        fake.add_user(user.email, slack_id)
    return person


def signed_post(client, path: str, body: str, *, content_type: str, secret: str = SECRET, timestamp=None, headers=None):
    signing = slack_api.sign(body, secret=secret, timestamp=timestamp)
    extra = {f"HTTP_{key.upper().replace('-', '_')}": value for key, value in {**signing, **(headers or {})}.items()}
    return client.generic("POST", path, body.encode(), content_type=content_type, **extra)


def command(
    client,
    *,
    user_id: str,
    channel_id: str = "CGENERAL",
    text: str = "",
    trigger_id: str | None = None,
    response_url: str = "",
    **kwargs,
):
    body = urlencode(
        {
            "token": "legacy-unused",
            "team_id": "T0001",
            "team_domain": "acme",
            "channel_id": channel_id,
            "channel_name": "general",
            "user_id": user_id,
            "user_name": "someone",
            "command": "/incident",
            "text": text,
            "api_app_id": "A0001",
            "response_url": response_url,
            "trigger_id": trigger_id or f"{time.time_ns()}.trigger",
        }
    )
    return signed_post(
        client, "/chatops/slack/commands/", body, content_type="application/x-www-form-urlencoded", **kwargs
    )


def interaction(client, payload: dict, **kwargs):
    body = urlencode({"payload": json.dumps(payload)})
    return signed_post(
        client, "/chatops/slack/interactions/", body, content_type="application/x-www-form-urlencoded", **kwargs
    )


def event(client, event_body: dict, *, event_id: str, **kwargs):
    payload = {
        "token": "unused",
        "team_id": "T0001",
        "api_app_id": "A0001",
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "event": event_body,
    }
    return signed_post(client, "/chatops/slack/events/", json.dumps(payload), content_type="application/json", **kwargs)


def submission(*, user_id: str, callback_id: str, metadata: str, values: dict, view_id: str | None = None) -> dict:
    """A view_submission payload as Slack sends it: state.values[block_id][action_id] = element state."""
    state = {}
    for block_id, value in values.items():
        element = value if isinstance(value, dict) else {"type": "plain_text_input", "value": value}
        state[block_id] = {"value": element}
    return {
        "type": "view_submission",
        "team": {"id": "T0001"},
        "user": {"id": user_id},
        "trigger_id": f"{time.time_ns()}.trigger",
        "view": {
            "id": view_id or f"V{time.time_ns()}",
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": metadata,
            "hash": "1",
            "state": {"values": state},
        },
    }


def select(value: str) -> dict:
    return {"type": "static_select", "selected_option": {"value": value, "text": {"type": "plain_text", "text": value}}}


def run_worker(rounds: int = 10) -> None:
    """What the Celery workers do: process stored requests, then send the chat outbox, until nothing is left."""
    for _ in range(rounds):
        pending = list(InboundRequest.objects.filter(processed_at__isnull=True).values_list("pk", flat=True))
        for pk in pending:
            tasks.process_one(pk)
        sent = outbox.deliver_due(budget_seconds=30)
        if not pending and not sent:
            return
