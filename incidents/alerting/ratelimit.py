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

from django.conf import settings

log = logging.getLogger(__name__)
WINDOW_SECONDS = 60
# Keys are namespaced by database, so a test run and the development server sharing a Redis never collide.
NAMESPACE = ""

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
                import redis

                _client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    return _client


def _key(scope: str, window: int) -> str:
    namespace = NAMESPACE or settings.DATABASES["default"].get("NAME", "")
    return f"ratelimit:{namespace}:{scope}:{window}"


def hit(scope: str, limit: int) -> Verdict:
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    retry_after = max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))
    key = _key(scope, window)
    client = _redis()
    count = None
    if client is not None:
        try:
            pipe = client.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, WINDOW_SECONDS + 5, nx=True)
            count = int(pipe.execute()[0])
        except Exception:  # redis down or slow: fail open (see module docstring)
            log.warning("rate limiter unavailable; letting %s through", scope, exc_info=True)
            return Verdict(True, 0, limit, retry_after)
    if count is None:
        with _local_lock:
            for stale in [k for k in _local_counts if not k.endswith(f":{window}")]:
                del _local_counts[stale]
            count = _local_counts[key] = _local_counts.get(key, 0) + 1
    return Verdict(count <= limit, count, limit, retry_after)


def reset(scope: str) -> None:
    """For tests: forget the current window's count."""
    window = int(time.time() // WINDOW_SECONDS)
    key = _key(scope, window)
    client = _redis()
    if client is not None:
        try:
            client.delete(key)
        except Exception:
            log.warning("rate limiter unavailable", exc_info=True)
    with _local_lock:
        _local_counts.pop(key, None)
