"""Bank statements through the whole system, on the real broker and PostgreSQL: a statement imported (credits
matched to payers, held until matched, a duplicate, a debit skipped), held money matched by a clerk, then relayed with
signed checkpoints, verified and reconciled by the auditor's tools, projected and recounted. The bank's text and the
sender's name of held money are personal data: they reach neither the topic nor the broker's log segments.

The story: employer 10012345 with two PU workers from March 2024, its March bill closed (due 15 April). The statement
of 10 April pays the bill by its payment code, holds a transfer that names an unknown NPP and a cash deposit naming no
one (whose text names the depositor), repeats the first credit and lists the bank's fee. The clerk matches the
unknown NPP's transfer to the employer on 2 May.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from ledger import statements
from ledger.application import Ledger
from ledger.commands import CloseBills, EnrollMembers, MatchMoney, RegisterEmployer
from ledger.events import PUBLISHED_EVENT_TYPES
from ledger.publishing import kafka_client
from ledger.publishing.relay import Relay
from ledger.settings import Settings
from projections import runner
from projections.catalog import PROJECTIONS
from tests.support.cli_runner import Cli
from tests.support.kafka_roles import AUDITOR, RELAY, KafkaRoles
from tests.support.kafka_roles import PROJECTIONS as PROJECTIONS_ROLE
from tests.support.relayed import postgres_store
from tests.support.scenario import row
from tests.support.signing import log_signer, log_verifier_key

pytestmark = pytest.mark.integration

CLOCK = date(2026, 11, 23)
NPP, BRANCH = "10012345", "BEKASI-KOTA"
WORKERS = ["15000000301", "15000000302"]
DEPOSITOR = "Siti Rahayu"  # named in a held credit's text and as its sender: personal, never published
HEADER = "reference,received_on,amount,payment_code,npp,kpj,payer_name,description"


def write_statement_story(app: Ledger, folder: Path) -> dict[str, Any]:
    app.execute(RegisterEmployer(npp=NPP, name="PT Maju Jaya", branch=BRANCH, kind="company", risk_class="low",
                                 registered_on=date(2023, 12, 1)))
    app.execute(EnrollMembers(npp=NPP, effective=date(2024, 3, 1),
                              members=[row(kpj, 5_000_000, serial=1 + n) for n, kpj in enumerate(WORKERS)]))
    [bill] = app.execute(CloseBills(month="2024-03", npps=[NPP]))["first_bills"]
    path = folder / "statement.csv"
    path.write_text("\r\n".join([
        HEADER,
        f"BNI-240410-01,2024-04-10,{bill['total']},{bill['payment_code']},,,PT Maju Jaya,IURAN MARET",
        "BNI-240410-02,2024-04-10,250000,,99999999,,,TRANSFER IURAN",
        f"BNI-240410-03,2024-04-10,100000,,,,{DEPOSITOR},SETORAN TUNAI {DEPOSITOR.upper()}",
        f"BNI-240410-01,2024-04-10,{bill['total']},{bill['payment_code']},,,PT Maju Jaya,IURAN MARET"]) + "\r\n",
        encoding="utf-8")
    rows = import_file(app, path)
    matched = app.execute(MatchMoney(reference="BNI-240410-02", npp=NPP, identified_on=date(2024, 5, 2)))
    return {"bill": bill, "path": path, "rows": rows, "matched": matched}


def import_file(app: Ledger, path: Path) -> list[dict[str, Any]]:
    lines = statements.read_statement(path, None, app.clock())
    return [outcome.as_dict() for outcome in statements.run_import(app, statements.plan_import(app, lines, BRANCH))]


@pytest.fixture(scope="module")
def imported(tmp_path_factory, settings: Settings, kafka_roles: KafkaRoles) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("statements")
    prefix = f"test-statements-{uuid.uuid4().hex[:10]}"
    base = kafka_roles.settings(PROJECTIONS_ROLE, settings.model_copy(update={
        "sqlite_path": root / "ledger.db", "kafka_topic_prefix": prefix, "projection_sqlite_path": root / "views.db"}))
    app = Ledger(env=base.eventsourcing_env(), clock=lambda: CLOCK, nik_key=base.nik_hmac_key_bytes())
    story = write_statement_story(app, root)
    topics = kafka_roles.provision(prefix, partitions=3)
    relay = Relay(app.recorder, kafka_roles.connection(RELAY), topics, signer=log_signer(),
                  transactional_id=f"relay-{prefix}", batch_max=500)
    published = relay.run()
    relay.close()
    records = list(kafka_client.read_to_end(kafka_roles.connection(AUDITOR), topics.events))
    cli = Cli(env={**os.environ, "LEDGER_SQLITE_PATH": str(base.sqlite_path),
                   "LEDGER_PROJECTION_SQLITE_PATH": str(base.projection_sqlite_path),
                   "LEDGER_KAFKA_TOPIC_PREFIX": prefix, "LEDGER_RELAY_TRANSACTIONAL_ID": f"relay-{prefix}"},
              folder=root, kafka=kafka_roles)
    return {"app": app, "settings": base, "published": published, "records": records,
            "envelopes": [orjson.loads(r.value) for r in records], "cli": cli, **story}


def test_the_import_matches_holds_and_repeats_and_the_clerk_matches_held_money(imported) -> None:
    assert [(r["line"], r["status"]) for r in imported["rows"]] == [(2, "matched"), (3, "held"), (4, "held"),
                                                                     (5, "duplicate")]
    assert imported["rows"][0]["bills_settled"] == 1
    assert imported["matched"]["received_on"] == "2024-04-10" and imported["matched"]["unapplied"] == 250_000
    held = imported["cli"].json("payment", "unmatched", "--branch", BRANCH)
    assert [(h["reference"], h["amount"]) for h in held] == [("BNI-240410-03", 100_000)]


def test_held_money_is_published_without_the_banks_text_or_the_senders_name(imported) -> None:
    envelopes, app = imported["envelopes"], imported["app"]
    assert imported["published"] == len(envelopes) == sum(1 for _ in app.stored_contract_notifications())
    types = Counter(env["type"] for env in envelopes)
    assert (types["MoneyUnidentified"], types["MoneyIdentified"], types["MoneyReceived"]) == (2, 1, 2)
    for env in envelopes:
        PUBLISHED_EVENT_TYPES[env["type"]].model_validate(env["data"])
    unidentified = [env["data"] for env in envelopes if env["type"] == "MoneyUnidentified"]
    assert all("description" not in data and "payer_name" not in data for data in unidentified)
    # Not in any record's bytes either (keys and headers included).
    for record in imported["records"]:
        assert DEPOSITOR.encode() not in record.value and DEPOSITOR.upper().encode() not in record.value
    # The match: MoneyIdentified on the held money, then MoneyReceived of the same reference on the payer's account,
    # counting from the day the money reached the bank.
    [identified] = [env for env in envelopes if env["type"] == "MoneyIdentified"]
    received = {env["data"]["reference"]: env for env in envelopes if env["type"] == "MoneyReceived"}
    assert identified["data"]["npp"] == NPP and identified["effective_date"] == "2024-05-02"
    assert received["BNI-240410-02"]["effective_date"] == "2024-04-10"
    assert identified["position"] < received["BNI-240410-02"]["position"]


def test_the_auditor_verifies_reconciles_and_recounts(imported) -> None:
    cli: Cli = imported["cli"]
    events = len(imported["envelopes"])
    verified = cli.json("audit", "verify", "--key", log_verifier_key())
    assert verified["ok"] and verified["events"] == events, verified
    assert cli.json("audit", "reconcile")["ok"]
    assert runner.run(imported["settings"], list(PROJECTIONS), follow=False) == dict.fromkeys(PROJECTIONS, events)
    report = cli.json("audit", "as-of", CLOCK.isoformat())
    assert report["ok"] and report["differences_found"] == 0, report
    # Held money in the branch's figures, through the real relay: on 10 April both credits held (BNI-240410-02 is
    # matched on 2 May, and its receipt, dated 10 April, is in received too); from 2 May the cash deposit only.
    total = imported["bill"]["total"]
    for as_of, received, held, count, matched_later in (("2024-04-09", 0, 0, 0, 0),
                                                         ("2024-04-10", total + 250_000, 350_000, 2, 250_000),
                                                         ("2024-05-02", total + 250_000, 100_000, 1, 0)):
        figures = cli.json("report", "branch", BRANCH, "--as-of", as_of)["collections"]
        assert (figures["received"], figures["held"], figures["held_count"], figures["held_matched_later"],
                figures["paid_without_bill"]) == (received, held, count, matched_later, 0), as_of
        assert cli.json("audit", "as-of", as_of)["differences_found"] == 0, as_of
    printed = cli("report", "branch", BRANCH, "--as-of", "2024-04-10").stdout
    assert "  held until matched: Rp350,000 in 2 credit(s), Rp250,000 of it matched since" in printed
    assert DEPOSITOR not in printed and DEPOSITOR.upper() not in printed


def test_on_postgresql_the_same_statement_twice_records_nothing_twice(imported, postgres_settings, settings: Settings,
                                                                      tmp_path: Path) -> None:
    with postgres_store(postgres_settings) as env:
        opened = [Ledger(env=dict(env), clock=lambda: CLOCK, nik_key=settings.nik_hmac_key_bytes()) for _ in range(2)]
        try:
            first, restarted = opened
            story = write_statement_story(first, tmp_path)
            assert story["rows"] == imported["rows"]
            count = sum(1 for _ in first.stored_contract_notifications())
            again = import_file(restarted, story["path"])  # another process, the same file
            assert [r["status"] for r in again] == ["duplicate"] * 4
            assert sum(1 for _ in restarted.stored_contract_notifications()) == count
            assert [h["reference"] for h in statements.unmatched(restarted, BRANCH)] == ["BNI-240410-03"]
        finally:
            for app in opened:
                app.close()
