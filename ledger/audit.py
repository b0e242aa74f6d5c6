"""Auditor tools that read Kafka, not the ledger's database: `ledger audit verify`, `history`, `as-of`, `export`,
and `reconcile`, which compares Kafka with the database.

Every tool reads the events topic read_committed with no consumer group (it changes nothing); all but `reconcile`
replay it from the beginning.

Verification checks what a tamperer would have to break:
1. positions are exactly 1..N: nothing lost, nothing duplicated;
2. within each partition, positions increase: nothing reordered;
3. per aggregate, versions are 1, 2, 3, ... and every record's hash is the SHA-256 chain over its predecessor
   (`ledger.events.chain_hash`): nothing altered, removed or inserted in an aggregate's history.
It reports the number of events checked and, on failure, the first breach with its partition, offset and event.

`history` prints the events of one member, employer or branch as a timeline. `as-of` recomputes every member's JHT
balance and every branch's figures from the envelopes alone, with code of its own (a second implementation, so that a
bug or a tampered row in the projections shows as a difference), and compares them with the projections' answers.
`export` writes a period's events and recomputed totals with a manifest of hashes; `verify-export` checks a bundle.
`reconcile` compares the event store's head, the relay's saved state and the topic's last record, and names every way
they disagree: an intact topic can still stop short of the store, or end past the relay's state.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from ledger import kafka_client
from ledger.csv_lines import csv_line
from ledger.errors import InvalidInput, LedgerError, NotFound, RelayStateInvalid
from ledger.events import (GENESIS_HASH, MemberFacts, UnknownEventType, UpcastContext, UpcastNeedsMember, chain_hash,
                           envelope_data)
from ledger.private_files import make_private_dir, open_private, write_private
from ledger.rules import BPU_DUE_DAY, BPU_UNPAID_MONTHS_INACTIVE, Program, employed_on


@dataclass
class Breach:
    partition: int
    offset: int
    event_id: str | None
    problem: str

    def __str__(self) -> str:
        return f"partition {self.partition}, offset {self.offset}, event {self.event_id}: {self.problem}"


@dataclass
class VerifyReport:
    topic: str
    events: int = 0
    first_position: int | None = None
    last_position: int | None = None
    breaches: list[Breach] = field(default_factory=list)
    positions_ok: bool = True  # 1..N, no duplicate, increasing within each partition
    chains_ok: bool = True  # every aggregate's versions and hashes follow on

    @property
    def ok(self) -> bool:
        return self.positions_ok and self.chains_ok and not self.breaches

    def as_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "events": self.events, "positions": [self.first_position, self.last_position],
                "positions_contiguous": self.positions_ok, "chains_intact": self.chains_ok, "ok": self.ok,
                "first_breach": str(self.breaches[0]) if self.breaches else None, "breaches": len(self.breaches)}


BREACHES_KEPT_MAX = 100


def verify_records(topic: str, records: Iterable[Any]) -> VerifyReport:
    """Check a topic's records (in partition order, as Kafka returns them)."""
    report = VerifyReport(topic=topic)

    def breach(record: Any, event_id: str | None, problem: str, *, chain: bool = False) -> None:
        if chain:
            report.chains_ok = False
        else:
            report.positions_ok = False
        if len(report.breaches) < BREACHES_KEPT_MAX:
            report.breaches.append(Breach(record.partition, record.offset, event_id, problem))

    positions_seen: dict[int, tuple[int, int]] = {}
    last_in_partition: dict[int, int] = {}
    heads: dict[str, tuple[int, str]] = {}  # aggregate id -> (version, hash) of its last event
    for record in records:
        report.events += 1
        try:
            env = orjson.loads(record.value)
            event_id, position = env["event_id"], int(env["position"])
            aggregate, version = env["aggregate_id"], int(env["aggregate_version"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            breach(record, None, f"not a ledger envelope ({error})", chain=True)
            continue
        if position in positions_seen:
            where = positions_seen[position]
            breach(record, event_id, f"position {position} duplicated (first at partition {where[0]}, offset {where[1]})")
        positions_seen.setdefault(position, (record.partition, record.offset))
        if position <= last_in_partition.get(record.partition, 0):
            breach(record, event_id, f"position {position} after {last_in_partition[record.partition]}: reordered")
        last_in_partition[record.partition] = max(position, last_in_partition.get(record.partition, 0))

        prev_version, prev_hash = heads.get(aggregate, (0, GENESIS_HASH))
        if version != prev_version + 1:
            breach(record, event_id, f"aggregate version {version} follows {prev_version}: an event is missing, "
                                     f"duplicated or reordered", chain=True)
        if env.get("prev_hash") != prev_hash:
            breach(record, event_id, "chain broken: prev_hash is not the hash of the aggregate's previous event",
                   chain=True)
        expected = chain_hash(env.get("prev_hash", ""), aggregate_id=aggregate, aggregate_version=version,
                              event_type=env.get("type"), version=env.get("version"),
                              effective_date=env.get("effective_date"), branch=env.get("branch"),
                              data=env.get("data"))
        if expected != env.get("hash"):
            breach(record, event_id, "chain broken: the hash does not match the event's content (altered)", chain=True)
        heads[aggregate] = (version, env.get("hash", ""))

    if positions_seen:
        report.first_position, report.last_position = min(positions_seen), max(positions_seen)
        missing = report.last_position - len(positions_seen) + (report.first_position - 1)
        if report.first_position != 1 or missing:
            report.positions_ok = False
            gaps = [p for p in range(1, report.last_position + 1) if p not in positions_seen][:5]
            report.breaches.insert(0, Breach(-1, -1, None, f"positions not contiguous from 1: missing {gaps}"
                                                          f"{' ...' if missing > len(gaps) else ''}"))
    return report


def verify_topic(bootstrap: list[str], topic: str) -> VerifyReport:
    return verify_records(topic, kafka_client.read_to_end(bootstrap, topic))


# --- reading the topic -----------------------------------------------------------------------------------------------

# Exit codes of the auditor's commands (docs/cli.md): a breach of the topic or of an export bundle, and differences
# between the topic and the projections.
EXIT_BREACH = 8
EXIT_DIFFERENCES = 11

ENVELOPE_KEYS = ("event_id", "type", "version", "aggregate_id", "aggregate_version", "position", "effective_date",
                 "branch", "prev_hash", "hash", "data")


class TopicUnreadable(LedgerError):
    """The events topic could not be read to its end, or holds a record that is not a ledger envelope."""


def _envelope(value: bytes) -> dict[str, Any] | None:
    """The record's envelope, or None when it is not one (what `audit verify` reports as a breach)."""
    try:
        env = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(env, dict) or any(key not in env for key in ENVELOPE_KEYS) or not isinstance(env["data"], dict):
        return None
    return env


def read_topic(bootstrap: list[str], topic: str) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """Every committed record of the events topic as (its value as read, its envelope), in partition order."""
    try:
        if not kafka_client.topic_partitions(bootstrap, topic):
            raise NotFound(f"topic {topic} does not exist on Kafka at {','.join(bootstrap)}")
        for record in kafka_client.read_to_end(bootstrap, topic):
            env = _envelope(record.value)
            if env is None:
                # Stop rather than skip: an answer that silently leaves an event out would be wrong.
                raise TopicUnreadable(f"{topic} partition {record.partition}, offset {record.offset}: not a ledger "
                                      f"envelope; `ledger audit verify` reports every breach of the topic")
            yield record.value, env
    except (kafka_client.KafkaError, TimeoutError) as error:
        raise TopicUnreadable(f"could not read {topic} from Kafka at {','.join(bootstrap)}: {error}") from None


def current_data(env: dict[str, Any], context: UpcastContext | None = None) -> dict[str, Any]:
    """The event's data at the current contract version (older versions through `ledger.events.UPCASTERS`)."""
    try:
        return envelope_data(env, upgrade="the ledger", context=context)
    except UnknownEventType as error:
        raise TopicUnreadable(str(error)) from None


class _BranchTotalsOnly:
    """The upcast context of the export's totals, which add money per branch only: they never read a reversal's
    account, so an older reversal whose payment lies before the exported period is upcast with placeholders for the
    account (`npp` None, segment PU) instead of failing for want of it."""

    def member_facts(self, kpj: str) -> tuple[str | None, str]:  # noqa: ARG002
        return None, "PU"


BRANCH_TOTALS_ONLY = _BranchTotalsOnly()


def in_period(env: dict[str, Any], start: date | None, end: date | None) -> bool:
    """Whether the event's effective date is within [start, end] (either bound may be open)."""
    on = env["effective_date"]
    return (start is None or on >= start.isoformat()) and (end is None or on <= end.isoformat())


# --- history: one member's, employer's or branch's events as a timeline ----------------------------------------------

@dataclass(frozen=True)
class Subject:
    """Whose events: exactly one of a member (KPJ), an employer (NPP) or a branch (code)."""

    kpj: str | None = None
    npp: str | None = None
    branch: str | None = None

    def __post_init__(self) -> None:
        assert sum(value is not None for value in (self.kpj, self.npp, self.branch)) == 1, self

    def matches(self, env: dict[str, Any]) -> bool:
        if self.branch is not None:
            return env["branch"] == self.branch
        data = env["data"]
        if self.npp is not None:
            return data.get("npp") == self.npp
        # A member's own events carry its KPJ; an employer's roster change lists it among `kpjs`.
        return data.get("kpj") == self.kpj or self.kpj in (data.get("kpjs") or ())

    def __str__(self) -> str:
        if self.kpj is not None:
            return f"member {self.kpj}"
        return f"employer {self.npp}" if self.npp is not None else f"branch {self.branch}"


def history(envelopes: Iterable[dict[str, Any]], subject: Subject, start: date | None = None,
            end: date | None = None) -> list[dict[str, Any]]:
    """The subject's events with an effective date in [start, end], by effective date, then position."""
    found = [env for env in envelopes if subject.matches(env) and in_period(env, start, end)]
    found.sort(key=lambda env: (env["effective_date"], env["position"]))
    return found


def history_topic(bootstrap: list[str], topic: str, subject: Subject, start: date | None = None,
                  end: date | None = None) -> list[dict[str, Any]]:
    return history((env for _, env in read_topic(bootstrap, topic)), subject, start, end)


# --- recomputing from the envelopes: an implementation independent of the projections' -----------------------------

PROGRAMS = tuple(program.value for program in Program)
CONTRIBUTION_SIGNS = {"ContributionPaid": 1, "ContributionReversed": -1}
CLAIM_SIGNS = {"ClaimPaid": 1, "ClaimReversed": -1}
NO_SHARE = {"employer": 0, "worker": 0}
EMPLOYER_KINDS = ("company", "government")


def _money() -> dict[str, Any]:
    return {"events": 0,
            "contributions": {p: {"employer": 0, "worker": 0, "total": 0} for p in PROGRAMS},
            "contributions_total": 0, "late_fines": 0,
            "claims": {p: {"count": 0, "amount": 0} for p in PROGRAMS},
            "claims_total": {"count": 0, "amount": 0}}


class Flows:
    """Money in and out per branch (the envelope's `branch`): contributions per program, late fines, claims per program
    as count and amount, and the number of events. A reversal takes back what it reverses, on its own date."""

    def __init__(self) -> None:
        self.branches: dict[str, dict[str, Any]] = {}

    def add(self, env: dict[str, Any], data: dict[str, Any]) -> None:
        totals = self.branches.get(env["branch"])
        if totals is None:
            totals = self.branches[env["branch"]] = _money()
        totals["events"] += 1
        kind = env["type"]
        sign = CONTRIBUTION_SIGNS.get(kind)
        if sign is not None:
            for program, share in data["shares"].items():
                row = totals["contributions"][program]
                row["employer"] += sign * share["employer"]
                row["worker"] += sign * share["worker"]
                row["total"] += sign * (share["employer"] + share["worker"])
                totals["contributions_total"] += sign * (share["employer"] + share["worker"])
            totals["late_fines"] += sign * data["fine"]
            return
        sign = CLAIM_SIGNS.get(kind)
        if sign is not None:
            claims = totals["claims"][data["program"]]
            claims["count"] += sign
            claims["amount"] += sign * data["amount"]
            totals["claims_total"]["count"] += sign
            totals["claims_total"]["amount"] += sign * data["amount"]


def bpu_threshold_month(as_of: date) -> str:
    """The earliest contribution month whose payment keeps a BPU member active on `as_of`.

    BPU contributions are due by the 15th of the month itself, so the last month already due is as_of's month after
    the 15th and the month before otherwise; three unpaid months in a row up to it make a membership inactive.
    """
    number = as_of.year * 12 + as_of.month - 1
    last_due = number if as_of.day > BPU_DUE_DAY else number - 1
    first = last_due - (BPU_UNPAID_MONTHS_INACTIVE - 1)
    return f"{first // 12:04d}-{first % 12 + 1:02d}"


class Recount:
    """Every member's JHT balance and every branch's figures as of one date, from the envelopes alone.

    Feed it every event of the topic (`add`), in any order across aggregates: facts dated after `as_of` are kept
    only where a later date matters (an exit, a reversal), and money counts on and after its effective date.
    """

    def __init__(self, as_of: date) -> None:
        self.as_of = as_of
        self.day = as_of.isoformat()
        self.events = 0
        self.flows = Flows()
        self.jht: dict[str, int] = defaultdict(int)
        self.members: dict[str, tuple[str, str, str | None, str]] = {}  # kpj -> branch, segment, npp, enrolled on
        self.exits: dict[str, str] = {}  # kpj -> exit date
        self.employers: dict[str, tuple[str, str, str]] = {}  # npp -> branch, kind, registered on
        self.bpu_payments: dict[str, list[tuple[str, str, str]]] = defaultdict(list)  # kpj -> (event, month, paid on)
        self.reversed_on: dict[str, str] = {}  # event id of a contribution -> the date it was reversed
        # Per paying account (`npp:NPP` or `kpj:KPJ`, as `projections.views.payer_account`): contributions and fines
        # booked to it, and claims, as of the date.
        self.accounts: dict[str, dict[str, int]] = defaultdict(
            lambda: {"contributions": 0, "fines": 0, "claims_count": 0, "claims_amount": 0})
        self.facts = MemberFacts()
        self.waiting: list[dict[str, Any]] = []  # events whose upcast needs a member not seen yet (in partition order)

    def add(self, env: dict[str, Any]) -> None:
        kind = env["type"]
        try:
            data = current_data(env, self.facts)
        except UpcastNeedsMember:
            self.waiting.append(env)
            return
        self.events += 1
        self.facts.see(kind, data)
        if kind == "MemberEnrolled":
            self.members[data["kpj"]] = (env["branch"], data["segment"], data["npp"], data["effective"])
        elif kind == "MemberExited":
            self.exits[data["kpj"]] = data["exit_date"]
        elif kind == "EmployerRegistered":
            self.employers[data["npp"]] = (env["branch"], data["kind"], data["registered_on"])
        elif kind == "ContributionPaid" and data["segment"] == "BPU":
            self.bpu_payments[data["kpj"]].append((env["event_id"], data["month"], data["paid_on"]))
        elif kind == "ContributionReversed":
            self.reversed_on[data["reverses"]] = data["reversed_on"]
        if env["effective_date"] > self.day:
            return
        sign = CONTRIBUTION_SIGNS.get(kind)
        if sign is not None:
            jht = data["shares"].get("JHT", NO_SHARE)
            self.jht[data["kpj"]] += sign * (jht["employer"] + jht["worker"])
            account = self.accounts[f"npp:{data['npp']}" if data.get("npp") else f"kpj:{data['kpj']}"]
            account["contributions"] += sign * sum(s["employer"] + s["worker"] for s in data["shares"].values())
            account["fines"] += sign * data["fine"]
        elif kind == "YieldCredited":
            self.jht[data["kpj"]] += data["amount"]
        elif kind in CLAIM_SIGNS:
            if data["program"] == "JHT":
                self.jht[data["kpj"]] -= CLAIM_SIGNS[kind] * data["amount"]
            account = self.accounts[f"kpj:{data['kpj']}"]
            account["claims_count"] += CLAIM_SIGNS[kind]
            account["claims_amount"] += CLAIM_SIGNS[kind] * data["amount"]
        self.flows.add(env, data)

    def finish(self) -> None:
        """Add the events that waited for their member's enrollment; every event of the topic has been added."""
        waiting, self.waiting = self.waiting, []
        for env in waiting:
            self.add(env)
        if self.waiting:
            env = self.waiting[0]
            raise TopicUnreadable(f"event {env['event_id']} (position {env['position']}): a {env['type']} of member "
                                  f"{env['data'].get('kpj')}, who is never enrolled on the topic")

    def member_balances(self) -> dict[str, int]:
        """Every enrolled member's JHT balance on `as_of` (0 for one without movements)."""
        return {kpj: self.jht.get(kpj, 0) for kpj in self.members}

    def account_totals(self) -> dict[str, dict[str, int]]:
        """Every paying account's totals on `as_of`, as `projections.queries.account_totals` answers them."""
        return dict(self.accounts)

    def _active(self, kpj: str, enrolled_on: str) -> bool:
        return employed_on(self.day, enrolled_on, self.exits.get(kpj))  # the write side's rule, on ISO strings

    def _bpu_active(self, kpj: str, enrolled_on: str, threshold: str) -> bool:
        if enrolled_on[:7] > threshold:
            return True  # too recently enrolled to have missed three months
        for event_id, month, paid_on in self.bpu_payments.get(kpj, ()):
            reversed_on = self.reversed_on.get(event_id)
            if month >= threshold and paid_on <= self.day and (reversed_on is None or reversed_on > self.day):
                return True
        return False

    def branch_reports(self) -> dict[str, dict[str, Any]]:
        """Per branch, the figures of `projections.queries.branch_report` on `as_of`, in the same shape."""
        threshold = bpu_threshold_month(self.as_of)
        codes = ({branch for branch, *_ in self.members.values()} | {branch for branch, *_ in self.employers.values()}
                 | set(self.flows.branches))
        reports = {code: {"active_pu_members": 0, "active_employers": 0,
                          "active_employers_by_kind": dict.fromkeys(EMPLOYER_KINDS, 0), "registered_employers": 0,
                          "bpu_members_enrolled": 0, "bpu_members_active": 0} for code in codes}
        active_npps: dict[str, set[str]] = defaultdict(set)
        for kpj, (branch, segment, npp, enrolled_on) in self.members.items():
            if not self._active(kpj, enrolled_on):
                continue
            report = reports[branch]
            if segment == "PU":
                report["active_pu_members"] += 1
                if npp is not None:
                    active_npps[branch].add(npp)
            else:
                report["bpu_members_enrolled"] += 1
                report["bpu_members_active"] += self._bpu_active(kpj, enrolled_on, threshold)
        for branch, npps in active_npps.items():
            reports[branch]["active_employers"] = len(npps)
            for npp in npps:
                kind = self.employers[npp][1] if npp in self.employers else None
                if kind in EMPLOYER_KINDS:
                    reports[branch]["active_employers_by_kind"][kind] += 1
        for branch, _, registered_on in self.employers.values():
            reports[branch]["registered_employers"] += registered_on <= self.day
        for code, report in reports.items():
            money = self.flows.branches.get(code) or _money()
            report.update({key: value for key, value in money.items() if key != "events"})
        return reports


# The branch figures compared, as paths into `branch_report`'s answer.
BRANCH_FIELDS = (
    "active_pu_members", "active_employers", "active_employers_by_kind.company",
    "active_employers_by_kind.government", "registered_employers", "bpu_members_enrolled", "bpu_members_active",
    *(f"contributions.{p}.{side}" for p in PROGRAMS for side in ("employer", "worker", "total")),
    "contributions_total", "late_fines",
    *(f"claims.{p}.{what}" for p in PROGRAMS for what in ("count", "amount")),
    "claims_total.count", "claims_total.amount",
)


def _field(report: dict[str, Any], path: str) -> Any:
    value: Any = report
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


# --- as-of: the topic's figures against the projections' answers ---------------------------------------------------

DIFFERENCES_KEPT_MAX = 10_000  # listed; every difference is counted
MEMBER_SPOT_CHECKS = 100  # members also asked one by one (`member_balance`), to check the bulk query against the API


@dataclass
class Difference:
    subject: str  # "member 17100000001" or "branch BEKASI-KOTA"
    field: str
    topic: Any  # None: the topic does not know the member or branch
    projection: Any  # None: the projection does not know it

    def __str__(self) -> str:
        def shown(value: Any) -> str:
            return "absent" if value is None else f"{value:,}" if isinstance(value, int) else str(value)
        return f"{self.subject}: {self.field}: topic {shown(self.topic)}, projection {shown(self.projection)}"

    def as_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "field": self.field, "topic": self.topic, "projection": self.projection}


@dataclass
class AsOfReport:
    as_of: str
    topic: str
    events: int = 0
    members: int = 0
    branches: int = 0
    accounts: int = 0
    differences_found: int = 0
    differences: list[Difference] = field(default_factory=list)
    projection_events: dict[str, int | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.differences_found == 0

    def add(self, difference: Difference) -> None:
        self.differences_found += 1
        if len(self.differences) < DIFFERENCES_KEPT_MAX:
            self.differences.append(difference)

    def as_dict(self) -> dict[str, Any]:
        return {"as_of": self.as_of, "topic": self.topic, "events": self.events, "members": self.members,
                "branches": self.branches, "accounts": self.accounts, "projection_events": self.projection_events, "ok": self.ok,
                "differences_found": self.differences_found,
                "differences": [difference.as_dict() for difference in self.differences]}


def compare_as_of(recount: Recount, store: Any, topic: str) -> AsOfReport:
    """Compare the recount with the projections' answers in `store` (a `projections.store.ViewStore`).

    Raises `projections.queries.NotProjected` when a projection has not been built.
    """
    from projections import queries
    from projections.store import ViewStore

    report = AsOfReport(as_of=recount.day, topic=topic, events=recount.events)
    topic_balances = recount.member_balances()
    projected = queries.jht_balances(store, recount.as_of)
    kpjs = sorted(topic_balances.keys() | projected.keys())
    report.members = len(kpjs)
    for kpj in kpjs:
        if topic_balances.get(kpj) != projected.get(kpj):
            report.add(Difference(f"member {kpj}", "jht_balance", topic_balances.get(kpj), projected.get(kpj)))
    # The bulk query is this tool's own; a spread of members is also asked the way `ledger balance` asks.
    known = sorted(topic_balances)
    for kpj in known[::max(1, len(known) // MEMBER_SPOT_CHECKS)][:MEMBER_SPOT_CHECKS]:
        try:
            answer = queries.member_balance(store, kpj, recount.as_of)["jht_balance"]
        except NotFound:
            answer = None
        if answer != topic_balances[kpj] and projected.get(kpj) == topic_balances[kpj]:
            report.add(Difference(f"member {kpj}", "jht_balance (member_balance)", topic_balances[kpj], answer))

    topic_accounts, projected_accounts = recount.account_totals(), queries.account_totals(store, recount.as_of)
    for account in sorted(topic_accounts.keys() | projected_accounts.keys()):
        ours, theirs = topic_accounts.get(account), projected_accounts.get(account)
        if ours is None or theirs is None:
            # An account known on one side only: every figure the other side lacks is a difference, unless all zero.
            known = ours or theirs
            if any(known.values()):
                for name in queries.ACCOUNT_FIELDS:
                    report.add(Difference(f"account {account}", name, ours and ours[name], theirs and theirs[name]))
            continue
        for name in queries.ACCOUNT_FIELDS:
            if ours[name] != theirs[name]:
                report.add(Difference(f"account {account}", name, ours[name], theirs[name]))
    report.accounts = len(topic_accounts.keys() | projected_accounts.keys())

    topic_reports = recount.branch_reports()
    codes = sorted(topic_reports.keys() | set(queries.branch_codes(store)))
    report.branches = len(codes)
    for code in codes:
        try:
            answer = queries.branch_report(store, code, recount.as_of)
        except NotFound:
            answer = None
        ours = topic_reports.get(code)
        if ours is None or answer is None:
            report.add(Difference(f"branch {code}", "branch", "known" if ours else None, "known" if answer else None))
            continue
        for path in BRANCH_FIELDS:
            if _field(ours, path) != _field(answer, path):
                report.add(Difference(f"branch {code}", path, _field(ours, path), _field(answer, path)))

    with store.reading() as tx:
        for name in ("balances", "branches"):
            version = ViewStore.live_version(tx, name)
            offsets = ViewStore.offsets(tx, name, version) if version is not None else {}
            report.projection_events[name] = sum(events for (where, _), (_, events, _) in offsets.items()
                                                 if where == topic) if version is not None else None
    return report


def as_of_topic(bootstrap: list[str], topic: str, store: Any, as_of: date) -> AsOfReport:
    recount = Recount(as_of)
    for _, env in read_topic(bootstrap, topic):
        recount.add(env)
    recount.finish()
    return compare_as_of(recount, store, topic)


# --- export: a period's events and totals, with a manifest of hashes ------------------------------------------------

EXPORT_FORMAT = "bpjs-ledger-audit-export"
EXPORT_FORMAT_VERSION = 1
EVENTS_JSONL, EVENTS_CSV, TOTALS_CSV, TOTALS_JSON, MANIFEST = (
    "events.jsonl", "events.csv", "totals.csv", "totals.json", "manifest.json")
EXPORT_FILES = (EVENTS_JSONL, EVENTS_CSV, TOTALS_CSV, TOTALS_JSON)
FILE_CHUNK_BYTES = 1 << 20  # read files in pieces of this size to hash them

EVENT_COLUMNS = ("position", "event_id", "type", "version", "aggregate_id", "aggregate_version", "effective_date",
                 "recorded_at", "branch", "kpj", "npp", "month", "program", "jht_contribution", "contributions",
                 "fine", "total", "amount", "prev_hash", "hash")
TOTALS_COLUMNS = ("branch", "events",
                  *(f"{p}_{side}" for p in PROGRAMS for side in ("employer", "worker", "contributions")),
                  "contributions_total", "late_fines",
                  *(f"{p}_claims_{what}" for p in PROGRAMS for what in ("count", "amount")),
                  "claims_count", "claims_amount")


class ExportRefused(InvalidInput):
    """The export's directory is not empty (or not a directory): a bundle is never mixed with other files."""


def _blank(value: Any) -> Any:
    return "" if value is None else value


def event_row(env: dict[str, Any]) -> list[Any]:
    """One line of events.csv: where the event is, what it is about, its amounts, its hashes."""
    data = env["data"]
    shares = data.get("shares") if isinstance(data.get("shares"), dict) else None
    jht = shares.get("JHT", NO_SHARE) if shares is not None else None
    return [env["position"], env["event_id"], env["type"], env["version"], env["aggregate_id"],
            env["aggregate_version"], env["effective_date"], _blank(env.get("recorded_at")), env["branch"],
            _blank(data.get("kpj")), _blank(data.get("npp")), _blank(data.get("month")), _blank(data.get("program")),
            "" if jht is None else jht["employer"] + jht["worker"],
            "" if shares is None else sum(s["employer"] + s["worker"] for s in shares.values()),
            _blank(data.get("fine")), _blank(data.get("total")), _blank(data.get("amount")),
            env["prev_hash"], env["hash"]]


def totals_document(flows: Flows, start: date, end: date) -> dict[str, Any]:
    return {"period": {"from": start.isoformat(), "to": end.isoformat()},
            "branches": {code: flows.branches[code] for code in sorted(flows.branches)}}


def totals_csv(document: dict[str, Any]) -> bytes:
    lines = [csv_line(TOTALS_COLUMNS)]
    for code, t in document["branches"].items():
        lines.append(csv_line([
            code, t["events"],
            *(t["contributions"][p][side] for p in PROGRAMS for side in ("employer", "worker", "total")),
            t["contributions_total"], t["late_fines"],
            *(t["claims"][p][what] for p in PROGRAMS for what in ("count", "amount")),
            t["claims_total"]["count"], t["claims_total"]["amount"]]))
    return b"".join(lines)


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode()


def export_chain(head: str, event_hash: str) -> str:
    """The export's own chain over its events in position order: h0 = 64 zeros, h_i = SHA-256(h_{i-1} \\n hash_i).

    Its head pins which events the bundle holds and their order, whatever aggregates they belong to."""
    return hashlib.sha256(head.encode() + b"\n" + event_hash.encode()).hexdigest()


def file_digest(path: Path) -> tuple[int, str]:
    """(size in bytes, SHA-256 in hex) of a file, read in bounded pieces."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(FILE_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _refuse_unless_empty(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ExportRefused(f"--out {out} is a file, not a directory")
    if out.exists() and any(out.iterdir()):
        raise ExportRefused(f"--out {out} is not empty: an export goes into a new or empty directory, so that the "
                            f"bundle holds nothing but its own files")


def write_bundle(out: Path, topic: str, start: date, end: date, values: Iterable[bytes],
                 topic_last_position: int | None = None) -> dict[str, Any]:
    """Write the bundle of the events whose values are given (in position order) into `out`; return the manifest.

    The manifest is written last: a directory without one is an export that did not finish."""
    _refuse_unless_empty(out)
    make_private_dir(out)  # a bundle holds members' amounts: 0700 and 0600 (ledger.private_files)
    flows, head, count, first, last = Flows(), GENESIS_HASH, 0, None, None
    with open_private(out / EVENTS_JSONL, "wb") as jsonl, open_private(out / EVENTS_CSV, "wb") as table:
        table.write(csv_line(EVENT_COLUMNS))
        for value in values:
            env = orjson.loads(value)
            # The value exactly as Kafka holds it, one per line; the relay writes compact JSON, so this is only a
            # guard against a record written by another producer across several lines.
            jsonl.write((value if b"\n" not in value else orjson.dumps(env)) + b"\n")
            table.write(csv_line(event_row(env)))
            flows.add(env, current_data(env, BRANCH_TOTALS_ONLY))
            head = export_chain(head, env["hash"])
            count += 1
            first = env["position"] if first is None else first
            last = env["position"]
    document = totals_document(flows, start, end)
    write_private(out / TOTALS_JSON, _json_bytes(document))
    write_private(out / TOTALS_CSV, totals_csv(document))
    files = []
    for name in EXPORT_FILES:
        size, digest = file_digest(out / name)
        files.append({"name": name, "bytes": size, "sha256": digest})
    manifest = {"format": EXPORT_FORMAT, "format_version": EXPORT_FORMAT_VERSION, "topic": topic,
                "period": {"from": start.isoformat(), "to": end.isoformat()},
                "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "events": count, "positions": {"first": first, "last": last},
                "topic_last_position": topic_last_position, "chain_head": head, "files": files}
    write_private(out / MANIFEST, _json_bytes(manifest))
    return manifest


def export_topic(bootstrap: list[str], topic: str, start: date, end: date, out: Path) -> dict[str, Any]:
    """Export the events whose effective date is in [start, end], in position order (held in memory to sort them:
    Kafka orders each partition, not the topic)."""
    _refuse_unless_empty(out)  # before reading the whole topic
    chosen: list[tuple[int, bytes]] = []
    topic_last = 0
    for value, env in read_topic(bootstrap, topic):
        topic_last = max(topic_last, env["position"])
        if in_period(env, start, end):
            chosen.append((env["position"], value))
    chosen.sort(key=lambda item: item[0])
    return write_bundle(out, topic, start, end, (value for _, value in chosen), topic_last or None)


# --- verify-export --------------------------------------------------------------------------------------------------

@dataclass
class ExportCheck:
    folder: str
    files: int = 0  # files whose size and hash matched the manifest
    events: int = 0
    problem_file: str | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def as_dict(self) -> dict[str, Any]:
        return {"folder": self.folder, "ok": self.ok, "files_checked": self.files, "events": self.events,
                "file": self.problem_file, "problem": self.problem}


class _Broken(Exception):
    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name, self.problem = name, problem


def _manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        raise _Broken(MANIFEST, "missing")
    try:
        manifest = json.loads(path.read_bytes())
        names = [entry["name"] for entry in manifest["files"]]
        for key in ("period", "events", "chain_head", "positions"):  # the fields the checks read must be there
            manifest[key]
        date.fromisoformat(manifest["period"]["from"]), date.fromisoformat(manifest["period"]["to"])
    except (ValueError, KeyError, TypeError) as error:
        raise _Broken(MANIFEST, f"not an export manifest ({error!r})") from None
    if manifest.get("format") != EXPORT_FORMAT or manifest.get("format_version") != EXPORT_FORMAT_VERSION:
        raise _Broken(MANIFEST, f"not an export manifest of format {EXPORT_FORMAT} {EXPORT_FORMAT_VERSION}")
    for name in names:
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise _Broken(MANIFEST, f"lists {name!r}, which is not a file of the export's directory")
    return manifest


def _check_files(folder: Path, manifest: dict[str, Any], check: ExportCheck) -> None:
    listed = [entry["name"] for entry in manifest["files"]]
    for name in EXPORT_FILES:
        if name not in listed:
            raise _Broken(name, "not listed in the manifest")
    for entry in manifest["files"]:
        path = folder / entry["name"]
        if not path.is_file():
            raise _Broken(entry["name"], "missing")
        size, digest = file_digest(path)
        if size != entry.get("bytes"):
            raise _Broken(entry["name"], f"{size:,} bytes, the manifest says {entry.get('bytes')}: altered")
        if digest != entry.get("sha256"):
            raise _Broken(entry["name"], "its SHA-256 differs from the manifest's: altered")
        check.files += 1
    extra = sorted(path.name for path in folder.iterdir() if path.name not in {*listed, MANIFEST})
    if extra:
        raise _Broken(extra[0], "not part of the export (not in the manifest)")


def _first_difference(ours: Any, theirs: Any, path: str = "") -> str:
    """Where two JSON values first differ, as a dotted path."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in sorted(ours.keys() | theirs.keys()):
            if ours.get(key) != theirs.get(key):
                return _first_difference(ours.get(key), theirs.get(key), f"{path}.{key}" if path else key)
    return f"{path or '(whole document)'}: recomputed {ours!r}, file says {theirs!r}"


def _check_contents(folder: Path, manifest: dict[str, Any], check: ExportCheck) -> None:
    """The files agree with each other: events.jsonl with its hashes and the manifest; the CSV and the totals with
    what events.jsonl recomputes to. Catches a bundle altered together with its manifest."""
    start, end = (date.fromisoformat(manifest["period"][key]) for key in ("from", "to"))
    flows, head, last = Flows(), GENESIS_HASH, 0
    first = None
    table = hashlib.sha256(csv_line(EVENT_COLUMNS))
    with (folder / EVENTS_JSONL).open("rb") as jsonl:
        for number, line in enumerate(jsonl, start=1):
            env = _envelope(line)
            if env is None:
                raise _Broken(EVENTS_JSONL, f"line {number} is not a ledger envelope")
            if env["position"] <= last:
                raise _Broken(EVENTS_JSONL, f"line {number}: position {env['position']} is not after {last}")
            if not in_period(env, start, end):
                raise _Broken(EVENTS_JSONL, f"line {number}: effective date {env['effective_date']} is outside the "
                                            f"period")
            expected = chain_hash(env["prev_hash"], aggregate_id=env["aggregate_id"],
                                  aggregate_version=env["aggregate_version"], event_type=env["type"],
                                  version=env["version"], effective_date=env["effective_date"], branch=env["branch"],
                                  data=env["data"])
            if expected != env["hash"]:
                raise _Broken(EVENTS_JSONL, f"line {number}: event {env['event_id']}'s hash does not match its "
                                            f"content: altered")
            first = env["position"] if first is None else first
            last = env["position"]
            head = export_chain(head, env["hash"])
            table.update(csv_line(event_row(env)))
            flows.add(env, current_data(env, BRANCH_TOTALS_ONLY))
            check.events += 1
    if check.events != manifest["events"]:
        raise _Broken(EVENTS_JSONL, f"holds {check.events:,} events, the manifest says {manifest['events']}")
    if {"first": first, "last": last if first is not None else None} != manifest.get("positions"):
        raise _Broken(EVENTS_JSONL, f"positions {first}..{last} differ from the manifest's {manifest.get('positions')}")
    if head != manifest["chain_head"]:
        raise _Broken(EVENTS_JSONL, "the chain head of its events differs from the manifest's")
    if table.hexdigest() != file_digest(folder / EVENTS_CSV)[1]:
        raise _Broken(EVENTS_CSV, "does not match events.jsonl")
    document = totals_document(flows, start, end)
    try:
        written = json.loads((folder / TOTALS_JSON).read_bytes())
    except ValueError:
        raise _Broken(TOTALS_JSON, "not JSON") from None
    if written != document:
        raise _Broken(TOTALS_JSON, f"differs from the totals recomputed from events.jsonl at "
                                   f"{_first_difference(document, written)}")
    if (folder / TOTALS_CSV).read_bytes() != totals_csv(document):
        raise _Broken(TOTALS_CSV, "does not match the totals recomputed from events.jsonl")


def verify_bundle(folder: Path) -> ExportCheck:
    """Check an export: every file's size and SHA-256 against the manifest, then the files against each other.
    Reports the first file that is missing, altered or inconsistent."""
    check = ExportCheck(folder=str(folder))
    try:
        manifest = _manifest(folder)
        _check_files(folder, manifest, check)
        _check_contents(folder, manifest, check)
    except _Broken as broken:
        check.problem_file, check.problem = broken.name, broken.problem
    return check


# --- reconcile: the event store's head, the relay's state and the topic's end, side by side ------------------------

EXIT_UNRECONCILED = 13
RECONCILE_READS_MAX = 5  # tries at reading the relay state and the topic's end with no relay commit in between
HASH_SHOWN_CHARS = 16  # of a hash in a message; the JSON report has them whole


@dataclass(frozen=True)
class Mismatch:
    name: str  # stable, for scripts: store_ahead_of_topic, relay_state_beyond_store, ...
    message: str

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"


@dataclass
class TopicEnd:
    """The events topic's last record: the one with the highest position among each partition's last record."""

    position: int = 0  # 0: the topic holds no event
    event_id: str | None = None
    hash: str | None = None
    partition: int | None = None
    offset: int | None = None
    unreadable: list[str] = field(default_factory=list)  # last records that are not ledger envelopes


def topic_end(last: dict[int, Any]) -> TopicEnd:
    """The topic's end from `kafka_client.last_records`."""
    end = TopicEnd()
    for partition, record in sorted(last.items()):
        if record is None:
            continue
        env = _envelope(record.value)
        if env is None or not isinstance(env["position"], int):
            end.unreadable.append(f"partition {partition}, offset {record.offset}")
        elif env["position"] > end.position:
            end.position, end.event_id, end.hash = env["position"], env["event_id"], env["hash"]
            end.partition, end.offset = partition, record.offset
    return end


def _short(value: str | None) -> str:
    return f"{value[:HASH_SHOWN_CHARS]}..." if value else "-"


def reconcile_findings(tally: Any, state: Any, state_problem: str | None, end: TopicEnd) -> list[Mismatch]:
    """Every way the store (`relay.StoreTally`), the relay's state (`relay.RelayState`, or None with the reason it
    could not be read) and the topic's end disagree, each by name. Empty when all three agree."""
    found: list[Mismatch] = []
    events, position = tally.events, end.position
    for where in end.unreadable:
        found.append(Mismatch("topic_last_record_unreadable", f"the last record of the topic at {where} is not a "
                                                              f"ledger envelope"))
    if events > position:
        found.append(Mismatch("store_ahead_of_topic", f"the store holds {events:,} events to publish, the topic's last "
                                                      f"position is {position:,}: {events - position:,} event(s) not "
                                                      f"published; `ledger relay` publishes them"))
    elif position > events:
        found.append(Mismatch("topic_ahead_of_store", f"the topic's last position {position:,} is beyond the store's "
                                                      f"{events:,} events: the topic holds events this store does not "
                                                      f"(records the relay did not write, or another store's topic)"))
    at = tally.at_position
    if 0 < position <= events and at is not None and (at["event_id"], at["hash"]) != (end.event_id, end.hash):
        found.append(Mismatch("topic_last_event_differs_from_store",
                              f"the topic's last record (position {position:,}, partition {end.partition}, offset "
                              f"{end.offset}) is event {end.event_id} with hash {_short(end.hash)}; the store's event "
                              f"at position {position:,} is {at['event_id']} with hash {_short(at['hash'])}"))
    if state is None:
        found.append(Mismatch("relay_state_unreadable", state_problem or "the relay's state could not be read"))
        return found
    if state.notification_id > tally.last_notification_id:
        found.append(Mismatch("relay_state_beyond_store",
                              f"the relay's state says notification {state.notification_id} was published, but the "
                              f"store's last notification is {tally.last_notification_id}: the relay refuses to "
                              f"start (exit 12)"))
    elif tally.events_up_to != state.position:
        found.append(Mismatch("relay_state_differs_from_store",
                              f"the relay's state says position {state.position:,} at notification "
                              f"{state.notification_id}, but the store has {tally.events_up_to:,} events to publish "
                              f"up to that notification"))
    if state.position > position:
        found.append(Mismatch("relay_state_ahead_of_topic",
                              f"the relay's state says position {state.position:,}, the topic's last position is "
                              f"{position:,}: the state was moved forward, or published events are missing from "
                              f"the topic"))
    elif position > state.position:
        found.append(Mismatch("topic_ahead_of_relay_state",
                              f"the topic's last position {position:,} is past the relay's state (position "
                              f"{state.position:,}): records reached the topic without the relay's state, or the "
                              f"state was moved back, and the relay would publish from position "
                              f"{state.position + 1:,} again"))
    return found


@dataclass
class Reconciliation:
    events_topic: str
    state_topic: str
    store: dict[str, int]
    relay_state: dict[str, int] | None
    topic: TopicEnd
    store_at_topic_position: dict[str, Any] | None
    mismatches: list[Mismatch]

    @property
    def ok(self) -> bool:
        return not self.mismatches

    @property
    def state_from_topic(self) -> dict[str, int] | None:
        """The relay state the topic and the store prove, when they agree: where a repaired state must point."""
        if any(m.name in ("topic_ahead_of_store", "topic_last_event_differs_from_store", "topic_last_record_unreadable")
               for m in self.mismatches):
            return None
        if self.topic.position == 0:
            return {"notification_id": 0, "position": 0}
        assert self.store_at_topic_position is not None
        return {"notification_id": self.store_at_topic_position["notification_id"], "position": self.topic.position}

    def as_dict(self) -> dict[str, Any]:
        end = self.topic
        return {"events_topic": self.events_topic, "state_topic": self.state_topic, "store": self.store,
                "relay_state": self.relay_state,
                "topic": {"last_position": end.position, "last_event_id": end.event_id, "last_hash": end.hash,
                          "partition": end.partition, "offset": end.offset},
                "store_at_topic_position": self.store_at_topic_position, "state_from_topic": self.state_from_topic,
                "ok": self.ok, "mismatches": [{"name": m.name, "message": m.message} for m in self.mismatches]}


def reconcile(recorder: Any, bootstrap: list[str], topics: Any) -> Reconciliation:
    """Compare the event store (`recorder`), the relay's state and the events topic's end (`relay.Topics`).

    The relay state and the topic's end are read until the state is the same before and after the topic was read
    (at most `RECONCILE_READS_MAX` times), so a relay committing meanwhile does not show as a mismatch. The store is
    read last: it only grows, so a relay running meanwhile can only show as unpublished events."""
    from ledger import relay

    try:
        if not kafka_client.topic_partitions(bootstrap, topics.events):
            raise NotFound(f"topic {topics.events} does not exist on Kafka at {','.join(bootstrap)}")
        for _ in range(RECONCILE_READS_MAX):
            state, problem = _relay_state(bootstrap, topics)
            end = topic_end(kafka_client.last_records(bootstrap, topics.events))
            if _relay_state(bootstrap, topics) == (state, problem):
                break
    except (kafka_client.KafkaError, TimeoutError) as error:
        raise TopicUnreadable(f"could not read {topics.events} and {topics.state} from Kafka at "
                              f"{','.join(bootstrap)}: {error}") from None
    tally = relay.tally_store(recorder, position=end.position,
                              notification_id=state.notification_id if state is not None else 0)
    return Reconciliation(
        events_topic=topics.events, state_topic=topics.state,
        store={"last_notification_id": tally.last_notification_id, "events": tally.events},
        relay_state=None if state is None else {"notification_id": state.notification_id, "position": state.position},
        topic=end, store_at_topic_position=tally.at_position if 0 < end.position <= tally.events else None,
        mismatches=reconcile_findings(tally, state, problem, end))


def _relay_state(bootstrap: list[str], topics: Any) -> tuple[Any, str | None]:
    from ledger import relay

    try:
        return relay.read_state(bootstrap, topics), None
    except RelayStateInvalid as error:
        return None, str(error)
