"""When a consumer is taken for stalled (`kafka_client.StallWatch`), on a clock the test moves by hand.

kafka-python 3.0 can stop fetching a partition after its leader moves, and return nothing from every poll without an
error; the projection runner and the consumer SDK replace such a consumer. The watch must catch that case within two
intervals, and never take a caught-up consumer, or one that is reading, for stalled.
"""

from __future__ import annotations

import pytest

from ledger.publishing.kafka_client import KafkaError, StallWatch

INTERVAL_S = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Ends:
    """The readable end offsets the watch asks for, and how many times it asked."""

    def __init__(self, ends: dict[int, int]) -> None:
        self.ends, self.asked, self.failing = ends, 0, False

    def __call__(self) -> dict[int, int]:
        self.asked += 1
        if self.failing:
            raise KafkaError("the cluster is away")
        return dict(self.ends)


def watch(ends: Ends) -> tuple[StallWatch, Clock]:
    clock = Clock()
    return StallWatch(ends, INTERVAL_S, clock), clock


def test_positions_that_stand_still_below_readable_records_for_two_intervals_are_stalled() -> None:
    ends = Ends({0: 50, 1: 70})
    stall, clock = watch(ends)
    positions = {0: 50, 1: 40}
    assert stall.stalled(positions) == []  # the first look only notes the positions
    clock.now += INTERVAL_S - 0.1
    assert stall.stalled(positions) == [] and ends.asked == 0  # not yet an interval: nothing asked
    clock.now += 0.2
    assert stall.stalled(positions) == [] and ends.asked == 1  # an interval: the ends are asked, no verdict yet
    clock.now += INTERVAL_S / 2
    assert stall.stalled(positions) == []  # half of the second interval: the consumer still has time
    clock.now += INTERVAL_S
    assert stall.stalled(positions) == [1]  # partition 1 had 30 readable records for a whole interval


def test_a_caught_up_consumer_is_never_stalled_and_asks_once_per_interval() -> None:
    ends = Ends({0: 50, 1: 70})
    stall, clock = watch(ends)
    positions = {0: 50, 1: 70}
    for _ in range(40):
        assert stall.stalled(positions) == []
        clock.now += INTERVAL_S / 4
    assert 8 <= ends.asked <= 10  # 100 s at one question per 10 s, not one per poll


def test_records_that_arrive_after_the_ends_were_asked_get_a_whole_interval() -> None:
    ends = Ends({0: 50})
    stall, clock = watch(ends)
    assert stall.stalled({0: 50}) == []
    clock.now += INTERVAL_S
    assert stall.stalled({0: 50}) == [] and ends.asked == 1  # caught up at that moment
    ends.ends = {0: 90}  # records arrive just now
    clock.now += INTERVAL_S
    assert stall.stalled({0: 50}) == []  # behind only the new ends, which were not owed yet: asked again
    assert ends.asked == 2
    clock.now += INTERVAL_S
    assert stall.stalled({0: 50}) == [0]  # a whole interval later, still nothing fetched


def test_a_consumer_that_moves_is_not_stalled_however_far_behind() -> None:
    ends = Ends({0: 1_000_000})
    stall, clock = watch(ends)
    for offset in range(0, 100_000, 1_000):
        assert stall.stalled({0: offset}) == []
        clock.now += INTERVAL_S * 3  # slow, but moving
    assert ends.asked == 0


def test_no_verdict_while_the_ends_cannot_be_read_and_reset_starts_over() -> None:
    ends = Ends({0: 50})
    ends.failing = True
    stall, clock = watch(ends)
    positions = {0: 10}
    for _ in range(6):
        assert stall.stalled(positions) == []  # the cluster does not answer: nothing to compare with
        clock.now += INTERVAL_S
    ends.failing = False
    assert stall.stalled(positions) == []  # asked, and owed 50
    stall.reset()  # a new consumer was opened
    clock.now += INTERVAL_S
    assert stall.stalled(positions) == []  # the new consumer's first look
    clock.now += INTERVAL_S
    assert stall.stalled(positions) == []  # an interval: asked again
    clock.now += INTERVAL_S
    assert stall.stalled(positions) == [0]


@pytest.mark.parametrize("interval_s", [0.0, -5.0, 0.5, 3_601.0, float("nan")])
def test_an_interval_that_would_churn_or_never_act_is_refused(interval_s: float) -> None:
    with pytest.raises(ValueError, match="the stall interval must be between 1 and 3600 seconds"):
        StallWatch(Ends({}), interval_s)
