"""Keys and secrets out of stored request bodies. Refused webhook requests keep a body excerpt for managers to
debug with (IntegrationError.body_excerpt); a PagerDuty body carries its `routing_key`, other senders put tokens,
passwords and Authorization values in theirs. Everything that looks like one is replaced before storing.

JSON bodies are redacted structurally (by key name, at any depth, and by value shape); anything else (truncated
or malformed JSON, form data, text) by patterns over the text. Redaction happens on the whole body, then the
excerpt is cut, so a secret can never survive by straddling the cut.
"""

from __future__ import annotations

import json
import re

REDACTED = "[redacted]"

# Key names whose values are secrets. `dedup_key`, `group_key`, `key` alone are identifiers, not secrets.
SECRET_KEY_NAME = re.compile(
    r"(pass(word|wd|phrase)?|pwd|secret|token|authori[sz]ation|credential|cookie|session|signature|"
    r"(routing|integration|service|api|access|private|signing|client|webhook|license|encryption)[-_ ]?key|"
    r"apikey|^auth$|^key$|dsn|webhook[-_ ]?url)",
    re.IGNORECASE,
)
NOT_SECRET_KEY_NAME = re.compile(r"^(dedup|group|idempotency|event|alert|incident|sort|partition)[-_]?key$", re.I)

# Values that are secrets whatever their key: our own tokens, bearer/basic credentials, common vendor tokens,
# URLs with a password in them.
SECRET_VALUE = re.compile(
    r"(ipt_[A-Za-z0-9_\-]{8,}"
    r"|\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=\-]{8,}"
    r"|\bxox[abposr]-[A-Za-z0-9\-]{8,}"
    r"|\bgh[pousr]_[A-Za-z0-9]{20,}"
    r"|\bsk_(live|test)_[A-Za-z0-9]{8,}"
    r"|\bAKIA[0-9A-Z]{16}"
    r"|(?<=://)[^/\s:@\"']+:[^/\s@\"']+(?=@))",
    re.IGNORECASE,
)

# In text that is not parseable JSON: "name": "value", name=value, name: value (header style).
_NAME = r"[A-Za-z0-9_\-]*"
TEXT_PAIRS = [
    re.compile(r'("(?P<name>' + _NAME + r')"\s*:\s*)"(?P<value>(?:[^"\\]|\\.)*)("|$)'),
    re.compile(r"(?P<lead>(?:^|[?&;\s,{])(?P<name>" + _NAME + r")=)(?P<value>[^&;\s,}]*)", re.MULTILINE),
    re.compile(r"(?P<lead>^(?P<name>" + _NAME + r"):[ \t]*)(?P<value>.+)$", re.MULTILINE),
]


def is_secret_name(name: str) -> bool:
    return bool(SECRET_KEY_NAME.search(name)) and not NOT_SECRET_KEY_NAME.match(name)


def _redact_value(value):
    if isinstance(value, str):
        return SECRET_VALUE.sub(REDACTED, value)
    return value


def redact_data(data):
    """A copy of decoded JSON with secret-named keys' values and secret-shaped strings replaced."""
    if isinstance(data, dict):
        return {
            key: (REDACTED if is_secret_name(str(key)) and value not in (None, "") else redact_data(value))
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [redact_data(item) for item in data]
    return _redact_value(data)


def redact_text(text: str) -> str:
    def json_pair(match):
        if not is_secret_name(match.group("name")):
            return match.group(0)
        closing = match.group(4)
        return f'{match.group(1)}"{REDACTED}{closing}'

    def other_pair(match):
        if not is_secret_name(match.group("name")):
            return match.group(0)
        return match.group("lead") + REDACTED

    text = TEXT_PAIRS[0].sub(json_pair, text)
    for pattern in TEXT_PAIRS[1:]:
        text = pattern.sub(other_pair, text)
    return SECRET_VALUE.sub(REDACTED, text)


def _storable(text: str) -> str:
    """PostgreSQL text holds neither NUL nor lone surrogates (which a refused body may well contain)."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def redacted_excerpt(body: bytes, *, limit: int = 2000) -> str:
    """The first `limit` characters of the body with keys and secrets replaced by [redacted]."""
    if not body:
        return ""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        # Not JSON (or cut short): patterns over a bounded prefix. Anything past it is never stored.
        text = body[: limit * 4].decode("utf-8", "replace")
        return _storable(redact_text(text))[:limit]
    try:
        return _storable(json.dumps(redact_data(data), ensure_ascii=False))[:limit]
    except (ValueError, RecursionError):
        return REDACTED
