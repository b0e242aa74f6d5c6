"""The `general_ledger` projection: the fund's books in double entry, derived from the events (`ledger.books`).

Tables (version N):
- `lines`: one row per contribution line (`ContributionPaid`, `ContributionAdjusted`, `ContributionReversed`), with
  its amounts per program, kept wide rather than as legs: nine in ten events are lines, and their legs are a fixed
  function of these columns (`ledger.books.contribution_legs`), expanded when the journal is read.
- `legs`: the legs of every other entry (bills, money, settlements, refunds, held money, yields, claims).
- `totals`: debits and credits per branch, date, account, program and event type: what a trial balance, an
  account's running balance and the ties with the other projections sum.
- `clearing`: per payment or bill, what its clearing account holds (zero once all its lines are in).
- `held`: per bank reference held, the day it arrived (a match is booked on that day, `ledger.books.LEGS`).

Order-independence, as for the other projections: totals are sums; a reversal's JKP splits come from its payment,
which is the same aggregate (so the same partition, earlier); a match's date from its held money, the same aggregate.
A reversal whose payment is not found yet in an index-less rebuild waits (`pending`) and is booked when the rebuild
has built its indexes (`complete`).

The JSON path (SQLite): `ContributionPaid` records are inserted as lines straight from their JSON, and their totals
and clearing sums computed in SQL from the rows just inserted; the same rows as the ordinary path (a test compares).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterable
from typing import Any

from ledger.books import (
    BILLED,
    CLEARING,
    CONTRIBUTION_SIGNS,
    LEGS,
    NO_PROGRAM,
    OWED_BACK,
    RECEIVABLE,
    SUSPENSE,
    UNAPPLIED,
    Leg,
    contribution_legs,
    entry_reference,
    share,
)
from ledger.errors import InvariantViolation
from ledger.events import EVENT_TYPES, envelope_data
from projections.store import Tx
from projections.views import JSON_VALUES_PER_INSERT, JsonRefused, Projection, Table, latest_sql

LINE_COLUMNS = ("jht", "jkk", "jkp_jkk", "jkm", "jkp_jkm", "jp", "fine", "total")
ROW_COLUMNS = ("event_id", "position", "on_date", "branch", "kpj", "npp", "ref", "type", *LINE_COLUMNS, "pending")
# Accounts whose balance, on its normal side, is never below zero on any date in any branch.
NEVER_NEGATIVE = (RECEIVABLE, UNAPPLIED, SUSPENSE, BILLED, OWED_BACK)
TotalsKey = tuple[str, str, str, str, str]  # branch, on_date, account, program, source (event type)
Split = tuple[int, int, str | None]  # a line's (jkp_from_jkk, jkp_from_jkm, npp): what its reversal takes from it


def line_legs(kind: str, amounts: dict[str, int]) -> list[Leg]:
    """A `lines` row's legs (`amounts` keyed by LINE_COLUMNS)."""
    data = {"shares": {p: {"employer": amounts[p.lower()], "worker": 0} for p in ("JHT", "JKK", "JKM", "JP")},
            "fine": amounts["fine"], "total": amounts["total"]}
    return contribution_legs(data, CONTRIBUTION_SIGNS[kind], amounts["jkp_jkk"], amounts["jkp_jkm"])


def _json(path: str) -> str:
    return f"json_extract(column1, '$.{path}')"


def _share_sql(program: str) -> str:
    return " + ".join(f"coalesce({_json(f'data.shares.{program}.{side}')}, 0)" for side in ("employer", "worker"))


@functools.lru_cache(maxsize=64)
def _json_insert(lines: str, current: int, count: int) -> str:
    """One INSERT of `count` ContributionPaid values as lines; a value of another type or version inserts nothing."""
    return (f"INSERT INTO {lines} SELECT {_json('event_id')}, {_json('position')}, {_json('effective_date')}, "
            f"{_json('branch')}, {_json('data.kpj')}, {_json('data.npp')}, {_json('data.payment_id')}, "
            f"'ContributionPaid', {_share_sql('JHT')}, {_share_sql('JKK')}, "
            f"coalesce({_json('data.jkp_from_jkk')}, 0), {_share_sql('JKM')}, "
            f"coalesce({_json('data.jkp_from_jkm')}, 0), {_share_sql('JP')}, {_json('data.fine')}, "
            f"{_json('data.total')}, 0 FROM (VALUES {', '.join(['(?)'] * count)}) "
            f"WHERE {_json('type')} = 'ContributionPaid' AND {_json('version')} = {current}")


# A ContributionPaid line's legs in SQL (for totals from the rows just inserted): (account, program, debit, credit).
_PAID_LEG_SQL = (
    (CLEARING.code, NO_PROGRAM, "total", "0"),
    ("2200", "JHT", "0", "jht"),
    ("3100", "JKK", "0", "jkk - jkp_jkk"),
    ("3410", "JKK", "0", "jkp_jkk"),
    ("3200", "JKM", "0", "jkm - jkp_jkm"),
    ("3420", "JKM", "0", "jkp_jkm"),
    ("3300", "JP", "0", "jp"),
    ("4100", NO_PROGRAM, "0", "fine"),
)


# The rows just inserted are numbered from 1 within a batch (rowid - before), below 2 ** _BATCH_ROW_BITS: a batch is at
# most `projection_batch_max` (1,000,000) records. Positions stay below 2 ** (63 - _BATCH_ROW_BITS), 8.8 trillion.
_BATCH_ROW_BITS = 20


def _json_totals(lines: str, totals: str, before: int) -> str:
    """The totals upsert of the lines just inserted (rowid above `before`): one pass over them summing every leg per
    (branch, date), then a row per account with a leg. Each account's latest event is that of the highest position
    among the lines with a non-zero leg on it (as `_Sums.add` keeps it), found as the largest of position and row
    number packed in one integer; its event id is then read by row number. (One scan per account, summed after a
    UNION ALL, took six times as long: 7.9 against 1.3 us per line.)"""
    sums = ", ".join(
        f"SUM({debit}) AS d{i}, SUM({credit}) AS c{i}, MAX(CASE WHEN ({debit} + {credit}) != 0 "
        f"THEN (position << {_BATCH_ROW_BITS}) + rowid - {before} END) AS m{i}"
        for i, (_, _, debit, credit) in enumerate(_PAID_LEG_SQL))
    legs = " UNION ALL ".join(
        f"SELECT branch, on_date, '{account}' AS account, '{program}' AS program, d{i} AS debit, c{i} AS credit, "
        f"m{i} AS latest FROM s WHERE m{i} IS NOT NULL" for i, (account, program, _, _) in enumerate(_PAID_LEG_SQL))
    return (f"WITH s AS MATERIALIZED (SELECT branch, on_date, {sums} FROM {lines} WHERE rowid > {before} "
            f"GROUP BY branch, on_date) "
            f"INSERT INTO {totals} AS x SELECT branch, on_date, account, program, 'ContributionPaid', debit, credit, "
            f"latest >> {_BATCH_ROW_BITS}, (SELECT event_id FROM {lines} WHERE rowid = {before} + "
            f"(latest & {(1 << _BATCH_ROW_BITS) - 1})) FROM ({legs}) WHERE true "
            f"ON CONFLICT (branch, on_date, account, program, source) DO UPDATE SET "
            f"debit = x.debit + excluded.debit, credit = x.credit + excluded.credit, {latest_sql('x')}")


class GeneralLedger(Projection):
    name = "general_ledger"
    json_types = ("ContributionPaid",)
    tables = (
        Table("lines", "event_id TEXT NOT NULL, position BIGINT NOT NULL, on_date TEXT NOT NULL, "
                       "branch TEXT NOT NULL, kpj TEXT NOT NULL, npp TEXT, ref TEXT NOT NULL, type TEXT NOT NULL, "
                       + ", ".join(f"{c} BIGINT" for c in LINE_COLUMNS) + ", pending BIGINT NOT NULL",
              indexes=("event_id", "on_date, position")),
        Table("legs", "event_id TEXT NOT NULL, position BIGINT NOT NULL, on_date TEXT NOT NULL, type TEXT NOT NULL, "
                      "branch TEXT NOT NULL, account TEXT NOT NULL, program TEXT NOT NULL, kpj TEXT, npp TEXT, "
                      "ref TEXT, amount BIGINT NOT NULL",
              indexes=("on_date, position", "account, on_date")),
        Table("totals", "branch TEXT NOT NULL, on_date TEXT NOT NULL, account TEXT NOT NULL, program TEXT NOT NULL, "
                        "source TEXT NOT NULL, debit BIGINT NOT NULL, credit BIGINT NOT NULL, "
                        "last_position BIGINT NOT NULL, last_event_id TEXT NOT NULL, "
                        "PRIMARY KEY (branch, on_date, account, program, source)",
              # Covering: the fund's trial balance and an account's running balance read it alone, in account order
              # (1.8 M rows, 120 branches' year: 0.4 s, against 6 s through the table).
              indexes=("account, on_date, debit, credit",)),
        Table("clearing", "ref TEXT PRIMARY KEY, amount BIGINT NOT NULL, last_position BIGINT NOT NULL, "
                          "last_event_id TEXT NOT NULL"),
        Table("held", "reference TEXT PRIMARY KEY, received_on TEXT NOT NULL, event_id TEXT NOT NULL"),
    )

    def apply(self, tx: Tx, version: int, envelopes: Iterable[dict[str, Any]]) -> None:
        """Only the events that post: every other type passes untouched (and is never upcast here). A
        `ContributionReversed` is read as published: the fields booked are in every version."""
        events = []
        for env in envelopes:
            kind = env["type"]
            if kind in LEGS or kind in CONTRIBUTION_SIGNS:
                data = env["data"] if kind == "ContributionReversed" and env["version"] <= EVENT_TYPES[kind].VERSION \
                    else envelope_data(env, upgrade="the projections")
                events.append((env, data))
        self.book(tx, version, events)

    def book(self, tx: Tx, version: int, events: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        t = {table.name: self.table(version, table.name) for table in self.tables}
        lines: list[tuple[Any, ...]] = []
        legs: list[tuple[Any, ...]] = []
        held: list[tuple[str, str, str]] = []
        held_on = {}  # reference -> received_on, for matches in this batch
        reversals: list[tuple[dict[str, Any], dict[str, Any]]] = []
        splits: dict[str, Split] = {}  # event id -> (jkp_from_jkk, jkp_from_jkm, npp) of this batch's lines
        for env, data in events:
            kind = env["type"]
            if kind in CONTRIBUTION_SIGNS:
                if kind == "ContributionReversed":
                    reversals.append((env, data))
                    continue
                split = (data.get("jkp_from_jkk", 0), data.get("jkp_from_jkm", 0))
                splits[env["event_id"]] = (*split, data.get("npp"))
                lines.append(_line_row(env, data, kind, data["payment_id"], split, pending=False))
                continue
            on = env["effective_date"]
            if kind == "MoneyUnidentified":
                held.append((data["reference"], data["received_on"], env["event_id"]))
                held_on[data["reference"]] = data["received_on"]
            elif kind == "MoneyIdentified":
                on = held_on.get(data["reference"]) or self._held_on(tx, t["held"], data["reference"], env)
            ref = entry_reference(kind, data)
            for account, program, amount in LEGS[kind](data):
                legs.append((env["event_id"], env["position"], on, kind, env["branch"], account, program,
                             data.get("kpj"), data.get("npp"), ref, amount))
        if reversals:
            found = self._splits(tx, t["lines"], [d["reverses"] for _, d in reversals if d["reverses"] not in splits])
            splits.update(found)
            for env, data in reversals:
                # Its payment's employer too: a v1 reversal does not carry it (v2 carries the same).
                known = splits.get(data["reverses"])
                lines.append(_line_row(env, {**data, "npp": known[2]} if known else data, "ContributionReversed",
                                       data["reverses"], known[:2] if known else (0, 0), pending=known is None))
        tx.executemany(f"INSERT INTO {t['held']} VALUES (?, ?, ?)", held)
        tx.executemany(f"INSERT INTO {t['lines']} VALUES ({', '.join('?' * 17)})", lines)
        tx.executemany(f"INSERT INTO {t['legs']} VALUES ({', '.join('?' * 11)})", legs)
        self._add_up(tx, t, [row for row in lines if not row[16]], legs)

    def _held_on(self, tx: Tx, held: str, reference: str, env: dict[str, Any]) -> str:
        row = tx.one(f"SELECT received_on FROM {held} WHERE reference = ?", (reference,))
        if row is None:
            raise InvariantViolation(self.name, f"bank reference {reference} matched but never held", env["event_id"])
        return str(row[0])

    def _splits(self, tx: Tx, lines: str, event_ids: list[str]) -> dict[str, Split]:
        """The JKP splits (and employer) of earlier lines, by event id; none while the lines have no index (a
        rebuild's load: a scan per reversal would cost minutes, so the reversals wait for `complete`)."""
        if not event_ids or not tx.index_exists(f"{lines}_i0"):
            return {}
        found: dict[str, Split] = {}
        for start in range(0, len(event_ids), JSON_VALUES_PER_INSERT):
            chunk = event_ids[start:start + JSON_VALUES_PER_INSERT]
            for event_id, jkk, jkm, npp in tx.all(
                    f"SELECT event_id, jkp_jkk, jkp_jkm, npp FROM {lines} WHERE event_id IN "
                    f"({', '.join('?' * len(chunk))}) AND type != 'ContributionReversed'", chunk):
                found[event_id] = (int(jkk), int(jkm), npp)
        return found

    def _add_up(self, tx: Tx, t: dict[str, str], lines: list[tuple[Any, ...]], legs: list[tuple[Any, ...]]) -> None:
        """Add booked lines and legs to `totals` and `clearing`."""
        sums = _Sums()
        for row in lines:
            event_id, position, on, branch, _kpj, _npp, ref, kind = row[:8]
            amounts = dict(zip(LINE_COLUMNS, row[8:16], strict=True))
            for account, program, amount in line_legs(kind, amounts):
                sums.add((branch, on, account, program, kind), ref, amount, position, event_id)
        for event_id, position, on, kind, branch, account, program, _kpj, _npp, ref, amount in legs:
            sums.add((branch, on, account, program, kind), ref, amount, position, event_id)
        self._upsert(tx, t, sorted((*k, *v) for k, v in sums.totals.items()),
                     sorted((k, *v) for k, v in sums.clearing.items()))

    @staticmethod
    def _upsert(tx: Tx, t: dict[str, str], totals: list[tuple[Any, ...]], clearing: list[tuple[Any, ...]]) -> None:
        tx.executemany(
            f"INSERT INTO {t['totals']} AS x VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            f"ON CONFLICT (branch, on_date, account, program, source) DO UPDATE SET debit = x.debit + excluded.debit, "
            f"credit = x.credit + excluded.credit, {latest_sql('x')}", totals)
        tx.executemany(
            f"INSERT INTO {t['clearing']} AS x VALUES (?, ?, ?, ?) ON CONFLICT (ref) DO UPDATE SET "
            f"amount = x.amount + excluded.amount, {latest_sql('x')}", clearing)

    def apply_json(self, tx: Tx, version: int, values: list[bytes]) -> None:
        t = {table.name: self.table(version, table.name) for table in self.tables}
        current = EVENT_TYPES["ContributionPaid"].VERSION
        before = tx.aggregate(f"SELECT coalesce(max(rowid), 0) FROM {t['lines']}")[0]
        try:
            inserted = 0
            for start in range(0, len(values), JSON_VALUES_PER_INSERT):
                chunk = values[start:start + JSON_VALUES_PER_INSERT]
                inserted += tx.connection.execute(_json_insert(t["lines"], current, len(chunk)), chunk).rowcount
            if inserted != len(values):
                raise JsonRefused(f"{len(values) - inserted} of {len(values)} records are not ContributionPaid "
                                  f"version {current}")
            tx.execute(_json_totals(t["lines"], t["totals"], int(before)))
            tx.execute(
                f"INSERT INTO {t['clearing']} AS x SELECT ref, SUM(total), MAX(position), event_id FROM {t['lines']} "
                f"WHERE rowid > ? AND total != 0 GROUP BY ref ON CONFLICT (ref) DO UPDATE SET "
                f"amount = x.amount + excluded.amount, {latest_sql('x')}", (before,))
        except sqlite3.Error as error:  # malformed JSON, a field missing (NOT NULL)
            raise JsonRefused(str(error)) from error

    def complete(self, tx: Tx, version: int) -> None:
        """After a rebuild's indexes: book the reversals that waited for their payment's JKP splits."""
        t = {table.name: self.table(version, table.name) for table in self.tables}
        found = tx.all(f"SELECT r.event_id, o.jkp_jkk, o.jkp_jkm, o.npp FROM {t['lines']} r JOIN {t['lines']} o "
                       f"ON o.event_id = r.ref AND o.type != 'ContributionReversed' WHERE r.pending = 1")
        if not found:
            return
        tx.executemany(f"UPDATE {t['lines']} SET jkp_jkk = ?, jkp_jkm = ?, npp = ?, pending = 0 WHERE event_id = ?",
                       [(int(jkk), int(jkm), npp, event_id) for event_id, jkk, jkm, npp in found])
        booked: list[tuple[Any, ...]] = []
        for start in range(0, len(found), JSON_VALUES_PER_INSERT):
            chunk = [event_id for event_id, _, _, _ in found[start:start + JSON_VALUES_PER_INSERT]]
            booked += tx.all(f"SELECT {', '.join(ROW_COLUMNS)} FROM {t['lines']} "
                             f"WHERE event_id IN ({', '.join('?' * len(chunk))})", chunk)
        self._add_up(tx, t, booked, [])

    def check(self, tx: Tx, version: int) -> None:
        t = {table.name: self.table(version, table.name) for table in self.tables}
        # 1. Every entry balances: a line's total is its shares plus its fine, its JKP splits parts of its JKK and
        # JKM shares; every other entry's legs add up to zero.
        row = tx.one(f"SELECT event_id FROM {t['lines']} WHERE total != jht + jkk + jkm + jp + fine OR jkp_jkk < 0 "
                     f"OR jkp_jkk > jkk OR jkp_jkm < 0 OR jkp_jkm > jkm OR jht < 0 OR jkk < 0 OR jkm < 0 OR jp < 0 "
                     f"OR fine < 0 ORDER BY position LIMIT 1")
        if row:
            raise InvariantViolation(self.name, "a contribution line's entry does not balance: its total is not its "
                                                "shares plus its fine, or an amount is below zero", row[0])
        row = tx.one(f"SELECT event_id FROM {t['legs']} GROUP BY event_id HAVING SUM(amount) != 0 "
                     f"ORDER BY MIN(position) LIMIT 1")
        if row:
            raise InvariantViolation(self.name, "an entry's debits do not equal its credits", row[0])
        # 2. Every reversal was booked: its payment was found.
        row = tx.one(f"SELECT event_id, ref FROM {t['lines']} WHERE pending = 1 ORDER BY position LIMIT 1")
        if row:
            raise InvariantViolation(self.name, f"a reversal of contribution {row[1]}, which is not in the journal",
                                     row[0])
        # 3. The whole journal balances on every date (and so at every date).
        row = tx.one(f"SELECT on_date, MAX(last_event_id) FROM {t['totals']} GROUP BY on_date "
                     f"HAVING SUM(debit) != SUM(credit) ORDER BY on_date LIMIT 1")
        if row:
            raise InvariantViolation(self.name, f"the journal does not balance on {row[0]}", row[1])
        # 4. Every payment's clearing account is empty: its member lines add up to the payment.
        row = tx.one(f"SELECT ref, amount, last_event_id FROM {t['clearing']} WHERE amount != 0 "
                     f"ORDER BY last_position LIMIT 1")
        if row:
            raise InvariantViolation(self.name, f"payment or bill {row[0]}: its member lines differ from it by "
                                                f"{-int(row[1]):,} rupiah", row[2])
        # 5. Receivables, payers' credit, money held, billed and owed-back never fall below zero in a branch.
        for account in NEVER_NEGATIVE:
            sign = "debit - credit" if account.normal_side == "debit" else "credit - debit"
            row = tx.one(
                f"SELECT branch, on_date, last_event_id, running FROM (SELECT branch, on_date, MAX(last_event_id) AS "
                f"last_event_id, SUM(SUM({sign})) OVER (PARTITION BY branch ORDER BY on_date ROWS UNBOUNDED "
                f"PRECEDING) AS running FROM {t['totals']} WHERE account = ? GROUP BY branch, on_date) r "
                f"WHERE running < 0 ORDER BY branch, on_date LIMIT 1", (account.code,))
            if row:
                raise InvariantViolation(self.name, f"branch {row[0]}: {account.name} ({account.code}) falls to "
                                                    f"{int(row[3]):,} on {row[1]}", row[2])


class _Sums:
    """A batch's debits and credits per totals key, and its clearing amounts per payment, each with its latest event."""

    def __init__(self) -> None:
        self.totals: dict[TotalsKey, list[Any]] = {}
        self.clearing: dict[str, list[Any]] = {}

    def add(self, key: TotalsKey, ref: str | None, amount: int, position: int, event_id: str) -> None:
        if not amount:
            return
        row = self.totals.setdefault(key, [0, 0, 0, ""])
        row[0 if amount > 0 else 1] += abs(amount)
        if position > row[2]:
            row[2], row[3] = position, event_id
        if key[2] == CLEARING.code and ref is not None:
            cleared = self.clearing.setdefault(ref, [0, 0, ""])
            cleared[0] += amount
            if position > cleared[1]:
                cleared[1], cleared[2] = position, event_id


def _line_row(env: dict[str, Any], data: dict[str, Any], kind: str, ref: str, split: tuple[int, int], *,
              pending: bool) -> tuple[Any, ...]:
    return (env["event_id"], env["position"], env["effective_date"], env["branch"], data["kpj"], data.get("npp"),
            ref, kind, share(data, "JHT"), share(data, "JKK"), split[0], share(data, "JKM"), split[1],
            share(data, "JP"), data["fine"], data["total"], 1 if pending else 0)


