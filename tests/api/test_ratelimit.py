"""The fixed-window limiter: exact for small limits, chunked (one Redis call per chunk) for large ones,
and never admitting more than the limit in a window, however many processes share it."""

import pytest

from incidents.alerting import ratelimit


def test_small_limit_is_exact():
    verdicts = [ratelimit.hit("t:small", 5) for _ in range(7)]
    assert [v.allowed for v in verdicts] == [True] * 5 + [False, False]
    assert [v.first_refusal for v in verdicts] == [False] * 5 + [True, False]


@pytest.mark.parametrize("processes", [1, 3])
def test_large_limit_counts_in_chunks_and_never_exceeds_the_limit(monkeypatch, processes):
    limit = 1000  # chunks of 10
    states = [{} for _ in range(processes)]
    admitted = refusals_logged = 0
    for n in range(1500):
        # Each simulated web process has its own local reservations; Redis is shared.
        monkeypatch.setattr(ratelimit, "_reserved", states[n % processes])
        verdict = ratelimit.hit("t:large", limit)
        admitted += verdict.allowed
        refusals_logged += verdict.first_refusal
    assert limit - processes * 10 < admitted <= limit
    assert 1 <= refusals_logged <= processes
