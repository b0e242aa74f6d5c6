"""The published contract in docs/schemas: it matches the models, changes only with a new version, and every example
of every version ever published still parses with the current code."""

from __future__ import annotations

import json

import pytest
from pydantic import Field, create_model

from consumers import contract
from ledger import events
from ledger.events import PUBLISHED_EVENT_TYPES, ClaimReversed, parse_published


def test_the_schema_files_match_the_models() -> None:
    assert contract.problems() == []
    assert {p.parent.name for p in contract.SCHEMA_DIR.glob("*/v*.json")} == set(PUBLISHED_EVENT_TYPES) | {"Envelope"}


def test_every_published_example_of_every_version_parses_into_the_current_model() -> None:
    # Reversals last: an old one is upcast with the facts of its member's payment, which a reader has seen first.
    examples = sorted(contract.SCHEMA_DIR.glob("*/v*.example.json"),
                      key=lambda path: (path.parent.name == "ContributionReversed", str(path)))
    assert len(examples) >= len(PUBLISHED_EVENT_TYPES)
    facts = events.MemberFacts()
    for path in examples:
        name, version = path.parent.name, int(path.name.split(".")[0][1:])
        data = json.loads(path.read_text(encoding="utf-8"))
        event = parse_published(name, version, data, context=facts)
        facts.see(name, event.model_dump(mode="json"))
        assert isinstance(event, PUBLISHED_EVENT_TYPES[name])
        if version == PUBLISHED_EVENT_TYPES[name].VERSION:  # the current version round-trips exactly
            assert event.model_dump(mode="json") == data, path


def test_published_events_have_no_personal_data() -> None:
    fields = set(PUBLISHED_EVENT_TYPES["MemberEnrolled"].model_fields)
    assert {"nik", "name", "birth_date"}.isdisjoint(fields) and {"nik_hmac", "birth_year"} <= fields
    schema = json.loads((contract.SCHEMA_DIR / "MemberEnrolled" / "v2.json").read_text(encoding="utf-8"))
    assert {"nik", "name", "birth_date"}.isdisjoint(schema["properties"])
    for name, personal in (("ContributionPaymentReceived", "payer_name"), ("ClaimPaid", "beneficiary_name")):
        assert personal not in PUBLISHED_EVENT_TYPES[name].model_fields
        schema = json.loads((contract.SCHEMA_DIR / name / "v2.json").read_text(encoding="utf-8"))
        assert personal not in schema["properties"], name
    assert "payer_name" not in PUBLISHED_EVENT_TYPES["MoneyReceived"].model_fields
    receipt = json.loads((contract.SCHEMA_DIR / "MoneyReceived" / "v1.json").read_text(encoding="utf-8"))
    example = json.loads((contract.SCHEMA_DIR / "MoneyReceived" / "v1.example.json").read_text(encoding="utf-8"))
    assert "payer_name" not in receipt["properties"] and "payer_name" not in example
    # What stands in for a name is a role or a relationship: an enumeration, so no free text can carry one.
    paid = json.loads((contract.SCHEMA_DIR / "ContributionPaid" / "v2.json").read_text(encoding="utf-8"))
    assert paid["$defs"]["PayerRole"]["enum"] == ["employer", "member", "institution"]
    claim = json.loads((contract.SCHEMA_DIR / "ClaimPaid" / "v2.json").read_text(encoding="utf-8"))
    assert claim["$defs"]["Beneficiary"]["enum"] == ["self", "spouse", "child", "parent", "other-heir",
                                                     "care-provider"]


def changed_claim_reversed(version: int) -> type:
    """ClaimReversed with one more field, as a careless (version unchanged) or deliberate (version bumped) change."""
    model = create_model("ClaimReversed", __base__=ClaimReversed,
                         beneficiary_relation=(str, Field(default="unknown", description="who the heir is")))
    model.VERSION = version
    return model


def test_a_model_changed_without_a_new_version_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PUBLISHED_EVENT_TYPES, "ClaimReversed", changed_claim_reversed(version=1))
    [problem] = contract.problems()
    assert problem.startswith("ClaimReversed/v1.json differs from the model: a published model changed without a new "
                              "version")


def test_a_new_version_needs_its_files_and_an_upcaster_and_old_events_still_parse(
        monkeypatch: pytest.MonkeyPatch) -> None:
    v2 = changed_claim_reversed(version=2)
    monkeypatch.setitem(PUBLISHED_EVENT_TYPES, "ClaimReversed", v2)
    assert "ClaimReversed/v2.json is missing: run `python -m consumers.contract --write`" in contract.problems()
    assert any(p.startswith("ClaimReversed/v2.example.json is missing") for p in contract.problems())

    v1 = json.loads((contract.SCHEMA_DIR / "ClaimReversed" / "v1.example.json").read_text(encoding="utf-8"))
    with pytest.raises(KeyError):  # no upcaster registered yet: an old event cannot be read
        parse_published("ClaimReversed", 1, v1)
    monkeypatch.setitem(events.UPCASTERS, ("ClaimReversed", 1),
                        lambda data: {**data, "beneficiary_relation": "unknown"})
    event = parse_published("ClaimReversed", 1, v1)
    assert isinstance(event, v2) and event.beneficiary_relation == "unknown" and event.amount == v1["amount"]
    with pytest.raises(events.UnknownEventType, match="version 3 is newer than this code knows"):
        parse_published("ClaimReversed", 3, v1)
