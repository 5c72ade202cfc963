import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _fresh_rate_limits(settings):
    """Each test gets its own rate-limit namespace, so counts from earlier tests (or runs) never leak in."""
    import time
    import uuid

    from incidents.alerting import ratelimit
    from incidents.alerting.services.integrations import forget_cached_keys

    forget_cached_keys()

    ratelimit.NAMESPACE = uuid.uuid4().hex[:8]
    # One fixed moment per test: a test never straddles two rate-limit windows.
    frozen = time.time()
    original, ratelimit._clock = ratelimit._clock, lambda: frozen
    cache.clear()
    yield
    ratelimit._clock = original
