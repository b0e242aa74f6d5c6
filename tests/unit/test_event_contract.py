"""The event contract is pinned: the JSON shape of every event type is compared with a committed fixture.

Events are stored forever and read by consumers we do not deploy, so a change to a model must be deliberate: bump
its VERSION and add an upcaster from the old version in `ledger.events.UPCASTERS`. After such a deliberate change,
regenerate the fixture with

    UPDATE_CONTRACT=1 .venv/bin/python -m pytest tests/unit/test_event_contract.py

and commit `tests/unit/event_contract.json` together with the new version and its upcaster.
"""

from __future__ import annotations

import json
import os
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from ledger import events as ev
from ledger.rules import Program, RiskClass, Segment

CONTRACT_FILE = Path(__file__).with_name("event_contract.json")
UPDATE_ENV = "UPDATE_CONTRACT"
BUMP_HINT = "bump VERSION and add an upcaster in ledger.events.UPCASTERS"

KPJ = "15023456789"
NPP = "10012345"
BRANCH = "BEKASI-KOTA"
PAYMENT = "pay-2024-03-pt-maju"
PAID_ID = "0b8a1c3e-6f1d-5d4e-9a7b-2c3d4e5f6a7b.1"
CLAIM_ID = "4e9b8ab5-d626-532a-a73a-29c7d28b36f4.3"
BILL_ID = f"{NPP}/2024-03/PU/1"
PAYMENT_CODE = "11001234524031011"  # employer NPP 10012345, March 2024, PU, bill 1, Luhn check digit
REFERENCE = "BCA-240420-000123"
SHARES = {
    Program.JHT: ev.ProgramShare(employer=185_000, worker=100_000),
    Program.JKK: ev.ProgramShare(employer=27_000, worker=0),
    Program.JKM: ev.ProgramShare(employer=15_000, worker=0),
    Program.JP: ev.ProgramShare(employer=100_000, worker=50_000),
}

# The fields of one realistic instance per event type: the PU worked example of domain.md (wage Rp5,000,000, risk
# class low, March 2024) and the facts around it. Kept as field values, not instances, so that a model that no longer
# accepts its example fails one test with a message instead of the whole module.
EXAMPLE_FIELDS: dict[str, dict[str, Any]] = {
    "EmployerRegistered": dict(
        npp=NPP, name="PT Maju Jaya", branch=BRANCH, kind=ev.EmployerKind.COMPANY, risk_class=RiskClass.LOW,
        programs=[Program.JHT, Program.JKK, Program.JKM, Program.JP], labour_intensive=False,
        registered_on=date(2017, 1, 2)),
    "EmployerRiskClassChanged": dict(
        npp=NPP, risk_class=RiskClass.MEDIUM, effective=date(2024, 7, 1)),
    "WorkersJoined": dict(npp=NPP, kpjs=[KPJ, "15023456790"], effective=date(2017, 10, 1)),
    "MemberEnrolled": dict(
        kpj=KPJ, nik="3275015505900001", nik_hmac="5c1f0e0a2b7d4c3e9f8a6b5d4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a291",
        name="Siti Rahayu", birth_date=date(1990, 5, 15), birth_year=1990, segment=Segment.PU, npp=NPP,
        branch=BRANCH, wage=5_000_000, programs=[Program.JHT, Program.JKK, Program.JKM, Program.JP],
        effective=date(2017, 10, 1)),
    "MemberWageChanged": dict(kpj=KPJ, wage=5_500_000, effective=date(2025, 1, 1)),
    "MemberExited": dict(kpj=KPJ, reason=ev.ExitReason.RESIGNATION, exit_date=date(2026, 6, 30)),
    "ContributionPaid": dict(
        kpj=KPJ, npp=NPP, branch=BRANCH, segment=Segment.PU, month="2024-03", paid_on=date(2024, 4, 10),
        payer=ev.PayerRole.EMPLOYER, payment_id=PAYMENT, wage=5_000_000, shares=SHARES, jkp_from_jkk=7_000,
        jkp_from_jkm=5_000, jp_deferred=0, months_late=0, fine=0, total=477_000),
    "ContributionPaymentReceived": dict(
        payment_id=PAYMENT, npp=NPP, kpj=None, branch=BRANCH, payer=ev.PayerRole.EMPLOYER, payer_name="PT Maju Jaya",
        paid_on=date(2024, 4, 10),
        months=["2024-03"], member_count=2, line_count=2,
        program_totals={Program.JHT: 570_000, Program.JKK: 54_000, Program.JKM: 30_000, Program.JP: 300_000},
        fine=0, total=954_000),
    "YieldCredited": dict(
        kpj=KPJ, year=2020, rate=Decimal("0.0563"), balance_basis=12_345_678, amount=695_062,
        credited_on=date(2020, 12, 31)),
    "ClaimPaid": dict(
        claim_id="claim-2017-10-siti", kpj=KPJ, branch=BRANCH, program=Program.JKK, kind=ev.ClaimKind.JKK_DEATH,
        incident_date=date(2017, 9, 12), paid_on=date(2017, 10, 2), beneficiary=ev.Beneficiary.SPOUSE,
        beneficiary_name="Ahmad Rahayu",
        amount=193_795_790, statutory_amount=192_000_000),
    "ContributionReversed": dict(
        reverses=PAID_ID, kpj=KPJ, npp=NPP, segment=Segment.PU, branch=BRANCH, month="2024-03",
        reason="wage keyed wrongly: 5,000,000 not 500,000",
        shares=SHARES, fine=0, total=477_000, reversed_on=date(2024, 5, 2)),
    "ClaimReversed": dict(
        reverses=CLAIM_ID, claim_id="claim-2017-10-siti", kpj=KPJ, branch=BRANCH, program=Program.JKK,
        amount=193_795_790, reason="paid to the wrong heir", reversed_on=date(2017, 10, 9)),
    # Collections (issue 17): March 2024 closed for two members at the worked example's wage, paid late on 20 April
    # (one month late: a 2% fine), the change refunded.
    "BillClosed": dict(
        bill_id=BILL_ID, payment_code=PAYMENT_CODE, npp=NPP, kpj=None, branch=BRANCH, segment=Segment.PU,
        month="2024-03", kind=ev.BillKind.REGULAR, counts_from=date(2024, 4, 1), due_date=date(2024, 4, 15),
        closed_on=date(2024, 4, 1), member_count=2, parts=1,
        program_totals={Program.JHT: 570_000, Program.JKK: 54_000, Program.JKM: 30_000, Program.JP: 300_000},
        total=954_000),
    "BillLinesAdded": dict(
        bill_id=BILL_ID, branch=BRANCH, part=1, counts_from=date(2024, 4, 1), lines=[
            ev.BillLine(kpj=kpj, wage=5_000_000, shares=SHARES, jkp_from_jkk=7_000, jkp_from_jkm=5_000,
                        jp_deferred=0, amount=477_000) for kpj in (KPJ, "15023456790")]),
    "MoneyReceived": dict(
        reference=REFERENCE, npp=NPP, kpj=None, branch=BRANCH, payer=ev.PayerRole.EMPLOYER, payer_name="PT Maju Jaya",
        payment_code=PAYMENT_CODE, amount=1_000_000, received_on=date(2024, 4, 20)),
    "BillSettled": dict(
        bill_id=BILL_ID, npp=NPP, kpj=None, branch=BRANCH, month="2024-03", rule="oldest-bill-first-whole/1",
        settled_on=date(2024, 4, 20), months_late=1, amount=954_000, fine=19_080, total=973_080,
        references=[REFERENCE]),
    "MoneyRefunded": dict(
        refund_id="ae88e17e4d05440baa5809bab6335d1b", npp=NPP, kpj=None, branch=BRANCH, amount=26_920,
        refunded_on=date(2024, 4, 25), reason="overpaid: the change of a late payment"),
    # Reversals of collections: a settlement of the employer's March 2024 bill (two members, paid late: one month's
    # fine), and a receipt credited to the employer by a bank error.
    "SettlementReversed": dict(
        reverses="c2063ad7-f7ed-5b0d-a3f7-ac77f968567a.4", bill_id=f"{NPP}/2024-03/PU/1", npp=NPP, kpj=None,
        branch=BRANCH, month="2024-03", amount=954_000, fine=19_080, total=973_080,
        reason="the bank recalled the transfer", reversed_on=date(2024, 5, 20)),
    "ReceiptReturned": dict(
        reverses="c2063ad7-f7ed-5b0d-a3f7-ac77f968567a.5", reference="BNI-240518-000123", npp=NPP, kpj=None,
        branch=BRANCH, amount=2_500_000, reason="credited to the wrong account by the bank",
        returned_on=date(2024, 5, 21)),
    "MoneyUnidentified": dict(
        reference="BNI171003002", branch=BRANCH, amount=3_200_000, received_on=date(2017, 10, 3),
        payment_code="12000000217091011", description="TRF IURAN KODE 12000000217091011", payer_name="Budi Santoso"),
    "MoneyIdentified": dict(
        reference="BNI171003002", branch=BRANCH, npp=NPP, kpj=None, amount=3_200_000,
        identified_on=date(2017, 10, 5)),
    # A wage raised back to Rp6,000,000 from March 2024, billed in March's adjustment bill (number 2): the
    # differences of the worked example's shares, settled on 20 May, one month late (2% of 95,400).
    "ContributionAdjusted": dict(
        kpj=KPJ, npp=NPP, branch=BRANCH, segment=Segment.PU, month="2024-03", paid_on=date(2024, 5, 20),
        payer=ev.PayerRole.EMPLOYER, payment_id=f"{NPP}/2024-03/PU/2", wage=6_000_000,
        shares={Program.JHT: ev.ProgramShare(employer=37_000, worker=20_000),
                Program.JKK: ev.ProgramShare(employer=5_400, worker=0),
                Program.JKM: ev.ProgramShare(employer=3_000, worker=0),
                Program.JP: ev.ProgramShare(employer=20_000, worker=10_000)},
        jkp_from_jkk=0, jkp_from_jkm=0, jp_deferred=0, months_late=1, fine=1_908, total=97_308),
}


def build_example(type_name: str) -> ev.LedgerEvent:
    cls = ev.EVENT_TYPES[type_name]
    known = {k: v for k, v in EXAMPLE_FIELDS[type_name].items() if k in cls.model_fields}
    try:
        return cls.model_validate(known)
    except ValidationError as error:
        raise AssertionError(f"the example of {contract_key(cls)} no longer validates ({error}): a field was added "
                             f"or retyped; {BUMP_HINT}") from None


def _strip_docs(schema: Any) -> Any:
    """The JSON schema without titles and descriptions: rewording a docstring is not a contract change."""
    if isinstance(schema, dict):
        return {k: _strip_docs(v) for k, v in schema.items() if k not in ("title", "description")}
    if isinstance(schema, list):
        return [_strip_docs(v) for v in schema]
    return schema


def contract_entry(event: ev.LedgerEvent) -> dict[str, Any]:
    schema = type(event).model_json_schema()
    return {
        "example": event.model_dump(mode="json"),
        "fields": sorted(schema["properties"]),
        "required": sorted(schema.get("required", [])),
        # Types too: int -> float would dump 5000000.0, which Python's == takes for 5000000.
        "schema": _strip_docs(schema),
    }


def contract_key(cls: type[ev.LedgerEvent]) -> str:
    return f"{cls.TYPE}.v{cls.VERSION}"


def current_contract() -> dict[str, Any]:
    return {contract_key(ev.EVENT_TYPES[t]): contract_entry(build_example(t)) for t in sorted(ev.EVENT_TYPES)}


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, indent=1)


def _write_contract_if_asked() -> None:
    """Pin the current versions; the entries of older versions stay as they were, forever (stored events and
    published records of those versions are read back through the upcasters)."""
    if os.environ.get(UPDATE_ENV) == "1":
        pinned = json.loads(CONTRACT_FILE.read_text()) if CONTRACT_FILE.exists() else {}
        CONTRACT_FILE.write_text(json.dumps({**pinned, **current_contract()}, sort_keys=True, indent=2) + "\n")


_write_contract_if_asked()
PINNED: dict[str, Any] = json.loads(CONTRACT_FILE.read_text())


def test_every_event_type_has_an_example_and_a_pinned_contract():
    assert sorted(EXAMPLE_FIELDS) == sorted(ev.EVENT_TYPES), "add an example for each new event type, then pin it"
    every_version = sorted(f"{name}.v{v}" for name, cls in ev.EVENT_TYPES.items() for v in range(1, cls.VERSION + 1))
    assert sorted(PINNED) == every_version, (
        f"the set of event types or versions changed; {BUMP_HINT}, then regenerate {CONTRACT_FILE.name} "
        f"with {UPDATE_ENV}=1 (older versions keep their entries)")


@pytest.mark.parametrize("type_name", sorted(ev.EVENT_TYPES))
def test_the_json_shape_of_each_event_type_is_pinned(type_name):
    cls = ev.EVENT_TYPES[type_name]
    key = contract_key(cls)
    assert key in PINNED, f"{key} is not pinned: a new type or a new version; regenerate with {UPDATE_ENV}=1"
    pinned, now = PINNED[key], contract_entry(build_example(type_name))
    assert now["fields"] == pinned["fields"], (
        f"the fields of {key} changed from {pinned['fields']} to {now['fields']}: {BUMP_HINT}")
    assert now["required"] == pinned["required"], (
        f"the required fields of {key} changed from {pinned['required']} to {now['required']}: {BUMP_HINT}")
    # Compared as canonical text so that a retyped value (5000000 -> 5000000.0, 0.0563 -> "0.0563") shows up.
    assert canonical(now["schema"]) == canonical(pinned["schema"]), f"the JSON schema of {key} changed: {BUMP_HINT}"
    assert canonical(now["example"]) == canonical(pinned["example"]), f"the JSON of {key} changed: {BUMP_HINT}"


def test_money_is_whole_rupiah_and_rates_travel_as_strings():
    paid = PINNED["ContributionPaid.v1"]["example"]
    assert paid["total"] == 477_000 and type(paid["total"]) is int
    assert paid["shares"]["JHT"] == {"employer": 185_000, "worker": 100_000}
    assert PINNED["YieldCredited.v1"]["example"]["rate"] == "0.0563"
    assert PINNED["MemberEnrolled.v1"]["example"]["birth_date"] == "1990-05-15"


def test_every_type_has_a_version_of_at_least_one():
    for name, cls in ev.EVENT_TYPES.items():
        assert isinstance(cls.VERSION, int) and cls.VERSION >= 1, name
        assert name == cls.TYPE


def upcaster_chain_problems(event_types: dict[str, type[ev.LedgerEvent]],
                            upcasters: dict[tuple[str, int], Any]) -> list[str]:
    """What is wrong with an upcaster registry: each older version must reach the current one, step by step."""
    problems = []
    for type_name, version in sorted(upcasters):
        cls = event_types.get(type_name)
        if cls is None:
            problems.append(f"upcaster for unknown type {type_name} v{version}")
            continue
        if not 1 <= version < cls.VERSION:
            problems.append(f"upcaster {type_name} v{version} does not lead below current v{cls.VERSION}")
            continue
        missing = [v for v in range(version, cls.VERSION) if (type_name, v) not in upcasters]
        if missing:
            problems.append(f"{type_name}: chain from v{version} breaks at v{missing[0]} (current v{cls.VERSION})")
    problems.extend(f"{type_name} v{v} has no upcaster to v{v + 1}" for type_name, cls in event_types.items()
                    for v in range(1, cls.VERSION) if (type_name, v) not in upcasters)
    return problems


class _FakeV3(ev.LedgerEvent):
    TYPE: ClassVar[str] = "FakeV3"
    VERSION: ClassVar[int] = 3
    kpj: str


def test_the_chain_check_finds_broken_chains():
    types = {"FakeV3": _FakeV3}
    assert upcaster_chain_problems(types, {("FakeV3", 1): dict, ("FakeV3", 2): dict}) == []
    assert upcaster_chain_problems(types, {("FakeV3", 1): dict}) == [
        "FakeV3: chain from v1 breaks at v2 (current v3)", "FakeV3 v2 has no upcaster to v3"]
    assert upcaster_chain_problems(types, {("FakeV3", 1): dict, ("FakeV3", 2): dict, ("FakeV3", 3): dict}) == [
        "upcaster FakeV3 v3 does not lead below current v3"]
    assert upcaster_chain_problems(types, {("Gone", 1): dict, ("FakeV3", 1): dict, ("FakeV3", 2): dict}) == [
        "upcaster for unknown type Gone v1"]


def test_every_upcaster_chain_ends_at_the_current_version():
    assert upcaster_chain_problems(ev.EVENT_TYPES, {**ev.UPCASTERS, **ev.CONTEXT_UPCASTERS}) == []


@pytest.mark.parametrize("type_name", sorted(ev.EVENT_TYPES))
def test_parse_event_round_trips_each_example(type_name):
    example = build_example(type_name)
    data = json.loads(json.dumps(ev.to_json_dict(example)))  # through real JSON text, as stored and sent
    parsed = ev.parse_event(type_name, type(example).VERSION, data)
    assert parsed == example
    assert type(parsed) is type(example)
    assert ev.to_json_dict(parsed) == data


def test_parse_event_refuses_an_unknown_type():
    with pytest.raises(ev.UnknownEventType, match="unknown event type 'MemberTeleported'"):
        ev.parse_event("MemberTeleported", 1, {"kpj": KPJ})


def test_parse_event_refuses_a_version_newer_than_the_code():
    data = ev.to_json_dict(build_example("MemberWageChanged"))
    with pytest.raises(ev.UnknownEventType, match="MemberWageChanged version 2 is newer than this code knows"):
        ev.parse_event("MemberWageChanged", 2, data)


def test_parse_event_refuses_json_that_breaks_the_contract():
    data = {**ev.to_json_dict(build_example("ContributionPaid")), "total": 1}
    with pytest.raises(ValueError, match="is not the sum of shares and fine"):
        ev.parse_event("ContributionPaid", 1, data)
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        ev.parse_event("MemberExited", 1, {**ev.to_json_dict(build_example("MemberExited")), "note": "x"})


# --- an upcaster at work -----------------------------------------------------------------------------------------


class MemberWageChangedV2(ev.LedgerEvent):
    """A made-up next version: `wage` renamed `monthly_wage`, and a `source` added."""

    TYPE: ClassVar[str] = "MemberWageChanged"
    VERSION: ClassVar[int] = 2
    kpj: str
    monthly_wage: int
    source: str
    effective: date


def _wage_changed_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    data["monthly_wage"] = data.pop("wage")
    data["source"] = "unknown (recorded before v2)"
    return data


def test_a_registered_upcaster_turns_stored_v1_json_into_the_current_version(monkeypatch):
    monkeypatch.setitem(ev.EVENT_TYPES, "MemberWageChanged", MemberWageChangedV2)
    monkeypatch.setitem(ev.UPCASTERS, ("MemberWageChanged", 1), _wage_changed_v1_to_v2)
    stored_v1 = PINNED["MemberWageChanged.v1"]["example"]

    parsed = ev.parse_event("MemberWageChanged", 1, stored_v1)

    assert parsed == MemberWageChangedV2(kpj=KPJ, monthly_wage=5_500_000, source="unknown (recorded before v2)",
                                         effective=date(2025, 1, 1))
    assert ev.parse_event("MemberWageChanged", 2, ev.to_json_dict(parsed)) == parsed
    assert upcaster_chain_problems(ev.EVENT_TYPES, {**ev.UPCASTERS, **ev.CONTEXT_UPCASTERS}) == []
    assert stored_v1 == PINNED["MemberWageChanged.v1"]["example"], "an upcaster must not mutate its input"


def test_an_aggregate_stored_at_v1_is_upcast_when_loaded(monkeypatch):
    from ledger.application import Ledger
    from ledger.commands import EnrollMember, MemberRow, RegisterEmployer
    from ledger.domain import member_id
    from tests.support.scenario import TEST_NIK_KEY

    app = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=lambda: date(2026, 11, 23),
                 nik_key=TEST_NIK_KEY)
    app.execute(RegisterEmployer(npp=NPP, name="PT Maju Jaya", branch=BRANCH, kind="company", risk_class="low",
                                 registered_on=date(2017, 1, 2)))
    app.execute(EnrollMember(npp=NPP, effective=date(2017, 10, 1), member=MemberRow(
        kpj=KPJ, nik="3275015505900001", name="Siti Rahayu", birth_date=date(1990, 5, 15), wage=5_000_000)))

    class MemberEnrolledV3(ev.MemberEnrolled):
        VERSION: ClassVar[int] = 3
        nationality: str

    monkeypatch.setitem(ev.EVENT_TYPES, "MemberEnrolled", MemberEnrolledV3)
    monkeypatch.setitem(ev.UPCASTERS, ("MemberEnrolled", 2), lambda data: {**data, "nationality": "ID"})

    # Reconstructed from the stored events (an explicit version bypasses the aggregate cache), which say v2.
    member = app.repository.get(member_id(KPJ), version=1)

    (_, enrolled), = member.recorded
    assert type(enrolled) is MemberEnrolledV3
    assert enrolled.nationality == "ID" and enrolled.wage == 5_000_000
    assert member.wage_on(date(2024, 3, 31)) == 5_000_000


# --- the versions of issue 12: no names on the topic, and reversals that name their account -----------------------


def _v1(type_name: str) -> dict[str, Any]:
    return PINNED[f"{type_name}.v1"]["example"]


def test_every_older_pinned_version_parses_into_the_current_model():
    facts = ev.MemberFacts()
    facts.see("MemberEnrolled", {"kpj": KPJ, "npp": NPP, "segment": "PU"})
    for key, entry in sorted(PINNED.items()):
        name, version = key.rsplit(".v", 1)
        parsed = ev.parse_event(name, int(version), entry["example"], context=facts)
        assert type(parsed) is ev.EVENT_TYPES[name], key


def test_a_v1_payment_upcasts_its_payer_name_to_a_role_and_keeps_the_name_only_in_the_store():
    paid = ev.parse_event("ContributionPaid", 1, _v1("ContributionPaid"))
    assert paid.payer is ev.PayerRole.EMPLOYER and "PT Maju Jaya" not in json.dumps(ev.to_json_dict(paid))
    self_paid = ev.parse_event("ContributionPaid", 1, {**_v1("ContributionPaid"), "npp": None, "segment": "BPU"})
    assert self_paid.payer is ev.PayerRole.MEMBER
    receipt = ev.parse_event("ContributionPaymentReceived", 1, _v1("ContributionPaymentReceived"))
    assert (receipt.payer, receipt.payer_name) == (ev.PayerRole.EMPLOYER, "PT Maju Jaya")
    assert "payer_name" not in ev.public_data("ContributionPaymentReceived", ev.to_json_dict(receipt))
    published = ev.parse_published("ContributionPaymentReceived", 1, _v1("ContributionPaymentReceived"))
    assert "payer_name" not in published.model_dump() and published.payer is ev.PayerRole.EMPLOYER


def test_a_v1_claim_upcasts_its_beneficiary_name_to_a_relationship():
    claim = ev.parse_event("ClaimPaid", 1, _v1("ClaimPaid"))  # a JKK death benefit: paid to an heir
    assert (claim.beneficiary, claim.beneficiary_name) == (ev.Beneficiary.OTHER_HEIR, "Ahmad Rahayu (husband, heir)")
    own = ev.parse_event("ClaimPaid", 1, {**_v1("ClaimPaid"), "program": "JHT", "kind": "full"})
    assert own.beneficiary is ev.Beneficiary.SELF
    published = ev.parse_published("ClaimPaid", 1, _v1("ClaimPaid"))
    assert "beneficiary_name" not in published.model_dump()


def test_a_v1_enrollment_publishes_the_birth_year_not_the_birth_date():
    enrolled = ev.parse_event("MemberEnrolled", 1, _v1("MemberEnrolled"))
    assert (enrolled.birth_year, enrolled.birth_date) == (1990, date(1990, 5, 15))
    public = ev.public_data("MemberEnrolled", ev.to_json_dict(enrolled))
    assert {"nik", "name", "birth_date"}.isdisjoint(public) and public["birth_year"] == 1990
    # A v1 record as it was published (without NIK and name) still parses, into the published model.
    published_v1 = {k: v for k, v in _v1("MemberEnrolled").items() if k not in ("nik", "name")}
    published = ev.parse_published("MemberEnrolled", 1, published_v1)
    assert published.birth_year == 1990 and "birth_date" not in published.model_dump()
    # The relay publishes a stored v1 enrollment as stored minus v1's personal fields: its hash covers that.
    assert ev.public_data("MemberEnrolled", _v1("MemberEnrolled"), 1) == published_v1
    with pytest.raises(ValueError, match="birth_year 1991 is not the year of birth_date"):
        ev.MemberEnrolled.model_validate({**ev.to_json_dict(enrolled), "birth_year": 1991})


def test_a_v1_reversal_recovers_the_account_of_its_payment_from_the_member():
    with pytest.raises(ev.UpcastNeedsMember, match=f"member {KPJ}"):
        ev.parse_event("ContributionReversed", 1, _v1("ContributionReversed"))
    facts = ev.MemberFacts()
    facts.see("ContributionPaid", ev.to_json_dict(build_example("ContributionPaid")))
    reversed_ = ev.parse_event("ContributionReversed", 1, _v1("ContributionReversed"), context=facts)
    assert (reversed_.npp, reversed_.segment) == (NPP, Segment.PU)
    bpu = ev.MemberFacts()
    bpu.see("MemberEnrolled", {"kpj": KPJ, "npp": None, "segment": "BPU"})
    assert ev.parse_event("ContributionReversed", 1, _v1("ContributionReversed"), context=bpu).npp is None


def test_a_version_that_is_not_a_positive_integer_is_named():
    for version in (0, -1, True, "1"):
        with pytest.raises(ev.UnknownEventType, match="is not a schema version"):
            ev.parse_event("MemberExited", version, ev.to_json_dict(build_example("MemberExited")))


# --- collections (issue 17) ---------------------------------------------------------------------------------------


def test_the_collection_examples_tell_one_consistent_story():
    from ledger.billing import payment_code

    closed, lines = PINNED["BillClosed.v1"]["example"], PINNED["BillLinesAdded.v1"]["example"]
    received, settled = PINNED["MoneyReceived.v1"]["example"], PINNED["BillSettled.v1"]["example"]
    refunded = PINNED["MoneyRefunded.v1"]["example"]
    assert closed["payment_code"] == payment_code(NPP, None, "2024-03", Segment.PU, 1) == received["payment_code"]
    assert closed["total"] == sum(line["amount"] for line in lines["lines"]) == settled["amount"]
    assert closed["member_count"] == len(lines["lines"]) and closed["parts"] == lines["part"] == 1
    assert settled["total"] == settled["amount"] + settled["fine"] and settled["references"] == [received["reference"]]
    assert received["amount"] - settled["total"] == refunded["amount"]  # the change, paid back
    assert all(type(value) is int for value in (closed["total"], settled["fine"], received["amount"]))


def test_a_receipt_keeps_the_payers_name_in_the_store_only():
    receipt = build_example("MoneyReceived")
    assert receipt.payer_name == "PT Maju Jaya"
    public = ev.public_data("MoneyReceived", ev.to_json_dict(receipt))
    assert "payer_name" not in public and public["payer"] == "employer"
    assert "payer_name" not in ev.PUBLISHED_EVENT_TYPES["MoneyReceived"].model_fields
