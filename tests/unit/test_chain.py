"""Tamper evidence, checked without a broker: canonical JSON, hash chains, and what is published of personal data."""

from __future__ import annotations

import json
from datetime import date

from ledger import events as ev
from ledger.application import Ledger
from ledger.commands import EnrollMember, MemberRow, RegisterEmployer


def test_canonical_json_is_the_standard_librarys_sorted_compact_utf8_form():
    value = {"b": [1, 2, {"z": None, "a": True}], "a": "Siti Rahayu — Bekasi", "n": -42, "d": "2024-03-01"}
    assert ev.canonical_json(value) == json.dumps(value, sort_keys=True, separators=(",", ":"),
                                                  ensure_ascii=False).encode()


def test_a_chain_hash_changes_with_any_part_of_the_event():
    base = dict(aggregate_id="a", aggregate_version=2, event_type="ContributionPaid", version=1,
                effective_date="2024-04-10", branch="BEKASI-KOTA", data={"total": 477_000})
    digest = ev.chain_hash("0" * 64, **base)
    assert len(digest) == 64
    assert ev.chain_hash("1" * 64, **base) != digest
    for field, other in [("aggregate_version", 3), ("branch", "BEKASI-KAB"), ("data", {"total": 477_001}),
                         ("effective_date", "2024-04-11"), ("aggregate_id", "b")]:
        assert ev.chain_hash("0" * 64, **{**base, field: other}) != digest, field


def test_each_event_of_an_aggregate_chains_to_the_previous_and_personal_data_is_not_in_the_public_part():
    app = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=lambda: date(2026, 11, 23),
                 nik_key=b"test-key")
    app.execute(RegisterEmployer.build(npp="12345678", name="PT Maju", branch="BEKASI-KOTA", kind="company",
                                       risk_class="low", registered_on=date(2023, 1, 1)))
    row = MemberRow(kpj="12345678901", nik="3275015505900001", name="Siti", birth_date=date(1990, 5, 15),
                    wage=5_000_000)
    app.execute(EnrollMember.build(member=row, npp="12345678", effective=date(2024, 1, 1)))

    employer_events = list(app.events.get(app.employer("12345678").id))
    first, second = (e.meta for e in employer_events)
    assert first["prev_hash"] == ev.GENESIS_HASH and second["prev_hash"] == first["hash"]
    assert [e.schema_type for e in employer_events] == ["EmployerRegistered", "WorkersJoined"]

    (enrolled,) = app.events.get(app.member("12345678901").id)
    assert enrolled.data["nik"] == "3275015505900001" and enrolled.data["name"] == "Siti"  # the system of record
    public = ev.public_data("MemberEnrolled", enrolled.data)
    assert {"nik", "name", "birth_date"}.isdisjoint(public) and public["birth_year"] == 1990
    assert public["nik_hmac"] == app.nik_hmac("3275015505900001") != Ledger(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, nik_key=b"another-key").nik_hmac("3275015505900001")
    assert enrolled.meta["hash"] == ev.chain_hash(
        ev.GENESIS_HASH, aggregate_id=str(enrolled.originator_id), aggregate_version=1, event_type="MemberEnrolled",
        version=2, effective_date="2024-01-01", branch="BEKASI-KOTA", data=public)
