"""One Redis subscription per process, fanned out to every open event stream of that process.

Runs in the ASGI server's event loop. Each stream registers a `Listener` (optionally for one incident); the hub's
reader task puts matching messages on the listeners' queues. When Redis goes away every stream is ended (the
browsers poll, then reconnect), and the reader reconnects with a bounded backoff.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field

from django.conf import settings

from . import channel

logger = logging.getLogger(__name__)

QUEUE_SIZE = 64
SUBSCRIBE_TIMEOUT = 10.0
LOST = object()  # put on every queue when the subscription is lost
HUB_CLIENT_NAME = "incidentportal-live-hub"  # shown by Redis CLIENT LIST


@dataclass(eq=False)
class Listener:
    incident_id: int | None = None  # None: every incident (dashboard, list)
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(maxsize=QUEUE_SIZE))

    def offer(self, item) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            # Messages already waiting make the page catch up with everything, so a message may be dropped; the
            # end of the subscription may not.
            if item is LOST:
                while not self.queue.empty():
                    self.queue.get_nowait()
                self.queue.put_nowait(item)


class Hub:
    def __init__(self, url: str, channel_name: str):
        self.url = url
        self.channel_name = channel_name
        self.listeners: set[Listener] = set()
        self.subscribed = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def open(self, *, incident_id: int | None = None) -> Listener | None:
        """Register a listener once the subscription is confirmed, so nothing committed after this returns is
        missed. None when Redis cannot be reached in time."""
        listener = Listener(incident_id=incident_id)
        self.listeners.add(listener)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="live-hub")
        try:
            await asyncio.wait_for(self.subscribed.wait(), SUBSCRIBE_TIMEOUT)
        except TimeoutError:
            self.close(listener)
            return None
        return listener

    def close(self, listener: Listener) -> None:
        self.listeners.discard(listener)

    def dispatch(self, raw: bytes | str) -> None:
        try:
            data = json.loads(raw)
            incident_id = int(data["id"])
        except (ValueError, KeyError, TypeError):
            logger.warning("live: ignored malformed message %r", raw)
            return
        for listener in tuple(self.listeners):
            if listener.incident_id is None or listener.incident_id == incident_id:
                listener.offer(data)

    async def _run(self) -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        backoff = 0.25
        while True:
            client = aioredis.Redis.from_url(
                self.url, socket_connect_timeout=2, health_check_interval=15, client_name=HUB_CLIENT_NAME
            )
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self.channel_name)
                while True:  # the server's confirmation: from here on every publish reaches us
                    confirmation = await pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT)
                    if confirmation and confirmation["type"] == "subscribe":
                        break
                self.subscribed.set()
                backoff = 0.25
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=30.0)
                    if message is not None and message["type"] == "message":
                        self.dispatch(message["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as error:
                logger.warning("live: Redis subscription lost (%s); retrying in %.2fs", error, backoff)
            finally:
                self.subscribed.clear()
                for listener in tuple(self.listeners):
                    listener.offer(LOST)
                try:
                    await pubsub.aclose()
                    await client.aclose()
                except (RedisError, OSError):  # closing a broken connection may fail too
                    logger.debug("live: closing the lost subscription failed", exc_info=True)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


_hubs: dict[asyncio.AbstractEventLoop, Hub] = {}


def hub() -> Hub:
    """The hub of the running event loop (one per process under uvicorn; tests may run several loops)."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        for old in [old for old in _hubs if old.is_closed()]:
            del _hubs[old]
        found = _hubs[loop] = Hub(settings.REDIS_URL, channel())
    return found
