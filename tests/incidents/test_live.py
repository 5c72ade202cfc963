"""Live push: a committed change is announced on the /events/ streams (Server-Sent Events over Redis pub/sub), only
to users who may see the incident; without an ASGI server or Redis the stream answers 204 and the pages poll.

The streams are driven through Django's AsyncClient (the ASGI handler) against the real Redis server."""

import asyncio
import json

import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection, transaction
from django.test import AsyncClient

from incidents import live
from incidents.services.entries import add_timeline_entry
from tests.factories import ResponderFactory, SecurityFactory, ViewerFactory, declare

pytestmark = pytest.mark.django_db(transaction=True)


async def _next_event(stream, *, wait: float = 5.0) -> tuple[str, dict]:
    """The next `event:` frame of an SSE body (comments skipped)."""
    buffer = b""
    while b"\n\n" not in buffer:
        buffer += await asyncio.wait_for(anext(stream), wait)
    frame, _rest = buffer.split(b"\n\n", 1)
    fields = dict(
        line.split(": ", 1) for line in frame.decode().splitlines() if line and not line.startswith((":", "retry"))
    )
    return fields.get("event", ""), json.loads(fields.get("data", "{}"))


async def _open(user, path):
    client = AsyncClient()
    await client.aforce_login(user)
    response = await client.get(path)
    return response


def _note(incident, by, body="Rolled back the deploy."):
    add_timeline_entry(incident=incident, by=by, body=body)


def close_connection():
    connection.close()


def run(coroutine):
    """asyncio.run, then close the connection Django's thread-sensitive calls (logging in) opened in their thread."""

    async def main():
        try:
            return await coroutine
        finally:
            await sync_to_async(close_connection)()

    return asyncio.run(main())


def in_thread(function):
    """sync_to_async, closing the worker thread's database connection afterwards (the test database is dropped at
    the end of the run, which an idle connection would prevent)."""

    def run(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        finally:
            close_connection()

    return sync_to_async(run)


def test_a_note_reaches_the_incident_stream_after_its_commit():
    responder = ResponderFactory()
    incident = declare(by=responder)

    async def scenario():
        response = await _open(responder, f"/events/incidents/{incident.reference}/")
        assert response.status_code == 200
        assert response["Content-Type"] == "text/event-stream"
        stream = aiter(response.streaming_content)
        assert await _next_event(stream) == ("ready", {})
        await in_thread(_note)(incident, responder)
        event = await _next_event(stream)
        response.close()
        return event

    assert run(scenario()) == ("incident", {"ref": incident.reference})


def test_the_all_incidents_stream_hears_every_visible_incident_but_not_restricted_ones():
    responder = ResponderFactory()
    outsider = ViewerFactory()
    security = SecurityFactory()
    public = declare(by=responder, title="Checkout errors")
    secret = declare(by=security, title="Credential leak")
    secret.is_restricted = True
    secret.save(update_fields=["is_restricted"])

    async def scenario(user):
        response = await _open(user, "/events/incidents/")
        stream = aiter(response.streaming_content)
        assert (await _next_event(stream))[0] == "ready"
        await in_thread(_note)(secret, security, "Rotated the keys.")
        await in_thread(_note)(public, responder)
        first = await _next_event(stream)
        try:
            second = await _next_event(stream, wait=0.5)
        except TimeoutError:
            second = None
        response.close()
        return [e for e in (first, second) if e]

    assert run(scenario(outsider)) == [("incident", {"ref": public.reference})]
    assert sorted(e[1]["ref"] for e in run(scenario(security))) == sorted([public.reference, secret.reference])


def test_a_restricted_incident_stream_is_404_for_outsiders_and_sign_in_is_required():
    security = SecurityFactory()
    secret = declare(by=security, title="Credential leak")
    secret.is_restricted = True
    secret.save(update_fields=["is_restricted"])

    async def scenario():
        outsider = await _open(await in_thread(ViewerFactory)(), f"/events/incidents/{secret.reference}/")
        nonsense = await _open(security, "/events/incidents/INC-x1/")
        anonymous = await AsyncClient().get("/events/incidents/")
        return outsider.status_code, nonsense.status_code, anonymous.status_code

    assert run(scenario()) == (404, 404, 403)


def test_a_wsgi_server_or_a_portal_without_redis_answers_204_so_the_page_polls(client, settings):
    responder = ResponderFactory()
    client.force_login(responder)
    assert client.get("/events/incidents/").status_code == 204  # the sync test client is WSGI
    settings.LIVE_PUSH = False

    async def scenario():
        return (await _open(responder, "/events/incidents/")).status_code

    assert run(scenario()) == 204


def test_a_rolled_back_change_announces_nothing():
    responder = ResponderFactory()
    incident = declare(by=responder)
    subscriber = redis.Redis.from_url(settings.REDIS_URL).pubsub(ignore_subscribe_messages=True)
    subscriber.subscribe(live.channel())
    subscriber.get_message(timeout=1)
    with pytest.raises(RuntimeError), transaction.atomic():
        _note(incident, responder)
        raise RuntimeError("the request failed after writing")
    assert subscriber.get_message(timeout=0.3) is None
    _note(incident, responder)
    message = subscriber.get_message(timeout=2)
    assert json.loads(message["data"]) == {"id": incident.pk, "ref": incident.reference, "restricted": False}
    subscriber.close()


def test_pages_connect_to_their_stream_and_refresh_on_its_events(client):
    responder = ResponderFactory()
    incident = declare(by=responder)
    client.force_login(responder)
    detail = client.get(incident.get_absolute_url()).content.decode()
    assert f'sse-connect="/events/incidents/{incident.reference}/"' in detail
    assert "sse:incident" in detail and "hx-sse-2" in detail
    for path in ("/", "/incidents/"):
        page = client.get(path).content.decode()
        assert 'sse-connect="/events/incidents/"' in page
        assert "sse:incident" in page
