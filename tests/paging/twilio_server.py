"""A local stand-in for the two Twilio REST endpoints the portal uses, on 127.0.0.1, speaking them as Twilio
documents them: form-encoded POSTs with HTTP basic auth (account SID, auth token) to
/2010-04-01/Accounts/{AccountSid}/Messages.json and .../Calls.json, a 201 with the JSON resource (sid, status
"queued", ...) on success, and Twilio's JSON error body ({"code", "message", "more_info", "status"}) otherwise:
400 with code 21211 for a number that is not valid, 401 for wrong credentials, and whatever a test scripts next
(429 Too Many Requests, 500, 503).

It also signs status callbacks and inbound messages the way Twilio does (X-Twilio-Signature: base64 HMAC-SHA1
with the auth token over the full URL followed by each POST parameter name and value, sorted by name), written
here from Twilio's documentation so the portal's RequestValidator check is tested against an independent signer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
FROM_NUMBER = "+15005550006"
INVALID_NUMBER = "+15005550001"  # Twilio's own magic test number for "invalid To"

PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/(?P<kind>Messages|Calls)\.json$")


def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's documented request signature (HMAC-SHA1, base64) over the URL and the sorted POST parameters."""
    payload = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    digest = hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


@dataclass
class FakeTwilio:
    """The server's state: every request it took, and the failures to answer next (status, code, message)."""

    requests: list[dict] = field(default_factory=list)
    fail_next: list[tuple[int, int, str]] = field(default_factory=list)
    base_url: str = ""

    @property
    def messages(self) -> list[dict]:
        return [r for r in self.requests if r["kind"] == "Messages" and r["answered"] == 201]

    @property
    def calls(self) -> list[dict]:
        return [r for r in self.requests if r["kind"] == "Calls" and r["answered"] == 201]


def _handler(state: FakeTwilio):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _answer(self, status: int, document: dict) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, code: int, message: str) -> None:
            self._answer(
                status,
                {
                    "code": code,
                    "message": message,
                    "more_info": f"https://www.twilio.com/docs/errors/{code}",
                    "status": status,
                },
            )

        def do_POST(self):  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v if len(v) > 1 else v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            match = PATH.match(self.path)
            record = {"kind": match["kind"] if match else "", "path": self.path, "form": form, "answered": 0}
            state.requests.append(record)
            if match is None:
                record["answered"] = 404
                return self._error(404, 20404, "The requested resource was not found")
            expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
            if self.headers.get("Authorization") != expected or match["account"] != ACCOUNT_SID:
                record["answered"] = 401
                return self._error(401, 20003, "Authenticate")
            if state.fail_next:
                status, code, message = state.fail_next.pop(0)
                record["answered"] = status
                return self._error(status, code, message)
            to = form.get("To", "")
            if to == INVALID_NUMBER or not re.fullmatch(r"\+[1-9]\d{6,14}", to):
                record["answered"] = 400
                return self._error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
            prefix = "SM" if match["kind"] == "Messages" else "CA"
            sid = prefix + secrets.token_hex(16)
            record.update(answered=201, sid=sid)
            resource = {
                "sid": sid,
                "account_sid": ACCOUNT_SID,
                "to": to,
                "from": form.get("From", ""),
                "status": "queued",
                "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/{match['kind']}/{sid}.json",
            }
            if match["kind"] == "Messages":
                resource.update(body=form.get("Body", ""), num_segments="1", direction="outbound-api")
            else:
                resource.update(direction="outbound-api")
            return self._answer(201, resource)

    return Handler


class TwilioServer:
    def __init__(self):
        self.state = FakeTwilio()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.state.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeTwilio:
        self.thread.start()
        return self.state

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
