"""C2SP signed notes (c2sp.org/signed-note, v1.0.0) with Ed25519 keys, byte for byte as Go's
golang.org/x/mod/sumdb/note writes and reads them.

A note is a text that ends in a newline, then a blank line, then one or more signature lines, each an em dash
(U+2014), a space, the key's name, a space and the base64 of the 4-byte key ID followed by the signature:

    If you think cryptography is the answer to your problem,
    then you don't know what your problem is.

    — PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=

The key ID is the first four bytes of SHA-256(name || 0x0A || signature type || public key) ("Signatures"); for an
Ed25519 note signature the type is 0x01 and the signature is over the text, final newline included ("Ed25519
signatures"). Keys travel as text ("Verifier keys"): a verifier key is `name+hex(key ID)+base64(type || public key)`,
and a signer key, which Go's package writes and the spec leaves to implementations, is
`PRIVATE+KEY+name+hex(key ID)+base64(type || 32-byte seed)`. The same key texts carry tlog-cosignature's type 0x04
(checkpoint.py): the key material is an Ed25519 key either way, and the type byte keeps the two uses apart.

Reading has two steps. `parse_note` checks the format and nothing else; `open_note` also checks the signatures
against verifiers the caller supplies (a key is never taken from the note it is to verify), as "Signatures" says:
a signature whose key name and ID match no given verifier is ignored; one that matches must verify, or the whole
note is refused; and at least one must match and verify.

Where the spec allows a choice, this module takes the strict one, so that every value has one spelling and a changed
byte cannot pass unnoticed: base64 must be canonical (RFC 4648 section 3.5 lets a decoder refuse non-zero padding
bits; Go's decoder accepts them); a key ID in a key's text must be eight lowercase hex digits (the spec's hex
encoding is "fixed length lowercase"; Go also takes capitals); and a key name may not hold a control character
either (it could never stand in a valid note). A note over `NOTE_BYTES_MAX` or with more than `SIGNATURES_MAX`
signatures is refused (the spec asks verifiers to set such a limit and to accept at least 16 signatures; Go refuses
more than 100, as here).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.errors import TlogInvalid

SIGNATURE_TYPE_ED25519 = 0x01  # signed-note, "Signature types": Ed25519 over the note text
SIGNATURE_TYPE_COSIGNATURE_V1 = 0x04  # tlog-cosignature: timestamped Ed25519 checkpoint cosignatures (checkpoint.py)
ED25519_TYPES = (SIGNATURE_TYPE_ED25519, SIGNATURE_TYPE_COSIGNATURE_V1)  # the key types whose material is Ed25519

KEY_ID_SIZE = 4
ED25519_KEY_SIZE = 32  # a public key, and a private key's seed (RFC 8032)
ED25519_SIGNATURE_SIZE = 64
SIGNATURES_MAX = 100
NOTE_BYTES_MAX = 1 << 20  # far above any checkpoint (a few hundred bytes with a dozen cosignatures)
KEY_TEXT_CHARS_MAX = 1_000  # a key's text: a name, 8 hex digits and 44 base64 characters, with room for the name

SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space begin each signature line
PRIVATE_KEY_PREFIX = "PRIVATE+KEY+"


# --- Names, key IDs and base64. ------------------------------------------------------------------------------------

def key_name_problem(name: object) -> str | None:
    """Why `name` cannot be a key name, or None. The spec: non-empty, no Unicode space and no plus (U+002B)."""
    if not isinstance(name, str) or not name:
        return "a key name is not empty"
    if "+" in name:
        return f"a key name has no plus sign: {name!r}"
    if any(ch.isspace() for ch in name):
        return f"a key name has no space: {name!r}"
    if any(ch < " " for ch in name):
        return f"a key name has no control character: {name!r}"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return f"a key name is valid Unicode: {name!r}"
    return None


def check_key_name(name: str) -> None:
    problem = key_name_problem(name)
    if problem is not None:
        raise TlogInvalid(problem)


def key_id(name: str, signature_type: int, public_key: bytes) -> int:
    """The key ID: the first four bytes, big-endian, of SHA-256(name || 0x0A || signature type || public key)."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([signature_type]) + public_key).digest()
    return int.from_bytes(digest[:KEY_ID_SIZE], "big")


def b64encode(data: bytes) -> str:
    """Standard base64 with padding (RFC 4648 section 4), the encoding of every C2SP text format."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str) -> bytes | None:
    """The bytes `text` is the canonical standard base64 of, or None (padding required, padding bits zero)."""
    if not text.isascii():
        return None
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if b64encode(data) == text else None


# --- Keys as text. ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VerifierKey:
    """A verifier key ("vkey"): `name+hex(key ID)+base64(signature type || public key)`, an Ed25519 key of type
    0x01 (notes) or 0x04 (cosignatures). It is public: the auditor hands it to the tools."""

    name: str
    key_id: int
    signature_type: int
    public_key: bytes

    @classmethod
    def of(cls, name: str, signature_type: int, public_key: bytes) -> VerifierKey:
        check_key_name(name)
        assert signature_type in ED25519_TYPES and len(public_key) == ED25519_KEY_SIZE
        return cls(name, key_id(name, signature_type, public_key), signature_type, public_key)

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        if len(text) > KEY_TEXT_CHARS_MAX:
            raise TlogInvalid("a verifier key is a short line of text")
        name, _, rest = text.partition("+")
        hex_id, _, encoded = rest.partition("+")
        signature_type, material = _key_material(name, hex_id, encoded, "verifier key")
        _public_key(material)  # that the 32 bytes are a public key
        parsed = cls(name, int(hex_id, 16), signature_type, material)
        if parsed.key_id != key_id(name, signature_type, material):
            raise TlogInvalid(f"the verifier key's ID {hex_id} is not the one of its name and key")
        return parsed

    def format(self) -> str:
        return f"{self.name}+{self.key_id:08x}+{b64encode(bytes([self.signature_type]) + self.public_key)}"

    def __str__(self) -> str:
        return self.format()


@dataclass(frozen=True)
class SignerKey:
    """A signer key: `PRIVATE+KEY+name+hex(key ID)+base64(signature type || 32-byte Ed25519 seed)`, as Go's
    note.GenerateKey writes it (and transparency-dev's cosigners read it with type 0x04). It is secret: whoever holds
    it signs as the log, or as the witness. `repr` leaves the seed out so that it cannot reach a log by accident."""

    name: str
    key_id: int
    signature_type: int
    seed: bytes

    @classmethod
    def generate(cls, name: str, signature_type: int = SIGNATURE_TYPE_ED25519) -> SignerKey:
        return cls.of(name, signature_type, Ed25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def of(cls, name: str, signature_type: int, seed: bytes) -> SignerKey:
        check_key_name(name)
        assert signature_type in ED25519_TYPES and len(seed) == ED25519_KEY_SIZE
        public_key = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
        return cls(name, key_id(name, signature_type, public_key), signature_type, seed)

    @classmethod
    def parse(cls, text: str) -> SignerKey:
        if len(text) > KEY_TEXT_CHARS_MAX or not text.startswith(PRIVATE_KEY_PREFIX):
            raise TlogInvalid(f"a signer key is one short line that begins with {PRIVATE_KEY_PREFIX}")
        name, _, rest = text.removeprefix(PRIVATE_KEY_PREFIX).partition("+")
        hex_id, _, encoded = rest.partition("+")
        signature_type, seed = _key_material(name, hex_id, encoded, "signer key")
        # The ID names the public key, which is derived from the seed: a seed altered in the file does not match it.
        parsed = cls.of(name, signature_type, seed)
        if parsed.key_id != int(hex_id, 16):
            raise TlogInvalid(f"the signer key's ID {hex_id} is not the one of its name and key")
        return parsed

    def format(self) -> str:
        return (f"{PRIVATE_KEY_PREFIX}{self.name}+{self.key_id:08x}+"
                f"{b64encode(bytes([self.signature_type]) + self.seed)}")

    def verifier_key(self) -> VerifierKey:
        public_key = Ed25519PrivateKey.from_private_bytes(self.seed).public_key().public_bytes_raw()
        return VerifierKey(self.name, self.key_id, self.signature_type, public_key)

    def __repr__(self) -> str:
        return f"SignerKey(name={self.name!r}, key_id={self.key_id:08x}, signature_type={self.signature_type})"

    __str__ = __repr__


def _key_material(name: str, hex_id: str, encoded: str, what: str) -> tuple[int, bytes]:
    """The signature type and key bytes of a key's text, its name and hex ID checked for form."""
    check_key_name(name)
    if len(hex_id) != 2 * KEY_ID_SIZE or any(ch not in "0123456789abcdef" for ch in hex_id):
        raise TlogInvalid(f"a {what}'s ID is 8 lowercase hex digits, not {hex_id!r}")
    data = b64decode(encoded)
    if data is None or not data:
        raise TlogInvalid(f"a {what} ends in the base64 of its type and key, not {encoded!r}")
    if data[0] not in ED25519_TYPES:
        raise TlogInvalid(f"a {what} of signature type 0x{data[0]:02x} is not supported (0x01 and 0x04 are)")
    if len(data) != 1 + ED25519_KEY_SIZE:
        raise TlogInvalid(f"an Ed25519 {what} holds {ED25519_KEY_SIZE} bytes of key, not {len(data) - 1}")
    return data[0], data[1:]


def _public_key(material: bytes) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(material)
    except ValueError as error:
        raise TlogInvalid(f"not an Ed25519 public key: {error}") from None


# --- Signers and verifiers. -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Signature:
    """One signature line: the key's name and ID, and the signature bytes that follow the ID."""

    name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        encoded = b64encode(self.key_id.to_bytes(KEY_ID_SIZE, "big") + self.signature)
        return f"{SIGNATURE_PREFIX}{self.name} {encoded}\n"


class Verifier(Protocol):
    """What `open_note` checks a signature with: the key's name and ID, and whether a signature over a message is
    the key's. A note signature's message is the note text; a cosignature's verifier (checkpoint.py) reads its
    timestamp from the signature and rebuilds the message it signed."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify(self, message: bytes, signature: bytes) -> bool: ...


_Key = TypeVar("_Key", "VerifierKey", "SignerKey")


def key_of_type(key: _Key | str, kind: type[_Key], signature_type: int, role: str) -> _Key:
    """`key` (or its text, parsed as `kind`), refused unless its signature type is `signature_type`; `role` names
    what the key must be, for the message."""
    parsed = kind.parse(key) if isinstance(key, str) else key
    if parsed.signature_type != signature_type:
        raise TlogInvalid(f"{parsed.name}+{parsed.key_id:08x} is not {role} (type 0x{signature_type:02x})")
    return parsed


@dataclass(frozen=True)
class Ed25519Verifier:
    """Checks note signatures (type 0x01) by one key."""

    name: str
    key_id: int
    public_key: Ed25519PublicKey

    @classmethod
    def of(cls, key: VerifierKey | str) -> Ed25519Verifier:
        key = key_of_type(key, VerifierKey, SIGNATURE_TYPE_ED25519, "a note-signing key")
        return cls(key.name, key.key_id, _public_key(key.public_key))

    def verify(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != ED25519_SIGNATURE_SIZE:
            return False
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, repr=False)
class Ed25519Signer:
    """Signs note texts (type 0x01) with one key."""

    name: str
    key_id: int
    private_key: Ed25519PrivateKey

    @classmethod
    def of(cls, key: SignerKey | str) -> Ed25519Signer:
        key = key_of_type(key, SignerKey, SIGNATURE_TYPE_ED25519, "a note-signing key")
        return cls(key.name, key.key_id, Ed25519PrivateKey.from_private_bytes(key.seed))

    def signature(self, text: str) -> Signature:
        """The signature line for a note whose text is `text` (RFC 8032 Ed25519 over its UTF-8 bytes)."""
        return Signature(self.name, self.key_id, self.private_key.sign(text.encode("utf-8")))

    def verifier(self) -> Ed25519Verifier:
        return Ed25519Verifier(self.name, self.key_id, self.private_key.public_key())

    def __repr__(self) -> str:
        return f"Ed25519Signer(name={self.name!r}, key_id={self.key_id:08x})"


# --- Notes. --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Note:
    """A note's text (final newline included) and its signature lines in order. From `open_note`, `verified` holds
    the signatures that matched a given verifier and verified (each key once); from `parse_note` it is empty."""

    text: str
    signatures: tuple[Signature, ...]
    verified: tuple[Signature, ...] = ()

    def format(self) -> bytes:
        return format_note(self.text, self.signatures)


def text_problem(text: str) -> str | None:
    """Why `text` cannot be a note's text, or None: it ends in a newline, and holds no control character but
    newlines (nor, being a str, invalid UTF-8 unless it holds a lone surrogate, which is refused too)."""
    if not text.endswith("\n"):
        return "a note's text ends in a newline"
    if any(ch < " " and ch != "\n" for ch in text):
        return "a note's text holds no control character other than newline"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "a note's text is valid UTF-8"
    return None


def format_note(text: str, signatures: Iterable[Signature]) -> bytes:
    """The note's bytes: the text, a blank line, a line per signature (at least one)."""
    problem = text_problem(text)
    if problem is not None:
        raise TlogInvalid(problem)
    lines = []
    for one in signatures:
        check_key_name(one.name)
        if not one.signature or not 0 <= one.key_id < 2 ** (8 * KEY_ID_SIZE):
            raise TlogInvalid(f"{one.name}'s signature has a 4-byte key ID and at least one byte of signature")
        lines.append(one.line())
    if not lines:
        raise TlogInvalid("a note has at least one signature")
    return (text + "\n" + "".join(lines)).encode("utf-8")


def sign_note(text: str, signers: Sequence[Ed25519Signer]) -> bytes:
    """A new note: `text` signed by each signer, in order."""
    return format_note(text, [signer.signature(text) for signer in signers])


def add_signatures(note: Note, signatures: Sequence[Signature]) -> bytes:
    """The note with more signatures after its own. A signature already there by the same key (name and ID) is
    replaced by the new one, as Go's note.Sign does, so that signing again does not pile up lines."""
    new_keys = {(one.name, one.key_id) for one in signatures}
    kept = [one for one in note.signatures if (one.name, one.key_id) not in new_keys]
    return format_note(note.text, [*kept, *signatures])


def parse_note(data: bytes) -> Note:
    """The note's text and signature lines, its format checked ("Format" and "Signatures"), no signature verified."""
    if len(data) > NOTE_BYTES_MAX:
        raise TlogInvalid(f"a note is at most {NOTE_BYTES_MAX} bytes, not {len(data)}")
    try:
        whole = data.decode("utf-8")
    except UnicodeDecodeError:
        raise TlogInvalid("a note is valid UTF-8") from None
    if any(ch < " " and ch != "\n" for ch in whole):
        raise TlogInvalid("a note holds no control character other than newline")
    # The text is separated from the signatures by the note's last empty line; the text keeps its final newline.
    split = whole.rfind("\n\n")
    if split < 0:
        raise TlogInvalid("a note's text is followed by a blank line and its signatures")
    text, block = whole[:split + 1], whole[split + 2:]
    if not block or not block.endswith("\n"):
        raise TlogInvalid("a note ends in one or more signature lines, each ending in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > SIGNATURES_MAX:
        raise TlogInvalid(f"a note has at most {SIGNATURES_MAX} signatures, not {len(lines)}")
    return Note(text, tuple(_signature_line(line) for line in lines))


def _signature_line(line: str) -> Signature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise TlogInvalid(f"a signature line begins with an em dash and a space: {line[:40]!r}")
    name, _, encoded = line.removeprefix(SIGNATURE_PREFIX).partition(" ")
    problem = key_name_problem(name)
    if problem is not None:
        raise TlogInvalid(problem)
    raw = b64decode(encoded)
    if raw is None or len(raw) <= KEY_ID_SIZE:
        raise TlogInvalid(f"{name}'s signature is the base64 of a key ID and a signature, not {encoded[:40]!r}")
    return Signature(name, int.from_bytes(raw[:KEY_ID_SIZE], "big"), raw[KEY_ID_SIZE:])


def open_note(data: bytes, verifiers: Iterable[Verifier]) -> Note:
    """The note, its signatures checked against the given verifiers ("Signatures"): signatures of unknown keys are
    ignored, a known key's signature that fails refuses the whole note, and at least one must verify."""
    note = parse_note(data)
    known = _by_key(verifiers)
    message = note.text.encode("utf-8")
    verified: dict[tuple[str, int], Signature] = {}
    for one in note.signatures:
        key = (one.name, one.key_id)
        verifier = known.get(key)
        # A key's second signature is not checked again, as in Go: a note is judged by one signature per key.
        if verifier is None or key in verified:
            continue
        if not verifier.verify(message, one.signature):
            raise TlogInvalid(f"the signature by {one.name}+{one.key_id:08x} does not verify")
        verified[key] = one
    if not verified:
        raise TlogInvalid("the note has no signature by a known key")
    return Note(note.text, note.signatures, tuple(verified.values()))


def _by_key(verifiers: Iterable[Verifier]) -> dict[tuple[str, int], Verifier]:
    """The verifiers by (name, key ID). Two different keys under one name and ID would make a signature ambiguous:
    that is a mistake in what the caller was given, and refused."""
    known: dict[tuple[str, int], Verifier] = {}
    for verifier in verifiers:
        key = (verifier.name, verifier.key_id)
        if key in known and known[key] != verifier:
            raise TlogInvalid(f"two different verifier keys are named {verifier.name}+{verifier.key_id:08x}")
        known[key] = verifier
    return known
