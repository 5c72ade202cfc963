import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _clear_cache():
    # The subscribe rate limit lives in the cache; each test starts with a clean slate.
    cache.clear()
    yield
    cache.clear()


def run_enqueued(callbacks) -> int:
    """Run, in this process, the Celery tasks a service enqueued with transaction.on_commit(partial(task.delay,
    ...)): what a worker would do with the message, without a broker. Returns how many tasks ran."""
    ran = 0
    for callback in callbacks:
        func = getattr(callback, "func", None)
        task = getattr(func, "__self__", None)
        if task is not None and getattr(func, "__name__", "") == "delay":
            task(*callback.args, **callback.keywords)
            ran += 1
        else:
            callback()
    return ran
