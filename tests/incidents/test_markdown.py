"""User Markdown becomes safe HTML: the output is parsed and checked structurally (tags, attributes, URL
schemes), for render_markdown itself and for what a timeline entry stores in body_html."""

from html.parser import HTMLParser

import pytest

from incidents.markdown import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, render_markdown
from incidents.services.entries import add_timeline_entry
from tests.factories import declare

URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "background", "poster"}
SAFE_SCHEMES = ("http://", "https://", "mailto:")

ATTACKS = {
    "script tag": "<script>alert(1)</script>",
    "script in markdown paragraph": "Hello <script src=https://evil.example/x.js></script> world",
    "javascript link": "[click](javascript:alert(1))",
    "javascript link mixed case": "[click](JaVaScRiPt:alert(1))",
    "javascript link with spaces": "[click]( javascript:alert(1) )",
    "javascript autolink": "<javascript:alert(1)>",
    "javascript reference link": "[click][1]\n\n[1]: javascript:alert(1)",
    "javascript raw anchor": '<a href="javascript:alert(1)">click</a>',
    "entity-encoded javascript": '<a href="&#106;avascript:alert(1)">click</a>',
    "hex entity javascript": '<a href="&#x6A;&#x61;vascript&#x3A;alert(1)">click</a>',
    "tab inside scheme": '<a href="jav&#x09;ascript:alert(1)">click</a>',
    "named entity colon": '<a href="javascript&colon;alert(1)">click</a>',
    "vbscript link": '<a href="vbscript:msgbox(1)">click</a>',
    "img onerror": "<img src=x onerror=alert(1)>",
    "markdown image onerror": '![x](x" onerror="alert(1))',
    "svg onload": "<svg onload=alert(1)><circle r=5 /></svg>",
    "svg script": "<svg><script>alert(1)</script></svg>",
    "body onload": "<body onload=alert(1)>text</body>",
    "onclick on allowed tag": '<p onclick="alert(1)">para</p>',
    "onmouseover on link": '<a href="https://example.com" onmouseover="alert(1)">x</a>',
    "data url link": "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "data url raw anchor": '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    "data url image": "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "iframe": '<iframe src="https://evil.example"></iframe>',
    "object and embed": '<object data="x.swf"></object><embed src="x.swf">',
    "style attribute": '<p style="background:url(javascript:alert(1))">x</p>',
    "style tag": "<style>body{background:url(javascript:alert(1))}</style>",
    "form with formaction": '<form><button formaction="javascript:alert(1)">x</button></form>',
    "meta refresh": '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    "base href": '<base href="javascript:alert(1)//">',
    "html comment hiding script": "<!--<script>alert(1)</script>-->",
    "nested broken tags": "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "link in code is text": "`<script>alert(1)</script>`",
    "math and xlink": '<math><a xlink:href="javascript:alert(1)">x</a></math>',
}


class Collector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def assert_safe(html: str) -> None:
    parser = Collector()
    parser.feed(html)
    lowered = html.lower()
    assert "<script" not in lowered and "<svg" not in lowered and "<iframe" not in lowered
    for tag, attrs in parser.tags:
        assert tag in ALLOWED_TAGS, (tag, html)
        for name, value in attrs.items():
            assert not name.startswith("on"), (name, html)
            assert name in ALLOWED_ATTRIBUTES.get(tag, set()) | {"rel"}, (tag, name, html)
            if name in URL_ATTRIBUTES:
                # After entity decoding (convert_charrefs) and stripping, only safe schemes or relative URLs.
                url = "".join((value or "").split()).lower()
                assert url.startswith(SAFE_SCHEMES) or ":" not in url.split("/")[0], (url, html)


@pytest.mark.parametrize("payload", list(ATTACKS.values()), ids=list(ATTACKS))
def test_render_markdown_strips_the_attack(payload):
    assert_safe(render_markdown(payload))


def test_scripts_are_removed_not_executed_and_entities_stay_text():
    html = render_markdown("before <script>alert(1)</script> after &lt;script&gt;")
    assert "<script" not in html
    assert "&lt;script&gt;" in html  # typed as text, shown as text


def test_ordinary_markdown_survives_sanitising():
    html = render_markdown(
        "**bold** and _em_ with [docs](https://example.com/runbook) and `code`\n\n"
        "- one\n- two\n\n```\nSELECT 1;\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |"
    )
    for fragment in ("<strong>bold</strong>", "<em>em</em>", "<code>code</code>", "<li>one</li>", "<table>"):
        assert fragment in html
    assert 'href="https://example.com/runbook"' in html
    assert 'rel="noopener noreferrer nofollow"' in html
    assert "SELECT 1;" in html
    assert_safe(html)


def test_mailto_and_relative_links_are_kept():
    html = render_markdown("[mail](mailto:oncall@example.com) and [page](/incidents/INC-1/)")
    assert 'href="mailto:oncall@example.com"' in html
    assert 'href="/incidents/INC-1/"' in html


def test_empty_and_none_render_to_empty():
    assert render_markdown("") == ""
    assert render_markdown(None) == ""


@pytest.mark.django_db
def test_timeline_entry_body_html_is_sanitised(responder):
    incident = declare(by=responder)
    for name, payload in ATTACKS.items():
        entry = add_timeline_entry(incident=incident, by=responder, body=f"{name}: {payload}")
        assert entry.body == f"{name}: {payload}"  # the author's text is kept as written
        assert_safe(entry.body_html)
        entry.refresh_from_db()
        assert_safe(entry.body_html)
