"""When a consumer is taken for stuck outside its group (`kafka_client.JoinWatch`), on a clock the test moves by hand.

Under heavy load a kafka-python consumer has been seen to wait for its group coordinator in every poll, returning
nothing and raising nothing, for good; the consumer SDK replaces such a consumer. The watch must catch it after the
join timeout, and never take a consumer that is in its group, or that has only just left it to rebalance, for stuck.
"""

from __future__ import annotations

import pytest

from ledger.publishing.kafka_client import GROUP_JOIN_TIMEOUT_S, GROUP_SESSION_TIMEOUT_MS, JoinWatch

TIMEOUT_S = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def watch() -> tuple[JoinWatch, Clock]:
    clock = Clock()
    return JoinWatch(TIMEOUT_S, clock), clock


def test_a_consumer_that_never_gets_into_its_group_is_overdue_after_the_timeout_from_its_opening() -> None:
    join, clock = watch()  # opened now
    clock.now += TIMEOUT_S - 0.1
    assert not join.overdue(False)
    clock.now += 0.1
    assert join.overdue(False)


def test_a_consumer_in_its_group_is_never_overdue_however_long() -> None:
    join, clock = watch()
    for _ in range(100):
        assert not join.overdue(True)
        clock.now += TIMEOUT_S


def test_the_time_out_of_the_group_counts_from_when_it_was_last_seen_in_it() -> None:
    join, clock = watch()
    clock.now += TIMEOUT_S / 2
    assert not join.overdue(True)  # joined
    clock.now += TIMEOUT_S * 10  # long in the group, then a rebalance begins
    assert not join.overdue(False)  # out since now, not since the opening
    clock.now += TIMEOUT_S - 0.1
    assert not join.overdue(False)
    clock.now += 0.1
    assert join.overdue(False)


def test_reset_starts_over_for_a_new_consumer() -> None:
    join, clock = watch()
    clock.now += TIMEOUT_S
    assert join.overdue(False)
    join.reset()  # the replacement is opened
    assert not join.overdue(False)
    clock.now += TIMEOUT_S
    assert join.overdue(False)


def test_the_default_timeout_outlasts_a_dead_members_session_several_times() -> None:
    # A join legitimately waits for a dead member's session to time out before the group settles.
    assert GROUP_JOIN_TIMEOUT_S >= 3 * GROUP_SESSION_TIMEOUT_MS / 1000


@pytest.mark.parametrize("timeout_s", [0.0, -5.0, 0.5, 3_601.0, float("nan")])
def test_a_timeout_that_would_churn_or_never_act_is_refused(timeout_s: float) -> None:
    with pytest.raises(ValueError, match="the group join timeout must be between 1 and 3600 seconds"):
        JoinWatch(timeout_s)
