"""Mattermost: the `/incident` slash command (token-verified, answered through its response_url by the worker) and
posts to a Mattermost channel through its REST API (POST /api/v4/posts), via the same outbox."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from incidents.models import Incident, Status
from oncall.chatops.models import ChatIdentity, ChatOutbox, InboundRequest
from tests.chatops.conftest import run_worker
from tests.factories import ResponderFactory, declare
from tests.oncall.factories import PersonFactory

pytestmark = pytest.mark.django_db


class FakeMattermost:
    """/api/v4/posts (bearer token, 201 + the post; 429 + Retry-After when told) and response_url endpoints."""

    def __init__(self):
        self.posts, self.responses, self.fail_next = [], [], []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                status, headers, reply = 200, {}, {"ok": True}
                if self.path.startswith("/response/"):
                    fake.responses.append(body)
                elif self.path == "/api/v4/posts":
                    if self.headers.get("Authorization") != "Bearer mm-bot-token":
                        status, reply = 401, {"id": "api.context.session_expired.app_error", "status_code": 401}
                    elif fake.fail_next:
                        status, headers = fake.fail_next.pop(0)
                        reply = {"status_code": status}
                    else:
                        fake.posts.append(body)
                        status, reply = 201, {"id": f"post{len(fake.posts)}", **body}
                data = json.dumps(reply).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def mattermost(settings):
    fake = FakeMattermost()
    settings.SLACK_BOT_TOKEN = ""  # Mattermost only
    settings.MATTERMOST_COMMAND_TOKENS = ["mm-command-token"]
    settings.MATTERMOST_URL = fake.url
    settings.MATTERMOST_BOT_TOKEN = "mm-bot-token"
    settings.MATTERMOST_CHANNEL_ID = "mmchannel1"
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def _command(client, mattermost, text, *, token="mm-command-token", user_id="mmada", trigger="t1"):
    return client.post(
        "/chatops/mattermost/commands/",
        {
            "token": token,
            "team_id": "team1",
            "channel_id": "town-square",
            "user_id": user_id,
            "user_name": "ada",
            "command": "/incident",
            "text": text,
            "response_url": f"{mattermost.url}/response/{trigger}",
            "trigger_id": trigger,
        },
    )


def test_wrong_or_missing_token_is_401(client, mattermost):
    assert _command(client, mattermost, "declare P1 x", token="nope").status_code == 401
    assert client.post("/chatops/mattermost/commands/", {"text": "declare P1 x"}).status_code == 401
    assert InboundRequest.objects.count() == 0


def test_declare_and_resolve_from_mattermost_and_posts_to_the_channel(client, mattermost):
    ada = ResponderFactory(first_name="Ada")
    ChatIdentity.objects.create(person=PersonFactory(user=ada), mattermost_user_id="mmada")
    response = _command(client, mattermost, "declare P1 Login page times out", trigger="t1")
    assert response.status_code == 200 and response.json()["response_type"] == "ephemeral"
    run_worker()
    incident = Incident.objects.get(title="Login page times out")
    assert incident.created_by == ada and incident.severity.level == "P1"
    assert incident.reference in mattermost.responses[-1]["text"]

    _command(client, mattermost, f"resolve {incident.reference} fixed the pool", trigger="t2")
    _command(client, mattermost, f"resolve {incident.reference} fixed the pool", trigger="t2")  # a duplicate
    run_worker()
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED
    messages = [post["message"] for post in mattermost.posts]
    assert all(post["channel_id"] == "mmchannel1" for post in mattermost.posts)
    assert any("declared" in m and incident.reference in m for m in messages)
    assert any("to **Resolved**" in m for m in messages)


def test_unlinked_mattermost_user_changes_nothing(client, mattermost):
    _command(client, mattermost, "declare P1 Something", user_id="mmstranger")
    run_worker()
    assert not Incident.objects.exists()
    assert "not linked" in mattermost.responses[-1]["text"] and "Mattermost" in mattermost.responses[-1]["text"]


def test_restricted_incidents_are_never_posted_to_mattermost(mattermost):
    from tests.factories import SecurityFactory

    declare(by=SecurityFactory(), is_restricted=True, title="Breach")
    run_worker()
    assert mattermost.posts == [] and not ChatOutbox.objects.exists()


def test_mattermost_429_waits_for_retry_after(mattermost):
    from datetime import timedelta

    import time_machine
    from django.utils import timezone

    mattermost.fail_next.append((429, {"Retry-After": "20"}))
    declare(level="P2", title="Slow search")
    run_worker()
    row = ChatOutbox.objects.filter(status="pending").first()
    assert row is not None and "rate limited" in row.last_error
    with time_machine.travel(timezone.now() + timedelta(seconds=21)):
        run_worker()
    assert any("Slow search" in post["message"] for post in mattermost.posts)
