import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _fresh_rate_limits(settings):
    """Each test gets its own rate-limit namespace, so counts from earlier tests (or runs) never leak in."""
    import uuid

    from incidents.alerting import ratelimit, services

    services.forget_cached_keys()

    ratelimit.NAMESPACE = uuid.uuid4().hex[:8]
    cache.clear()
    yield
