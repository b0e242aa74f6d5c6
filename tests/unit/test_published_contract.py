"""The published contract in docs/schemas: it matches the models, changes only with a new version, and every example
of every version ever published still parses with the current code."""

from __future__ import annotations

import json

import pytest
from pydantic import Field, create_model

from consumers import contract
from ledger import events
from ledger.events import PUBLISHED_EVENT_TYPES, ClaimPaid, parse_published


def test_the_schema_files_match_the_models() -> None:
    assert contract.problems() == []
    assert {p.parent.name for p in contract.SCHEMA_DIR.glob("*/v*.json")} == set(PUBLISHED_EVENT_TYPES) | {"Envelope"}


def test_every_published_example_of_every_version_parses_into_the_current_model() -> None:
    examples = sorted(contract.SCHEMA_DIR.glob("*/v*.example.json"))
    assert len(examples) >= len(PUBLISHED_EVENT_TYPES)
    for path in examples:
        name, version = path.parent.name, int(path.name.split(".")[0][1:])
        data = json.loads(path.read_text(encoding="utf-8"))
        event = parse_published(name, version, data)
        assert isinstance(event, PUBLISHED_EVENT_TYPES[name])
        if version == PUBLISHED_EVENT_TYPES[name].VERSION:  # the current version round-trips exactly
            assert event.model_dump(mode="json") == data, path


def test_published_member_enrollment_has_no_personal_data() -> None:
    fields = set(PUBLISHED_EVENT_TYPES["MemberEnrolled"].model_fields)
    assert {"nik", "name"}.isdisjoint(fields) and "nik_hmac" in fields
    schema = json.loads((contract.SCHEMA_DIR / "MemberEnrolled" / "v1.json").read_text(encoding="utf-8"))
    assert {"nik", "name"}.isdisjoint(schema["properties"])


def changed_claim_paid(version: int) -> type:
    """ClaimPaid with one more field, as a careless (version unchanged) or deliberate (version bumped) change."""
    model = create_model("ClaimPaid", __base__=ClaimPaid,
                         beneficiary_relation=(str, Field(default="unknown", description="who the heir is")))
    model.VERSION = version
    return model


def test_a_model_changed_without_a_new_version_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PUBLISHED_EVENT_TYPES, "ClaimPaid", changed_claim_paid(version=1))
    [problem] = contract.problems()
    assert problem.startswith("ClaimPaid/v1.json differs from the model: a published model changed without a new "
                              "version")


def test_a_new_version_needs_its_files_and_an_upcaster_and_old_events_still_parse(
        monkeypatch: pytest.MonkeyPatch) -> None:
    v2 = changed_claim_paid(version=2)
    monkeypatch.setitem(PUBLISHED_EVENT_TYPES, "ClaimPaid", v2)
    assert "ClaimPaid/v2.json is missing: run `python -m consumers.contract --write`" in contract.problems()
    assert any(p.startswith("ClaimPaid/v2.example.json is missing") for p in contract.problems())

    v1 = json.loads((contract.SCHEMA_DIR / "ClaimPaid" / "v1.example.json").read_text(encoding="utf-8"))
    with pytest.raises(KeyError):  # no upcaster registered yet: an old event cannot be read
        parse_published("ClaimPaid", 1, v1)
    monkeypatch.setitem(events.UPCASTERS, ("ClaimPaid", 1), lambda data: {**data, "beneficiary_relation": "unknown"})
    event = parse_published("ClaimPaid", 1, v1)
    assert isinstance(event, v2) and event.beneficiary_relation == "unknown" and event.amount == v1["amount"]
    with pytest.raises(events.UnknownEventType, match="version 3 is newer than this code knows"):
        parse_published("ClaimPaid", 3, v1)
