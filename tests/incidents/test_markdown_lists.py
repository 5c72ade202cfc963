"""Lists typed straight under a line of text render as lists in notes (as people type them), and code blocks
stay as they were."""

import pytest

from incidents.markdown import render_markdown
from incidents.services.entries import add_timeline_entry
from tests.factories import declare


def test_list_right_under_text_is_a_list():
    assert render_markdown("Checked:\n- replica lag\n- disk space") == (
        "<p>Checked:</p>\n<ul>\n<li>replica lag</li>\n<li>disk space</li>\n</ul>"
    )
    assert "<ol>\n<li>drain</li>\n<li>restart</li>\n</ol>" in render_markdown("Next:\n1. drain\n2. restart")


def test_dashes_inside_code_and_text_are_left_alone():
    assert "- not a list" in render_markdown("```\nsteps\n- not a list\n```")
    assert "<ul>" not in render_markdown("```\nsteps\n- not a list\n```")
    assert render_markdown("Error rate 5 - 10%") == "<p>Error rate 5 - 10%</p>"


@pytest.mark.django_db
def test_note_with_a_list_renders_as_a_list_on_the_incident_page(client, responder):
    incident = declare(by=responder)
    add_timeline_entry(incident=incident, by=responder, body="Ruled out:\n- the deploy\n- DNS")
    client.force_login(responder)
    body = client.get(incident.get_absolute_url()).content.decode()
    assert "<p>Ruled out:</p>\n<ul>\n<li>the deploy</li>\n<li>DNS</li>\n</ul>" in body
