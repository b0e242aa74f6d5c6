"""The Merkle tree (ledger/tlog/merkle.py) against RFC 6962's published test vectors and against RFC 9162 itself.

The vectors are the ones Certificate Transparency's implementations share, as transparency-dev/merkle publishes them
(commit 417fb0c314750d94e53942e9f92e79b6d35915db, Apache License 2.0):
- rfc6962/rfc6962_test.go: the hashes of the empty tree, an empty leaf, a leaf and a node;
- testonly/constants.go: eight leaf inputs, the root of every size 0..8, every perfect subtree's hash, and the
  compact range (our `Frontier`) of every size 0..8;
- testdata/inclusion/ and testdata/consistency/: the proofs `proof/verify_test.go` checks, valid ones and each one
  mutated (index, size, a proof hash, the roots, garbage before or after), copied unchanged into
  tests/unit/tlog_vectors/transparency_dev_merkle_probes.json.
Beside them, a reference written straight from RFC 9162's recursive definitions (MTH, PATH, SUBPROOF) checks the
efficient code for every size up to a few hundred, and Hypothesis checks that proofs verify and tampered ones do not.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import TlogInvalid
from ledger.tlog import merkle
from ledger.tlog.merkle import (
    EMPTY_ROOT,
    Frontier,
    Tree,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).parent / "tlog_vectors" / "transparency_dev_merkle_probes.json"

# testonly/constants.go, LeafInputs()
LEAF_INPUTS = [bytes.fromhex(h) for h in
               ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]]
# testonly/constants.go, RootHashes(): the root of the first n leaves, n = 0..8
ROOTS = [bytes.fromhex(h) for h in [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]]
# testonly/constants.go, NodeHashes(): [level][index] for every perfect subtree of the eight leaves
NODE_HASHES = [[bytes.fromhex(h) for h in level] for level in [
    ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
     "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
     "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
     "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
     "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
     "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
     "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
     "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"],
    ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
     "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
     "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
     "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"],
    ["d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
     "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]]
# testonly/constants.go, CompactTrees(): the compact range of the first n leaves, as (level, index) of NodeHashes()
COMPACT_RANGES = [[], [(0, 0)], [(1, 0)], [(1, 0), (0, 2)], [(2, 0)], [(2, 0), (0, 4)], [(2, 0), (1, 2)],
                  [(2, 0), (1, 2), (0, 6)], [(3, 0)]]

# Where we knowingly differ from the Go verifier the probes were written for: it compares the roots of two trees
# of equal size without looking at their length; we refuse any "hash" that is not 32 bytes (these roots are 12).
STRICTER_THAN_GO = {"testdata/consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"}


def _probes(kind: str) -> list[dict]:
    return json.loads(VECTORS.read_text())[kind]


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


# --- A reference written straight from RFC 9162 section 2.1, slow and obviously right. -------------------------

def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = _k(n)
    return hashlib.sha256(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:])).digest()


def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: list[bytes], b: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if b else [ref_mth(leaves)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, leaves[:k], b), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


def leaves_of(n: int) -> list[bytes]:
    return [i.to_bytes(4, "big") * (i % 3) for i in range(n)]


# --- The published vectors. ----------------------------------------------------------------------------------------

def test_the_hashes_of_rfc6962_testpy_empty_tree_empty_leaf_leaf_and_node():
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert leaf_hash(b"L123456").hex() == "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    assert node_hash(b"N123", b"N456").hex() == "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"


def test_the_root_of_every_size_from_0_to_8_is_the_published_one():
    hashes = [leaf_hash(leaf) for leaf in LEAF_INPUTS]
    tree = Tree.of(hashes)
    for size, expected in enumerate(ROOTS):
        assert tree.root(size) == expected, size
        assert merkle.root_hash(hashes[:size]) == expected, size
        assert ref_mth(LEAF_INPUTS[:size]) == expected, size


def test_every_perfect_subtree_and_the_frontier_of_every_size_are_the_published_ones():
    hashes = [leaf_hash(leaf) for leaf in LEAF_INPUTS]
    assert hashes == NODE_HASHES[0]
    tree = Tree.of(hashes)
    for level, nodes in enumerate(NODE_HASHES):
        for index, expected in enumerate(nodes):
            assert tree._hash(index << level, (index + 1) << level) == expected
    frontier = Frontier()
    for size, expected in enumerate(COMPACT_RANGES):
        assert frontier.size == size
        assert list(frontier.hashes) == [NODE_HASHES[level][index] for level, index in expected], size
        assert frontier.root() == ROOTS[size]
        if size < len(hashes):
            frontier.append(hashes[size])


@pytest.mark.parametrize("probe", _probes("inclusion"), ids=lambda p: p["file"].removeprefix("testdata/"))
def test_each_published_inclusion_probe_verifies_exactly_when_it_should(probe):
    verified = verify_inclusion(_b64(probe["leafHash"]), probe["leafIdx"], probe["treeSize"],
                                [_b64(p) for p in probe["proof"] or []], _b64(probe["root"]))
    assert verified is not probe["wantErr"], probe["desc"]


@pytest.mark.parametrize("probe", _probes("consistency"), ids=lambda p: p["file"].removeprefix("testdata/"))
def test_each_published_consistency_probe_verifies_exactly_when_it_should(probe):
    verified = verify_consistency(probe["size1"], probe["size2"], _b64(probe["root1"]), _b64(probe["root2"]),
                                  [_b64(p) for p in probe["proof"] or []])
    if probe["file"] in STRICTER_THAN_GO:
        assert not verified
    else:
        assert verified is not probe["wantErr"], probe["desc"]


def test_the_published_valid_proofs_are_the_ones_the_tree_generates():
    tree = Tree.of(leaf_hash(leaf) for leaf in LEAF_INPUTS)
    happy = [p for p in _probes("inclusion") if p["desc"] == "happy path"]
    assert len(happy) == 5
    for probe in happy:
        assert tree.root(probe["treeSize"]) == _b64(probe["root"])
        assert tree.leaf_hash(probe["leafIdx"]) == _b64(probe["leafHash"])
        assert tree.inclusion_proof(probe["leafIdx"], probe["treeSize"]) == [_b64(p) for p in probe["proof"] or []]
    happy = [p for p in _probes("consistency") if p["desc"] == "happy path"]
    assert len(happy) == 5
    for probe in happy:
        assert tree.root(probe["size1"]) == _b64(probe["root1"])
        assert tree.consistency_proof(probe["size1"], probe["size2"]) == [_b64(p) for p in probe["proof"] or []]


# --- RFC 9162's definitions, for many sizes. ---------------------------------------------------------------------

def test_the_frontier_root_equals_the_recursive_root_for_every_size_up_to_300():
    leaves = leaves_of(300)
    frontier = Frontier()
    for size in range(301):
        assert frontier.root() == ref_mth(leaves[:size]), size
        assert len(frontier.hashes) == size.bit_count()
        if size < len(leaves):
            frontier.append(leaf_hash(leaves[size]))


def test_every_proof_the_tree_generates_is_the_one_rfc_9162_defines_and_verifies():
    leaves = leaves_of(40)
    tree = Tree.of(leaf_hash(leaf) for leaf in leaves)
    for size in range(1, len(leaves) + 1):
        root = ref_mth(leaves[:size])
        assert tree.root(size) == root
        for index in range(size):
            proof = tree.inclusion_proof(index, size)
            assert proof == ref_path(index, leaves[:size]), (index, size)
            assert verify_inclusion(leaf_hash(leaves[index]), index, size, proof, root)
        for old in range(1, size + 1):
            proof = tree.consistency_proof(old, size)
            assert proof == ref_subproof(old, leaves[:size], True), (old, size)
            assert verify_consistency(old, size, ref_mth(leaves[:old]), root, proof)


def test_the_module_functions_build_a_tree_for_one_proof():
    hashes = [leaf_hash(leaf) for leaf in LEAF_INPUTS]
    assert merkle.inclusion_proof(hashes, 5, 8) == Tree.of(hashes).inclusion_proof(5, 8)
    assert merkle.consistency_proof(hashes, 6, 8) == Tree.of(hashes).consistency_proof(6, 8)


def test_a_tree_refuses_to_prove_what_it_does_not_hold():
    tree = Tree.of(leaf_hash(leaf) for leaf in LEAF_INPUTS)
    for index, size in [(0, 0), (8, 8), (0, 9), (-1, 4), (4, 4)]:
        with pytest.raises(ValueError, match="no such proof"):
            tree.inclusion_proof(index, size)
    for old, new in [(0, 4), (5, 4), (1, 9), (-1, 2)]:
        with pytest.raises(ValueError, match="no such proof"):
            tree.consistency_proof(old, new)
    with pytest.raises(ValueError, match="no such proof"):
        tree.root(9)
    assert Tree(b"").root() == EMPTY_ROOT


# --- Properties: every proof verifies; a changed byte or index never does. --------------------------------------

def _flip(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1:]


@st.composite
def _trees(draw: st.DrawFn, size_min: int = 1) -> tuple[list[bytes], Tree]:
    size = draw(st.integers(min_value=size_min, max_value=200))
    seed = draw(st.binary(min_size=1, max_size=8))
    hashes = [hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(size)]
    return hashes, Tree.of(hashes)


@settings(max_examples=200, deadline=None)
@given(tree=_trees(), data=st.data())
def test_an_inclusion_proof_verifies_and_one_changed_byte_or_index_fails(tree, data):
    hashes, built = tree
    size = data.draw(st.integers(min_value=1, max_value=len(hashes)))
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    root, proof = built.root(size), built.inclusion_proof(index, size)
    assert verify_inclusion(hashes[index], index, size, proof, root)

    position = data.draw(st.integers(min_value=0, max_value=31))
    assert not verify_inclusion(_flip(hashes[index], position), index, size, proof, root)
    assert not verify_inclusion(hashes[index], index, size, proof, _flip(root, position))
    if proof:
        which = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        changed = [*proof[:which], _flip(proof[which], position), *proof[which + 1:]]
        assert not verify_inclusion(hashes[index], index, size, changed, root)
        assert not verify_inclusion(hashes[index], index, size, proof[:-1], root)
    assert not verify_inclusion(hashes[index], index, size, [*proof, root], root)
    if size > 1:
        other = data.draw(st.integers(min_value=0, max_value=size - 1).filter(lambda i: i != index))
        assert not verify_inclusion(hashes[index], other, size, proof, root)
    assert not verify_inclusion(hashes[index], size, size, proof, root)


@settings(max_examples=200, deadline=None)
@given(tree=_trees(), data=st.data())
def test_a_consistency_proof_verifies_and_one_changed_byte_fails(tree, data):
    hashes, built = tree
    new = data.draw(st.integers(min_value=1, max_value=len(hashes)))
    old = data.draw(st.integers(min_value=1, max_value=new))
    old_root, new_root, proof = built.root(old), built.root(new), built.consistency_proof(old, new)
    assert verify_consistency(old, new, old_root, new_root, proof)

    position = data.draw(st.integers(min_value=0, max_value=31))
    assert not verify_consistency(old, new, _flip(old_root, position), new_root, proof)
    assert not verify_consistency(old, new, old_root, _flip(new_root, position), proof)
    if proof:
        which = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        changed = [*proof[:which], _flip(proof[which], position), *proof[which + 1:]]
        assert not verify_consistency(old, new, old_root, new_root, changed)
        assert not verify_consistency(old, new, old_root, new_root, proof[:-1])
    assert not verify_consistency(old, new, old_root, new_root, [*proof, new_root])
    if old < new:
        # History rewritten before the old size (leaf `old - 1` changed): the new tree does not extend the old one.
        forged = Tree.of([*hashes[:old - 1], _flip(hashes[old - 1], position), *hashes[old:]])
        assert not verify_consistency(old, new, forged.root(old), new_root, proof)
        assert not verify_consistency(old, new, old_root, forged.root(new), forged.consistency_proof(old, new))


def test_verification_answers_false_on_malformed_input_and_never_raises():
    good = leaf_hash(b"x")
    assert not verify_inclusion(good[:31], 0, 1, [], good[:31])
    assert not verify_inclusion(good, 0, 1, [], good + b"\x00")
    assert not verify_inclusion(good, -1, 1, [], good)
    assert not verify_inclusion(good, 0, 2**64, [], good)
    assert not verify_inclusion(good, 0, 2, [b""], good)
    assert not verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(0, 1, EMPTY_ROOT, good, [])
    assert not verify_consistency(2, 1, good, good, [])
    assert verify_consistency(1, 1, good, good, [])
    assert not verify_consistency(1, 1, good, good, [good])
    assert not verify_consistency(1, 2, good, good, [b"short"])


# --- The frontier's stored forms. ------------------------------------------------------------------------------------

def test_a_frontier_round_trips_through_bytes_and_json_and_keeps_extending():
    hashes = [leaf_hash(bytes([i])) for i in range(77)]
    frontier = Frontier()
    frontier.extend(hashes[:50])
    assert len(frontier.to_bytes()) == 8 + 32 * (50).bit_count()
    for restored in (Frontier.from_bytes(frontier.to_bytes()),
                     Frontier.from_dict(json.loads(json.dumps(frontier.to_dict())))):
        assert restored.size == 50
        assert restored.hashes == frontier.hashes
        restored.extend(hashes[50:])
        assert restored.root() == merkle.root_hash(hashes)
    empty = Frontier.from_bytes(Frontier().to_bytes())
    assert (empty.size, empty.root()) == (0, EMPTY_ROOT)
    copied = frontier.copy()
    copied.append(hashes[50])
    assert (frontier.size, copied.size) == (50, 51)


def test_a_stored_frontier_of_the_wrong_shape_is_refused():
    frontier = Frontier()
    frontier.extend(leaf_hash(bytes([i])) for i in range(6))
    stored = frontier.to_bytes()
    for bad in [stored[:-1], stored + b"\x00", stored[:7], (7).to_bytes(8, "big") + stored[8:]]:
        with pytest.raises(TlogInvalid):
            Frontier.from_bytes(bad)
    good = frontier.to_dict()
    hashes = good["hashes"]
    assert isinstance(hashes, list)
    non_canonical = _with_padding_bits_set(hashes[1])
    assert base64.b64decode(non_canonical) == base64.b64decode(hashes[1])
    for bad in [[], {"size": 6}, {**good, "size": 7}, {**good, "size": -1}, {**good, "size": True},
                {**good, "hashes": hashes[:1]}, {**good, "hashes": [hashes[0], hashes[1][:-4]]},
                {**good, "hashes": [hashes[0], "!" + hashes[1][1:]]}, {**good, "extra": 1},
                {**good, "hashes": [hashes[0], non_canonical]}]:
        with pytest.raises(TlogInvalid):
            Frontier.from_dict(bad)


def _with_padding_bits_set(text: str) -> str:
    """The same bytes in a non-canonical spelling: a 32-byte value's last base64 digit carries 2 unused bits."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    assert text.endswith("=") and not text.endswith("==")
    return text[:-2] + alphabet[alphabet.index(text[-2]) | 1] + "="
