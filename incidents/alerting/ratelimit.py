"""Fixed-window rate limiting: one Redis INCR (+EXPIRE on the first hit) per request.

Without Redis (the embedded development setup) the counters live in the process. If Redis is unreachable the
request is let through: losing an alert to a broken rate limiter would be worse than a burst getting in.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

import redis
from django.conf import settings

log = logging.getLogger(__name__)
WINDOW_SECONDS = 60
# Keys are namespaced by database, so a test run and the development server sharing a Redis never collide.
NAMESPACE = ""
_clock = time.time  # replaced in tests, so a test never straddles two windows

_client = None
_client_lock = threading.Lock()
_local_counts: dict[str, int] = {}
_local_lock = threading.Lock()


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    count: int
    limit: int
    retry_after: int

    @property
    def first_refusal(self) -> bool:
        """Only the first refused request of a window is logged, so a flood cannot flood the error log."""
        return not self.allowed and self.count == self.limit + 1


def _redis():
    global _client
    url = getattr(settings, "REDIS_URL", "")
    if not url:
        return None
    if _client is None:
        with _client_lock:
            if _client is None:
                _client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    return _client


def _key(scope: str, window: int) -> str:
    namespace = NAMESPACE or settings.DATABASES["default"].get("NAME", "")
    return f"ratelimit:{namespace}:{scope}:{window}"


# Large limits are counted in chunks: a process reserves `limit // CHUNKS_PER_LIMIT` requests with one INCRBY and
# spends them locally, so a storm costs one Redis round trip per chunk rather than per request. A process may end a
# window with part of a chunk unspent (those requests are refused to nobody else's benefit), never with more than
# the limit admitted in total. Limits under CHUNKS_PER_LIMIT are counted exactly, one INCR per request.
CHUNKS_PER_LIMIT = 100
_reserved: dict[str, int] = {}


def hit(scope: str, limit: int) -> Verdict:
    now = _clock()
    window = int(now // WINDOW_SECONDS)
    retry_after = max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))
    key = _key(scope, window)
    chunk = max(1, limit // CHUNKS_PER_LIMIT)
    if chunk > 1:
        with _local_lock:
            left = _reserved.get(key, 0)
            if left > 0:
                _reserved[key] = left - 1
                return Verdict(True, 0, limit, retry_after)
    client = _redis()
    count = None
    if client is not None:
        try:
            pipe = client.pipeline(transaction=False)
            pipe.incrby(key, chunk)
            pipe.expire(key, WINDOW_SECONDS + 5, nx=True)
            count = int(pipe.execute()[0])
        except Exception:  # redis down or slow: fail open (see module docstring)
            log.warning("rate limiter unavailable; letting %s through", scope, exc_info=True)
            return Verdict(True, 0, limit, retry_after)
    if count is None:
        with _local_lock:
            for stale in [k for k in _local_counts if not k.endswith(f":{window}")]:
                del _local_counts[stale]
            count = _local_counts[key] = _local_counts.get(key, 0) + chunk
    if chunk == 1:
        return Verdict(count <= limit, count, limit, retry_after)
    # This reservation covers counts (count - chunk, count]; only those within the limit may be spent.
    granted = max(0, min(chunk, limit - (count - chunk)))
    if granted == 0:
        first = limit <= count - chunk < limit + chunk
        return Verdict(False, limit + 1 if first else count, limit, retry_after)
    with _local_lock:
        for stale in [k for k in _reserved if not k.endswith(f":{window}")]:
            del _reserved[stale]
        _reserved[key] = _reserved.get(key, 0) + granted - 1
    return Verdict(True, count, limit, retry_after)


def reset(scope: str) -> None:
    """For tests: forget the current window's count."""
    window = int(_clock() // WINDOW_SECONDS)
    key = _key(scope, window)
    client = _redis()
    if client is not None:
        try:
            client.delete(key)
        except Exception:
            log.warning("rate limiter unavailable", exc_info=True)
    with _local_lock:
        _local_counts.pop(key, None)
        _reserved.pop(key, None)
