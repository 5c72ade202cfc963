"""What "inert" means for an HTML response: no script runs that the portal did not put there.

Scripts must be ours (a same-origin src, or the response's CSP nonce); no element may carry an event handler
attribute; no URL attribute may use javascript:, vbscript: or data:text/html (after the browser's own
entity decoding and whitespace stripping); no iframe/object/embed/base/frame elements, no meta refresh."""

from __future__ import annotations

import re
from html.parser import HTMLParser

URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "data", "poster", "background", "srcdoc"}
FORBIDDEN_TAGS = {"iframe", "object", "embed", "base", "frame", "frameset", "applet"}
_SCRUB = re.compile(r"[\x00-\x20]+")
DANGEROUS_URL = re.compile(r"^(javascript|vbscript|data:text/html)", re.IGNORECASE)


def csp_nonce(header: str) -> str | None:
    match = re.search(r"'nonce-([^']+)'", header or "")
    return match.group(1) if match else None


class _Collector(HTMLParser):
    def __init__(self, nonce):
        super().__init__(convert_charrefs=True)
        self.nonce = nonce
        self.problems: list[str] = []
        self.inline_styles = 0

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...> event handler")
            if name in URL_ATTRIBUTES and value and DANGEROUS_URL.match(_SCRUB.sub("", value)):
                self.problems.append(f"<{tag} {name}={value[:60]!r}> script URL")
            if name == "style":
                self.inline_styles += 1
        if tag in FORBIDDEN_TAGS:
            self.problems.append(f"<{tag}> element")
        if tag == "meta" and (values.get("http-equiv") or "").lower() == "refresh":
            self.problems.append("<meta http-equiv=refresh>")
        if tag == "script":
            src = values.get("src")
            kind = (values.get("type") or "").lower()
            if kind in ("application/json", "application/ld+json"):
                return  # data (json_script), never executed
            if src is not None:
                if re.match(r"^(https?:)?//", src):
                    self.problems.append(f"<script src={src!r}> from another origin")
            elif self.nonce is None or values.get("nonce") != self.nonce:
                self.problems.append("<script> without the response's CSP nonce")

    handle_startendtag = handle_starttag


def script_problems(html: str, *, nonce: str | None) -> list[str]:
    collector = _Collector(nonce)
    collector.feed(html)
    collector.close()
    return collector.problems


def inline_style_count(html: str) -> int:
    collector = _Collector(None)
    collector.feed(html)
    return collector.inline_styles
