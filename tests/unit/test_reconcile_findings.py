"""`ledger audit reconcile`'s verdict: the store's head, the relay's state and the topic's end agree, or each way they
disagree is named. Pure: the three sides are given as the readers return them."""

from __future__ import annotations

from ledger.audit.reconcile import TopicEnd, reconcile_findings
from ledger.publishing.relay import RelayState, StoreTally

HASH, OTHER_HASH = "a" * 64, "b" * 64
LAST = "4fb1508b-aadd-5371-a4fa-9245f9188a71.3"


def store(events: int = 10, last_notification_id: int = 14, events_up_to: int | None = None,
          at: tuple[str, str] = (LAST, HASH)) -> StoreTally:
    """A store of `events` publishable events whose event at position 10 is `at` (notification 13)."""
    return StoreTally(last_notification_id=last_notification_id, events=events,
                      events_up_to=events if events_up_to is None else events_up_to,
                      at_position={"event_id": at[0], "hash": at[1], "notification_id": 13})


def topic(position: int = 10, event_id: str = LAST, hash_: str = HASH) -> TopicEnd:
    return TopicEnd(position=position, event_id=event_id, hash=hash_, partition=2, offset=7)


def names(tally: StoreTally, state: RelayState | None, end: TopicEnd, problem: str | None = None) -> list[str]:
    return [mismatch.name for mismatch in reconcile_findings(tally, state, problem, end)]


def test_store_state_and_topic_that_agree_have_no_mismatch() -> None:
    assert names(store(), RelayState(notification_id=14, position=10), topic()) == []
    assert names(StoreTally(0, 0, 0, None), RelayState(), TopicEnd()) == []  # nothing written, nothing published


def test_unpublished_events_are_counted() -> None:
    found = reconcile_findings(store(events=13, events_up_to=10), RelayState(14, 10), None, topic())
    assert [m.name for m in found] == ["store_ahead_of_topic"]
    assert "3 event(s) not published" in found[0].message


def test_a_relay_state_beyond_the_store_is_named_with_both_numbers() -> None:
    found = reconcile_findings(store(), RelayState(notification_id=1_014, position=10), None, topic())
    assert [m.name for m in found] == ["relay_state_beyond_store"]
    assert "notification 1014" in found[0].message and "last notification is 14" in found[0].message


def test_a_topic_ahead_of_the_relay_state_and_of_the_store() -> None:
    assert names(store(), RelayState(14, 10), topic(position=11, event_id="x.1")) == \
        ["topic_ahead_of_store", "topic_ahead_of_relay_state"]


def test_a_relay_state_moved_back_or_forward_against_the_topic() -> None:
    assert names(store(events_up_to=8), RelayState(notification_id=11, position=8), topic()) == \
        ["topic_ahead_of_relay_state"]
    assert names(store(), RelayState(notification_id=14, position=12), topic()) == \
        ["relay_state_differs_from_store", "relay_state_ahead_of_topic"]


def test_a_last_record_that_is_not_the_stores_event_at_its_position() -> None:
    assert names(store(), RelayState(14, 10), topic(hash_=OTHER_HASH)) == ["topic_last_event_differs_from_store"]
    assert names(store(), RelayState(14, 10), topic(event_id="someone-else.1")) == \
        ["topic_last_event_differs_from_store"]


def test_unreadable_sides_are_named() -> None:
    assert names(store(), None, topic(), problem="not a relay state") == ["relay_state_unreadable"]
    end = topic()
    end.unreadable.append("partition 1, offset 4")
    assert names(store(), RelayState(14, 10), end) == ["topic_last_record_unreadable"]
