"""The per-key rate limit: a sliding-window counter of constant size, with the Retry-After it promises."""

from __future__ import annotations

import pickle

import pytest
from django.core.cache import cache
from rest_framework.test import APIRequestFactory

from accounts.throttling import ApiKeyRateThrottle
from tests.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db

MINUTE = 60.0
# A window's start: floor(now / 60) * 60.
START = 1_000_000 * MINUTE


class View:
    throttle_scope = "search"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def search_rate(settings):
    def set_rate(rate: str) -> None:
        rates = dict(settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES") or {})
        rates["search"] = rate
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}

    return set_rate


@pytest.fixture
def ask():
    """`ask(clock)`: (allowed, throttle) for one request of one key at the clock's time."""
    key = ApiKeyFactory()
    request = APIRequestFactory().post("/api/search")
    request.auth = key
    request.user = key.user

    def one(clock: Clock) -> tuple[bool, ApiKeyRateThrottle]:
        throttle = ApiKeyRateThrottle()
        throttle.timer = clock
        return throttle.allow_request(request, View()), throttle

    return one


def test_the_rate_holds_within_a_window_and_retry_after_names_the_next(search_rate, ask):
    search_rate("10/min")
    clock = Clock(START + 1)
    assert [ask(clock)[0] for _ in range(10)] == [True] * 10
    allowed, throttle = ask(clock)
    assert allowed is False
    # The next window, where these 10 weigh 10 x (1 - 0) at its very start: allowed just after it begins.
    assert throttle.wait() == pytest.approx(MINUTE - 1)
    clock.now = START + MINUTE + 0.5
    assert ask(clock)[0] is True


def test_the_previous_window_counts_for_the_part_still_within_the_duration(search_rate, ask):
    search_rate("10/min")
    clock = Clock(START + 59)
    assert all(ask(clock)[0] for _ in range(10))
    # Half-way through the next window the 10 count as 5: five more are allowed, not ten.
    clock.now = START + MINUTE + 30
    assert [ask(clock)[0] for _ in range(6)] == [True] * 5 + [False]
    allowed, throttle = ask(clock)
    # 10 x (1 - u) + 5 < 10 once u > 0.5: at once the estimate falls, i.e. in (almost) no time.
    assert allowed is False and throttle.wait() == pytest.approx(0.0, abs=1e-6)
    clock.now = START + MINUTE + 36  # 10 x 0.4 + 5 = 9
    assert ask(clock)[0] is True
    # Two windows later the old ones count for nothing.
    clock.now = START + 3 * MINUTE + 1
    assert all(ask(clock)[0] for _ in range(10))


def test_the_cached_state_stays_the_same_size_whatever_the_rate(search_rate, ask):
    search_rate("100000/min")
    clock = Clock(START + 1)
    for _ in range(2000):
        _, throttle = ask(clock)
        clock.now += 0.01
    assert throttle.counts[2] == 1999
    assert len(pickle.dumps(cache.get(throttle.key))) < 100  # DRF's log: 2,000 timestamps, ~18 KB


def test_a_log_left_by_the_former_throttle_is_replaced(search_rate, ask):
    search_rate("3/min")
    clock = Clock(START + 1)
    _, throttle = ask(clock)
    cache.set(throttle.key, [START, START - 1, START - 2], 120)  # DRF's own format
    assert [ask(clock)[0] for _ in range(4)] == [True, True, True, False]
