"""The projections: what each keeps, how each applies a batch of events, and the invariants each must satisfy.

Both are built from the events topic alone, and both are order-independent across partitions. Kafka orders events
per aggregate (a member's enrollment, wage changes, exit and claims; one contribution month and its reversal), not
across aggregates, so everything kept here is either a sum (commutative) or written by one aggregate's ordered
events. That is why N workers sharing the partitions build the same tables as one worker does.

- `balances`: per member, every money movement dated by its effective date (`postings`), so the balance of any
  program at any date is one indexed sum; plus running totals per member (`accounts`) kept incrementally, which the
  invariants check against the postings.
- `branches`: per branch, date, contribution month and program, the money in and out (`flows`); the members,
  employers and BPU months that active counts are taken from; and per member totals for the invariants.

Money is summed as integers (rupiah) in SQL; nothing here is a float.

The JSON path (SQLite only): `balances` applies `ContributionPaid` records, nine in ten of all events, straight from
the record's JSON bytes with SQLite's `json_extract`, without Python parsing them (`apply_json`). It writes the same
rows as `apply` does; `apply` remains the path for every other event, for older event versions and for PostgreSQL,
and the runner falls back to it for the whole batch when a record is not what its headers say.
"""

from __future__ import annotations

import functools
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar

import orjson

from ledger import rules
from ledger.errors import InvariantViolation
from ledger.events import EVENT_TYPES, UpcastNeedsMember, envelope_data
from projections.store import Tx, table_name

PROGRAMS = ("JHT", "JKK", "JKM", "JP")
SIDES = ("employer", "worker")
SHARE_COLUMNS = tuple(f"{p.lower()}_{side}" for p in PROGRAMS for side in SIDES)
FINE_PROGRAM = "-"  # the `program` of a flow row that carries late fines, which belong to no program
JSON_VALUES_PER_INSERT = 500  # measured: 500 and 2,000 alike, 10,000 slower


class JsonRefused(Exception):
    """The JSON path met a record it cannot apply (not JSON, another type or version, a field missing): the batch
    is applied the ordinary way instead, which names the record if it is bad."""


@dataclass(frozen=True)
class Table:
    name: str
    columns: str  # the column list of CREATE TABLE
    indexes: tuple[str, ...] = ()  # column lists; created after a rebuild's bulk load, before the switch


# Events whose upcast needs their member's enrollment (a v1 `ContributionReversed`, see `ledger.events`) wait here
# when it has not been applied yet: workers share the partitions, so an enrollment may arrive after a later event
# of another aggregate. They are applied as soon as the member is known; a rebuild does not finish with any waiting.
PARKED = Table("parked", "position BIGINT PRIMARY KEY, kpj TEXT NOT NULL, envelope TEXT NOT NULL")


class ViewMembers:
    """The `UpcastContext` of a projection: its own members table, plus the enrollments of the batch being applied."""

    def __init__(self, tx: Tx, members: str) -> None:
        self.tx, self.members = tx, members
        self.batch: dict[str, tuple[str | None, str]] = {}

    def see(self, data: dict[str, Any]) -> None:
        self.batch[data["kpj"]] = (data["npp"], data["segment"])

    def member_facts(self, kpj: str) -> tuple[str | None, str] | None:
        if kpj in self.batch:
            return self.batch[kpj]
        row = self.tx.one(f"SELECT npp, segment FROM {self.members} WHERE kpj = ?", (kpj,))
        return (row[0], row[1]) if row else None


class Projection:
    name: str
    tables: tuple[Table, ...]

    def table(self, version: int, table: str) -> str:
        return table_name(self.name, version, table)

    def create(self, tx: Tx, version: int, *, indexes: bool) -> None:
        for table in self.tables:
            tx.execute(f"CREATE TABLE IF NOT EXISTS {self.table(version, table.name)} ({table.columns})")
        if indexes:
            self.create_indexes(tx, version)

    def create_indexes(self, tx: Tx, version: int) -> None:
        for table in self.tables:
            for number, columns in enumerate(table.indexes):
                name = self.table(version, table.name)
                tx.execute(f"CREATE INDEX IF NOT EXISTS {name}_i{number} ON {name} ({columns})")

    def outdated(self, tx: Tx, version: int) -> str | None:
        """Why a version built by an earlier release cannot be caught up by this one: a table this release keeps that
        the version lacks (it would miss every earlier event of that table), or None. Adding a table to `tables` is
        what makes operators rebuild after an upgrade: `ledger projections run` and the readers refuse such a version
        with this message."""
        for table in self.tables:
            if not tx.table_exists(self.table(version, table.name)):
                return (f"the {self.name} projection's version {version} was built by an earlier release, without "
                        f"its {table.name} table: run `ledger projections rebuild {self.name}`")
        return None

    def drop(self, tx: Tx, version: int) -> None:
        for table in self.tables:
            tx.execute(f"DROP TABLE IF EXISTS {self.table(version, table.name)}")

    # Event types whose records, at their current version, `apply_json` takes as JSON bytes (SQLite only).
    json_types: tuple[str, ...] = ()

    def apply(self, tx: Tx, version: int, envelopes: Iterable[dict[str, Any]]) -> None:
        """Apply a batch: upcast each event (parking those that need a member not seen yet), book them, then
        apply the parked events whose member is now known."""
        context = ViewMembers(tx, self.table(version, "members"))
        ready, parked = [], []
        for env in envelopes:
            try:
                data = envelope_data(env, upgrade="the projections", context=context)
            except UpcastNeedsMember as need:
                parked.append((env["position"], need.kpj, orjson.dumps(env).decode()))
                continue
            if env["type"] == "MemberEnrolled":
                context.see(data)
            ready.append((env, data))
        self.book(tx, version, ready)
        table = self.table(version, PARKED.name)
        tx.executemany(f"INSERT INTO {table} VALUES (?, ?, ?)", parked)
        if tx.one(f"SELECT 1 FROM {table} LIMIT 1") is None:
            return
        members = self.table(version, "members")
        known = tx.all(f"SELECT p.position, p.envelope FROM {table} p JOIN {members} m ON m.kpj = p.kpj "
                       f"ORDER BY p.position")
        if known:
            tx.executemany(f"DELETE FROM {table} WHERE position = ?", [(position,) for position, _ in known])
            self.apply(tx, version, [orjson.loads(envelope) for _, envelope in known])

    def book(self, tx: Tx, version: int, events: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        """Write a batch of (envelope, data at the current contract version) into the tables."""
        raise NotImplementedError

    def check_parked(self, tx: Tx, version: int) -> None:
        row = tx.one(f"SELECT kpj, envelope FROM {self.table(version, PARKED.name)} ORDER BY position LIMIT 1")
        if row:
            raise InvariantViolation(self.name, f"member {row[0]} was never enrolled, but an event of theirs needs "
                                                f"the enrollment", orjson.loads(row[1])["event_id"])

    def apply_json(self, tx: Tx, version: int, values: list[bytes]) -> None:
        """Apply records of `json_types` from their JSON bytes, with the same effect as `apply` on their envelopes.
        Raises `JsonRefused` (its changes then need rolling back) if a record is not such an event."""
        raise NotImplementedError

    def complete(self, tx: Tx, version: int) -> None:
        """What a rebuild does once its indexes are built, before the invariants are checked: nothing, but for a
        projection that defers work an index makes cheap (`projections.general_ledger`)."""

    def check(self, tx: Tx, version: int) -> None:
        """Raise `InvariantViolation` naming an event if the tables break an invariant."""
        raise NotImplementedError


def latest(row: list[Any], env: dict[str, Any]) -> None:
    """Keep in the last two slots of `row` the position and id of the latest event (by global position) seen."""
    if env["position"] > row[-2]:
        row[-2], row[-1] = env["position"], env["event_id"]


def latest_sql(alias: str) -> str:
    """The upsert's SET clause for the latest-event columns: the higher position wins, whatever order batches
    commit in, so workers sharing the partitions build identical rows."""
    return (f"last_event_id = CASE WHEN excluded.last_position > {alias}.last_position THEN excluded.last_event_id "
            f"ELSE {alias}.last_event_id END, last_position = CASE WHEN excluded.last_position > {alias}.last_position "
            f"THEN excluded.last_position ELSE {alias}.last_position END")


NO_SHARE = {"employer": 0, "worker": 0}
# What a contribution event does to balances and flows: a payment and an adjustment (more for a month billed before,
# settled) add their shares and fine, a reversal takes them back.
CONTRIBUTION_SIGNS = {"ContributionPaid": 1, "ContributionAdjusted": 1, "ContributionReversed": -1}


def _shares(data: dict[str, Any], sign: int) -> list[int]:
    """The 8 share columns (employer, worker per program in PROGRAMS order), signed; spelled out: a hot loop."""
    shares = data["shares"]
    jht, jkk, jkm, jp = (shares.get(p, NO_SHARE) for p in PROGRAMS)
    return [sign * jht["employer"], sign * jht["worker"], sign * jkk["employer"], sign * jkk["worker"],
            sign * jkm["employer"], sign * jkm["worker"], sign * jp["employer"], sign * jp["worker"]]


def _json(path: str) -> str:
    return f"json_extract(column1, '$.{path}')"


@functools.lru_cache(maxsize=64)
def _json_insert(postings: str, current: int, count: int) -> str:
    """One INSERT of `count` ContributionPaid values' postings; a value of another type or version inserts nothing."""
    shares = ", ".join(f"coalesce({_json(f'data.shares.{program}.{side}')}, 0)"  # SHARE_COLUMNS's order
                       for program in PROGRAMS for side in SIDES)
    return (f"INSERT INTO {postings} SELECT {_json('event_id')}, {_json('data.kpj')}, {_json('effective_date')}, "
            f"'contribution', {_json('data.month')}, {shares}, {_json('data.fine')}, 0, NULL, 0, {_json('position')} "
            f"FROM (VALUES {', '.join(['(?)'] * count)}) WHERE {_json('type')} = 'ContributionPaid' "
            f"AND {_json('version')} = {current}")


def payer_account(data: dict[str, Any]) -> str:
    """The account a contribution or its reversal is booked to: the employer or paying body, or the member who
    paid for themself. A reversal names the same account as its payment (`ContributionReversed` v2)."""
    return f"npp:{data['npp']}" if data.get("npp") else f"kpj:{data['kpj']}"


class Balances(Projection):
    name = "balances"
    json_types = ("ContributionPaid",)
    tables = (
        Table("members", "kpj TEXT PRIMARY KEY, branch TEXT NOT NULL, segment TEXT NOT NULL, npp TEXT, "
                         "nik_hmac TEXT NOT NULL, enrolled_on TEXT NOT NULL, wage BIGINT NOT NULL, exited_on TEXT, "
                         "exit_reason TEXT, event_id TEXT NOT NULL"),
        Table("postings", "event_id TEXT NOT NULL, kpj TEXT NOT NULL, on_date TEXT NOT NULL, kind TEXT NOT NULL, "
                          "month TEXT, " + ", ".join(f"{c} BIGINT NOT NULL" for c in SHARE_COLUMNS) + ", "
                          "fine BIGINT NOT NULL, jht_yield BIGINT NOT NULL, claim_program TEXT, "
                          "claim_amount BIGINT NOT NULL, position BIGINT NOT NULL",
              indexes=("kpj, on_date",)),
        Table("accounts", "kpj TEXT PRIMARY KEY, jht_contributions BIGINT NOT NULL, jht_yield BIGINT NOT NULL, "
                          "jht_claims BIGINT NOT NULL, jht_balance BIGINT NOT NULL, last_position BIGINT NOT NULL, "
                          "last_event_id TEXT NOT NULL"),
        PARKED,
    )

    def book(self, tx: Tx, version: int, events: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        enrolled, wages, exits, postings = [], [], [], []
        accounts: dict[str, list[Any]] = {}  # kpj -> [contributions, yield, claims, last position, its event id]
        zero_shares = [0] * len(SHARE_COLUMNS)

        def account(kpj: str, env: dict[str, Any]) -> list[Any]:
            row = accounts.setdefault(kpj, [0, 0, 0, 0, ""])
            latest(row, env)
            return row

        for env, data in events:
            kind = env["type"]
            event_id, on = env["event_id"], env["effective_date"]
            if kind in CONTRIBUTION_SIGNS:
                sign = CONTRIBUTION_SIGNS[kind]
                shares = _shares(data, sign)
                postings.append((event_id, data["kpj"], on, "contribution" if sign > 0 else "contribution-reversal",
                                 data["month"], *shares, sign * data["fine"], 0, None, 0, env["position"]))
                account(data["kpj"], env)[0] += shares[0] + shares[1]
            elif kind == "YieldCredited":
                postings.append((event_id, data["kpj"], on, "yield", None, *zero_shares, 0, data["amount"], None, 0,
                                 env["position"]))
                account(data["kpj"], env)[1] += data["amount"]
            elif kind in {"ClaimPaid", "ClaimReversed"}:
                sign = 1 if kind == "ClaimPaid" else -1
                postings.append((event_id, data["kpj"], on, "claim" if sign > 0 else "claim-reversal", None,
                                 *zero_shares, 0, 0, data["program"], sign * data["amount"], env["position"]))
                if data["program"] == "JHT":
                    account(data["kpj"], env)[2] += sign * data["amount"]
            elif kind == "MemberEnrolled":
                enrolled.append((data["kpj"], env["branch"], data["segment"], data["npp"], data["nik_hmac"],
                                 data["effective"], data["wage"], event_id))
            elif kind == "MemberWageChanged":
                wages.append((data["wage"], data["kpj"]))
            elif kind == "MemberExited":
                exits.append((data["exit_date"], data["reason"], data["kpj"]))

        members = self.table(version, "members")
        tx.executemany(f"INSERT INTO {members} (kpj, branch, segment, npp, nik_hmac, enrolled_on, wage, event_id) "
                       f"VALUES (?, ?, ?, ?, ?, ?, ?, ?)", enrolled)
        tx.executemany(f"UPDATE {members} SET wage = ? WHERE kpj = ?", wages)
        tx.executemany(f"UPDATE {members} SET exited_on = ?, exit_reason = ? WHERE kpj = ?", exits)
        placeholders = ", ".join("?" * (10 + len(SHARE_COLUMNS)))
        tx.executemany(f"INSERT INTO {self.table(version, 'postings')} VALUES ({placeholders})", postings)
        tx.executemany(
            f"INSERT INTO {self.table(version, 'accounts')} AS a VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kpj) DO "
            "UPDATE SET jht_contributions = a.jht_contributions + excluded.jht_contributions, "
            "jht_yield = a.jht_yield + excluded.jht_yield, jht_claims = a.jht_claims + excluded.jht_claims, "
            f"jht_balance = a.jht_balance + excluded.jht_balance, {latest_sql('a')}",
            sorted((kpj, c, y, cl, c + y - cl, position, event) for kpj, (c, y, cl, position, event)
                   in accounts.items()))

    def apply_json(self, tx: Tx, version: int, values: list[bytes]) -> None:
        # Measured on 240,000 contributions: 4.2 us per event with one INSERT ... SELECT per 500 values, 6.0 us with
        # one INSERT per value (executemany), 10.8 us for orjson.loads and `apply`. SQLite parses each value once and
        # takes every column from that parse.
        postings, accounts = self.table(version, "postings"), self.table(version, "accounts")
        current = EVENT_TYPES["ContributionPaid"].VERSION
        before = tx.aggregate(f"SELECT coalesce(max(rowid), 0) FROM {postings}")[0]
        try:
            inserted = 0
            for start in range(0, len(values), JSON_VALUES_PER_INSERT):
                chunk = values[start:start + JSON_VALUES_PER_INSERT]
                inserted += tx.connection.execute(_json_insert(postings, current, len(chunk)), chunk).rowcount
            if inserted != len(values):
                raise JsonRefused(f"{len(values) - inserted} of {len(values)} records are not ContributionPaid "
                                  f"version {current}")
            # The accounts, from the rows just inserted (rowid above `before`): per member, the sum, and the event id
            # of the highest position (SQLite takes a bare column from the row that gave MAX).
            tx.execute(
                f"INSERT INTO {accounts} AS a SELECT kpj, SUM(jht_employer + jht_worker), 0, 0, "
                f"SUM(jht_employer + jht_worker), MAX(position), event_id FROM {postings} WHERE rowid > ? "
                f"GROUP BY kpj ON CONFLICT (kpj) DO UPDATE SET "
                f"jht_contributions = a.jht_contributions + excluded.jht_contributions, "
                f"jht_balance = a.jht_balance + excluded.jht_balance, {latest_sql('a')}", (before,))
        except sqlite3.Error as error:  # malformed JSON, a field missing (NOT NULL)
            raise JsonRefused(str(error)) from error

    def check(self, tx: Tx, version: int) -> None:
        postings, accounts, members = (self.table(version, t) for t in ("postings", "accounts", "members"))
        # 1. The running account agrees with the formula and with the sum of its postings.
        row = tx.one(
            f"SELECT a.kpj, a.last_event_id FROM {accounts} a LEFT JOIN (SELECT kpj, "
            f"SUM(jht_employer + jht_worker) AS c, SUM(jht_yield) AS y, "
            f"SUM(CASE WHEN claim_program = 'JHT' THEN claim_amount ELSE 0 END) AS cl FROM {postings} GROUP BY kpj) p "
            f"ON p.kpj = a.kpj WHERE a.jht_balance != a.jht_contributions + a.jht_yield - a.jht_claims "
            f"OR p.kpj IS NULL OR a.jht_contributions != p.c OR a.jht_yield != p.y OR a.jht_claims != p.cl LIMIT 1")
        if row:
            raise InvariantViolation(self.name, f"member {row[0]}: JHT balance is not contributions + yield - claims",
                                     row[1])
        # 2. No member's JHT balance is ever below zero: a claim never pays more than the balance at its date.
        # Only a member with some posting that takes JHT money (a claim, a reversed contribution) can go below
        # zero, so only those members' running balances are computed: a sort of a few rows instead of all
        # (measured on a million postings: 1.14 s to 0.13 s).
        delta = "jht_employer + jht_worker + jht_yield - CASE WHEN claim_program = 'JHT' THEN claim_amount ELSE 0 END"
        row = tx.one(
            f"SELECT kpj, event_id, running FROM (SELECT kpj, event_id, on_date, position, SUM({delta}) OVER "
            f"(PARTITION BY kpj ORDER BY on_date, position ROWS UNBOUNDED PRECEDING) AS running FROM {postings} "
            f"WHERE kpj IN (SELECT kpj FROM {postings} WHERE {delta} < 0)) r "
            f"WHERE running < 0 ORDER BY kpj, on_date, position LIMIT 1")
        if row:
            raise InvariantViolation(self.name, f"member {row[0]}: JHT balance falls to {row[2]} below zero", row[1])
        # 3. Every posting belongs to an enrolled member.
        row = tx.one(f"SELECT p.kpj, p.event_id FROM {postings} p LEFT JOIN {members} m ON m.kpj = p.kpj "
                     f"WHERE m.kpj IS NULL LIMIT 1")
        if row:
            raise InvariantViolation(self.name, f"member {row[0]} has money movements but was never enrolled", row[1])
        # 4. No event waits for an enrollment that never came.
        self.check_parked(tx, version)


class Branches(Projection):
    name = "branches"
    tables = (
        Table("flows", "branch TEXT NOT NULL, on_date TEXT NOT NULL, month TEXT NOT NULL, program TEXT NOT NULL, "
                       "employer_share BIGINT NOT NULL, worker_share BIGINT NOT NULL, fines BIGINT NOT NULL, "
                       "claims_count BIGINT NOT NULL, claims_amount BIGINT NOT NULL, "
                       "PRIMARY KEY (branch, on_date, month, program)"),
        Table("members", "kpj TEXT PRIMARY KEY, branch TEXT NOT NULL, segment TEXT NOT NULL, npp TEXT, "
                         "enrolled_on TEXT NOT NULL, exited_on TEXT, event_id TEXT NOT NULL",
              indexes=("branch, segment, enrolled_on",)),
        Table("employers", "npp TEXT PRIMARY KEY, branch TEXT NOT NULL, kind TEXT NOT NULL, "
                           "registered_on TEXT NOT NULL"),
        Table("bpu_months", "event_id TEXT PRIMARY KEY, kpj TEXT NOT NULL, month TEXT NOT NULL, paid_on TEXT NOT NULL, "
                            "reversed_on TEXT", indexes=("kpj, month",)),
        # Totals per paying account and date: an employer (its members' contributions) or a member (a BPU member's
        # own payments, and every member's claims). About one row per payment, so cheap to keep; the invariants add
        # them up per branch, and the auditor's recount compares them per account as of a date.
        Table("account_totals", "account TEXT NOT NULL, branch TEXT NOT NULL, on_date TEXT NOT NULL, "
                                "contributions BIGINT NOT NULL, fines BIGINT NOT NULL, claims_count BIGINT NOT NULL, "
                                "claims_amount BIGINT NOT NULL, last_position BIGINT NOT NULL, "
                                "last_event_id TEXT NOT NULL, PRIMARY KEY (account, branch, on_date)"),
        PARKED,
    )

    def book(self, tx: Tx, version: int, events: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        flows: dict[tuple[str, str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
        totals: dict[tuple[str, str, str], list[Any]] = {}
        members, exits, employers, bpu_paid, bpu_reversed = [], [], [], [], []

        def total(account: str, branch: str, on: str, env: dict[str, Any]) -> list[Any]:
            row = totals.setdefault((account, branch, on), [0, 0, 0, 0, 0, ""])
            latest(row, env)
            return row

        for env, data in events:
            kind = env["type"]
            event_id, on, branch = env["event_id"], env["effective_date"], env["branch"]
            if kind in CONTRIBUTION_SIGNS:
                sign = CONTRIBUTION_SIGNS[kind]
                amount = _add_to_flows(flows, branch, on, data, sign)
                row = total(payer_account(data), branch, on, env)
                row[0] += sign * amount
                row[1] += sign * data["fine"]
                if kind == "ContributionPaid" and data["segment"] == "BPU":
                    bpu_paid.append((event_id, data["kpj"], data["month"], data["paid_on"]))
                elif kind == "ContributionReversed":
                    bpu_reversed.append((data["reversed_on"], data["reverses"]))
            elif kind in {"ClaimPaid", "ClaimReversed"}:
                sign = 1 if kind == "ClaimPaid" else -1
                row = flows[(branch, on, "", data["program"])]
                row[3] += sign
                row[4] += sign * data["amount"]
                row = total(f"kpj:{data['kpj']}", branch, on, env)
                row[2] += sign
                row[3] += sign * data["amount"]
            elif kind == "MemberEnrolled":
                members.append((data["kpj"], branch, data["segment"], data["npp"], data["effective"], event_id))
            elif kind == "MemberExited":
                exits.append((data["exit_date"], data["kpj"]))
            elif kind == "EmployerRegistered":
                employers.append((data["npp"], branch, data["kind"], data["registered_on"]))

        t = {table.name: self.table(version, table.name) for table in self.tables}
        tx.executemany(f"INSERT INTO {t['members']} (kpj, branch, segment, npp, enrolled_on, event_id) "
                       f"VALUES (?, ?, ?, ?, ?, ?)", members)
        tx.executemany(f"UPDATE {t['members']} SET exited_on = ? WHERE kpj = ?", exits)
        tx.executemany(f"INSERT INTO {t['employers']} VALUES (?, ?, ?, ?)", employers)
        tx.executemany(f"INSERT INTO {t['bpu_months']} (event_id, kpj, month, paid_on) VALUES (?, ?, ?, ?)", bpu_paid)
        # A reversal is in the same partition as the payment it reverses (one contribution-month aggregate), so the
        # payment's row is already there; a PU payment has no row and the update touches nothing.
        tx.executemany(f"UPDATE {t['bpu_months']} SET reversed_on = ? WHERE event_id = ?", bpu_reversed)
        tx.executemany(
            f"INSERT INTO {t['flows']} AS f VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (branch, on_date, month, program) DO UPDATE SET "
            "employer_share = f.employer_share + excluded.employer_share, "
            "worker_share = f.worker_share + excluded.worker_share, fines = f.fines + excluded.fines, "
            "claims_count = f.claims_count + excluded.claims_count, "
            "claims_amount = f.claims_amount + excluded.claims_amount",
            sorted((*key, *values) for key, values in flows.items()))
        tx.executemany(
            f"INSERT INTO {t['account_totals']} AS m VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (account, branch, on_date) DO "
            "UPDATE SET contributions = m.contributions + excluded.contributions, fines = m.fines + excluded.fines, "
            "claims_count = m.claims_count + excluded.claims_count, "
            f"claims_amount = m.claims_amount + excluded.claims_amount, {latest_sql('m')}",
            sorted((*key, *values) for key, values in totals.items()))

    def check(self, tx: Tx, version: int) -> None:
        t = {table.name: self.table(version, table.name) for table in self.tables}
        # 1. Each branch's totals equal the sum over its employers' and members' accounts.
        row = tx.one(
            f"SELECT f.branch, f.c, f.fi, f.n, f.a, m.c, m.fi, m.n, m.a FROM (SELECT branch, "
            f"SUM(employer_share + worker_share) AS c, SUM(fines) AS fi, SUM(claims_count) AS n, "
            f"SUM(claims_amount) AS a FROM {t['flows']} GROUP BY branch) f FULL OUTER JOIN (SELECT branch, "
            f"SUM(contributions) AS c, SUM(fines) AS fi, SUM(claims_count) AS n, SUM(claims_amount) AS a "
            f"FROM {t['account_totals']} GROUP BY branch) m ON m.branch = f.branch "
            f"WHERE f.branch IS NULL OR m.branch IS NULL OR f.c != m.c OR f.fi != m.fi OR f.n != m.n OR f.a != m.a "
            f"LIMIT 1")
        if row:
            branch = row[0]
            last = tx.one(f"SELECT last_event_id FROM {t['account_totals']} WHERE branch = ? LIMIT 1", (branch,))
            raise InvariantViolation(self.name, f"branch {branch}: totals {row[1:5]} differ from the sum over its "
                                                f"employers and members {row[5:9]}", last[0] if last else None)
        # 2. Every PU member's employer is registered, in the member's branch.
        row = tx.one(f"SELECT m.kpj, m.event_id FROM {t['members']} m LEFT JOIN {t['employers']} e ON e.npp = m.npp "
                     f"WHERE m.segment = 'PU' AND (e.npp IS NULL OR e.branch != m.branch) LIMIT 1")
        if row:
            raise InvariantViolation(self.name, f"member {row[0]}: employer missing or in another branch", row[1])
        # 3. No account's contributions, fines, claim count or claim amount is ever below zero, on any date: a
        # reversal takes back, from the account that was paid, something that was paid there on or before its date.
        running = ", ".join(f"SUM({c}) OVER (PARTITION BY account ORDER BY on_date ROWS UNBOUNDED PRECEDING) AS {c}"
                            for c in ("contributions", "fines", "claims_count", "claims_amount"))
        row = tx.one(f"SELECT account, last_event_id, on_date FROM (SELECT account, on_date, last_event_id, {running} "
                     f"FROM {t['account_totals']}) r WHERE contributions < 0 OR fines < 0 OR claims_count < 0 "
                     f"OR claims_amount < 0 ORDER BY account, on_date LIMIT 1")
        if row:
            raise InvariantViolation(self.name, f"account {row[0]}: more reversed than was paid (on {row[2]})", row[1])
        # 4. No event waits for an enrollment that never came.
        self.check_parked(tx, version)


def _add_to_flows(flows: dict[tuple[str, str, str, str], list[int]], branch: str, on: str, data: dict[str, Any],
                  sign: int) -> int:
    """A contribution's shares and fine added to (a reversal's, `sign` -1, taken from) the branch's flows of the day
    and its month; returns the shares' sum."""
    month = data["month"]
    amount = 0
    for program, share in data["shares"].items():
        row = flows[(branch, on, month, program)]
        row[0] += sign * share["employer"]
        row[1] += sign * share["worker"]
        amount += share["employer"] + share["worker"]
    if data["fine"]:
        flows[(branch, on, month, FINE_PROGRAM)][2] += sign * data["fine"]
    return amount


# --- collections: bills, settlements, money received and refunded (issue 17) --------------------------------------

def _payer_columns(data: dict[str, Any]) -> tuple[str | None, str | None]:
    return data.get("npp"), data.get("kpj")


def _bill_row(env: dict[str, Any], data: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    return [("bills", (data["bill_id"], *_payer_columns(data), data["branch"], data["segment"], data["month"],
                       data["kind"], data["counts_from"], data["due_date"], data["total"], data["member_count"],
                       data["payment_code"], env["event_id"]))]


def _bill_lines_rows(_env: dict[str, Any], data: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    # Per bill, how many lines of each amount: all a bill's late fine needs (`rules.late_fine` rounds per line, as
    # the write side does), without keeping who the lines are for.
    counts: dict[int, int] = defaultdict(int)
    for line in data["lines"]:
        counts[line["amount"]] += 1
    return [("bill_amounts", (data["bill_id"], amount, lines)) for amount, lines in sorted(counts.items())]


def _settled_row(env: dict[str, Any], data: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    return [("settlements", (data["bill_id"], *_payer_columns(data), data["branch"], data["month"],
                             data["settled_on"], data["months_late"], data["amount"], data["fine"], data["total"],
                             env["event_id"]))]


def _received_row(env: dict[str, Any], data: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    # Never the payer's name: it is not published (`MoneyReceived.PERSONAL_FIELDS`), and would not be kept if it were.
    return [("receipts", (data["reference"], *_payer_columns(data), data["branch"], data["payer"], data["amount"],
                          data["received_on"], data.get("payment_code"), env["event_id"]))]


def _refunded_row(env: dict[str, Any], data: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    return [("refunds", (data["refund_id"], *_payer_columns(data), data["branch"], data["amount"],
                         data["refunded_on"], env["event_id"]))]


def _settlement_reversed_row(env: dict[str, Any], data: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    # Its own row, keyed by its own event id: the settlement it reverses (`reverses`) stays as it was recorded, and
    # counts until the reversal's date.
    return [("settlement_reversals", (env["event_id"], data["reverses"], data["bill_id"], *_payer_columns(data),
                                      data["branch"], data["reversed_on"], data["amount"], data["fine"],
                                      data["total"]))]


def _receipt_returned_row(env: dict[str, Any], data: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    return [("receipt_returns", (env["event_id"], data["reference"], *_payer_columns(data), data["branch"],
                                 data["amount"], data["returned_on"]))]


def _held_row(env: dict[str, Any], data: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    # Never the bank's text nor the sender's name (`MoneyUnidentified.PERSONAL_FIELDS`): they are not published, and
    # would not be kept if they were.
    return [("held", (data["reference"], data["branch"], data["amount"], data["received_on"],
                      data.get("payment_code"), env["event_id"]))]


def _identified_row(env: dict[str, Any], data: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    return [("held_matches", (data["reference"], data["branch"], *_payer_columns(data), data["amount"],
                              data["identified_on"], env["event_id"]))]


def _payment_row(env: dict[str, Any], data: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    # A payment without a bill (`ledger contribution pay`): its lines are the `ContributionPaid` events, whose total
    # it carries. Never the payer's name (`ContributionPaymentReceived.PERSONAL_FIELDS`).
    return [("unbilled_payments", (data["payment_id"], *_payer_columns(data), data["branch"], data["paid_on"],
                                   data["line_count"], data["total"], env["event_id"]))]


def _contribution_reversed_row(env: dict[str, Any], data: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    # Every reversed contribution line, of a payment without a bill or of a bill's settlement (reversed with it, never
    # alone): `queries.collection_figures` takes the settlements' reversals from them by branch and day. The fields
    # read are in every version of the event (a v1 reversal needs no upcast here: see `Collections.apply`).
    return [("contribution_reversals", (env["event_id"], data["reverses"], env["branch"], data["reversed_on"],
                                        data["total"]))]


RowsOf = Callable[[dict[str, Any], dict[str, Any]], list[tuple[str, tuple[Any, ...]]]]


class Collections(Projection):
    """Collections (issue 17): every bill with what its late fine needs, every settlement, receipt and refund, each
    kept under its own key, so that the order events of different aggregates arrive in does not matter (a bill's
    lines, `BillLinesAdded`, are another aggregate's events than its `BillClosed`). Arrears and the branch's
    collection figures as of a date are queries over these rows (`projections.queries`).

    Adding an event type: a function from (envelope, data) to rows, in `ROWS`; a new table in `tables`, with its
    INSERT in `INSERTS` (an upsert when rows of one key add up)."""

    name = "collections"
    tables = (
        Table("bills", "bill_id TEXT PRIMARY KEY, npp TEXT, kpj TEXT, branch TEXT NOT NULL, segment TEXT NOT NULL, "
                       "month TEXT NOT NULL, kind TEXT NOT NULL, counts_from TEXT NOT NULL, due_date TEXT NOT NULL, "
                       "total BIGINT NOT NULL, member_count BIGINT NOT NULL, payment_code TEXT NOT NULL, "
                       "event_id TEXT NOT NULL",
              indexes=("branch, counts_from",)),
        Table("bill_amounts", "bill_id TEXT NOT NULL, amount BIGINT NOT NULL, lines BIGINT NOT NULL, "
                              "PRIMARY KEY (bill_id, amount)"),
        # A bill may be settled again after a settlement of it was reversed: a settlement is keyed by its event id.
        Table("settlements", "bill_id TEXT NOT NULL, npp TEXT, kpj TEXT, branch TEXT NOT NULL, month TEXT NOT NULL, "
                             "settled_on TEXT NOT NULL, months_late BIGINT NOT NULL, amount BIGINT NOT NULL, "
                             "fine BIGINT NOT NULL, total BIGINT NOT NULL, event_id TEXT PRIMARY KEY",
              indexes=("branch, settled_on", "npp, kpj", "bill_id")),
        Table("receipts", "reference TEXT PRIMARY KEY, npp TEXT, kpj TEXT, branch TEXT NOT NULL, payer TEXT NOT NULL, "
                          "amount BIGINT NOT NULL, received_on TEXT NOT NULL, payment_code TEXT, "
                          "event_id TEXT NOT NULL",
              indexes=("branch, received_on", "npp, kpj")),
        Table("refunds", "refund_id TEXT PRIMARY KEY, npp TEXT, kpj TEXT, branch TEXT NOT NULL, "
                         "amount BIGINT NOT NULL, refunded_on TEXT NOT NULL, event_id TEXT NOT NULL",
              indexes=("branch, refunded_on", "npp, kpj")),
        # `ledger reverse` of a settlement (its bill open again, its money back to the payer's credit) and of money
        # received by a bank error (taken out of the payer's credit).
        Table("settlement_reversals", "event_id TEXT PRIMARY KEY, reverses TEXT NOT NULL, bill_id TEXT NOT NULL, "
                                      "npp TEXT, kpj TEXT, branch TEXT NOT NULL, reversed_on TEXT NOT NULL, "
                                      "amount BIGINT NOT NULL, fine BIGINT NOT NULL, total BIGINT NOT NULL",
              indexes=("reverses", "branch, reversed_on", "npp, kpj")),
        Table("receipt_returns", "event_id TEXT PRIMARY KEY, reference TEXT NOT NULL, npp TEXT, kpj TEXT, "
                                 "branch TEXT NOT NULL, amount BIGINT NOT NULL, returned_on TEXT NOT NULL",
              indexes=("branch, returned_on", "npp, kpj")),
        # Money held until matched (`ledger.suspense`): what the bank credited, at the branch whose account received
        # it, and the day a clerk matched it (its receipt, `MoneyReceived`, is dated the day the money arrived).
        Table("held", "reference TEXT PRIMARY KEY, branch TEXT NOT NULL, amount BIGINT NOT NULL, "
                      "received_on TEXT NOT NULL, payment_code TEXT, event_id TEXT NOT NULL",
              indexes=("branch, received_on",)),
        Table("held_matches", "reference TEXT PRIMARY KEY, branch TEXT NOT NULL, npp TEXT, kpj TEXT, "
                              "amount BIGINT NOT NULL, identified_on TEXT NOT NULL, event_id TEXT NOT NULL"),
        # Payments without a bill (`ledger contribution pay`), one row each, and every reversed contribution line.
        Table("unbilled_payments", "payment_id TEXT PRIMARY KEY, npp TEXT, kpj TEXT, branch TEXT NOT NULL, "
                                   "paid_on TEXT NOT NULL, line_count BIGINT NOT NULL, total BIGINT NOT NULL, "
                                   "event_id TEXT NOT NULL",
              indexes=("branch, paid_on",)),
        Table("contribution_reversals", "event_id TEXT PRIMARY KEY, reverses TEXT NOT NULL, branch TEXT NOT NULL, "
                                        "reversed_on TEXT NOT NULL, total BIGINT NOT NULL",
              indexes=("branch, reversed_on",)),
    )
    ROWS: ClassVar[dict[str, RowsOf]] = {
        "BillClosed": _bill_row,
        "BillLinesAdded": _bill_lines_rows,
        "BillSettled": _settled_row,
        "MoneyReceived": _received_row,
        "MoneyRefunded": _refunded_row,
        "SettlementReversed": _settlement_reversed_row,
        "ReceiptReturned": _receipt_returned_row,
        "MoneyUnidentified": _held_row,
        "MoneyIdentified": _identified_row,
        "ContributionPaymentReceived": _payment_row,
        "ContributionReversed": _contribution_reversed_row,
    }
    # Types whose rows read fields every version of the event has: applied from the envelope's data as published,
    # without an upcast (a v1 `ContributionReversed` needs its member's enrollment to upcast, which this projection
    # does not keep).
    AS_PUBLISHED: ClassVar[frozenset[str]] = frozenset({"ContributionReversed"})
    INSERTS: ClassVar[dict[str, str]] = {
        "bills": "INSERT INTO {t} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        "bill_amounts": "INSERT INTO {t} AS a VALUES (?, ?, ?) ON CONFLICT (bill_id, amount) DO UPDATE SET "
                        "lines = a.lines + excluded.lines",
        "settlements": "INSERT INTO {t} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        "receipts": "INSERT INTO {t} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        "refunds": "INSERT INTO {t} VALUES (?, ?, ?, ?, ?, ?, ?)",
        "settlement_reversals": "INSERT INTO {t} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        "receipt_returns": "INSERT INTO {t} VALUES (?, ?, ?, ?, ?, ?, ?)",
        "held": "INSERT INTO {t} VALUES (?, ?, ?, ?, ?, ?)",
        "held_matches": "INSERT INTO {t} VALUES (?, ?, ?, ?, ?, ?, ?)",
        "unbilled_payments": "INSERT INTO {t} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        "contribution_reversals": "INSERT INTO {t} VALUES (?, ?, ?, ?, ?)",
    }

    def apply(self, tx: Tx, version: int, envelopes: Iterable[dict[str, Any]]) -> None:
        """Only the collections events: every other type passes untouched (and is never upcast here)."""
        self.book(tx, version, [(env, env["data"] if env["type"] in self.AS_PUBLISHED
                                 and env["version"] <= EVENT_TYPES[env["type"]].VERSION
                                 else envelope_data(env, upgrade="the projections"))
                                for env in envelopes if env["type"] in self.ROWS])

    def book(self, tx: Tx, version: int, events: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        rows: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for env, data in events:
            for table, row in self.ROWS[env["type"]](env, data):
                rows[table].append(row)
        if "bill_amounts" in rows:  # one row per key in a batch: an upsert may not touch a row twice (PostgreSQL)
            summed: dict[tuple[str, int], int] = defaultdict(int)
            for bill_id, amount, lines in rows["bill_amounts"]:
                summed[(bill_id, amount)] += lines
            rows["bill_amounts"] = [(*key, lines) for key, lines in sorted(summed.items())]
        for table, values in rows.items():
            tx.executemany(self.INSERTS[table].format(t=self.table(version, table)), values)

    def check(self, tx: Tx, version: int) -> None:
        t = {table.name: self.table(version, table.name) for table in self.tables}
        # 1. Every bill's lines arrived and add up to its total.
        row = tx.one(
            f"SELECT b.bill_id, b.event_id FROM {t['bills']} b LEFT JOIN (SELECT bill_id, "
            f"SUM(amount * lines) AS total, SUM(lines) AS lines FROM {t['bill_amounts']} GROUP BY bill_id) a "
            f"ON a.bill_id = b.bill_id "
            f"WHERE a.bill_id IS NULL OR a.total != b.total OR a.lines != b.member_count LIMIT 1")
        if row:
            raise InvariantViolation(self.name, f"bill {row[0]}: its member lines do not add up to its total and "
                                                f"member count", row[1])
        row = tx.one(f"SELECT a.bill_id FROM {t['bill_amounts']} a LEFT JOIN {t['bills']} b ON b.bill_id = a.bill_id "
                     f"WHERE b.bill_id IS NULL LIMIT 1")
        if row:
            raise InvariantViolation(self.name, f"bill {row[0]} has member lines but was never closed", None)
        # 2. Every settlement settles a bill closed for the same payer, whole, on or after the day it counts from,
        # with the months late and the fine the rules give for that day (the fine summed over the lines).
        for settled in _settlement_problems(tx, t):
            raise InvariantViolation(self.name, settled[1], settled[0])
        for reversed_ in _reversal_problems(tx, t):
            raise InvariantViolation(self.name, reversed_[1], reversed_[0])
        # 3. Money matched was held: the same amount, matched on or after the day it arrived.
        row = tx.one(f"SELECT m.reference, m.event_id FROM {t['held_matches']} m LEFT JOIN {t['held']} h "
                     f"ON h.reference = m.reference WHERE h.reference IS NULL OR h.amount != m.amount "
                     f"OR m.identified_on < h.received_on LIMIT 1")
        if row:
            raise InvariantViolation(self.name, f"bank reference {row[0]}: matched without being held, for another "
                                                f"amount, or before it arrived", row[1])
        # 4. No payer ever has less than nothing unapplied: money applied, refunded and returned was received by
        # then (a reversed settlement gives its money back on the reversal's date).
        moves = (f"SELECT coalesce(npp, '') AS npp, coalesce(kpj, '') AS kpj, received_on AS on_date, amount, "
                 f"event_id FROM {t['receipts']} UNION ALL SELECT coalesce(npp, ''), coalesce(kpj, ''), settled_on, "
                 f"-total, event_id FROM {t['settlements']} UNION ALL SELECT coalesce(npp, ''), coalesce(kpj, ''), "
                 f"refunded_on, -amount, event_id FROM {t['refunds']} UNION ALL SELECT coalesce(npp, ''), "
                 f"coalesce(kpj, ''), reversed_on, total, event_id FROM {t['settlement_reversals']} UNION ALL "
                 f"SELECT coalesce(npp, ''), coalesce(kpj, ''), returned_on, -amount, event_id "
                 f"FROM {t['receipt_returns']}")
        row = tx.one(
            f"SELECT npp, kpj, on_date, event_id FROM (SELECT npp, kpj, on_date, MAX(event_id) AS event_id, "
            f"SUM(SUM(amount)) OVER (PARTITION BY npp, kpj ORDER BY on_date ROWS UNBOUNDED PRECEDING) AS running "
            f"FROM ({moves}) m GROUP BY npp, kpj, on_date) r WHERE running < 0 ORDER BY npp, kpj, on_date LIMIT 1")
        if row:
            payer = f"employer {row[0]}" if row[0] else f"member {row[1]}"
            raise InvariantViolation(self.name, f"{payer}: more money applied and refunded than received by "
                                                f"{row[2]}", row[3])


def _settlement_problems(tx: Tx, t: dict[str, str]) -> Iterable[tuple[str, str]]:
    """(event id, problem) of settlements that do not match their bill, the first only."""
    row = tx.one(
        f"SELECT s.bill_id, s.event_id FROM {t['settlements']} s LEFT JOIN {t['bills']} b ON b.bill_id = s.bill_id "
        f"WHERE b.bill_id IS NULL OR s.amount != b.total OR s.settled_on < b.counts_from "
        f"OR coalesce(s.npp, '') != coalesce(b.npp, '') OR coalesce(s.kpj, '') != coalesce(b.kpj, '') LIMIT 1")
    if row:
        yield row[1], f"bill {row[0]}: settled without being closed for that payer, in part, or before it counts"
        return
    rows = tx.all(f"SELECT s.bill_id, s.event_id, b.segment, b.due_date, s.settled_on, s.months_late, s.fine, "
                  f"a.amount, a.lines FROM {t['settlements']} s JOIN {t['bills']} b ON b.bill_id = s.bill_id "
                  f"JOIN {t['bill_amounts']} a ON a.bill_id = s.bill_id ORDER BY s.bill_id, s.event_id")
    fines: dict[str, list[Any]] = {}  # by settlement: a bill settled, reversed and settled again has two
    for bill_id, event_id, segment, due, settled_on, months_late, fine, amount, lines in rows:
        entry = fines.setdefault(event_id, [bill_id, segment, due, settled_on, int(months_late), int(fine), []])
        entry[6].append((int(amount), int(lines)))
    for event_id, (bill_id, segment, due, settled_on, months_late, fine, amounts) in fines.items():
        due_date = date.fromisoformat(due)
        expected_late = rules.months_late(due_date, date.fromisoformat(settled_on)) if segment == "PU" else 0
        expected_fine = bill_fine(segment, amounts, expected_late, due_date)
        if (months_late, fine) != (expected_late, expected_fine):
            yield event_id, (f"bill {bill_id}: settled {months_late} months late with a fine of {fine}; the rules "
                             f"give {expected_late} months and {expected_fine} for {settled_on}")
            return


def _reversal_problems(tx: Tx, t: dict[str, str]) -> Iterable[tuple[str, str]]:
    """(event id, problem) of a reversal that does not undo one whole settlement of its bill on or after it, or of a
    bill with two settlements neither reversed; the first only."""
    row = tx.one(
        f"SELECT r.event_id, r.bill_id FROM {t['settlement_reversals']} r LEFT JOIN {t['settlements']} s "
        f"ON s.event_id = r.reverses WHERE s.event_id IS NULL OR s.bill_id != r.bill_id OR s.total != r.total "
        f"OR s.fine != r.fine OR r.reversed_on < s.settled_on LIMIT 1")
    if row:
        yield row[0], f"bill {row[1]}: a settlement reversed that was not made, or not as it was made"
        return
    row = tx.one(
        f"SELECT s.bill_id, MAX(s.event_id) FROM {t['settlements']} s WHERE NOT EXISTS (SELECT 1 FROM "
        f"{t['settlement_reversals']} r WHERE r.reverses = s.event_id) GROUP BY s.bill_id HAVING COUNT(*) > 1 LIMIT 1")
    if row:
        yield row[1], f"bill {row[0]}: settled twice, and neither settlement reversed"


def bill_fine(segment: str, amounts: Iterable[tuple[int, int]], months_late: int, due: date) -> int:
    """A bill's late fine `months_late` months after its due date, from its lines' amounts as (amount, lines):
    the sum of the per-line fines (`rules.late_fine`, rounded per line as the write side rounds it). BPU: none."""
    if segment != "PU" or months_late <= 0:
        return 0
    return sum(lines * rules.late_fine(amount, months_late, due) for amount, lines in amounts)
