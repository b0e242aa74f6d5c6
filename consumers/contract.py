"""The published event contract as files: a JSON Schema and an example for every event type and version.

`docs/schemas/<Type>/v<N>.json` is the JSON Schema of `data` for events of that type at schema version N, as
published on the events topic. That is the pydantic model minus personal fields (`ledger.events.PUBLISHED_EVENT_TYPES`).
`docs/schemas/Envelope/v1.json` is the record value around it. `docs/schemas/<Type>/v<N>.example.json` is a real
published `data`, written by the ledger in a scenario.

Files of old versions are never rewritten: the topic is replayed forever, so their examples must keep parsing
(through the upcasters) with every future version of the code. `tests/unit/test_published_contract.py` fails when:
- a model changes without a new version;
- a version has no schema file;
- an old example no longer parses.

    python -m consumers.contract --write    # after a deliberate, versioned change: adds the new files
    python -m consumers.contract --check    # what the test checks, from the command line
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

from ledger.events import PUBLISHED_EVENT_TYPES, Envelope

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "docs" / "schemas"


def schema_of(name: str, model: Any, version: int) -> dict[str, Any]:
    schema = model.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"ledger/{name}/v{version}.json",
            "x-event-type": name, "x-schema-version": version, **schema}


def current_schemas() -> dict[Path, dict[str, Any]]:
    """Every schema file the current code defines: one per event type at its current version, and the envelope."""
    files = {SCHEMA_DIR / name / f"v{cls.VERSION}.json": schema_of(name, cls, cls.VERSION)
             for name, cls in sorted(PUBLISHED_EVENT_TYPES.items())}
    files[SCHEMA_DIR / "Envelope" / f"v{Envelope.VERSION}.json"] = schema_of("Envelope", Envelope, Envelope.VERSION)
    return files


def example_events() -> dict[str, dict[str, Any]]:
    """One published `data` of every event type, from a scenario the ledger writes in memory."""
    import orjson

    from ledger.application import Ledger
    from ledger.commands import (
        ChangeRiskClass,
        ChangeWage,
        CloseBills,
        CreditYield,
        EnrollMember,
        ExitMember,
        HoldMoney,
        MatchMoney,
        MemberRow,
        PayClaim,
        PayContribution,
        ReceiveMoney,
        RefundMoney,
        RegisterEmployer,
        Reverse,
    )
    from ledger.domain import INTERNAL_EVENT_TOPICS
    from ledger.publishing.envelope import envelope
    from ledger.settings import DEVELOPMENT_NIK_HMAC_KEY

    # The examples are documentation of made-up people: their `nik_hmac` uses the public development key, so that
    # anyone can reproduce them byte for byte. Never a fund's key.
    app = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=lambda: date(2026, 11, 23),
                 nik_key=DEVELOPMENT_NIK_HMAC_KEY)
    npp, kpj = "10012345", "15000000001"
    app.execute(RegisterEmployer(npp=npp, name="PT Maju Jaya", branch="BEKASI-KOTA", kind="company",
                                 risk_class="low", registered_on=date(2015, 7, 1)))
    app.execute(ChangeRiskClass(npp=npp, risk_class="medium", effective=date(2016, 7, 1)))
    member = MemberRow(kpj=kpj, nik="3275011505900001", name="Budi Santoso", birth_date=date(1990, 5, 15),
                       wage=5_000_000)
    app.execute(EnrollMember(member=member, npp=npp, effective=date(2016, 1, 1)))
    app.execute(ChangeWage(kpj=kpj, wage=6_000_000, effective=date(2016, 6, 1)))
    late_month = 3  # March is paid late: a fine
    for month in range(1, 13):
        paid_on = date(2016 + month // 12, month % 12 + 1, 10 if month != late_month else 28)
        app.execute(PayContribution(npp=npp, month=f"2016-{month:02d}", paid_on=paid_on))
    app.execute(CreditYield(year=2016, rate_percent="7.19", credited_on=date(2017, 1, 31)))
    paid = [row["event_id"] for row in app.history(kpj=kpj) if row["type"] == "ContributionPaid"]
    app.execute(Reverse(event_id=paid[-1], reason="paid for the wrong member", reversed_on=date(2017, 1, 20)))
    app.execute(ExitMember(kpj=kpj, reason="resignation", exit_date=date(2017, 2, 1)))
    claim = app.execute(PayClaim(kpj=kpj, program="JHT", incident_date=date(2017, 2, 1), paid_on=date(2017, 3, 10),
                                 ))
    app.execute(Reverse(event_id=claim["event_id"], reason="paid twice by the branch", reversed_on=date(2017, 3, 11)))
    # Collections: a new worker's March 2024 billed at the close, paid late (a fine) by transfer, the change refunded.
    worker = MemberRow(kpj="15000000002", nik="3275014403950002", name="Siti Rahayu", birth_date=date(1995, 3, 4),
                       wage=5_000_000)
    app.execute(EnrollMember(member=worker, npp=npp, effective=date(2024, 3, 1)))
    closed = app.execute(CloseBills(month="2024-03", npps=[npp]))
    receipt = app.execute(ReceiveMoney(reference="BCA-240420-000123", code=closed["first_bills"][0]["payment_code"],
                                       amount=600_000, received_on=date(2024, 4, 20), payer_name="PT Maju Jaya"))
    app.execute(RefundMoney(npp=npp, amount=receipt["unapplied"], refunded_on=date(2024, 4, 25),
                            reason="overpaid: the change of a late payment"))
    # Money held until matched: a bank credit naming no payer the ledger knows, then matched to the employer.
    app.execute(HoldMoney(reference="BNI171003002", branch="BEKASI-KOTA", amount=3_200_000,
                          received_on=date(2017, 10, 3), description="TRANSFER IURAN OKTOBER"))
    app.execute(MatchMoney(reference="BNI171003002", npp=npp, identified_on=date(2017, 10, 5)))
    _collections_reversed(app)
    # A wage raised back into billed and settled March 2024: the next close of March bills the difference in an
    # adjustment bill, settled by a transfer as a ContributionAdjusted.
    app.execute(ChangeWage(kpj="15000000002", wage=6_000_000, effective=date(2024, 3, 1)))
    adjusted = app.execute(CloseBills(month="2024-03", npps=[npp]))
    app.execute(ReceiveMoney(reference="BCA-240510-000456", code=adjusted["first_bills"][0]["payment_code"],
                             amount=adjusted["total"] * 2, received_on=date(2024, 5, 10)))
    examples: dict[str, dict[str, Any]] = {}
    for notification in app.recorder.select_notifications(start=1, limit=1_000):
        if notification.topic not in INTERNAL_EVENT_TOPICS:
            value = orjson.loads(envelope(notification, 1)[1])
            examples.setdefault(value["type"], value["data"])
    missing = set(PUBLISHED_EVENT_TYPES) - set(examples)
    assert not missing, f"the example scenario writes no {sorted(missing)}"
    return examples


def _collections_reversed(app: Any) -> None:
    """A second employer's bill settled and the settlement reversed (SettlementReversed), money credited to it by a
    bank error returned (ReceiptReturned), and an overpayment refunded."""
    from ledger.commands import (
        CloseBills,
        EnrollMember,
        MemberRow,
        ReceiveMoney,
        RefundMoney,
        RegisterEmployer,
        Reverse,
    )
    from ledger.domain import payer_account_id

    npp = "10054321"
    app.execute(RegisterEmployer(npp=npp, name="CV Sinar", branch="BEKASI-KOTA", kind="company", risk_class="low",
                                 registered_on=date(2016, 1, 1)))
    app.execute(EnrollMember(member=MemberRow(kpj="15000000003", nik="3275014107920003", name="Siti Aminah",
                                              birth_date=date(1992, 7, 1), wage=5_000_000),
                             npp=npp, effective=date(2016, 1, 1)))
    app.execute(CloseBills(month="2017-01", npps=[npp]))  # Rp477,000, due 2017-02-15
    app.execute(ReceiveMoney(reference="BNI-170210-000017", npp=npp, amount=477_000, received_on=date(2017, 2, 10)))
    wrong = app.execute(ReceiveMoney(reference="BNI-170211-000018", npp=npp, amount=2_500_000,
                                     received_on=date(2017, 2, 11)))
    app.execute(ReceiveMoney(reference="BNI-170212-000019", npp=npp, amount=10_000, received_on=date(2017, 2, 12)))
    app.execute(Reverse(event_id=wrong["event_id"], reason="credited to the wrong account by the bank",
                        reversed_on=date(2017, 2, 13)))
    app.execute(RefundMoney(npp=npp, amount=10_000, refunded_on=date(2017, 2, 14), reason="overpaid"))
    (settled,) = app.find(payer_account_id(npp, None)).settlements
    app.execute(Reverse(event_id=settled, reason="the bank recalled the transfer", reversed_on=date(2017, 2, 20)))


def problems() -> list[str]:
    """Why the files and the code disagree; empty when they agree."""
    found = []
    for path, schema in current_schemas().items():
        if not path.exists():
            found.append(f"{path.relative_to(SCHEMA_DIR)} is missing: run `python -m consumers.contract --write`")
        elif json.loads(path.read_text(encoding="utf-8")) != schema:
            found.append(f"{path.relative_to(SCHEMA_DIR)} differs from the model: a published model changed without "
                         f"a new version. Bump its VERSION, add an upcaster from the old version, then write the files")
    found.extend(f"{name}/v{version}.{kind} is missing: every version ever published keeps its files"
                 for name, cls in PUBLISHED_EVENT_TYPES.items() for version in range(1, cls.VERSION + 1)
                 for kind in ("json", "example.json") if not (SCHEMA_DIR / name / f"v{version}.{kind}").exists())
    return found


def write() -> list[Path]:
    """Write the current version's schema and example of every type; never touch an existing older version."""
    written = []
    examples = example_events()
    for path, schema in current_schemas().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    for name, cls in PUBLISHED_EVENT_TYPES.items():
        path = SCHEMA_DIR / name / f"v{cls.VERSION}.example.json"
        if not path.exists():
            path.write_text(json.dumps(examples[name], indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            written.append(path)
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="write the current schemas and missing examples")
    parser.add_argument("--check", action="store_true", help="exit 1 if the files and the code disagree")
    args = parser.parse_args(argv)
    if args.write:
        for path in write():
            print(f"wrote {path.relative_to(SCHEMA_DIR.parents[1])}")
    found = problems()
    for problem in found:
        print(f"contract: {problem}", file=sys.stderr)
    return 1 if found and (args.check or args.write) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
