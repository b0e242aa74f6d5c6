"""The SDK's idle exit means caught up (`consumers.sdk.partitions_behind`): a member judges its own partitions by its
positions and every other partition by the offset the group committed for it."""

from __future__ import annotations

from consumers.sdk import partitions_behind

ENDS = {0: 120, 1: 80, 2: 0, 3: 45}


def test_caught_up_when_own_positions_and_the_groups_commits_reach_the_ends() -> None:
    assert partitions_behind(ENDS, {0: 120, 1: 81}, {2: None, 3: 45}) == []


def test_a_partition_nobody_has_committed_is_behind_unless_it_is_empty() -> None:
    # Partition 3 belongs to another member, or to a member that died before it committed anything.
    assert partitions_behind(ENDS, {0: 120, 1: 80}, {2: None, 3: None}) == [3]


def test_own_partitions_count_by_position_not_by_what_the_group_committed() -> None:
    assert partitions_behind(ENDS, {0: 119, 1: 80, 2: 0, 3: 45}, {}) == [0]


def test_another_members_partition_short_of_its_end_is_behind() -> None:
    assert partitions_behind(ENDS, {0: 120}, {1: 79, 2: 0, 3: 45}) == [1]


def test_a_member_with_no_partitions_waits_for_the_whole_group() -> None:
    assert partitions_behind(ENDS, {}, {0: 120, 1: 80, 2: None, 3: 44}) == [3]
