"""The C2SP transparency-log formats over signed notes: checkpoints, Ed25519 cosignatures and proof bundles.

A checkpoint (c2sp.org/tlog-checkpoint, "Note text") is a signed note whose text is the log's origin, the tree size
in decimal and the base64 root hash, one per line, then optional extension lines:

    bpjs.example/ledger
    8
    XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=

    — bpjs.example/ledger 1QzIfD/Ed5Sd7eygERH0jElORGldt6A0a9yyLJjiNzguOZsbIxAHFmI+3/OEjIm2zX3qT2241yuMPnamwFKGSx0xTQg=

A witness adds a cosignature (c2sp.org/tlog-cosignature, "Format" and "Ed25519 signed message"): one more signature
line, by a key of type 0x04, whose bytes are an 8-byte big-endian POSIX timestamp followed by an Ed25519 signature of
    cosignature/v1
    time <timestamp>
    <the checkpoint's whole text>
It states that, at that time, this was the largest tree consistent with everything the witness had seen of the log.

A proof bundle (c2sp.org/tlog-proof, "Format") ties one entry to a signed checkpoint:

    c2sp.org/tlog-proof@v1
    extra <base64 of opaque data, optional>
    index <the entry's index, from 0>
    <the inclusion proof, one base64 hash a line, from the leaf's sibling up>

    <the checkpoint, verbatim, with its signatures and cosignatures>

It is checked offline ("Verifying a tlog proof"): the leaf hash computed by the reader from the entry, the origin and
the log's signature against keys the reader already trusts, the cosignatures of the witnesses the reader counts on,
then the inclusion proof against the checkpoint's root (`verify_bundle`).

Where the specs leave room, the reading is strict (one spelling per value, so one changed byte cannot pass): the
tree size and the index are decimal without leading zeros and at most 2^64 - 1 (the size of RFC 9162's trees; the
specs give no bound); every base64 value is canonical; an `extra` line may hold empty data (the format does not
forbid it, and Go's transparency-dev/formats writes `extra ` for empty data); and the checkpoint at the end of a
bundle must itself be a well-formed checkpoint note. The origin is taken as any non-empty line (tlog-checkpoint
only recommends a schema-less URL without spaces or plus); the caller checks it is the origin it expects. The
cosignature's "verifiers MAY reject cosignatures with timestamps in the future" is left to the caller, who knows the
time: each verified cosignature is returned with its timestamp.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.errors import TlogInvalid
from ledger.tlog import merkle
from ledger.tlog.note import (
    ED25519_SIGNATURE_SIZE,
    SIGNATURE_TYPE_COSIGNATURE_V1,
    Ed25519Signer,
    Note,
    Signature,
    SignerKey,
    Verifier,
    VerifierKey,
    add_signatures,
    b64decode,
    b64encode,
    format_note,
    key_of_type,
    open_note,
    parse_note,
    text_problem,
)

CHECKPOINT_LINES_MIN = 3  # origin, size, root hash
TREE_SIZE_MAX = merkle.TREE_SIZE_MAX

COSIGNATURE_HEADER = "cosignature/v1"
TIMESTAMP_SIZE = 8
TIMESTAMP_MAX = 2**63 - 1  # tlog-cosignature: "It MUST NOT exceed 2^63 - 1"
COSIGNATURE_SIZE = TIMESTAMP_SIZE + ED25519_SIGNATURE_SIZE

PROOF_HEADER = "c2sp.org/tlog-proof@v1"
PROOF_EXTRA_PREFIX = "extra "
PROOF_INDEX_PREFIX = "index "
PROOF_HASHES_MAX = 64  # an inclusion proof in a tree of at most 2^64 - 1 leaves has at most 64 hashes


def _decimal(text: str) -> int | None:
    """The value of an ASCII decimal with no leading zeros (unless it is 0) up to 2^64 - 1, or None. Python's int()
    alone would also take signs, spaces, underscores and other scripts' digits."""
    if not text or not (text.isascii() and text.isdigit()) or (len(text) > 1 and text[0] == "0"):
        return None
    value = int(text)
    return value if value <= TREE_SIZE_MAX else None


# --- Checkpoints (c2sp.org/tlog-checkpoint). -----------------------------------------------------------------------

@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint's text: what the log signs ("Note text")."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def format(self) -> str:
        lines = [self.origin, str(self.size), b64encode(self.root_hash), *self.extensions]
        if not (0 <= self.size <= TREE_SIZE_MAX and len(self.root_hash) == merkle.HASH_SIZE):
            raise TlogInvalid(f"a checkpoint's size is 0 to {TREE_SIZE_MAX} and its root hash 32 bytes")
        if any(not line or "\n" in line for line in lines):
            raise TlogInvalid("a checkpoint's origin and extension lines are non-empty single lines")
        text = "\n".join(lines) + "\n"
        problem = text_problem(text)
        if problem is not None:
            raise TlogInvalid(problem)
        return text

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        problem = text_problem(text)
        if problem is not None:
            raise TlogInvalid(problem)
        lines = text[:-1].split("\n")
        if len(lines) < CHECKPOINT_LINES_MIN or any(not line for line in lines):
            raise TlogInvalid("a checkpoint is at least three non-empty lines: origin, tree size, root hash")
        origin, size_text, root_text, *extensions = lines
        size = _decimal(size_text)
        if size is None:
            raise TlogInvalid(f"a checkpoint's tree size is a decimal without leading zeros, not {size_text[:30]!r}")
        root_hash = b64decode(root_text)
        if root_hash is None or len(root_hash) != merkle.HASH_SIZE:
            raise TlogInvalid(f"a checkpoint's root hash is the base64 of 32 bytes, not {root_text[:60]!r}")
        return cls(origin, size, root_hash, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: Ed25519Signer) -> bytes:
    """The checkpoint as a note signed by the log."""
    text = checkpoint.format()
    return format_note(text, [signer.signature(text)])


@dataclass(frozen=True)
class Cosignature:
    """A witness's cosignature that verified: whose, and when it says it signed."""

    name: str
    key_id: int
    timestamp: int


@dataclass(frozen=True)
class OpenedCheckpoint:
    """A checkpoint whose log signature verified, with the cosignatures of given witnesses that verified."""

    checkpoint: Checkpoint
    note: Note
    cosignatures: tuple[Cosignature, ...]


def open_checkpoint(data: bytes, origin: str, log: Verifier, witnesses: Sequence[CosignatureVerifier] = (),
                    witnesses_required: int = 0) -> OpenedCheckpoint:
    """The checkpoint in `data`, refused unless the log's key signed it, its origin is `origin`, and at least
    `witnesses_required` of the given witnesses cosigned it. A signature by any given key that does not verify
    refuses the note (signed-note, "Signatures"); signatures by other keys are ignored."""
    if not 0 <= witnesses_required <= len(witnesses):
        raise ValueError(f"{witnesses_required} cosignatures required of {len(witnesses)} witnesses")
    note = open_note(data, [log, *witnesses])
    verified = {(one.name, one.key_id): one for one in note.verified}
    if (log.name, log.key_id) not in verified:
        raise TlogInvalid(f"the checkpoint is not signed by the log's key {log.name}+{log.key_id:08x}")
    checkpoint = Checkpoint.parse(note.text)
    if checkpoint.origin != origin:
        raise TlogInvalid(f"the checkpoint is of the log {checkpoint.origin!r}, not of {origin!r}")
    cosignatures = []
    for witness in witnesses:
        one = verified.get((witness.name, witness.key_id))
        if one is not None:
            cosignatures.append(Cosignature(one.name, one.key_id, _timestamp(one.signature)))
    if len(cosignatures) < witnesses_required:
        raise TlogInvalid(f"{len(cosignatures)} of the {len(witnesses)} witnesses cosigned the checkpoint of size "
                          f"{checkpoint.size}; {witnesses_required} are required")
    return OpenedCheckpoint(checkpoint, note, tuple(cosignatures))


def log_key_of(data: bytes, logs: Sequence[Verifier]) -> Verifier:
    """Which of the log's keys signed the note `data`: a log's checkpoints are signed by one key at a time, and by
    its successor after a rotation, so a reader checking a history that spans a rotation holds every key. The keys
    are of one log (one name); the note's signature by the key returned is checked by `open_checkpoint`. When none
    of them has a signature line in the note, the first is returned, for `open_checkpoint` to say what is wrong."""
    assert logs and len({one.name for one in logs}) == 1, "the keys of one log"
    by_id = {one.key_id: one for one in logs}
    for signature in parse_note(data).signatures:
        if signature.name == logs[0].name and signature.key_id in by_id:
            return by_id[signature.key_id]
    return logs[0]


# --- Cosignatures (c2sp.org/tlog-cosignature). ---------------------------------------------------------------------

def cosignature_message(text: str, timestamp: int) -> bytes:
    """What an Ed25519 cosignature signs ("Ed25519 signed message"): the header line, the time line, the checkpoint's
    whole text (extension lines included, final newline included, signatures not)."""
    return f"{COSIGNATURE_HEADER}\ntime {timestamp}\n{text}".encode()


def _timestamp(signature: bytes) -> int:
    return int.from_bytes(signature[:TIMESTAMP_SIZE], "big")


@dataclass(frozen=True, repr=False)
class Cosigner:
    """A witness's signing key (signature type 0x04)."""

    name: str
    key_id: int
    private_key: Ed25519PrivateKey

    @classmethod
    def of(cls, key: SignerKey | str) -> Cosigner:
        key = key_of_type(key, SignerKey, SIGNATURE_TYPE_COSIGNATURE_V1, "a cosigning key")
        return cls(key.name, key.key_id, Ed25519PrivateKey.from_private_bytes(key.seed))

    def signature(self, text: str, timestamp: int) -> Signature:
        """The cosignature line for the checkpoint whose text is `text`, dated `timestamp` (POSIX seconds, given by
        the caller: nothing here reads the clock). The text must be a checkpoint's."""
        Checkpoint.parse(text)
        if not 0 <= timestamp <= TIMESTAMP_MAX:
            raise TlogInvalid(f"a cosignature's timestamp is 0 to 2^63 - 1, not {timestamp}")
        signed = self.private_key.sign(cosignature_message(text, timestamp))
        return Signature(self.name, self.key_id, timestamp.to_bytes(TIMESTAMP_SIZE, "big") + signed)

    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier(self.name, self.key_id, self.private_key.public_key())

    def __repr__(self) -> str:
        return f"Cosigner(name={self.name!r}, key_id={self.key_id:08x})"


@dataclass(frozen=True)
class CosignatureVerifier:
    """Checks one witness's cosignatures (signature type 0x04); a `note.Verifier`."""

    name: str
    key_id: int
    public_key: Ed25519PublicKey

    @classmethod
    def of(cls, key: VerifierKey | str) -> CosignatureVerifier:
        key = key_of_type(key, VerifierKey, SIGNATURE_TYPE_COSIGNATURE_V1, "a witness's key")
        return cls(key.name, key.key_id, Ed25519PublicKey.from_public_bytes(key.public_key))

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether `signature` (timestamp || Ed25519 signature) cosigns the checkpoint text `message`."""
        if len(signature) != COSIGNATURE_SIZE:
            return False
        timestamp = _timestamp(signature)
        if timestamp > TIMESTAMP_MAX:
            return False
        try:
            text = message.decode("utf-8")
        except UnicodeDecodeError:
            return False
        try:
            self.public_key.verify(signature[TIMESTAMP_SIZE:], cosignature_message(text, timestamp))
        except InvalidSignature:
            return False
        return True


def cosign(data: bytes, cosigner: Cosigner, timestamp: int) -> bytes:
    """The signed checkpoint `data` with the cosigner's cosignature added (replacing an earlier one of the same key).
    Checking the checkpoint first (the log's signature, consistency with what the witness cosigned before) is the
    witness's job; this is the last step."""
    note = parse_note(data)
    return add_signatures(note, [cosigner.signature(note.text, timestamp)])


# --- Proof bundles (c2sp.org/tlog-proof). --------------------------------------------------------------------------

@dataclass(frozen=True)
class ProofBundle:
    """An entry's index, its inclusion proof and the signed checkpoint it is proved against, with optional opaque
    extra data (unauthenticated: a reader trusts it only as far as it recomputes the leaf hash from it)."""

    index: int
    proof: tuple[bytes, ...]
    checkpoint: bytes
    extra: bytes | None = None

    def format(self) -> bytes:
        if not 0 <= self.index <= TREE_SIZE_MAX:
            raise TlogInvalid(f"an index is 0 to {TREE_SIZE_MAX}, not {self.index}")
        if len(self.proof) > PROOF_HASHES_MAX or any(len(one) != merkle.HASH_SIZE for one in self.proof):
            raise TlogInvalid(f"an inclusion proof is at most {PROOF_HASHES_MAX} hashes of 32 bytes")
        _checked_checkpoint(self.checkpoint)
        lines = [PROOF_HEADER]
        if self.extra is not None:
            lines.append(PROOF_EXTRA_PREFIX + b64encode(self.extra))
        lines.append(f"{PROOF_INDEX_PREFIX}{self.index}")
        lines.extend(b64encode(one) for one in self.proof)
        return ("\n".join(lines) + "\n\n").encode("ascii") + self.checkpoint

    @classmethod
    def parse(cls, data: bytes) -> ProofBundle:
        # The lines before the checkpoint are ASCII; the checkpoint, a note, is checked as one below.
        head, head_end = _head_lines(data, PROOF_HEADER, "a proof bundle", "proof lines", "the checkpoint")
        rest = head[1:]
        extra = None
        if rest and rest[0].startswith(PROOF_EXTRA_PREFIX):
            extra = b64decode(rest[0].removeprefix(PROOF_EXTRA_PREFIX))
            if extra is None:
                raise TlogInvalid("a proof bundle's extra line holds base64")
            rest = rest[1:]
        if not rest or not rest[0].startswith(PROOF_INDEX_PREFIX):
            raise TlogInvalid("a proof bundle names the entry's index on the line after its header (or extra)")
        index = _decimal(rest[0].removeprefix(PROOF_INDEX_PREFIX))
        if index is None:
            raise TlogInvalid("a proof bundle's index is a decimal without leading zeros")
        checkpoint = data[head_end + 2:]
        _checked_checkpoint(checkpoint)
        return cls(index, _proof_hashes(rest[1:]), checkpoint, extra)


def _proof_hashes(lines: list[str]) -> tuple[bytes, ...]:
    if len(lines) > PROOF_HASHES_MAX:
        raise TlogInvalid(f"an inclusion proof is at most {PROOF_HASHES_MAX} hashes")
    proof = []
    for line in lines:
        one = b64decode(line)
        if one is None or len(one) != merkle.HASH_SIZE:
            raise TlogInvalid(f"each line of an inclusion proof is the base64 of 32 bytes, not {line[:60]!r}")
        proof.append(one)
    return tuple(proof)


def _checked_checkpoint(data: bytes) -> None:
    """That `data` is a signed note whose text is a checkpoint (its signatures are checked by `verify_bundle`)."""
    Checkpoint.parse(parse_note(data).text)


def verify_bundle(bundle: ProofBundle, leaf_hash: bytes, origin: str, log: Verifier,
                  witnesses: Sequence[CosignatureVerifier] = (), witnesses_required: int = 0) -> OpenedCheckpoint:
    """The bundle's checkpoint, once it is shown that the entry whose leaf hash is `leaf_hash` (step 1, computed by
    the caller from the entry) is in the log: tlog-proof's "Verifying a tlog proof", steps 2 to 4."""
    # 2. The origin is the expected one and the log's key signed the checkpoint.
    # 3. Enough of the witnesses the reader counts on cosigned it.
    opened = open_checkpoint(bundle.checkpoint, origin, log, witnesses, witnesses_required)
    # 4. The inclusion proof binds the leaf hash to the checkpoint's root.
    checkpoint = opened.checkpoint
    if not merkle.verify_inclusion(leaf_hash, bundle.index, checkpoint.size, bundle.proof, checkpoint.root_hash):
        raise TlogInvalid(f"the inclusion proof does not show entry {bundle.index} in the checkpoint of size "
                          f"{checkpoint.size}")
    return opened


# --- Consistency proofs between two signed checkpoints (ours: C2SP defines no file for one). ------------------------
#
#     bpjs-ledger/consistency-proof@v1
#     old <the older checkpoint note's length in bytes>
#     new <the newer checkpoint note's length in bytes>
#     <the RFC 9162 consistency proof, one base64 hash a line>
#
#     <the older checkpoint, verbatim, with its signatures><the newer checkpoint, verbatim, with its signatures>
#
# Like tlog-proof, the lines up to the blank line are ASCII and the notes follow verbatim. A note holds a blank line
# of its own, so the two are delimited by their lengths, given first: the file is exactly the head, the blank line
# and the two notes, not one byte more. Each note must be a well-formed checkpoint (its signatures are checked by
# `verify_consistency_file`, against keys the reader already trusts).

CONSISTENCY_HEADER = "bpjs-ledger/consistency-proof@v1"
CONSISTENCY_OLD_PREFIX = "old "
CONSISTENCY_NEW_PREFIX = "new "
CONSISTENCY_HEAD_LINES_MIN = 3  # the header and the two lengths
CONSISTENCY_HASHES_MAX = 2 * PROOF_HASHES_MAX  # RFC 9162: at most 2 x log2(size) hashes


@dataclass(frozen=True)
class ConsistencyProof:
    """Two signed checkpoints of one log and the RFC 9162 proof that the older tree is a prefix of the newer."""

    old: bytes
    new: bytes
    proof: tuple[bytes, ...]

    def format(self) -> bytes:
        if len(self.proof) > CONSISTENCY_HASHES_MAX or any(len(one) != merkle.HASH_SIZE for one in self.proof):
            raise TlogInvalid(f"a consistency proof is at most {CONSISTENCY_HASHES_MAX} hashes of 32 bytes")
        _checked_checkpoint(self.old)
        _checked_checkpoint(self.new)
        lines = [CONSISTENCY_HEADER, f"{CONSISTENCY_OLD_PREFIX}{len(self.old)}",
                 f"{CONSISTENCY_NEW_PREFIX}{len(self.new)}", *(b64encode(one) for one in self.proof)]
        return ("\n".join(lines) + "\n\n").encode("ascii") + self.old + self.new

    @classmethod
    def parse(cls, data: bytes) -> ConsistencyProof:
        head, head_end = _head_lines(data, CONSISTENCY_HEADER, "a consistency proof", "hashes", "the two checkpoints")
        if len(head) < CONSISTENCY_HEAD_LINES_MIN or not head[1].startswith(CONSISTENCY_OLD_PREFIX) or not (
                head[2].startswith(CONSISTENCY_NEW_PREFIX)):
            raise TlogInvalid("a consistency proof names the two checkpoints' lengths on lines `old N` and `new N`")
        old_length = _decimal(head[1].removeprefix(CONSISTENCY_OLD_PREFIX))
        new_length = _decimal(head[2].removeprefix(CONSISTENCY_NEW_PREFIX))
        if old_length is None or new_length is None:
            raise TlogInvalid("a checkpoint's length is a decimal without leading zeros")
        lines = head[3:]
        if len(lines) > CONSISTENCY_HASHES_MAX:
            raise TlogInvalid(f"a consistency proof is at most {CONSISTENCY_HASHES_MAX} hashes")
        proof = []
        for line in lines:
            one = b64decode(line)
            if one is None or len(one) != merkle.HASH_SIZE:
                raise TlogInvalid(f"each line of a consistency proof is the base64 of 32 bytes, not {line[:60]!r}")
            proof.append(one)
        notes = data[head_end + 2:]
        if len(notes) != old_length + new_length:
            raise TlogInvalid(f"the two checkpoints are {old_length} + {new_length} bytes, but {len(notes)} follow")
        old, new = notes[:old_length], notes[old_length:]
        _checked_checkpoint(old)
        _checked_checkpoint(new)
        return cls(old, new, tuple(proof))


def verify_consistency_file(proof: ConsistencyProof, origin: str, log: Verifier | Sequence[Verifier],
                            witnesses: Sequence[CosignatureVerifier] = (), witnesses_required: int = 0
                            ) -> tuple[OpenedCheckpoint, OpenedCheckpoint]:
    """Both checkpoints, once both are shown signed by the log (and cosigned as required) and the older tree a prefix
    of the newer by the proof. `log` may be the log's keys over time (`log_key_of`): the two checkpoints may be signed
    by a key and its successor."""
    logs = list(log) if isinstance(log, Sequence) else [log]
    old = open_checkpoint(proof.old, origin, log_key_of(proof.old, logs), witnesses, witnesses_required)
    new = open_checkpoint(proof.new, origin, log_key_of(proof.new, logs), witnesses, witnesses_required)
    if not old.checkpoint.size < new.checkpoint.size:
        raise TlogInvalid(f"the older checkpoint's size {old.checkpoint.size} is below the newer's "
                          f"{new.checkpoint.size}")
    if not merkle.verify_consistency(old.checkpoint.size, new.checkpoint.size, old.checkpoint.root_hash,
                                     new.checkpoint.root_hash, proof.proof):
        raise TlogInvalid(f"the consistency proof does not show the tree of size {old.checkpoint.size} to be a prefix "
                          f"of the tree of size {new.checkpoint.size}")
    return old, new


def _head_lines(data: bytes, header: str, what: str, lines: str, follows: str) -> tuple[list[str], int]:
    """The ASCII lines of a proof file before its first blank line, the first of which must be `header`, and where
    that blank line begins; `what`, `lines` and `follows` name the file and its parts in the messages."""
    head_end = data.find(b"\n\n")
    if head_end < 0:
        raise TlogInvalid(f"{what}'s {lines} are followed by a blank line and {follows}")
    try:
        head = data[:head_end].decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise TlogInvalid(f"{what}'s lines before {follows} are ASCII") from None
    if head[0] != header:
        raise TlogInvalid(f"{what} begins with the line {header}")
    return head, head_end
