"""Checkpoints, cosignatures and proof bundles (ledger/tlog/checkpoint.py) as C2SP's tlog-checkpoint,
tlog-cosignature and tlog-proof specify them (github.com/C2SP/C2SP, commit 5ba5ee8): the specs' examples, a round
trip of each format, the malformed texts each spec refuses, and one changed byte failing a signed one.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import TlogInvalid
from ledger.tlog import merkle
from ledger.tlog.checkpoint import (
    COSIGNATURE_SIZE,
    TIMESTAMP_MAX,
    Checkpoint,
    ConsistencyProof,
    Cosignature,
    CosignatureVerifier,
    Cosigner,
    ProofBundle,
    cosign,
    cosignature_message,
    open_checkpoint,
    sign_checkpoint,
    verify_bundle,
    verify_consistency_file,
)
from ledger.tlog.note import (
    SIGNATURE_TYPE_COSIGNATURE_V1,
    Ed25519Signer,
    SignerKey,
    parse_note,
    sign_note,
)

ORIGIN = "bpjs.example/ledger"
# tlog-checkpoint.md's and tlog-cosignature.md's example: a checkpoint signed by its log and cosigned by a witness.
SPEC_TEXT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SPEC_NOTE = (SPEC_TEXT + "\n"
             "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGz"
             "Gku9nTo+zyWE+xeMcTOAYQ8=\n"
             "\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1n"
             "PZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n").encode()

LOG_KEY = SignerKey.generate(ORIGIN)
LOG = Ed25519Signer.of(LOG_KEY)
WITNESS_KEYS = [SignerKey.generate(f"witness.example/w{i}", SIGNATURE_TYPE_COSIGNATURE_V1) for i in range(3)]
WITNESSES = [Cosigner.of(key) for key in WITNESS_KEYS]
LEAVES = [f"event {i}".encode() for i in range(37)]
TREE = merkle.Tree.of(merkle.leaf_hash(leaf) for leaf in LEAVES)


def _changed(data: bytes, position: int, change: int = 0x01) -> bytes:
    return data[:position] + bytes([data[position] ^ change]) + data[position + 1:]


# --- Checkpoints. ----------------------------------------------------------------------------------------------------

def test_the_spec_s_checkpoint_reads_and_writes_back_and_its_cosignature_carries_the_spec_s_time():
    checkpoint = Checkpoint.parse(SPEC_TEXT)
    assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
    assert checkpoint.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert checkpoint.format() == SPEC_TEXT
    note = parse_note(SPEC_NOTE)
    assert note.text == SPEC_TEXT
    log_line, witness_line = note.signatures
    assert len(log_line.signature) == 64
    # tlog-cosignature.md's signed-message example says "time 1679315147": the timestamp this cosignature carries.
    assert len(witness_line.signature) == COSIGNATURE_SIZE
    assert int.from_bytes(witness_line.signature[:8], "big") == 1679315147


def test_a_checkpoint_with_extension_lines_round_trips():
    checkpoint = Checkpoint(ORIGIN, 37, TREE.root(), ("extension one", "two \u2014 unicode"))
    assert Checkpoint.parse(checkpoint.format()) == checkpoint
    assert checkpoint.format().endswith("\nextension one\ntwo \u2014 unicode\n")
    assert Checkpoint.parse(Checkpoint(ORIGIN, 0, merkle.EMPTY_ROOT).format()).size == 0


@pytest.mark.parametrize("size", ["012", "00", "+5", "-1", " 5", "5 ", "1_000", "\u0665", "0x10", str(2**64), ""])
def test_a_tree_size_is_a_plain_decimal_without_leading_zeros(size):
    with pytest.raises(TlogInvalid):
        Checkpoint.parse(f"{ORIGIN}\n{size}\n{base64.b64encode(bytes(32)).decode()}\n")


def test_a_malformed_checkpoint_is_refused():
    root = base64.b64encode(bytes(32)).decode()
    for bad in [f"{ORIGIN}\n5\n",  # two lines
                f"\n5\n{root}\n",  # empty origin
                f"{ORIGIN}\n5\n{root}",  # no final newline
                f"{ORIGIN}\n5\n{root}\n\n",  # an empty extension line
                f"{ORIGIN}\n5\n{root}\next\n\nmore\n",
                f"{ORIGIN}\n5\n{base64.b64encode(bytes(31)).decode()}\n",  # a 31-byte root
                f"{ORIGIN}\n5\n{root[:-2]}B=\n",  # padding bits set: not the canonical spelling
                f"{ORIGIN}\n5\n{root[:-1]}\n",  # no padding
                f"{ORIGIN}\t\n5\n{root}\n"]:  # a control character
        with pytest.raises(TlogInvalid):
            Checkpoint.parse(bad)
    for bad_checkpoint in [Checkpoint("", 1, bytes(32)), Checkpoint("a\nb", 1, bytes(32)),
                           Checkpoint(ORIGIN, -1, bytes(32)), Checkpoint(ORIGIN, 2**64, bytes(32)),
                           Checkpoint(ORIGIN, 1, bytes(31)), Checkpoint(ORIGIN, 1, bytes(32), ("",))]:
        with pytest.raises(TlogInvalid):
            bad_checkpoint.format()


def test_a_signed_checkpoint_opens_only_with_the_log_s_key_and_origin():
    signed = sign_checkpoint(Checkpoint(ORIGIN, 37, TREE.root()), LOG)
    log = LOG.verifier()
    opened = open_checkpoint(signed, ORIGIN, log)
    assert opened.checkpoint == Checkpoint(ORIGIN, 37, TREE.root())
    assert opened.cosignatures == ()
    with pytest.raises(TlogInvalid, match="not of"):
        open_checkpoint(signed, "bpjs.example/other", log)
    other_log = Ed25519Signer.of(SignerKey.generate(ORIGIN))
    with pytest.raises(TlogInvalid, match="no signature by a known key"):
        open_checkpoint(signed, ORIGIN, other_log.verifier())
    # Signed by someone else but cosigned by a witness we know: still not the log's checkpoint.
    forged = cosign(sign_checkpoint(Checkpoint(ORIGIN, 37, TREE.root()), other_log), WITNESSES[0], 1_700_000_000)
    with pytest.raises(TlogInvalid, match="not signed by the log's key"):
        open_checkpoint(forged, ORIGIN, log, [WITNESSES[0].verifier()])
    # A note that is not a checkpoint, signed by the log's key.
    with pytest.raises(TlogInvalid, match="three non-empty lines"):
        open_checkpoint(sign_note("hello\n", [LOG]), ORIGIN, log)


# --- Cosignatures. ---------------------------------------------------------------------------------------------------

def test_a_cosignature_signs_the_spec_s_message_and_carries_its_timestamp():
    text = Checkpoint(ORIGIN, 37, TREE.root()).format()
    assert cosignature_message(text, 1679315147) == b"cosignature/v1\ntime 1679315147\n" + text.encode()
    line = WITNESSES[0].signature(text, 1679315147)
    assert (line.name, line.key_id) == (WITNESS_KEYS[0].name, WITNESS_KEYS[0].key_id)
    assert line.signature[:8] == (1679315147).to_bytes(8, "big")
    # The 64 bytes after the timestamp are a plain RFC 8032 signature of that message by the witness's key.
    WITNESSES[0].private_key.public_key().verify(line.signature[8:], cosignature_message(text, 1679315147))
    verifier = WITNESSES[0].verifier()
    assert verifier.verify(text.encode(), line.signature)
    assert not verifier.verify(text.encode(), (1679315148).to_bytes(8, "big") + line.signature[8:])
    assert not verifier.verify((text + "extension\n").encode(), line.signature)
    assert not verifier.verify(text.encode(), line.signature[:-1])


def test_a_witness_key_is_of_type_0x04_and_its_key_id_says_so():
    key = WITNESS_KEYS[0]
    vkey = key.verifier_key()
    assert vkey.format().split("+")[2].startswith("B")  # base64 of 0x04 || key
    assert CosignatureVerifier.of(vkey.format()).key_id == key.key_id
    log_vkey = LOG_KEY.verifier_key()
    with pytest.raises(TlogInvalid, match="type 0x04"):
        CosignatureVerifier.of(log_vkey)
    with pytest.raises(TlogInvalid, match="type 0x04"):
        Cosigner.of(LOG_KEY)


def test_cosignatures_are_counted_k_of_n_with_their_timestamps():
    signed = sign_checkpoint(Checkpoint(ORIGIN, 37, TREE.root()), LOG)
    cosigned = cosign(cosign(signed, WITNESSES[0], 1_700_000_000), WITNESSES[2], 1_700_000_002)
    witnesses = [one.verifier() for one in WITNESSES]
    opened = open_checkpoint(cosigned, ORIGIN, LOG.verifier(), witnesses, 2)
    assert opened.cosignatures == (Cosignature(WITNESS_KEYS[0].name, WITNESS_KEYS[0].key_id, 1_700_000_000),
                                   Cosignature(WITNESS_KEYS[2].name, WITNESS_KEYS[2].key_id, 1_700_000_002))
    with pytest.raises(TlogInvalid, match="2 of the 3 witnesses cosigned the checkpoint of size 37; 3 are required"):
        open_checkpoint(cosigned, ORIGIN, LOG.verifier(), witnesses, 3)
    # Witnesses the reader does not count on are ignored, whatever they signed.
    assert open_checkpoint(cosigned, ORIGIN, LOG.verifier()).cosignatures == ()
    with pytest.raises(ValueError, match="required"):
        open_checkpoint(cosigned, ORIGIN, LOG.verifier(), witnesses[:1], 2)


def test_cosigning_again_replaces_the_witness_s_earlier_cosignature():
    signed = sign_checkpoint(Checkpoint(ORIGIN, 37, TREE.root()), LOG)
    twice = cosign(cosign(signed, WITNESSES[0], 1_700_000_000), WITNESSES[0], 1_700_000_100)
    note = parse_note(twice)
    assert len(note.signatures) == 2
    opened = open_checkpoint(twice, ORIGIN, LOG.verifier(), [WITNESSES[0].verifier()], 1)
    assert opened.cosignatures[0].timestamp == 1_700_000_100


def test_a_cosigner_signs_only_checkpoints_and_times_up_to_2_63_minus_1():
    text = Checkpoint(ORIGIN, 37, TREE.root()).format()
    assert WITNESSES[0].signature(text, TIMESTAMP_MAX).signature[:8] == TIMESTAMP_MAX.to_bytes(8, "big")
    for bad in (-1, TIMESTAMP_MAX + 1):
        with pytest.raises(TlogInvalid, match="timestamp"):
            WITNESSES[0].signature(text, bad)
    with pytest.raises(TlogInvalid):
        WITNESSES[0].signature("not a checkpoint\n", 1)
    # A signature that claims a time past 2^63 - 1 is refused even if the key signed it.
    too_late = (2**63).to_bytes(8, "big")
    signed = WITNESSES[0].private_key.sign(cosignature_message(text, 2**63))
    assert not WITNESSES[0].verifier().verify(text.encode(), too_late + signed)


def test_one_changed_byte_in_a_cosigned_checkpoint_fails_it():
    checkpoint = Checkpoint(ORIGIN, 37, TREE.root(), ("an extension line",))
    cosigned = cosign(sign_checkpoint(checkpoint, LOG), WITNESSES[1], 1_700_000_000)
    witnesses = [WITNESSES[1].verifier()]
    assert open_checkpoint(cosigned, ORIGIN, LOG.verifier(), witnesses, 1).checkpoint == checkpoint
    for position in range(len(cosigned)):
        with pytest.raises(TlogInvalid):
            open_checkpoint(_changed(cosigned, position), ORIGIN, LOG.verifier(), witnesses, 1)


# --- Proof bundles. --------------------------------------------------------------------------------------------------

def _bundle(index: int, size: int = 37, extra: bytes | None = None) -> ProofBundle:
    signed = sign_checkpoint(Checkpoint(ORIGIN, size, TREE.root(size)), LOG)
    cosigned = cosign(signed, WITNESSES[0], 1_700_000_000)
    return ProofBundle(index, tuple(TREE.inclusion_proof(index, size)), cosigned, extra)


def test_a_proof_bundle_is_written_as_the_spec_shows_and_reads_back():
    bundle = _bundle(5, extra=LEAVES[5])
    data = bundle.format()
    lines = data.decode().split("\n")
    assert lines[0] == "c2sp.org/tlog-proof@v1"
    assert lines[1] == "extra " + base64.b64encode(LEAVES[5]).decode()
    assert lines[2] == "index 5"
    assert lines[3:3 + len(bundle.proof)] == [base64.b64encode(one).decode() for one in bundle.proof]
    assert lines[3 + len(bundle.proof)] == ""
    assert data.endswith(b"\n\n" + bundle.checkpoint)
    assert ProofBundle.parse(data) == bundle
    plain = _bundle(0, size=1)
    assert plain.proof == ()
    assert plain.format().startswith(b"c2sp.org/tlog-proof@v1\nindex 0\n\n" + ORIGIN.encode())
    assert ProofBundle.parse(plain.format()) == plain
    empty_extra = _bundle(3, extra=b"")
    assert b"\nextra \nindex 3\n" in empty_extra.format()
    assert ProofBundle.parse(empty_extra.format()) == empty_extra


def test_a_proof_bundle_verifies_offline_for_every_entry():
    witnesses = [WITNESSES[0].verifier()]
    for size in (1, 2, 5, 8, 37):
        for index in range(size):
            bundle = ProofBundle.parse(_bundle(index, size).format())
            opened = verify_bundle(bundle, merkle.leaf_hash(LEAVES[index]), ORIGIN, LOG.verifier(), witnesses, 1)
            assert opened.checkpoint.size == size
    bundle = _bundle(6)
    with pytest.raises(TlogInvalid, match="does not show entry 6"):
        verify_bundle(bundle, merkle.leaf_hash(LEAVES[7]), ORIGIN, LOG.verifier())
    moved = ProofBundle(7, bundle.proof, bundle.checkpoint)
    with pytest.raises(TlogInvalid, match="does not show entry 7"):
        verify_bundle(moved, merkle.leaf_hash(LEAVES[6]), ORIGIN, LOG.verifier())
    at_another_size = ProofBundle(6, bundle.proof, _bundle(6, size=36).checkpoint)
    with pytest.raises(TlogInvalid, match="does not show"):
        verify_bundle(at_another_size, merkle.leaf_hash(LEAVES[6]), ORIGIN, LOG.verifier())


def test_one_changed_byte_anywhere_in_a_proof_bundle_fails_it():
    witnesses = [WITNESSES[0].verifier()]
    data = _bundle(22, extra=LEAVES[22]).format()

    def check(candidate: bytes) -> None:
        bundle = ProofBundle.parse(candidate)
        assert bundle.extra is not None
        # Step 1 is the reader's: here the leaf is the extra data, so its hash is computed from what the bundle says.
        verify_bundle(bundle, merkle.leaf_hash(bundle.extra), ORIGIN, LOG.verifier(), witnesses, 1)

    check(data)
    for position in range(len(data)):
        for change in (0x01, 0x10):
            with pytest.raises(TlogInvalid):
                check(_changed(data, position, change))


def test_the_malformed_bundles_go_s_reader_refuses_are_refused_and_more():
    good = _bundle(5).format()
    head, checkpoint = good.split(b"\n\n", 1)
    hash_line = base64.b64encode(bytes(32))
    for bad in [b"wrong-header\nindex 0\n\n" + checkpoint,
                b"c2sp.org/tlog-proof@v1\nextra !!notbase64!!\nindex 0\n\n" + checkpoint,
                b"c2sp.org/tlog-proof@v1\n\n\n" + checkpoint,  # no index
                b"c2sp.org/tlog-proof@v1\nindex notanumber\n\n" + checkpoint,
                b"c2sp.org/tlog-proof@v1\nindex -5\n\n" + checkpoint,
                b"c2sp.org/tlog-proof@v1\nindex 0\n!!notbase64!!\n\n" + checkpoint,
                b"c2sp.org/tlog-proof@v1\nindex 0\n" + base64.b64encode(bytes(64)) + b"\n\n" + checkpoint,
                b"c2sp.org/tlog-proof@v1\nindex 05\n\n" + checkpoint,  # a leading zero
                b"c2sp.org/tlog-proof@v1\nindex 0\n" + b"\n".join([hash_line] * 65) + b"\n\n" + checkpoint,
                b"c2sp.org/tlog-proof@v1\nindex 0\n" + hash_line,  # no checkpoint
                head + b"\n\n" + checkpoint[:-1],  # the checkpoint's last newline
                head + b"\n\nnot a checkpoint\n\n\xe2\x80\x94 x AAAA\n",
                b"c2sp.org/tlog-proof@v1\nindex 0\nextra AAAA\n\n" + checkpoint,  # extra only before the index
                b"c2sp.org/tlog-proof@v1\nextra AAAA\nextra AAAA\nindex 0\n\n" + checkpoint,
                head + b"\n\xc3\xa9\n\n" + checkpoint]:  # not ASCII
        with pytest.raises(TlogInvalid):
            ProofBundle.parse(bad)
    for bad_bundle in [ProofBundle(-1, (), checkpoint), ProofBundle(0, (bytes(31),), checkpoint),
                       ProofBundle(0, (), b"not a note\n")]:
        with pytest.raises(TlogInvalid):
            bad_bundle.format()


# --- Round trips of any well-formed value. ---------------------------------------------------------------------------

_LINE = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(origin=_LINE, size=st.integers(min_value=0, max_value=2**64 - 1), root=st.binary(min_size=32, max_size=32),
       extensions=st.lists(_LINE, max_size=3))
def test_any_checkpoint_round_trips_and_its_signed_note_opens(origin, size, root, extensions):
    checkpoint = Checkpoint(origin, size, root, tuple(extensions))
    assert Checkpoint.parse(checkpoint.format()) == checkpoint
    signed = cosign(sign_checkpoint(checkpoint, LOG), WITNESSES[0], size % 2**63)
    opened = open_checkpoint(signed, origin, LOG.verifier(), [WITNESSES[0].verifier()], 1)
    assert opened.checkpoint == checkpoint
    assert opened.cosignatures[0].timestamp == size % 2**63


@settings(max_examples=100, deadline=None)
@given(index=st.integers(min_value=0, max_value=2**64 - 1), proof=st.lists(st.binary(min_size=32, max_size=32),
       max_size=64), extra=st.none() | st.binary(max_size=100))
def test_any_proof_bundle_round_trips(index, proof, extra):
    bundle = ProofBundle(index, tuple(proof), _bundle(0).checkpoint, extra)
    assert ProofBundle.parse(bundle.format()) == bundle


# --- Consistency proofs between two checkpoints (bpjs-ledger/consistency-proof@v1). --------------------------------

def _consistency(old_size: int, new_size: int, cosigned: bool = True) -> ConsistencyProof:
    def note(size: int) -> bytes:
        signed = sign_checkpoint(Checkpoint(ORIGIN, size, TREE.root(size)), LOG)
        return cosign(signed, WITNESSES[0], 1_700_000_000) if cosigned else signed

    return ConsistencyProof(note(old_size), note(new_size), tuple(TREE.consistency_proof(old_size, new_size)))


def test_a_consistency_proof_is_written_with_both_notes_delimited_by_length_and_reads_back():
    proof = _consistency(5, 37)
    data = proof.format()
    lines = data.split(b"\n\n", 1)[0].decode("ascii").split("\n")
    assert lines[:3] == ["bpjs-ledger/consistency-proof@v1", f"old {len(proof.old)}", f"new {len(proof.new)}"]
    assert lines[3:] == [base64.b64encode(one).decode() for one in proof.proof]
    assert data.endswith(b"\n\n" + proof.old + proof.new)
    assert ConsistencyProof.parse(data) == proof
    old, new = verify_consistency_file(ConsistencyProof.parse(data), ORIGIN, LOG.verifier(),
                                       [WITNESSES[0].verifier()], 1)
    assert (old.checkpoint.size, new.checkpoint.size) == (5, 37)
    for old_size, new_size in ((1, 2), (1, 37), (4, 8), (7, 8), (36, 37)):
        verify_consistency_file(_consistency(old_size, new_size), ORIGIN, LOG.verifier())


def test_a_consistency_proof_between_trees_that_do_not_extend_each_other_fails():
    proof = _consistency(5, 37)
    with pytest.raises(TlogInvalid, match="prefix"):
        verify_consistency_file(ConsistencyProof(proof.old, proof.new, proof.proof[1:]), ORIGIN, LOG.verifier())
    other = merkle.Tree.of(merkle.leaf_hash(b"not " + leaf) for leaf in LEAVES)
    forked = sign_checkpoint(Checkpoint(ORIGIN, 5, other.root(5)), LOG)
    with pytest.raises(TlogInvalid, match="prefix"):
        verify_consistency_file(ConsistencyProof(forked, proof.new, proof.proof), ORIGIN, LOG.verifier())
    with pytest.raises(TlogInvalid, match="below"):
        verify_consistency_file(ConsistencyProof(proof.new, proof.old, proof.proof), ORIGIN, LOG.verifier())
    stranger = Ed25519Signer.of(SignerKey.generate(ORIGIN))
    unsigned = sign_checkpoint(Checkpoint(ORIGIN, 5, TREE.root(5)), stranger)
    with pytest.raises(TlogInvalid, match="no signature by a known key"):
        verify_consistency_file(ConsistencyProof(unsigned, proof.new, proof.proof), ORIGIN, LOG.verifier())


def test_one_changed_byte_anywhere_in_a_consistency_proof_fails_it():
    witnesses = [WITNESSES[0].verifier()]
    data = _consistency(13, 37).format()

    def check(candidate: bytes) -> None:
        verify_consistency_file(ConsistencyProof.parse(candidate), ORIGIN, LOG.verifier(), witnesses, 1)

    check(data)
    for position in range(len(data)):
        with pytest.raises(TlogInvalid):
            check(_changed(data, position))
    for cut in (data[:-1], data + b"\n", data.replace(b"\n\n", b"\n\n\n", 1)):
        with pytest.raises(TlogInvalid):
            check(cut)


def test_a_malformed_consistency_proof_is_refused():
    good = _consistency(5, 37, cosigned=False)
    data = good.format()
    head, notes = data.split(b"\n\n", 1)
    bad = [b"", b"bpjs-ledger/consistency-proof@v2" + data[32:], data.replace(b"\nold ", b"\nold 0", 1),
           data.replace(b"\nold ", b"\nold +", 1), head + b"\n\n" + good.new + good.old,
           head.replace(f"new {len(good.new)}".encode(), f"new {len(good.new) + 1}".encode()) + b"\n\n" + notes + b"x",
           head + b"\nAAAA\n\n" + notes, head + b"\n" + base64.b64encode(bytes(32)) + b"=\n\n" + notes,
           head.replace(b"\n", b"\r\n") + b"\n\n" + notes]
    for one in bad:
        with pytest.raises(TlogInvalid):
            ConsistencyProof.parse(one)
