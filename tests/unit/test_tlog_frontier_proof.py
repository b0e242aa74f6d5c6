"""The consistency proof the relay makes from its frontier and a batch (`merkle.consistency_proof_extending`).

The relay holds the previous tree's `Frontier` and the leaf hashes it appends, never the history. These tests check
that this is enough: the proof is, hash for hash, the one a `Tree` over every leaf gives (itself checked against RFC
9162's definitions in test_tlog_merkle.py), it verifies, and it costs no more hashes than the batch has leaves.
"""

from __future__ import annotations

import hashlib
import itertools
import random

import pytest

from ledger.tlog import merkle
from ledger.tlog.merkle import (
    TREE_SIZE_MAX,
    Frontier,
    Tree,
    consistency_proof_extending,
    verify_consistency,
)

SMALL_SIZE_MAX = 70  # every pair of sizes up to this is checked
LARGE_SIZE_MAX = 5_000  # a relay's transaction appends up to this many events
LARGE_PAIRS = 40
SEED = 9162


def hashes_of(n: int) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(n)]


def frontier_of(hashes: list[bytes]) -> Frontier:
    frontier = Frontier()
    frontier.extend(hashes)
    return frontier


def test_every_pair_of_sizes_up_to_70_gives_the_trees_proof_and_it_verifies():
    hashes = hashes_of(SMALL_SIZE_MAX)
    tree = Tree.of(hashes)
    frontier = Frontier()
    for old in range(1, SMALL_SIZE_MAX + 1):
        frontier.append(hashes[old - 1])
        restored = Frontier.from_bytes(frontier.to_bytes())
        for new in range(old, SMALL_SIZE_MAX + 1):
            proof = consistency_proof_extending(frontier, hashes[old:new])
            assert proof == tree.consistency_proof(old, new), (old, new)
            assert consistency_proof_extending(restored, hashes[old:new]) == proof, (old, new)
            assert verify_consistency(old, new, tree.root(old), tree.root(new), proof), (old, new)


def test_random_large_sizes_give_the_trees_proof_and_it_verifies():
    rng = random.Random(SEED)
    hashes = hashes_of(2 * LARGE_SIZE_MAX)
    tree = Tree.of(hashes)
    for _ in range(LARGE_PAIRS):
        old = rng.randint(1, LARGE_SIZE_MAX)
        new = old + rng.randint(0, LARGE_SIZE_MAX)
        frontier = Frontier.from_bytes(frontier_of(hashes[:old]).to_bytes())
        proof = consistency_proof_extending(frontier, hashes[old:new])
        assert proof == tree.consistency_proof(old, new), (old, new)
        assert verify_consistency(old, new, tree.root(old), tree.root(new), proof), (old, new)


def test_a_relay_appending_batch_after_batch_proves_each_checkpoint_from_the_last():
    rng = random.Random(SEED)
    hashes = hashes_of(3 * LARGE_SIZE_MAX)
    frontier, position = Frontier(), 0
    while position < len(hashes):
        batch = hashes[position:position + rng.randint(1, LARGE_SIZE_MAX)]
        old_size, old_root = frontier.size, frontier.root()
        proof = consistency_proof_extending(frontier, batch)
        frontier.extend(batch)
        position += len(batch)
        if old_size == 0:
            assert proof == []
        else:
            assert verify_consistency(old_size, frontier.size, old_root, frontier.root(), proof)
    assert frontier.root() == merkle.root_hash(hashes)


def test_the_proofs_old_hashes_are_frontier_nodes_and_its_new_ones_cover_new_leaves_only():
    # The fact the function rests on, checked on the loop itself: every range PROOF(m, D[0:n]) asks for is either a
    # node of the frontier of m leaves or lies wholly at or after m, and its hash is the tree hash of that slice.
    hashes = hashes_of(SMALL_SIZE_MAX)
    for old in range(1, SMALL_SIZE_MAX + 1):
        frontier = frontier_of(hashes[:old])
        nodes = merkle._frontier_ranges(frontier)
        assert list(nodes.values()) == list(frontier.hashes)
        assert all(merkle.root_hash(hashes[low:high]) == node for (low, high), node in nodes.items())
        for new in range(old, SMALL_SIZE_MAX + 1):
            asked: list[tuple[int, int]] = []

            def record(low: int, high: int, asked: list[tuple[int, int]] = asked) -> bytes:
                asked.append((low, high))
                return merkle.root_hash(hashes[low:high])

            assert merkle._consistency_path(old, new, record) == Tree.of(hashes).consistency_proof(old, new)
            for low, high in asked:
                assert (low, high) in nodes or low >= old, (old, new, low, high)
            # The new-leaf ranges are disjoint, so each new leaf is hashed into the proof at most once.
            new_ranges = sorted(pair for pair in asked if pair[0] >= old)
            assert all(a[1] <= b[0] for a, b in itertools.pairwise(new_ranges)), (old, new)


def test_the_work_is_at_most_one_hash_per_new_leaf_however_long_the_history(monkeypatch: pytest.MonkeyPatch):
    # A frontier of a tree of about 2^40 leaves (its hashes made up: no proof is checked here), then a full batch.
    old_size = 2**40 + 2**39 + 12_345
    stored = old_size.to_bytes(8, "big") + b"".join(hashes_of(old_size.bit_count()))
    frontier = Frontier.from_bytes(stored)
    batch = hashes_of(LARGE_SIZE_MAX)
    real_sha256, calls = hashlib.sha256, [0]

    def counting_sha256(*args: bytes) -> object:
        calls[0] += 1
        return real_sha256(*args)

    monkeypatch.setattr(hashlib, "sha256", counting_sha256)
    proof = consistency_proof_extending(frontier, batch)
    monkeypatch.undo()
    assert 0 < calls[0] <= len(batch)
    assert len(proof) <= 2 * 64


def test_an_empty_old_tree_or_an_empty_batch_needs_no_proof():
    hashes = hashes_of(10)
    assert consistency_proof_extending(Frontier(), hashes) == []
    assert consistency_proof_extending(frontier_of(hashes), []) == []
    assert consistency_proof_extending(Frontier(), []) == []


def test_a_batch_past_the_largest_tree_size_or_a_malformed_leaf_hash_is_refused():
    full = Frontier.from_bytes(TREE_SIZE_MAX.to_bytes(8, "big") + b"".join(hashes_of(64)))
    with pytest.raises(ValueError, match="no such proof"):
        consistency_proof_extending(full, hashes_of(1))
    with pytest.raises(AssertionError):
        consistency_proof_extending(frontier_of(hashes_of(3)), [b"short"])
