"""The Merkle tree of RFC 6962 section 2.1, as RFC 9162 section 2.1 restates it, over SHA-256.

The leaves are byte strings (here: each event's canonical bytes, in position order). The tree hash of n leaves is
  MTH({})    = SHA-256()                                        the empty tree,
  MTH({d})   = leaf_hash(d) = SHA-256(0x00 || d)                one leaf,
  MTH(D[n])  = node_hash(MTH(D[0:k]), MTH(D[k:n]))              more, where k is the largest power of two below n,
with node_hash(left, right) = SHA-256(0x01 || left || right). The two prefixes keep a leaf from passing for a node.

Three ways to compute with it, one for each kind of reader:
- `Frontier` is what the relay keeps: the roots of the perfect subtrees that cover leaves 0..n-1, left to right (one
  per set bit of n, so at most 64). Appending a leaf costs O(log n) hashes at worst and two on average, the root at
  most 63, and it is small enough to store beside the relay's position, so that a restart does not rehash history.
  With the leaf hashes of the batch it appends, it is also all the relay needs to prove the new tree consistent with
  the previous one (`consistency_proof_extending`).
- `Tree` is what a prover keeps: the hash of every perfect subtree, level by level, built once in O(n) from the leaf
  hashes and stored as one contiguous bytes object per level (3.4 million leaves: 109 MB at the bottom, as much again
  above it). Any root, inclusion proof or consistency proof for any size up to n then costs O(log n) hashes.
- `verify_inclusion` and `verify_consistency` are what anyone checking a proof runs: the algorithms of RFC 9162
  sections 2.1.3.2 and 2.1.4.2, step by step as numbered there. Their input is untrusted: they answer False, never
  raise, and every hash they are given must be 32 bytes.

Generating a proof for arguments out of range is the caller's mistake (the command line checks sizes it is given
before asking) and raises ValueError.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Iterable, Sequence

from ledger.errors import TlogInvalid

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
# A tree size is a uint64 in RFC 9162 (and in every checkpoint reader we know of): a frontier holds at most 64 hashes.
TREE_SIZE_MAX = 2**64 - 1
FRONTIER_SIZE_BYTES = 8  # the stored frontier's size field: a uint64, big-endian

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """The hash of one leaf: SHA-256(0x00 || data) (RFC 9162 section 2.1.1)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: SHA-256(0x01 || left || right) (RFC 9162 section 2.1.1)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split(width: int) -> int:
    """k in RFC 9162's recursion: the largest power of two smaller than `width` (which is 2 or more)."""
    return 1 << ((width - 1).bit_length() - 1)


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= TREE_SIZE_MAX


def root_hash(leaf_hashes: Iterable[bytes]) -> bytes:
    """MTH over the leaves whose hashes are given, in order, in one pass and O(log n) memory."""
    frontier = Frontier()
    frontier.extend(leaf_hashes)
    return frontier.root()


def inclusion_proof(leaf_hashes: Iterable[bytes], index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]) over the given leaf hashes. Builds a `Tree`: keep one to prove more than once."""
    return Tree.of(leaf_hashes).inclusion_proof(index, size)


def consistency_proof(leaf_hashes: Iterable[bytes], old_size: int, new_size: int) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]) over the given leaf hashes. Builds a `Tree`: keep one to prove more than once."""
    return Tree.of(leaf_hashes).consistency_proof(old_size, new_size)


def consistency_proof_extending(old: Frontier, new_leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PROOF(old.size, D[0:old.size + len(new_leaf_hashes)]): what the relay publishes beside the checkpoint of the
    batch it appends, from the frontier it keeps of the previous tree and the batch's leaf hashes, never the history.

    The proof's hashes of old leaves are frontier nodes as they stand (`_consistency_path` says why); each of the
    others covers new leaves only, a different run of them each time, and is the tree hash of that run, so the work is
    at most len(new_leaf_hashes) hashes plus the O(log n) steps of the loop.

    Empty when the old tree is empty: RFC 9162 defines PROOF(m, D[n]) for 0 < m only, and every tree extends the
    empty one, so there is nothing to prove (`verify_consistency` refuses an old size of 0). Empty also when no leaf
    is added: a tree is consistent with itself."""
    assert all(_is_hash(one) for one in new_leaf_hashes), "a leaf hash is 32 bytes"
    old_size = old.size
    new_size = old_size + len(new_leaf_hashes)
    if new_size > TREE_SIZE_MAX:
        raise ValueError(f"no such proof: {old_size} + {len(new_leaf_hashes)} leaves exceed a tree's size")
    if not new_leaf_hashes or old_size == 0:
        return []
    old_nodes = _frontier_ranges(old)

    def hash_of_range(low: int, high: int) -> bytes:
        if high <= old_size:
            node = old_nodes.get((low, high))
            assert node is not None, f"[{low}, {high}) is no perfect subtree of the frontier of {old_size} leaves"
            return node
        assert low >= old_size, f"[{low}, {high}) straddles the old size {old_size}"
        # MTH of a run is the tree hash of that slice whatever its offset: a `Tree` over it hashes it once.
        return Tree(b"".join(new_leaf_hashes[low - old_size:high - old_size])).root()

    return _consistency_path(old_size, new_size, hash_of_range)


def _frontier_ranges(frontier: Frontier) -> dict[tuple[int, int], bytes]:
    """The frontier's hashes by the leaves [low, high) each covers: one per set bit of the size, largest first."""
    ranges: dict[tuple[int, int], bytes] = {}
    low = 0
    hashes = iter(frontier.hashes)
    for height in reversed(range(frontier.size.bit_length())):
        if frontier.size >> height & 1:
            ranges[(low, low + (1 << height))] = next(hashes)
            low += 1 << height
    return ranges


class Frontier:
    """The compact range [0, n) of a tree: the roots of its perfect subtrees, largest (leftmost) first.

    Leaf i's hash joins the frontier as the rightmost root; while the root to its left covers a subtree of the same
    height, the two merge into their parent. Those heights are the set bits of n, so the frontier after n leaves has
    exactly popcount(n) hashes, whatever order of appends led there: it is a function of the leaves alone.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        return tuple(self._hashes)

    def append(self, leaf_hash: bytes) -> None:
        """Adds the next leaf, given by its hash (`leaf_hash(data)`)."""
        assert _is_hash(leaf_hash), "a leaf hash is 32 bytes"
        assert self._size < TREE_SIZE_MAX, "the tree is full"
        merged, size = leaf_hash, self._size
        # Each trailing set bit of the old size is a subtree of the height the new one has reached: merge into it.
        while size & 1:
            merged = node_hash(self._hashes.pop(), merged)
            size >>= 1
        self._hashes.append(merged)
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        for one in leaf_hashes:
            self.append(one)

    def root(self) -> bytes:
        """MTH of the leaves so far: the subtree roots folded right to left, which is RFC 9162's split exactly (the
        largest power of two below n is the leftmost root's width, and so on down the remaining ones)."""
        if not self._hashes:
            return EMPTY_ROOT
        folded = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            folded = node_hash(left, folded)
        return folded

    def copy(self) -> Frontier:
        other = Frontier()
        other._size, other._hashes = self._size, list(self._hashes)
        return other

    def __repr__(self) -> str:
        return f"Frontier(size={self._size}, root={self.root().hex()})"

    # Two stored forms. Bytes: the size as 8 bytes big-endian, then the hashes left to right (8 + 32 x popcount(size)
    # bytes). A dict for a JSON record: {"size": n, "hashes": [standard base64 of each hash, left to right]}.
    # Reading either checks the shape (the number of hashes follows from the size), so a truncated or altered record
    # is refused rather than extended; whether its root is the right one is the caller's check (against a checkpoint).

    def to_bytes(self) -> bytes:
        return self._size.to_bytes(FRONTIER_SIZE_BYTES, "big") + b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, data: bytes) -> Frontier:
        if len(data) < FRONTIER_SIZE_BYTES:
            raise TlogInvalid(f"a stored frontier is at least {FRONTIER_SIZE_BYTES} bytes, not {len(data)}")
        size = int.from_bytes(data[:FRONTIER_SIZE_BYTES], "big")
        body = data[FRONTIER_SIZE_BYTES:]
        expected = size.bit_count() * HASH_SIZE
        if len(body) != expected:
            raise TlogInvalid(f"a frontier of {size} leaves holds {expected} bytes of hashes, not {len(body)}")
        return cls._of(size, [bytes(body[i:i + HASH_SIZE]) for i in range(0, expected, HASH_SIZE)])

    def to_dict(self) -> dict[str, object]:
        return {"size": self._size, "hashes": [base64.b64encode(one).decode("ascii") for one in self._hashes]}

    @classmethod
    def from_dict(cls, data: object) -> Frontier:
        if not isinstance(data, dict) or set(data) != {"size", "hashes"}:
            raise TlogInvalid("a stored frontier is an object with exactly `size` and `hashes`")
        size, encoded = data["size"], data["hashes"]
        if not _is_size(size):
            raise TlogInvalid(f"a frontier's size is an integer from 0 to {TREE_SIZE_MAX}, not {size!r}")
        if not isinstance(encoded, list) or len(encoded) != size.bit_count():
            raise TlogInvalid(f"a frontier of {size} leaves holds a list of {size.bit_count()} hashes")
        hashes = []
        for text in encoded:
            one = _b64decode_hash(text)
            if one is None:
                raise TlogInvalid(f"a frontier's hash is the standard base64 of 32 bytes, not {text!r}")
            hashes.append(one)
        return cls._of(size, hashes)

    @classmethod
    def _of(cls, size: int, hashes: list[bytes]) -> Frontier:
        frontier = cls()
        frontier._size, frontier._hashes = size, hashes
        return frontier


def _b64decode_hash(text: object) -> bytes | None:
    """The 32 bytes that `text` is the standard base64 of, or None. Only the canonical spelling is taken (zero
    padding bits, as RFC 4648 section 3.5 allows a decoder to insist): one value, one stored form."""
    if not isinstance(text, str) or not text.isascii():
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != HASH_SIZE or base64.b64encode(raw).decode("ascii") != text:
        return None
    return raw


class Tree:
    """Every perfect subtree's hash over a fixed list of leaves, for proofs about any size up to the list's length.

    Level 0 holds the leaf hashes; level h holds the hash of each aligned run of 2^h leaves that fits, i.e. node j of
    level h covers leaves [j * 2^h, (j + 1) * 2^h). The hash of any other range RFC 9162's recursion asks for (a tree
    of a smaller size, the ragged right edge) is put together from O(log n) of those.
    """

    __slots__ = ("_levels",)

    def __init__(self, concatenated_leaf_hashes: bytes) -> None:
        """From the leaf hashes joined into one bytes object (32 bytes each, in order): what a reader that appends
        each event's leaf hash to a bytearray has. `Tree.of` takes them one by one."""
        assert len(concatenated_leaf_hashes) % HASH_SIZE == 0, "leaf hashes are 32 bytes each"
        level = bytes(concatenated_leaf_hashes)
        self._levels = [level]
        while len(level) >= 2 * HASH_SIZE:
            level = _parents(level)
            self._levels.append(level)

    @classmethod
    def of(cls, leaf_hashes: Iterable[bytes]) -> Tree:
        hashes = list(leaf_hashes)
        assert all(_is_hash(one) for one in hashes), "a leaf hash is 32 bytes"
        return cls(b"".join(hashes))

    @property
    def size(self) -> int:
        return len(self._levels[0]) // HASH_SIZE

    def leaf_hash(self, index: int) -> bytes:
        self._check_range(0 <= index < self.size, f"leaf {index} of {self.size}")
        return self._levels[0][index * HASH_SIZE:(index + 1) * HASH_SIZE]

    def root(self, size: int | None = None) -> bytes:
        """MTH(D[0:size]), the whole tree's by default."""
        size = self.size if size is None else size
        self._check_range(0 <= size <= self.size, f"a tree of {size} leaves")
        return self._hash(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]) of RFC 9162 section 2.1.3.1: the hashes from the leaf's sibling up to the root's
        child, the order `verify_inclusion` and the tlog-proof format take them in."""
        size = self.size if size is None else size
        self._check_range(0 <= index < size <= self.size, f"leaf {index} in a tree of {size} leaves")
        # PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])       if m < k
        #               = PATH(m - k, D[k:n]) : MTH(D[0:k])   if m >= k
        # Unrolled from the root down over the range [low, high) holding the leaf: each step adds the hash of the
        # half the leaf is not in, so the path comes out root first and is reversed at the end.
        path: list[bytes] = []
        low, high = 0, size
        while high - low > 1:
            middle = low + _split(high - low)
            if index < middle:
                path.append(self._hash(middle, high))
                high = middle
            else:
                path.append(self._hash(low, middle))
                low = middle
        path.reverse()
        return path

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """PROOF(old_size, D[0:new_size]) of RFC 9162 section 2.1.4.1, for 0 < old_size <= new_size (empty when
        they are equal: a tree is consistent with itself, and RFC 9162 defines the proof only below)."""
        new_size = self.size if new_size is None else new_size
        self._check_range(0 < old_size <= new_size <= self.size, f"from {old_size} to {new_size} leaves")
        return _consistency_path(old_size, new_size, self._hash)

    def _hash(self, low: int, high: int) -> bytes:
        """MTH(D[low:high])."""
        width = high - low
        if width == 0:
            return EMPTY_ROOT
        if width & (width - 1) == 0 and low % width == 0:
            height = width.bit_length() - 1
            start = (low >> height) * HASH_SIZE
            return self._levels[height][start:start + HASH_SIZE]
        middle = low + _split(width)
        return node_hash(self._hash(low, middle), self._hash(middle, high))

    @staticmethod
    def _check_range(holds: bool, what: str) -> None:
        if not holds:
            raise ValueError(f"no such proof in this tree: {what}")


def _consistency_path(old_size: int, new_size: int, hash_of_range: Callable[[int, int], bytes]) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]) for 0 < old_size <= new_size, given MTH(D[low:high]) as `hash_of_range`: the
    one loop behind `Tree.consistency_proof` (every range at hand) and `consistency_proof_extending` (the old tree's
    frontier and the new leaves only).

    Every range it asks for lies on one side of old_size: [middle, high) with old_size <= middle, or [low, middle)
    or the final [low, high) with high <= old_size. The latter are maximal perfect subtrees of the old tree (their
    parent in the recursion holds leaves on both sides of old_size), which is what a `Frontier` holds."""
    # SUBPROOF(m, D[m], true)  = {}
    # SUBPROOF(m, D[m], false) = {MTH(D[m])}
    # SUBPROOF(m, D[n], b)     = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])          if m <= k
    #                          = SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])  if m > k
    # Unrolled like PATH: [low, high) is the D[n] of the current step and m is old_size - low, so the recursion
    # ends (m == n) when high reaches old_size; b stays true until the old tree's range is split (m > k).
    path: list[bytes] = []
    low, high, whole_old_tree = 0, new_size, True
    while high != old_size:
        middle = low + _split(high - low)
        if old_size <= middle:
            path.append(hash_of_range(middle, high))
            high = middle
        else:
            path.append(hash_of_range(low, middle))
            low, whole_old_tree = middle, False
    if not whole_old_tree:
        path.append(hash_of_range(low, high))
    path.reverse()
    return path


def _parents(level: bytes) -> bytes:
    """The level above: the hash of each adjacent pair (an odd node out at the right has no parent here)."""
    sha256 = hashlib.sha256
    view = memoryview(level)
    pair = 2 * HASH_SIZE
    return b"".join([sha256(_NODE_PREFIX + view[i:i + pair]).digest()
                     for i in range(0, len(level) - pair + 1, pair)])


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Whether `proof` shows the leaf with hash `leaf_hash` at `index` in the tree of `size` leaves whose root is
    `root`: RFC 9162 section 2.1.3.2, with RFC's names (fn, sn, r, p) and its step numbers.

    It binds the leaf and its index to the root, not the size to the root: the size comes from the same signed
    checkpoint as the root, and the caller checks that signature."""
    if not (_is_hash(leaf_hash) and _is_hash(root) and all(_is_hash(p) for p in proof)):
        return False
    if not (_is_size(index) and _is_size(size)):
        return False
    # 1. If leaf_index is greater than or equal to tree_size, then fail the proof verification.
    if index >= size:
        return False
    # 2. Set fn to leaf_index and sn to tree_size - 1.
    fn, sn = index, size - 1
    # 3. Set r to hash.
    r = leaf_hash
    # 4. For each value p in the inclusion_path array:
    for p in proof:
        # a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0:
            return False
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            # i. Set r to HASH(0x01 || p || r).
            r = node_hash(p, r)
            # ii. If LSB(fn) is not set, then right-shift both fn and sn equally until either LSB(fn) is set or fn
            #     is 0.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        # Otherwise: i. Set r to HASH(0x01 || r || p).
        else:
            r = node_hash(r, p)
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 5. Compare sn to 0. Compare r against the root_hash. If sn is equal to 0 and r and the root_hash are equal,
    #    then the log has proven the inclusion of hash. Otherwise, fail the proof verification.
    return sn == 0 and r == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """Whether `proof` shows the tree of `old_size` leaves with root `old_root` to be a prefix of the tree of
    `new_size` leaves with root `new_root`: RFC 9162 section 2.1.4.2, with RFC's names and its step numbers.

    RFC 9162 defines the check for 0 < first < second only. Equal sizes are accepted with an empty proof and equal
    roots (a tree is consistent with itself), as Certificate Transparency's and Go's verifiers do. An old size of 0
    is refused, as theirs do too: the empty tree is a prefix of every tree, so such a proof would prove nothing, and a
    caller with no earlier checkpoint has no consistency to check."""
    if not (_is_hash(old_root) and _is_hash(new_root) and all(_is_hash(c) for c in proof)):
        return False
    if not (_is_size(old_size) and _is_size(new_size) and 0 < old_size <= new_size):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    return _rfc9162_consistency(old_size, new_size, old_root, new_root, proof)


def _rfc9162_consistency(first: int, second: int, first_hash: bytes, second_hash: bytes,
                         proof: Sequence[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2 for 0 < first < second, its steps numbered as there."""
    # 1. If consistency_path is an empty array, stop and fail the proof verification.
    if not proof:
        return False
    consistency_path = list(proof)
    # 2. If first is an exact power of 2, then prepend first_hash to the consistency_path array.
    if first & (first - 1) == 0:
        consistency_path.insert(0, first_hash)
    # 3. Set fn to first - 1 and sn to second - 1.
    fn, sn = first - 1, second - 1
    # 4. If LSB(fn) is set, then right-shift both fn and sn equally until LSB(fn) is not set.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. Set both fr and sr to the first value in the consistency_path array.
    fr = sr = consistency_path[0]
    # 6. For each subsequent value c in the consistency_path array:
    for c in consistency_path[1:]:
        # a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0:
            return False
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            # i. Set fr to HASH(0x01 || c || fr).  ii. Set sr to HASH(0x01 || c || sr).
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            # iii. If LSB(fn) is not set, then right-shift both fn and sn equally until either LSB(fn) is set or fn
            #      is 0.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        # Otherwise: i. Set sr to HASH(0x01 || sr || c).
        else:
            sr = node_hash(sr, c)
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 7. Verify that the fr calculated is equal to the first_hash supplied, that the sr calculated is equal to the
    #    second_hash supplied, and that sn is 0.
    return fr == first_hash and sr == second_hash and sn == 0
