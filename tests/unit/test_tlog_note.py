"""Signed notes (ledger/tlog/note.py) byte for byte as c2sp.org/signed-note and Go's golang.org/x/mod/sumdb/note.

The vectors: the PeterNeumann and EnochRoot keys and notes of golang.org/x/mod's sumdb/note/note.go (package
documentation), note_test.go and example_test.go (commit fe2ec04 of github.com/golang/mod), and the example key and
note of C2SP's signed-note.md, "Verifier keys" (commit 5ba5ee8 of github.com/C2SP/C2SP). The malformed notes and the
mangled keys that must be refused are the ones note_test.go refuses.
"""

from __future__ import annotations

import pytest

from ledger.errors import TlogInvalid
from ledger.tlog.note import (
    NOTE_BYTES_MAX,
    SIGNATURE_TYPE_COSIGNATURE_V1,
    SIGNATURE_TYPE_ED25519,
    SIGNATURES_MAX,
    Ed25519Signer,
    Ed25519Verifier,
    Note,
    Signature,
    SignerKey,
    VerifierKey,
    add_signatures,
    b64decode,
    format_note,
    key_id,
    open_note,
    parse_note,
    sign_note,
)

PETER_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VERIFIER = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = ("\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6Ry"
             "yBwJnAM=\n")
ENOCH_SIG = ("\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc"
             "+QQ=\n")
PETER_NOTE = (TEXT + "\n" + PETER_SIG).encode()

SPEC_VERIFIER = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = ("This is an example message.\n\n\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK"
             "7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n").encode()


def _insert(line: str, at_byte: int, what: str) -> str:
    """Go's peterSig[:60] + "ABCD" + peterSig[60:], which counts bytes (the em dash is three)."""
    raw = line.encode()
    return (raw[:at_byte] + what.encode() + raw[at_byte:]).decode()


# --- Go's and the spec's examples, byte for byte. ------------------------------------------------------------------

def test_the_peterneumann_keys_read_and_write_back_as_go_writes_them():
    signer = SignerKey.parse(PETER_SIGNER)
    assert (signer.name, signer.key_id, signer.signature_type) == ("PeterNeumann", 0xC74F20A3, SIGNATURE_TYPE_ED25519)
    assert signer.format() == PETER_SIGNER
    assert signer.verifier_key().format() == PETER_VERIFIER
    assert VerifierKey.parse(PETER_VERIFIER).format() == PETER_VERIFIER
    assert key_id("PeterNeumann", 1, VerifierKey.parse(PETER_VERIFIER).public_key) == 0xC74F20A3
    assert "AYEKFALV" not in repr(signer) and "AYEKFALV" not in str(signer)


def test_signing_the_peterneumann_text_gives_go_s_note_exactly():
    assert sign_note(TEXT, [Ed25519Signer.of(PETER_SIGNER)]) == PETER_NOTE


def test_opening_the_peterneumann_note_verifies_it():
    note = open_note(PETER_NOTE, [Ed25519Verifier.of(PETER_VERIFIER)])
    assert note.text == TEXT
    assert [(one.name, one.key_id) for one in note.verified] == [("PeterNeumann", 0xC74F20A3)]


def test_the_spec_s_example_key_verifies_the_spec_s_example_note():
    note = open_note(SPEC_NOTE, [Ed25519Verifier.of(SPEC_VERIFIER)])
    assert note.text == "This is an example message.\n"
    assert note.verified[0].key_id == 0x530D903A


def test_signatures_of_unknown_keys_are_ignored_and_at_least_one_known_key_must_have_signed():
    both = (TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode()
    peter, enoch = Ed25519Verifier.of(PETER_VERIFIER), Ed25519Verifier.of(ENOCH_VERIFIER)
    assert [one.name for one in open_note(both, [peter]).verified] == ["PeterNeumann"]
    assert [one.name for one in open_note(both, [peter, enoch]).verified] == ["PeterNeumann", "EnochRoot"]
    assert [one.name for one in open_note(both, [enoch]).verified] == ["EnochRoot"]
    assert [one.name for one in parse_note(both).signatures] == ["PeterNeumann", "EnochRoot"]
    with pytest.raises(TlogInvalid, match="no signature by a known key"):
        open_note(both, [])
    # Same name, another key ID (or the other way round): another key, so ignored too.
    other = VerifierKey.parse(ENOCH_VERIFIER)
    with pytest.raises(TlogInvalid, match="no signature by a known key"):
        open_note(PETER_NOTE, [Ed25519Verifier.of(VerifierKey.of("PeterNeumann", 1, other.public_key))])


def test_a_known_key_s_bad_signature_refuses_the_note_even_beside_a_good_one():
    bad = _insert(PETER_SIG, 60, "ABCD")
    with pytest.raises(TlogInvalid, match=r"PeterNeumann\+c74f20a3 does not verify"):
        open_note((TEXT + "\n" + bad).encode(), [Ed25519Verifier.of(PETER_VERIFIER)])
    with pytest.raises(TlogInvalid, match="does not verify"):
        open_note((TEXT + "\n" + ENOCH_SIG + bad).encode(),
                  [Ed25519Verifier.of(PETER_VERIFIER), Ed25519Verifier.of(ENOCH_VERIFIER)])


def test_repeated_signatures_count_once():
    bad_enoch = _insert(ENOCH_SIG, 60, "ABCD")
    data = (TEXT + "\n" + PETER_SIG * 2 + ENOCH_SIG * 2 + bad_enoch).encode()
    note = open_note(data, [Ed25519Verifier.of(PETER_VERIFIER)])
    assert [one.name for one in note.verified] == ["PeterNeumann"]
    assert len(note.signatures) == 5
    assert note.format() == data


def test_go_s_malformed_notes_are_refused():
    peter = [Ed25519Verifier.of(PETER_VERIFIER)]
    bad_name = PETER_SIG.replace("PeterNeumann", "Bad Name").removesuffix("\n")
    for bad in [TEXT.encode(),
                (TEXT + "\n").encode(),
                (TEXT + "\n" + PETER_SIG[:-1]).encode(),  # no final newline
                ("\x01" + TEXT + "\n" + PETER_SIG).encode(),  # a control character
                b"\xff" + (TEXT + "\n" + PETER_SIG).encode(),  # not UTF-8
                (TEXT + "\n" + bad_name).encode(),
                (TEXT + "\n" + PETER_SIG + "Unexpected line.\n").encode()]:
        with pytest.raises(TlogInvalid):
            open_note(bad, peter)


def test_more_signatures_than_the_limit_are_refused_and_the_spec_s_sixteen_accepted():
    peter = [Ed25519Verifier.of(PETER_VERIFIER)]
    assert open_note((TEXT + "\n" + PETER_SIG * 16).encode(), peter).text == TEXT
    assert open_note((TEXT + "\n" + PETER_SIG * SIGNATURES_MAX).encode(), peter).text == TEXT
    for verifiers in (peter, []):
        with pytest.raises(TlogInvalid, match="at most 100 signatures"):
            open_note((TEXT + "\n" + PETER_SIG * (SIGNATURES_MAX + 1)).encode(), verifiers)
    with pytest.raises(TlogInvalid, match="at most"):
        open_note(b"x" * NOTE_BYTES_MAX + PETER_NOTE, peter)


def test_go_s_mangled_verifier_keys_are_refused():
    # Every substring but the whole, and every byte plus one: note_test.go's TestNewVerifier.
    raw = PETER_VERIFIER.encode()
    for i in range(len(raw) + 1):
        for j in range(i + 1, len(raw) + 1):
            if (i, j) != (0, len(raw)):
                with pytest.raises(TlogInvalid):
                    VerifierKey.parse(raw[i:j].decode())
    for i in range(len(raw)):
        with pytest.raises(TlogInvalid):
            VerifierKey.parse((raw[:i] + bytes([raw[i] + 1]) + raw[i + 1:]).decode())
    for bad in ["PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",  # 36-byte key
                "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # unknown type
                "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"]:  # capitals (Go takes them)
        with pytest.raises(TlogInvalid):
            VerifierKey.parse(bad)


def test_go_s_mangled_signer_keys_are_refused():
    raw = PETER_SIGNER.encode()
    for i in range(len(raw) + 1):
        for j in range(i + 1, len(raw) + 1):
            if (i, j) != (0, len(raw)):
                with pytest.raises(TlogInvalid):
                    SignerKey.parse(raw[i:j].decode())
    for i in range(len(raw)):
        with pytest.raises(TlogInvalid):
            SignerKey.parse((raw[:i] + bytes([raw[i] + 1]) + raw[i + 1:]).decode())


# --- Key names. ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["", "a+b", "two words", "tab\there", "nbsp\u00a0here", "ideographic\u3000space",
                                  "line\u2028separator", "bell\x07"])
def test_a_key_name_is_non_empty_without_plus_or_unicode_space(name):
    with pytest.raises(TlogInvalid, match="key name"):
        SignerKey.generate(name)
    with pytest.raises(TlogInvalid, match="key name"):
        VerifierKey.of(name, SIGNATURE_TYPE_ED25519, bytes(32))
    with pytest.raises(TlogInvalid):
        format_note("text\n", [Signature(name, 1, b"sig")])


def test_a_key_name_may_be_any_other_unicode():
    for name in ["bpjs.example/ledger", "jaminan-hari-tua/bekasi", "ñandú/ledger", "oid/1.3.6.1.4.1.1"]:
        key = SignerKey.generate(name)
        signer = Ed25519Signer.of(key)
        assert SignerKey.parse(key.format()) == key
        assert open_note(sign_note("hello\n", [signer]), [signer.verifier()]).verified[0].name == name


# --- Round trips, and one changed byte. ----------------------------------------------------------------------------

def test_a_generated_key_signs_notes_its_verifier_opens_and_the_key_texts_round_trip():
    key = SignerKey.generate("bpjs.example/ledger")
    assert SignerKey.parse(key.format()) == key
    vkey = key.verifier_key()
    assert VerifierKey.parse(vkey.format()) == vkey
    assert vkey.key_id == key_id(vkey.name, SIGNATURE_TYPE_ED25519, vkey.public_key)
    text = "Jaminan Hari Tua \u2014 cabang Bekasi\n\nan empty line above, and unicode: ok\n"
    data = sign_note(text, [Ed25519Signer.of(key)])
    note = open_note(data, [Ed25519Verifier.of(vkey.format())])
    assert note.text == text
    assert parse_note(data) == Note(text, note.signatures)


def test_one_changed_byte_anywhere_in_a_note_refuses_it():
    key = SignerKey.generate("bpjs.example/ledger")
    signer = Ed25519Signer.of(key)
    data = sign_note("bpjs.example/ledger\n42\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n", [signer])
    verifier = signer.verifier()
    assert open_note(data, [verifier]).verified
    for position in range(len(data)):
        for change in (0x01, 0x20, 0x80):
            changed = data[:position] + bytes([data[position] ^ change]) + data[position + 1:]
            with pytest.raises(TlogInvalid):
                open_note(changed, [verifier])


def test_signing_again_with_the_same_key_replaces_its_signature():
    peter = Ed25519Signer.of(PETER_SIGNER)
    enoch_line = parse_note((TEXT + "\n" + ENOCH_SIG).encode()).signatures[0]
    stale = Note(TEXT, (Signature("PeterNeumann", 0xC74F20A3, b"old"), enoch_line))
    data = add_signatures(stale, [peter.signature(TEXT)])
    assert data == (TEXT + "\n" + ENOCH_SIG + PETER_SIG).encode()


def test_a_note_s_text_ends_in_a_newline_and_holds_no_control_character():
    peter = Ed25519Signer.of(PETER_SIGNER)
    for bad in ["no newline", "tab\there\n", "carriage\r\n", ""]:
        with pytest.raises(TlogInvalid):
            sign_note(bad, [peter])
    with pytest.raises(TlogInvalid, match="at least one signature"):
        format_note(TEXT, [])
    # A text may itself end in empty lines or look like a signature block: the last blank line separates.
    tricky = "line\n\n\u2014 PeterNeumann AAAA\n\n"
    assert open_note(sign_note(tricky, [peter]), [peter.verifier()]).text == tricky


def test_keys_of_the_wrong_type_are_refused_where_a_note_key_is_needed():
    witness = SignerKey.generate("witness.example/w1", SIGNATURE_TYPE_COSIGNATURE_V1)
    assert SignerKey.parse(witness.format()).signature_type == SIGNATURE_TYPE_COSIGNATURE_V1
    with pytest.raises(TlogInvalid, match="type 0x01"):
        Ed25519Signer.of(witness)
    with pytest.raises(TlogInvalid, match="type 0x01"):
        Ed25519Verifier.of(witness.verifier_key())


def test_two_different_keys_under_one_name_and_id_are_refused_but_the_same_key_twice_is_not():
    peter = Ed25519Verifier.of(PETER_VERIFIER)
    other_key = Ed25519Signer.of(SignerKey.generate("x")).verifier().public_key
    impostor = Ed25519Verifier(peter.name, peter.key_id, other_key)
    with pytest.raises(TlogInvalid, match="two different verifier keys"):
        open_note(PETER_NOTE, [peter, impostor])
    assert open_note(PETER_NOTE, [peter, Ed25519Verifier.of(PETER_VERIFIER)]).verified


def test_base64_is_read_only_in_its_canonical_spelling():
    assert b64decode("AAE=") == b"\x00\x01"
    for bad in ["AAF=", "AAE", "AA E=", "AAE=\n", "AA==AA==", "ÄAE="]:
        assert b64decode(bad) is None, bad
