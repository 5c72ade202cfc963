"""Renders the Block Kit the portal sends to Slack (the real builders in oncall/chatops/messages.py) as a Slack-like
preview and saves the README's images (docs/screenshots/slack-*.png). The renderer covers the block types the portal
uses: header, section (text and fields), context, actions (buttons) and modal inputs."""

import html
import re
from pathlib import Path

import pytest

from incidents.models import Service, Status
from oncall.chatops import messages
from tests.factories import ResponderFactory, declare

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
STYLE = """
body { font: 15px/1.46 Lato, 'Helvetica Neue', Arial, sans-serif; color: #1d1c1d; margin: 0; background: #fff; }
.msg { display: flex; gap: 10px; padding: 16px 20px; width: 640px; }
.avatar { width: 36px; height: 36px; border-radius: 6px; background: #7a1f1f; color: #fff; font-weight: 700;
          display: flex; align-items: center; justify-content: center; flex: none; }
.who { font-weight: 900; }
.app { font-size: 10px; background: #ddd; border-radius: 2px; padding: 1px 3px; margin-left: 4px; }
.header { font-size: 18px; font-weight: 900; margin: 6px 0; }
.fields { display: grid; grid-template-columns: 1fr 1fr; gap: 8px 16px; margin-top: 8px; }
.context { color: #616061; font-size: 13px; margin-top: 6px; }
.actions { display: flex; flex-wrap: wrap; gap: 8px; margin-top: 8px; }
.button { border: 1px solid #bbb; border-radius: 4px; padding: 3px 12px; font-weight: 700; font-size: 14px; }
.button.primary { background: #007a5a; color: #fff; border-color: #007a5a; }
.mention, .link { color: #1264a3; } .mention { background: #e8f5fa; }
.modal { width: 520px; border-radius: 8px; box-shadow: 0 4px 20px rgba(0,0,0,.25); margin: 16px; }
.modal-title { font-size: 22px; font-weight: 900; padding: 16px 24px; border-bottom: 1px solid #ddd; }
.modal-body { padding: 8px 24px 16px; } .label { font-weight: 700; margin-top: 14px; }
.optional { color: #616061; font-weight: 400; } .hint { color: #616061; font-size: 13px; }
.input { border: 1px solid #bbb; border-radius: 4px; padding: 8px; margin-top: 4px; color: #616061; min-height: 18px; }
.input.multi { min-height: 54px; }
.modal-foot { display: flex; justify-content: flex-end; gap: 8px; padding: 16px 24px; border-top: 1px solid #ddd; }
.ephemeral { color: #616061; font-size: 13px; }
"""


def mrkdwn(text: str) -> str:
    text = html.escape(html.unescape(text), quote=False)
    text = re.sub(r"&lt;#(C\\w+)&gt;", r'<span class="mention">#inc-channel</span>', text)
    text = re.sub(r"&lt;#(\w+)&gt;", r'<span class="mention">#inc-channel</span>', text)
    text = re.sub(r"&lt;@(\w+)&gt;", r'<span class="mention">@\1</span>', text)
    text = re.sub(r"&lt;(https?://[^|]+)\|([^&]+)&gt;", r'<span class="link">\2</span>', text)
    text = re.sub(r"\*([^*\n]+)\*", r"<b>\1</b>", text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r":[a-z_]+:", "●", text)
    return text.replace("\n", "<br>")


def render_blocks(blocks: list) -> str:
    out = []
    for block in blocks:
        kind = block["type"]
        if kind == "header":
            out.append(f'<div class="header">{html.escape(block["text"]["text"])}</div>')
        elif kind == "section":
            out.append(f"<div>{mrkdwn(block['text']['text'])}</div>")
            if block.get("fields"):
                cells = "".join(f"<div>{mrkdwn(f['text'])}</div>" for f in block["fields"])
                out.append(f'<div class="fields">{cells}</div>')
        elif kind == "context":
            out.append(f'<div class="context">{" ".join(mrkdwn(e["text"]) for e in block["elements"])}</div>')
        elif kind == "actions":
            buttons = "".join(
                f'<span class="button {e.get("style", "")}">{html.escape(e["text"]["text"])}</span>'
                for e in block["elements"]
            )
            out.append(f'<div class="actions">{buttons}</div>')
        elif kind == "input":
            optional = ' <span class="optional">(optional)</span>' if block.get("optional") else ""
            element = block["element"]
            multi = " multi" if element.get("multiline") else ""
            placeholder = {
                "static_select": "Select an option",
                "multi_static_select": "Select options",
                "users_select": "Select a person",
                "multi_users_select": "Select people",
            }.get(element["type"], "")
            out.append(f'<div class="label">{html.escape(block["label"]["text"])}{optional}</div>')
            out.append(f'<div class="input{multi}">{placeholder}</div>')
            if block.get("hint"):
                out.append(f'<div class="hint">{html.escape(block["hint"]["text"])}</div>')
    return "".join(out)


def message_page(blocks: list, *, ephemeral: bool = False) -> str:
    note = '<div class="ephemeral">Only visible to you</div>' if ephemeral else ""
    return (
        f"<html><head><style>{STYLE}</style></head><body><div class='msg'><div class='avatar'>IP</div><div>"
        f"{note}<span class='who'>Incident Portal</span><span class='app'>APP</span>{render_blocks(blocks)}"
        "</div></div></body></html>"
    )


def modal_page(view: dict) -> str:
    return (
        f"<html><head><style>{STYLE}</style></head><body><div class='modal'>"
        f"<div class='modal-title'>{html.escape(view['title']['text'])}</div>"
        f"<div class='modal-body'>{render_blocks(view['blocks'])}</div>"
        f"<div class='modal-foot'><span class='button'>{view['close']['text']}</span>"
        f"<span class='button primary'>{view['submit']['text']}</span></div></div></body></html>"
    )


def shoot(new_context, markup: str, name: str) -> str:
    page = new_context(viewport={"width": 700, "height": 400}).new_page()
    page.set_content(markup)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(".msg, .modal").first.screenshot(path=str(SCREENSHOTS / name))
    return page.inner_text("body")


def test_block_kit_previews(new_context):
    Service.objects.get_or_create(name="Checkout API", slug="checkout-api")
    ada = ResponderFactory(first_name="Ada", last_name="Lovelace")
    incident = declare(by=ada, level="P1", title="Payments failing", summary="Card payments return 502 since 14:02.")

    text, blocks = messages.declaration(incident, commander="Ada Lovelace", channel={"id": "C0001"}, announcement=True)
    shown = shoot(new_context, message_page(blocks), "slack-declaration.png")
    assert f"{incident.reference}: Payments failing" in shown and "Ada Lovelace" in shown

    _, blocks = messages.timeline_post(
        reference=incident.reference,
        body="Paged level 1 (On-call engineer): Platform Engineer (SMS, Email).",
        who="the portal",
        acknowledge=True,
        incident_id=incident.pk,
    )
    shown = shoot(new_context, message_page(blocks), "slack-page.png")
    assert "Acknowledge" in shown and "Paged level 1" in shown

    assert incident.status == Status.INVESTIGATING
    shown = shoot(new_context, message_page(messages.action_menu(incident), ephemeral=True), "slack-actions.png")
    for label in ("Post an update", "Change status", "Change severity", "Assign a role", "Page responders", "Resolve"):
        assert label in shown

    view = messages.declare_modal(channel_id="C1", services=list(Service.objects.all()))
    shown = shoot(new_context, modal_page(view), "slack-declare-modal.png")
    assert "Declare an incident" in shown and "Severity" in shown and "Affected services" in shown
