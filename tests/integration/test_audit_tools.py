"""The auditor's tools against the real broker: `ledger audit history`, `as-of`, `export` and `verify-export`.

Two generated branches (with a contribution and a claim reversed afterwards) are written, relayed to topics of this
module's own and projected. The tools' answers are checked against the envelopes read back from Kafka, against the
write side, and against projections tampered with on purpose; bundles are checked after a byte is changed or a file
is deleted. At least one case of each command runs through the real CLI in a subprocess. The tools read as the
auditor's principal, the projections they are checked against are built as the projections'.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import uuid
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from ledger.application import Ledger
from ledger.audit.export import export_topic, verify_bundle
from ledger.audit.history import Subject, history_topic
from ledger.audit.recount import Difference, Recount, as_of_topic
from ledger.commands import Reverse
from ledger.errors import ExportRefused
from ledger.generator import BranchPlan, generate_branch
from ledger.publishing import kafka_client
from ledger.publishing.relay import Relay
from ledger.settings import Settings
from projections import queries, runner
from projections.catalog import PROJECTIONS
from projections.store import ViewStore
from tests.support.cli_runner import Cli
from tests.support.kafka_roles import AUDITOR, RELAY, KafkaRoles
from tests.support.kafka_roles import PROJECTIONS as PROJECTIONS_ROLE
from tests.support.signing import log_signer

pytestmark = pytest.mark.integration

BEKASI = BranchPlan(branch="BEKASI-KOTA", employers=4, members=150, bpu_members=12, first_month="2016-11", months=6,
                    seed=5)
BOGOR = BranchPlan(branch="BOGOR", employers=3, members=60, bpu_members=8, first_month="2017-02", months=4, seed=9,
                   first_npp=30_000_001, first_kpj=17_200_000_001)
AS_OF_DATES = (date(2016, 12, 31), date(2017, 2, 14), date(2017, 3, 16), date(2017, 5, 31), date(2026, 1, 1))
CLOCK = date(2026, 11, 23)


def by_date_then_position(envelopes: list[dict[str, Any]]) -> list[str]:
    return [e["event_id"] for e in sorted(envelopes, key=lambda e: (e["effective_date"], e["position"]))]


@pytest.fixture(scope="module")
def audited(tmp_path_factory, settings: Settings, kafka_roles: KafkaRoles) -> dict[str, Any]:
    """Two branches' history with reversals, relayed to Kafka and projected into a view database of its own.
    `settings` connect as the projections; `auditor` is the auditor's connection, `cli` runs as the auditor."""
    root = tmp_path_factory.mktemp("audit-tools")
    unique = uuid.uuid4().hex[:10]
    prefix = f"test-audit-{unique}"
    base = kafka_roles.settings(PROJECTIONS_ROLE, settings.model_copy(update={
        "sqlite_path": root / "ledger.db", "kafka_topic_prefix": prefix, "projection_sqlite_path": root / "views.db"}))
    auditor = kafka_roles.connection(AUDITOR)
    app = Ledger(env=base.eventsourcing_env(), clock=lambda: CLOCK, nik_key=base.nik_hmac_key_bytes())
    generate_branch(app, BEKASI)
    generate_branch(app, BOGOR)
    topics = kafka_roles.provision(prefix, partitions=4)
    publisher = Relay(app.recorder, kafka_roles.connection(RELAY), topics, signer=log_signer(),
                      transactional_id=f"relay-{prefix}",
                      batch_max=500)
    publisher.run()

    # Corrections, so that the tools meet reversals: a BPU month (it changes who is active), a PU contribution of a
    # member who never left, and a JHT claim.
    first = [orjson.loads(r.value) for r in kafka_client.read_to_end(auditor, topics.events)]
    exited = {e["data"]["kpj"] for e in first if e["type"] == "MemberExited"}
    bpu = next(e for e in first if e["type"] == "ContributionPaid" and e["data"]["segment"] == "BPU"
               and e["branch"] == BEKASI.branch and e["data"]["month"] == "2017-03")
    pu = next(e for e in first if e["type"] == "ContributionPaid" and e["data"]["segment"] == "PU"
              and e["branch"] == BOGOR.branch and e["data"]["kpj"] not in exited)
    claim = next(e for e in first if e["type"] == "ClaimPaid" and e["data"]["program"] == "JHT")
    for event, days in ((bpu, 3), (pu, 5), (claim, 2)):
        app.execute(Reverse(event_id=event["event_id"], reason="audit test correction",
                            reversed_on=date.fromisoformat(event["effective_date"]) + timedelta(days=days)))
    publisher.run()
    publisher.close()
    envelopes = [orjson.loads(r.value) for r in kafka_client.read_to_end(auditor, topics.events)]
    assert len(envelopes) == len(first) + 3 > 1_500
    assert {e["type"] for e in envelopes} >= {"ContributionReversed", "ClaimReversed", "YieldCredited",
                                               "WorkersJoined", "MemberExited"}
    assert runner.run(base, list(PROJECTIONS), follow=False) == {name: len(envelopes) for name in PROJECTIONS}
    cli = Cli(env={**os.environ, **kafka_roles.env(AUDITOR), "LEDGER_SQLITE_PATH": str(base.sqlite_path),
                   "LEDGER_PROJECTION_SQLITE_PATH": str(base.projection_sqlite_path),
                   "LEDGER_KAFKA_TOPIC_PREFIX": prefix, "LEDGER_RELAY_TRANSACTIONAL_ID": f"relay-{prefix}"},
              folder=root)
    return {"app": app, "settings": base, "topic": topics.events, "envelopes": envelopes, "cli": cli,
            "reversed": {"bpu": bpu, "pu": pu, "claim": claim}, "root": root, "auditor": auditor}


def projected_copy(audited: dict[str, Any], tmp_path: Path) -> tuple[Settings, ViewStore, Path]:
    """The projections built afresh into a file of the test's own, which it may tamper with."""
    path = tmp_path / "views.db"
    s = audited["settings"].model_copy(update={"projection_sqlite_path": path})
    runner.run(s, list(PROJECTIONS), follow=False)
    return s, ViewStore.open(s), path


# --- history ---------------------------------------------------------------------------------------------------------

def test_history_of_a_member_an_employer_and_a_branch_with_date_filters(audited) -> None:
    envelopes, topic, auditor = audited["envelopes"], audited["topic"], audited["auditor"]
    kpj = audited["reversed"]["pu"]["data"]["kpj"]
    mine = [e for e in envelopes if e["data"].get("kpj") == kpj or kpj in e["data"].get("kpjs", [])]
    found = history_topic(auditor, topic, Subject(kpj=kpj))
    assert [e["event_id"] for e in found] == by_date_then_position(mine)
    assert found == sorted(mine, key=lambda e: (e["effective_date"], e["position"]))  # the envelopes as published
    assert {"WorkersJoined", "MemberEnrolled", "ContributionPaid", "ContributionReversed"} <= {e["type"] for e in found}

    start, end = date(2017, 3, 1), date(2017, 4, 30)
    window = history_topic(auditor, topic, Subject(kpj=kpj), start, end)
    expected = [e for e in mine if "2017-03-01" <= e["effective_date"] <= "2017-04-30"]
    assert [e["event_id"] for e in window] == by_date_then_position(expected)
    assert 0 < len(window) < len(found)

    npp = audited["reversed"]["pu"]["data"]["npp"]
    employer = [e for e in envelopes if e["data"].get("npp") == npp]
    assert [e["event_id"] for e in history_topic(auditor, topic, Subject(npp=npp), None, end)] == \
        by_date_then_position([e for e in employer if e["effective_date"] <= "2017-04-30"])
    assert {"EmployerRegistered", "ContributionPaymentReceived"} <= {e["type"] for e in employer}

    branch = [e for e in envelopes if e["branch"] == BOGOR.branch and e["effective_date"] >= "2017-04-01"]
    got = history_topic(auditor, topic, Subject(branch=BOGOR.branch), date(2017, 4, 1))
    assert [e["event_id"] for e in got] == by_date_then_position(branch)
    assert len(got) > 100 and all(e["branch"] == BOGOR.branch for e in got)
    assert history_topic(auditor, topic, Subject(branch="NOWHERE")) == []


def test_history_through_the_cli_and_its_bad_input(audited) -> None:
    cli: Cli = audited["cli"]
    claim = audited["reversed"]["claim"]
    kpj = claim["data"]["kpj"]
    rows = cli.json("audit", "history", "--kpj", kpj, "--from", claim["effective_date"])
    expected = [e for e in audited["envelopes"] if (e["data"].get("kpj") == kpj or kpj in e["data"].get("kpjs", []))
                and e["effective_date"] >= claim["effective_date"]]
    assert [r["event_id"] for r in rows] == by_date_then_position(expected)
    assert claim["event_id"] in [r["event_id"] for r in rows] and "ClaimReversed" in [r["type"] for r in rows]
    text = cli("audit", "history", "--kpj", kpj, "--from", claim["effective_date"]).stdout.splitlines()
    assert text[0] == (f"{len(rows)} events of member {kpj} in {audited['topic']} from {claim['effective_date']} to "
                       f"the end")
    (line,) = [line for line in text[1:] if line.split()[3] == claim["event_id"]]  # date, position, type, event id
    (reversal,) = [line for line in text[1:] if line.split()[2] == "ClaimReversed"]
    assert f"reverses {claim['event_id']}" in reversal
    assert line.startswith(f"{claim['effective_date']}  #{claim['position']:<8} ClaimPaid")
    assert f"amount Rp{claim['data']['amount']:,}" in line and f"kpj {kpj}" in line and len(text) == len(rows) + 1

    assert "exactly one of --kpj" in cli("audit", "history", expect=2).stderr
    assert "exactly one of --kpj" in cli("audit", "history", "--kpj", kpj, "--npp", "30000001", expect=2).stderr
    assert "KPJ number must be exactly 11 digits" in cli("audit", "history", "--kpj", "123", expect=2).stderr
    assert "NPP number must contain only the digits" in cli("audit", "history", "--npp", "3000000x", expect=2).stderr
    assert "branch code must start with an upper-case letter" in cli("audit", "history", "--branch", "bogor",
                                                                     expect=2).stderr
    assert "--from must be a date" in cli("audit", "history", "--kpj", kpj, "--from", "2017-02-30", expect=2).stderr
    assert "is after --to" in cli("audit", "history", "--kpj", kpj, "--from", "2017-05-01", "--to", "2017-04-01",
                                  expect=2).stderr
    elsewhere = Cli(env={**cli.env, "LEDGER_KAFKA_TOPIC_PREFIX": f"nowhere-{uuid.uuid4().hex[:8]}"},
                    folder=cli.folder)
    assert "events does not exist" in elsewhere("audit", "history", "--kpj", kpj, expect=3).stderr


# --- as-of -----------------------------------------------------------------------------------------------------------

def test_recount_from_the_topic_agrees_with_the_write_side(audited) -> None:
    """The as-of recount is checked here against the event store, not only against the projections."""
    app: Ledger = audited["app"]
    reversed_ = audited["reversed"]
    for as_of in AS_OF_DATES:
        recount = Recount(as_of)
        for env in audited["envelopes"]:
            recount.add(env)
        balances = recount.member_balances()
        assert len(balances) == BEKASI.bpu_members + BOGOR.bpu_members + len(
            {k for e in audited["envelopes"] if e["type"] == "WorkersJoined" for k in e["data"]["kpjs"]})
        sample = [*sorted(balances)[::17], reversed_["pu"]["data"]["kpj"], reversed_["claim"]["data"]["kpj"]]
        for kpj in sample:
            assert balances[kpj] == app.jht_balance(kpj, as_of), (kpj, as_of)
    # The reversed claim is back in the member's balance after its reversal date, and out of the branch's claims.
    claim = reversed_["claim"]
    after = date.fromisoformat(claim["effective_date"]) + timedelta(days=2)
    before, later = Recount(after - timedelta(days=1)), Recount(after)
    for env in audited["envelopes"]:
        before.add(env)
        later.add(env)
    kpj, amount = claim["data"]["kpj"], claim["data"]["amount"]
    assert later.member_balances()[kpj] - before.member_balances()[kpj] == amount
    claims_before = before.branch_reports()[claim["branch"]]["claims"]["JHT"]
    claims_after = later.branch_reports()[claim["branch"]]["claims"]["JHT"]
    assert (claims_before["count"] - claims_after["count"], claims_before["amount"] - claims_after["amount"]) == \
        (1, amount)


def test_as_of_finds_no_difference_on_a_fresh_projection(audited) -> None:
    store = ViewStore.open(audited["settings"])
    members = len({e["data"]["kpj"] for e in audited["envelopes"] if e["type"] == "MemberEnrolled"})
    for as_of in AS_OF_DATES:
        report = as_of_topic(audited["auditor"], audited["topic"], store, as_of)
        assert (report.ok, report.differences, report.differences_found) == (True, [], 0), as_of
        assert (report.members, report.branches, report.events) == (members, 2, len(audited["envelopes"]))
        assert report.projection_events == dict.fromkeys(("balances", "branches", "collections", "general_ledger"),
                                                         len(audited["envelopes"]))
        assert report.trial_balances == 2 and report.books_problems == []
    # The figures compared are not trivially zero.
    mid = queries.branch_report(store, BEKASI.branch, date(2017, 3, 16))
    assert mid["active_pu_members"] > 100 and mid["bpu_members_active"] > 0 and mid["late_fines"] >= 0
    assert mid["contributions"]["JHT"]["total"] > 0 and mid["claims"]["JHT"]["count"] > 0

    done = audited["cli"].json("audit", "as-of", "2017-05-31")
    assert done["ok"] is True and done["differences_found"] == 0 and done["branches"] == 2
    text = audited["cli"]("audit", "as-of", "2017-05-31").stdout
    assert (f"compared {members:,} members' JHT balances, {done['accounts']:,} paying accounts' totals and 2 "
            f"branches' totals, and 2 branches' trial balances with the projections: 0 difference(s)") in text
    books = done["books"]
    assert books["trial_balances"] == 2 and books["problems"] == []
    assert books["branches"][BOGOR.branch]["2200"] == sum(
        balance for kpj, balance in queries.jht_balances(store, date(2017, 5, 31)).items() if kpj.startswith("172"))
    assert done["accounts"] > 7 + 20  # the employers, the BPU members who pay themselves, the members with claims


def test_as_of_names_a_tampered_posting(audited, tmp_path) -> None:
    _s, store, path = projected_copy(audited, tmp_path)
    as_of = date(2017, 5, 31)
    with sqlite3.connect(path) as db:
        version = db.execute("SELECT live_version FROM projection_registry WHERE name = 'balances'").fetchone()[0]
        table = f"balances_v{version}_postings"
        rowid, kpj = db.execute(f"SELECT rowid, kpj FROM {table} WHERE kind = 'contribution' AND jht_employer > 0 "
                                f"AND on_date <= ? ORDER BY position LIMIT 1", (as_of.isoformat(),)).fetchone()
        db.execute(f"UPDATE {table} SET jht_employer = jht_employer + 1234 WHERE rowid = ?", (rowid,))
    report = as_of_topic(audited["auditor"], audited["topic"], store, as_of)
    true_balance = audited["app"].jht_balance(kpj, as_of)
    assert not report.ok and report.differences_found == 1
    assert report.differences == [Difference(f"member {kpj}", "jht_balance", true_balance, true_balance + 1234)]

    cli = Cli(env={**audited["cli"].env, "LEDGER_PROJECTION_SQLITE_PATH": str(path)}, folder=tmp_path)
    done = cli.json("audit", "as-of", as_of.isoformat(), expect=11)
    assert done["differences"] == [{"subject": f"member {kpj}", "field": "jht_balance", "topic": true_balance,
                                    "projection": true_balance + 1234}]
    text = cli("audit", "as-of", as_of.isoformat(), expect=11).stdout
    assert "1 difference(s)" in text
    assert f"member {kpj}: jht_balance: topic {true_balance:,}, projection {true_balance + 1234:,}" in text


def test_as_of_names_a_tampered_ledger_total_with_its_branch_and_account(audited, tmp_path) -> None:
    """The general ledger's trial balance is recounted from the topic too: a total changed in the view database is a
    difference naming the branch, the account and both balances (on the account's normal side)."""
    _s, store, path = projected_copy(audited, tmp_path)
    as_of = date(2017, 5, 31)
    with sqlite3.connect(path) as db:
        version = db.execute("SELECT live_version FROM projection_registry WHERE name = 'general_ledger'").fetchone()[0]
        totals = f"general_ledger_v{version}_totals"
        db.execute(f"UPDATE {totals} SET credit = credit - 500 WHERE rowid = (SELECT MIN(rowid) FROM {totals} "
                   f"WHERE branch = ? AND account = '3300' AND credit > 500 AND on_date <= ?)",
                   (BEKASI.branch, as_of.isoformat()))
    report = as_of_topic(audited["auditor"], audited["topic"], store, as_of)
    (difference,) = report.differences
    assert (difference.subject, difference.field) == (f"branch {BEKASI.branch}", "books.3300 (jp-fund)")
    assert difference.topic - difference.projection == 500 and difference.topic > 0
    assert difference.topic == report.books[BEKASI.branch]["3300"]

    cli = Cli(env={**audited["cli"].env, "LEDGER_PROJECTION_SQLITE_PATH": str(path)}, folder=tmp_path)
    done = cli.json("audit", "as-of", as_of.isoformat(), expect=11)
    assert done["ok"] is False and done["differences"] == [difference.as_dict()]
    text = cli("audit", "as-of", as_of.isoformat(), expect=11).stdout
    assert "1 difference(s)" in text
    assert (f"  branch {BEKASI.branch}: books.3300 (jp-fund): topic {difference.topic:,}, projection "
            f"{difference.projection:,}") in text.splitlines()


def test_as_of_names_a_deleted_flow_and_a_deleted_member(audited, tmp_path) -> None:
    _s, store, path = projected_copy(audited, tmp_path)
    as_of = date(2017, 5, 31)
    with sqlite3.connect(path) as db:
        version = db.execute("SELECT live_version FROM projection_registry WHERE name = 'branches'").fetchone()[0]
        flows = f"branches_v{version}_flows"
        rowid, employer, worker = db.execute(
            f"SELECT rowid, employer_share, worker_share FROM {flows} WHERE branch = ? AND program = 'JHT' "
            f"AND month != '' AND employer_share > 0 AND worker_share > 0 AND on_date <= ? ORDER BY on_date LIMIT 1",
            (BOGOR.branch, as_of.isoformat())).fetchone()
        db.execute(f"DELETE FROM {flows} WHERE rowid = ?", (rowid,))
        balances = db.execute("SELECT live_version FROM projection_registry WHERE name = 'balances'").fetchone()[0]
        kpj = db.execute(f"SELECT kpj FROM balances_v{balances}_members ORDER BY kpj LIMIT 1").fetchone()[0]
        db.execute(f"DELETE FROM balances_v{balances}_members WHERE kpj = ?", (kpj,))
    report = as_of_topic(audited["auditor"], audited["topic"], store, as_of)
    found = {(d.subject, d.field): (d.topic, d.projection) for d in report.differences}
    assert report.differences_found == len(found) == 5
    subject = f"branch {BOGOR.branch}"
    for field in ("contributions.JHT.employer", "contributions.JHT.worker", "contributions.JHT.total",
                  "contributions_total"):
        topic_value, projected = found[(subject, field)]
        assert topic_value - projected == {"contributions.JHT.employer": employer,
                                           "contributions.JHT.worker": worker}.get(field, employer + worker) > 0
    assert found[(f"member {kpj}", "jht_balance")] == (audited["app"].jht_balance(kpj, as_of), None)


def test_as_of_names_money_booked_to_the_wrong_account_though_branch_totals_agree(audited, tmp_path) -> None:
    """The defect of issue 12: a reversal booked to the member's account while its payment sat on the employer's.
    Branch totals stay right, so only a per-account comparison sees it."""
    _s, store, path = projected_copy(audited, tmp_path)
    pu = audited["reversed"]["pu"]
    npp, kpj, on = pu["data"]["npp"], pu["data"]["kpj"], pu["effective_date"]
    taken = sum(share["employer"] + share["worker"] for share in pu["data"]["shares"].values())
    with sqlite3.connect(path) as db:
        version = db.execute("SELECT live_version FROM projection_registry WHERE name = 'branches'").fetchone()[0]
        table = f"branches_v{version}_account_totals"
        db.execute(f"UPDATE {table} SET contributions = contributions + ? WHERE account = ? AND on_date = "
                   f"(SELECT MAX(on_date) FROM {table} WHERE account = ?)", (taken, f"npp:{npp}", f"npp:{npp}"))
        db.execute(f"INSERT INTO {table} VALUES (?, ?, ?, ?, 0, 0, 0, 0, 'tampered')",
                   (f"kpj:{kpj}", pu["branch"], on, -taken))
    report = as_of_topic(audited["auditor"], audited["topic"], store, CLOCK)
    found = {(d.subject, d.field): (d.topic, d.projection) for d in report.differences}
    assert not any(subject.startswith("branch ") for subject, _ in found), found
    assert found[(f"account kpj:{kpj}", "contributions")] == (None, -taken)
    topic_total = found[(f"account npp:{npp}", "contributions")][0]
    assert found[(f"account npp:{npp}", "contributions")] == (topic_total, topic_total + taken)
    # And the branches projection's own invariant refuses such a view on the next rebuild's check.
    with store.transaction() as tx, pytest.raises(Exception, match=f"account kpj:{kpj}: more reversed than was paid"):
        PROJECTIONS["branches"].check(tx, version)


def test_a_reversed_employer_payment_rebuilds_both_projections_twice_alike(audited, tmp_path) -> None:
    s, store, _ = projected_copy(audited, tmp_path)
    pu = audited["reversed"]["pu"]
    npp, kpj = pu["data"]["npp"], pu["data"]["kpj"]
    (reversal,) = [e for e in audited["envelopes"]
                   if e["type"] == "ContributionReversed" and e["data"]["reverses"] == pu["event_id"]]
    assert (reversal["version"], reversal["data"]["npp"], reversal["data"]["segment"]) == (2, npp, "PU")
    dates = (date.fromisoformat(pu["effective_date"]), date.fromisoformat(reversal["effective_date"]), CLOCK)

    def answers() -> dict[str, Any]:
        return {"accounts": [queries.account_totals(store, on) for on in dates],
                "balances": [queries.jht_balances(store, on) for on in dates],
                "branches": [queries.branch_report(store, b.branch, on) for b in (BEKASI, BOGOR) for on in dates]}

    live = answers()
    # The employer's account takes the reversal back; the PU member never paid anything of his own.
    assert f"kpj:{kpj}" not in live["accounts"][-1] or live["accounts"][-1][f"kpj:{kpj}"]["contributions"] == 0
    assert live["accounts"][1][f"npp:{npp}"]["contributions"] < live["accounts"][0][f"npp:{npp}"]["contributions"] \
        or reversal["effective_date"] == pu["effective_date"]
    rebuilt = []
    for workers in (1, 2):
        for name in ("branches", "balances"):
            runner.rebuild(s, name, workers=workers)
        rebuilt.append(answers())
    assert rebuilt[0] == rebuilt[1] == live
    assert as_of_topic(audited["auditor"], audited["topic"], store, CLOCK).ok


def test_as_of_says_when_the_projections_are_not_built(audited, tmp_path) -> None:
    cli = Cli(env={**audited["cli"].env, "LEDGER_PROJECTION_SQLITE_PATH": str(tmp_path / "empty.db")},
              folder=tmp_path)
    assert "the balances projection has not been built yet" in cli("audit", "as-of", "2017-05-31", expect=9).stderr
    # Every projection built but the general ledger: the same answer, naming it.
    _s, _store, path = projected_copy(audited, tmp_path)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM projection_registry WHERE name = 'general_ledger'")
    built = Cli(env={**audited["cli"].env, "LEDGER_PROJECTION_SQLITE_PATH": str(path)}, folder=tmp_path)
    assert "the general_ledger projection has not been built yet" in built("audit", "as-of", "2017-05-31",
                                                                            expect=9).stderr
    assert "DATE must be a date" in cli("audit", "as-of", "yesterday", expect=2).stderr


# --- export and verify-export ----------------------------------------------------------------------------------------

def expected_totals(envelopes: list[dict[str, Any]], start: str, end: str) -> dict[str, dict[str, int]]:
    """A few of the bundle's totals, summed the plain way, per branch."""
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for e in envelopes:
        if not start <= e["effective_date"] <= end:
            continue
        t, data = totals[e["branch"]], e["data"]
        t["events"] += 1
        sign = {"ContributionPaid": 1, "ContributionReversed": -1, "ClaimPaid": 1, "ClaimReversed": -1}.get(e["type"])
        if e["type"].startswith("Contribution") and sign:
            t["jht"] += sign * sum(data["shares"].get("JHT", {}).values())
            t["all"] += sign * sum(s["employer"] + s["worker"] for s in data["shares"].values())
            t["fines"] += sign * data["fine"]
        elif sign:
            t["claims"] += sign
            t["claimed"] += sign * data["amount"]
    return totals


def test_export_then_verify_then_tamper(audited, tmp_path) -> None:
    start, end = date(2017, 2, 1), date(2017, 4, 30)
    out = tmp_path / "bundle"
    manifest = export_topic(audited["auditor"], audited["topic"], start, end, out)
    chosen = sorted((e for e in audited["envelopes"] if "2017-02-01" <= e["effective_date"] <= "2017-04-30"),
                    key=lambda e: e["position"])
    lines = (out / "events.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == chosen
    assert manifest["events"] == len(chosen) > 500
    assert manifest["positions"] == {"first": chosen[0]["position"], "last": chosen[-1]["position"]}
    assert manifest["topic_last_position"] == len(audited["envelopes"])
    assert manifest["period"] == {"from": "2017-02-01", "to": "2017-04-30"} and manifest["topic"] == audited["topic"]
    head = "0" * 64
    for env in chosen:
        head = hashlib.sha256(f"{head}\n{env['hash']}".encode()).hexdigest()
    assert manifest["chain_head"] == head
    assert sorted(p.name for p in out.iterdir()) == ["events.csv", "events.jsonl", "manifest.json", "totals.csv",
                                                      "totals.json"]
    for entry in manifest["files"]:
        data = (out / entry["name"]).read_bytes()
        assert (entry["bytes"], entry["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())

    rows = (out / "events.csv").read_text().splitlines()
    assert rows[0].startswith("position,event_id,type,version,aggregate_id,aggregate_version,effective_date")
    assert len(rows) == len(chosen) + 1 and rows[1].startswith(f"{chosen[0]['position']},{chosen[0]['event_id']},")
    assert rows[-1].endswith(chosen[-1]["hash"])

    totals = json.loads((out / "totals.json").read_text())
    expected = expected_totals(audited["envelopes"], "2017-02-01", "2017-04-30")
    assert set(totals["branches"]) == set(expected) == {BEKASI.branch, BOGOR.branch}
    for branch, t in totals["branches"].items():
        e = expected[branch]
        assert (t["events"], t["contributions"]["JHT"]["total"], t["contributions_total"], t["late_fines"],
                t["claims_total"]["count"], t["claims_total"]["amount"]) == \
            (e["events"], e["jht"], e["all"], e["fines"], e["claims"], e["claimed"]), branch
    table = (out / "totals.csv").read_text().splitlines()
    assert len(table) == 3 and table[1].startswith(f"{BEKASI.branch},{expected[BEKASI.branch]['events']},")

    check = verify_bundle(out)
    assert (check.ok, check.files, check.events, check.problem_file) == (True, 4, len(chosen), None)

    # One byte of events.csv changed.
    altered = tmp_path / "altered"
    shutil.copytree(out, altered)
    data = bytearray((altered / "events.csv").read_bytes())
    data[len(data) // 2] ^= 0x01
    (altered / "events.csv").write_bytes(bytes(data))
    check = verify_bundle(altered)
    assert (check.ok, check.problem_file) == (False, "events.csv") and "SHA-256" in check.problem

    # totals.json deleted.
    missing = tmp_path / "missing"
    shutil.copytree(out, missing)
    (missing / "totals.json").unlink()
    check = verify_bundle(missing)
    assert (check.ok, check.problem_file, check.problem) == (False, "totals.json", "missing")

    # totals.json changed and the manifest rewritten to match: the recount from events.jsonl still catches it.
    forged = tmp_path / "forged"
    shutil.copytree(out, forged)
    totals["branches"][BOGOR.branch]["late_fines"] += 1
    (forged / "totals.json").write_text(json.dumps(totals, indent=2) + "\n")
    forged_manifest = json.loads((forged / "manifest.json").read_text())
    for entry in forged_manifest["files"]:
        data = (forged / entry["name"]).read_bytes()
        entry["bytes"], entry["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    (forged / "manifest.json").write_text(json.dumps(forged_manifest))
    check = verify_bundle(forged)
    assert (check.ok, check.problem_file) == (False, "totals.json")
    assert f"branches.{BOGOR.branch}.late_fines" in check.problem

    # An event dropped from events.jsonl, with the manifest rewritten: the chain head no longer matches.
    dropped = tmp_path / "dropped"
    shutil.copytree(out, dropped)
    (dropped / "events.jsonl").write_bytes(b"".join(line + b"\n" for line in lines[:-1]))
    dropped_manifest = json.loads((dropped / "manifest.json").read_text())
    for entry in dropped_manifest["files"]:
        data = (dropped / entry["name"]).read_bytes()
        entry["bytes"], entry["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    (dropped / "manifest.json").write_text(json.dumps(dropped_manifest))
    check = verify_bundle(dropped)
    assert (check.ok, check.problem_file) == (False, "events.jsonl") and "manifest says" in check.problem

    with pytest.raises(ExportRefused, match="is not empty"):
        export_topic(audited["auditor"], audited["topic"], start, end, out)


def test_export_and_verify_export_through_the_cli(audited, tmp_path) -> None:
    cli: Cli = audited["cli"]
    out = tmp_path / "period"
    done = cli.json("audit", "export", "--from", "2017-03-01", "--to", "2017-03-31", "--out", str(out))
    assert done["events"] == sum(1 for e in audited["envelopes"] if e["effective_date"].startswith("2017-03"))
    assert done["manifest_sha256"] == hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
    intact = cli.json("audit", "verify-export", str(out))
    assert intact == {"folder": str(out), "ok": True, "files_checked": 4, "events": done["events"], "file": None,
                      "problem": None}
    assert "intact" in cli("audit", "verify-export", str(out)).stdout

    refused = cli("audit", "export", "--from", "2017-03-01", "--to", "2017-03-31", "--out", str(out), expect=2)
    assert f"--out {out} is not empty" in refused.stderr
    assert "is after --to" in cli("audit", "export", "--from", "2017-04-01", "--to", "2017-03-31", "--out",
                                  str(tmp_path / "other"), expect=2).stderr
    assert not (tmp_path / "other").exists()

    original = (out / "events.csv").read_bytes()
    data = bytearray(original)
    data[-10] = ord("x") if data[-10] != ord("x") else ord("y")
    (out / "events.csv").write_bytes(bytes(data))
    broken = cli("audit", "verify-export", str(out), expect=8).stdout
    assert broken.startswith(f"export {out} BROKEN: events.csv: ")
    (out / "events.csv").write_bytes(original)
    (out / "totals.json").unlink()
    assert cli.json("audit", "verify-export", str(out), expect=8) == {
        "folder": str(out), "ok": False, "files_checked": 3, "events": 0, "file": "totals.json", "problem": "missing"}
