"""`ledger audit verify --key`'s pure parts: the leaf hashes kept by position, and the roots at checkpoint sizes."""

from __future__ import annotations

import hashlib

from ledger.audit import verify
from ledger.audit.verify import LeafHashes, roots_at
from ledger.tlog import merkle

VALUES = [f'{{"event":{i}}}'.encode() for i in range(1, 301)]


def test_leaf_hashes_by_position_give_rfc_9162_roots_at_every_size_in_any_read_order() -> None:
    leaves = LeafHashes(100)  # fewer than the positions read: it grows for events published while reading
    for position in [*range(2, 301, 2), *range(1, 301, 2)]:  # two partitions, read one after the other
        leaves.add(position, VALUES[position - 1], f"e{position}")
    assert leaves.size == 300 and leaves.leaf(7) == hashlib.sha256(b"\0" + VALUES[6]).digest()
    sizes = [1, 2, 3, 7, 8, 100, 255, 256, 257, 300]
    roots = roots_at(leaves, sizes, 300)
    tree = merkle.Tree.of(merkle.leaf_hash(value) for value in VALUES)
    assert roots == {size: tree.root(size) for size in sizes}
    assert set(roots_at(leaves, [299, 300, 301], 300)) == {299, 300}


def test_a_position_read_twice_or_never_matches_no_root_and_a_forged_far_position_is_not_stored() -> None:
    tree = merkle.Tree.of(merkle.leaf_hash(value) for value in VALUES[:10])
    twice = LeafHashes(10)
    for position in [*range(1, 11), 4]:
        twice.add(position, VALUES[position - 1], f"e{position}")
    roots = roots_at(twice, [3, 4, 10], 10)
    assert roots[3] == tree.root(3) and roots[4] != tree.root(4) and roots[10] != tree.root(10)
    missing = LeafHashes(10)
    for position in [1, 2, 3, 5]:
        missing.add(position, VALUES[position - 1], f"e{position}")
    assert roots_at(missing, [5], 5)[5] != tree.root(5)
    far = LeafHashes(10)
    far.add(10 + verify.LIVE_POSITIONS_MAX + 1, b"forged", "forged")
    assert far.size == 0 and len(far.hashes) == 10 * merkle.HASH_SIZE


def test_the_ids_of_events_after_the_last_checkpoint_are_kept_to_name_an_unsigned_tail() -> None:
    leaves = LeafHashes(10, tail_after=8)
    for position in range(1, 11):
        leaves.add(position, VALUES[position - 1], f"e{position}")
    assert leaves.tail_ids == {9: "e9", 10: "e10"}
