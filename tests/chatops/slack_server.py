"""A local Slack on 127.0.0.1: the Web API methods the portal uses, with Slack's documented request and response
shapes (https://api.slack.com/methods): bearer-token auth, form-encoded, query-string and JSON bodies, `ok: false`
errors, HTTP 429 with Retry-After, and response_url endpoints. Failures are scripted per method."""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

TOKEN = "xoxb-test-token"


@dataclass
class Channel:
    id: str
    name: str
    is_private: bool
    topic: str = ""
    members: set = field(default_factory=set)
    is_archived: bool = False
    messages: list = field(default_factory=list)


class FakeSlack:
    def __init__(self):
        self.calls: list[tuple[str, dict]] = []
        self.responses: list[tuple[str, dict]] = []  # (response_url path, body)
        self.channels: dict[str, Channel] = {}
        self.users_by_email: dict[str, str] = {}
        self.bot_user = "UBOT"
        self.failures: dict[str, list] = {}
        self._ids = itertools.count(1)
        self._ts = itertools.count(1)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # --- control -------------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, name: str) -> str:
        return f"{self.url}/response/{name}"

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def fail(self, method: str, *outcomes):
        """Script the next calls of `method`: ("error", "channel_not_found"), ("status", 500), ("ratelimit", 0)."""
        self.failures.setdefault(method, []).extend(outcomes)

    def methods(self) -> list[str]:
        return [name for name, _ in self.calls]

    def calls_of(self, method: str) -> list[dict]:
        return [params for name, params in self.calls if name == method]

    def add_user(self, email: str, user_id: str) -> None:
        self.users_by_email[email.lower()] = user_id

    def add_message(self, channel_id: str, *, user: str, text: str, ts: str) -> None:
        self.channels[channel_id].messages.append({"type": "message", "user": user, "text": text, "ts": ts})

    def channel_named(self, name: str) -> Channel | None:
        return next((c for c in self.channels.values() if c.name == name), None)

    # --- the API ---------------------------------------------------------------------------------------------------
    def handle(self, method: str, params: dict, token: str):
        """(status, headers, body) for one call."""
        with self.lock:
            self.calls.append((method, params))
            scripted = self.failures.get(method)
            if scripted:
                kind, value = scripted.pop(0)
                if kind == "ratelimit":
                    return 429, {"Retry-After": str(value)}, {"ok": False, "error": "ratelimited"}
                if kind == "status":
                    return value, {}, {"ok": False, "error": "internal_error"}
                return 200, {}, {"ok": False, "error": value}
            if token != TOKEN:
                return 200, {}, {"ok": False, "error": "invalid_auth" if token else "not_authed"}
            handler = getattr(self, "m_" + method.replace(".", "_"), None)
            if handler is None:
                return 200, {}, {"ok": False, "error": "unknown_method"}
            body = handler(params)
            return 200, {}, {"ok": "error" not in body, **body}

    def _channel(self, params) -> Channel | dict:
        channel = self.channels.get(params.get("channel", ""))
        if channel is None:
            return {"error": "channel_not_found"}
        return channel

    def _channel_json(self, channel: Channel) -> dict:
        return {
            "id": channel.id,
            "name": channel.name,
            "is_channel": True,
            "is_private": channel.is_private,
            "is_archived": channel.is_archived,
            "topic": {"value": channel.topic},
        }

    def m_conversations_create(self, params):
        name = params.get("name", "")
        if not name or len(name) > 80 or name != name.lower() or any(c in name for c in " .#,"):
            return {"error": "invalid_name_specials" if name else "invalid_name_required"}
        if self.channel_named(name):
            return {"error": "name_taken"}
        is_private = str(params.get("is_private", "false")).lower() in ("true", "1")
        channel = Channel(id=f"C{next(self._ids):06d}", name=name, is_private=is_private, members={self.bot_user})
        self.channels[channel.id] = channel
        return {"channel": self._channel_json(channel)}

    def m_conversations_setTopic(self, params):
        channel = self._channel(params)
        if isinstance(channel, dict):
            return channel
        if channel.is_archived:
            return {"error": "is_archived"}
        channel.topic = params.get("topic", "")
        return {"channel": self._channel_json(channel)}

    def m_conversations_invite(self, params):
        channel = self._channel(params)
        if isinstance(channel, dict):
            return channel
        users = [u for u in str(params.get("users", "")).split(",") if u]
        if not users:
            return {"error": "no_user"}
        if any(u not in self.users_by_email.values() for u in users):
            return {"error": "user_not_found"}
        if all(u in channel.members for u in users):
            return {"error": "already_in_channel"}
        channel.members.update(users)
        return {"channel": self._channel_json(channel)}

    def m_conversations_archive(self, params):
        channel = self._channel(params)
        if isinstance(channel, dict):
            return channel
        if channel.is_archived:
            return {"error": "already_archived"}
        channel.is_archived = True
        return {}

    def m_chat_postMessage(self, params):
        target = params.get("channel", "")
        if target in self.users_by_email.values():  # a direct message
            return {"channel": "D" + target, "ts": f"{1700000000 + next(self._ts)}.000100", "message": params}
        channel = self._channel(params)
        if isinstance(channel, dict):
            return channel
        if channel.is_archived:
            return {"error": "is_archived"}
        if not params.get("text") and not params.get("blocks"):
            return {"error": "no_text"}
        ts = f"{1700000000 + next(self._ts)}.000200"
        channel.messages.append(
            {
                "type": "message",
                "user": self.bot_user,
                "text": params.get("text", ""),
                "blocks": params.get("blocks"),
                "ts": ts,
            }
        )
        return {"channel": channel.id, "ts": ts, "message": {"text": params.get("text", ""), "ts": ts}}

    def m_chat_postEphemeral(self, params):
        channel = self._channel(params)
        if isinstance(channel, dict):
            return channel
        if self.bot_user not in channel.members:
            return {"error": "not_in_channel"}
        return {"message_ts": f"{1700000000 + next(self._ts)}.000300"}

    def m_views_open(self, params):
        if not params.get("trigger_id"):
            return {"error": "invalid_arguments"}
        if params.get("trigger_id") == "expired":
            return {"error": "expired_trigger_id"}
        view = params.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        return {"view": {"id": f"V{next(self._ids):06d}", **view}}

    def m_users_lookupByEmail(self, params):
        user_id = self.users_by_email.get(str(params.get("email", "")).lower())
        if user_id is None:
            return {"error": "users_not_found"}
        return {"user": {"id": user_id, "profile": {"email": params.get("email")}}}

    def _messages(self, params):
        channel = self._channel(params)
        if isinstance(channel, dict):
            return channel
        ts = params.get("latest") or params.get("ts")
        return {"messages": [m for m in channel.messages if m["ts"] == ts], "has_more": False}

    def m_conversations_history(self, params):
        return self._messages(params)

    def m_conversations_replies(self, params):
        return self._messages(params)

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status, headers, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _params(self) -> dict:
                parts = urlsplit(self.path)
                params = dict(parse_qsl(parts.query))
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if raw:
                    if "json" in (self.headers.get("Content-Type") or ""):
                        params.update(json.loads(raw))
                    else:
                        params.update(dict(parse_qsl(raw.decode())))
                return params

            def _serve(self):
                parts = urlsplit(self.path)
                params = self._params()
                if parts.path.startswith("/response/"):
                    with fake.lock:
                        fake.responses.append((parts.path.rsplit("/", 1)[1], params))
                    self._reply(200, {}, {"ok": True})
                    return
                if not parts.path.startswith("/api/"):
                    self._reply(404, {}, {"ok": False, "error": "not_found"})
                    return
                auth = self.headers.get("Authorization", "")
                token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else params.pop("token", "")
                status, headers, body = fake.handle(parts.path[len("/api/") :], params, token)
                self._reply(status, headers, body)

            do_GET = _serve
            do_POST = _serve

        return Handler
