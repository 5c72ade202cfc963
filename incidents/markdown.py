"""User Markdown rendered to HTML and sanitised with nh3: no scripts, no event handlers, no javascript: URLs."""

import re

import markdown as markdown_lib
import nh3

ALLOWED_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "code",
    "del",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "li",
    "ol",
    "p",
    "pre",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "abbr": {"title"}, "td": {"align"}, "th": {"align"}}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}


LIST_ITEM = re.compile(r"^ {0,3}(?:[-*+]|\d{1,9}[.)])\s+\S")
FENCE = re.compile(r"^ {0,3}(```|~~~)")


def separate_lists(text: str) -> str:
    """A list written straight under a line of text ("Checked:" then "- item") is a list, as people type it in
    chat and as GitHub renders it; Python-Markdown wants a blank line before it. Adds that line, outside code."""
    lines, in_fence, previous = [], False, ""
    for line in text.split("\n"):
        if FENCE.match(line):
            in_fence = not in_fence
        elif (
            not in_fence
            and LIST_ITEM.match(line)
            and previous.strip()
            and not LIST_ITEM.match(previous)
            and not previous.startswith((" ", "\t"))
        ):
            lines.append("")
        lines.append(line)
        previous = line
    return "\n".join(lines)


def render_markdown(text: str) -> str:
    html = markdown_lib.markdown(
        separate_lists(text or ""), extensions=["fenced_code", "tables", "sane_lists", "nl2br"]
    )
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
