"""docs/books.md is the contract of `ledger.books`: its chart lists every account with the code, slug, name, kind,
normal side, program and opening date the code has; its dating table is `CHART`'s periods; and for every type that
posts, its entry table, evaluated for sample events (the pinned examples of the event contract, and variants of
them), gives exactly the legs `LEGS` or `contribution_legs` gives. So the documentation cannot drift from the code."""

import json
import re
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger import events as ev
from ledger.books import (
    ACCOUNTS,
    CHART,
    CONTRIBUTION_SIGNS,
    LEGS,
    NO_PROGRAM,
    POSTING_TYPES,
    Leg,
    contribution_legs,
    entry_reference,
    share,
)

ROOT = Path(__file__).resolve().parents[2]
BOOKS = (ROOT / "docs" / "books.md").read_text(encoding="utf-8")
PINNED = json.loads((ROOT / "tests" / "unit" / "event_contract.json").read_text(encoding="utf-8"))
PROGRAMS = ("JHT", "JKK", "JKM", "JP")
OTHER_KPJ = "15023456790"
MINUS = "\u2212"  # the minus sign the amounts are written with in docs/books.md


def section(start: str, end: str) -> str:
    assert start in BOOKS, f"docs/books.md has no {start!r}"
    return BOOKS.split(start, 1)[1].split(end, 1)[0]


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the markdown tables in `text` (header and separator rows dropped)."""
    rows, header = [], True
    for line in text.splitlines():
        if not line.startswith("|"):
            header = True
            continue
        if header:
            header = False  # the header row
            continue
        if set(line) <= set("|-: "):
            continue  # the separator row
        rows.append(cells(line))
    return rows


def example(type_name: str) -> dict[str, Any]:
    """The pinned example of the current version of `type_name`, as published JSON."""
    return dict(PINNED[f"{type_name}.v{ev.EVENT_TYPES[type_name].VERSION}"]["example"])


# --- The chart -----------------------------------------------------------------------------------------------------

def chart_rows() -> dict[str, list[str]]:
    rows = table_rows(section("## The chart of accounts", "### Its dating"))
    found = {}
    for row in rows:
        code = row[0].strip("`")
        assert code not in found, f"account {code} is twice in docs/books.md's chart"
        found[code] = row
    return found


def opened_on(code: str) -> str:
    return next(p.valid_from.isoformat() for p in CHART.periods if any(a.code == code for a in p.value))


def test_the_chart_lists_every_account_as_the_code_has_it() -> None:
    rows = chart_rows()
    assert sorted(rows) == sorted(ACCOUNTS), "docs/books.md's chart and ledger.books.ACCOUNTS differ"
    for code, account in ACCOUNTS.items():
        _, slug, name, kind, side, program, fed_by, rule, opened = rows[code]
        assert slug == f"`{account.slug}`", f"{code}: slug"
        assert name == account.name, f"{code}: name"
        assert (kind, side) == (account.kind, account.normal_side), f"{code}: kind and normal side"
        assert program == (f"`{NO_PROGRAM}`" if account.program == NO_PROGRAM else account.program), f"{code}: program"
        assert opened == opened_on(code), f"{code}: opened on"
        assert fed_by and rule, f"{code}: say what feeds it and by what rule"


def test_the_dating_table_is_the_charts_periods() -> None:
    rows = table_rows(section("### Its dating", "\n## "))
    assert len(rows) == len(CHART.periods)
    for row, period in zip(rows, CHART.periods, strict=True):
        assert row[0].startswith(period.valid_from.isoformat())
        last = "open" if period.valid_to is None else (period.valid_to - timedelta(days=1)).isoformat()
        assert row[1] == last, f"the period from {period.valid_from}: its last day"
        assert str(len(period.value)) in re.findall(r"\d+", row[2]), f"the period from {period.valid_from}: count"


# --- The entries ---------------------------------------------------------------------------------------------------

class Entry:
    """One documented entry: the types it is for, its date and reference lines, its rows."""

    def __init__(self, heading: str, body: str) -> None:
        self.types = [t for t in re.findall(r"`(\w+)`", heading) if t in ev.EVENT_TYPES]
        dated = re.search(r"^Dated (.+?); (?:reference (.+?)|no reference)\.$", body, re.MULTILINE)
        assert dated, f"{heading}: no 'Dated ...; reference ...' line"
        self.dated, self.reference = dated.group(1), dated.group(2)
        self.rows = table_rows(body)
        assert self.rows, f"{heading}: no entry table"


def entries() -> dict[str, Entry]:
    text = section("## The entry each event makes", "### A worked example")
    found: dict[str, Entry] = {}
    for part in text.split("\n#### ")[1:]:
        heading, body = part.split("\n", 1)
        entry = Entry(heading, body)
        for type_name in entry.types:
            assert type_name not in found, f"{type_name} is documented twice"
            found[type_name] = entry
    return found


def test_every_posting_type_is_documented_and_nothing_else() -> None:
    assert sorted(entries()) == sorted(POSTING_TYPES)


def holds(when: str, data: dict[str, Any]) -> bool:
    if not when:
        return True
    if m := re.fullmatch(r"`(\w+)` given", when):
        return bool(data.get(m.group(1)))
    if m := re.fullmatch(r"no `(\w+)`", when):
        return not data.get(m.group(1))
    if m := re.fullmatch(r"`(\w+)` is (\w+)", when):
        return bool(data[m.group(1)] == m.group(2))
    raise AssertionError(f"a condition the test does not read: {when!r}")


def amount(expression: str, names: dict[str, int]) -> int:
    terms = re.split(rf"\s*([+{MINUS}])\s*", expression.strip("`"))
    total, sign = 0, 1
    for term in terms:
        if term in ("+", MINUS):
            sign = 1 if term == "+" else -1
            continue
        assert term in names, f"{term!r} in {expression!r} is not a field of the event"
        total += sign * names[term]
    return total


def documented_legs(entry: Entry, data: dict[str, Any], splits: tuple[int, int]) -> list[Leg]:
    names = {k: v for k, v in data.items() if isinstance(v, int) and not isinstance(v, bool)}
    if "shares" in data:
        names |= {program: share(data, program) for program in PROGRAMS}
        names |= {"jkp_from_jkk": splits[0], "jkp_from_jkm": splits[1]}
    legs = []
    for when, side, account, program, value in entry.rows:
        if not holds(when, data):
            continue
        code = re.match(r"`(\d{4})` ", account)
        assert code and code.group(1) in ACCOUNTS, f"{account!r} is not an account of the chart"
        assert side in ("Dr", "Cr"), side
        tag = data["program"] if program == "`program`" else program.strip("`")
        signed = amount(value, names) * (1 if side == "Dr" else -1)
        legs.append((code.group(1), tag, signed))
    return legs


def code_legs(type_name: str, data: dict[str, Any], splits: tuple[int, int]) -> list[Leg]:
    if type_name in LEGS:
        return LEGS[type_name](data)
    return contribution_legs(data, CONTRIBUTION_SIGNS[type_name], *splits)


def without_payer(data: dict[str, Any]) -> dict[str, Any]:
    return data | {"npp": None, "kpj": OTHER_KPJ}


def bpu_line(data: dict[str, Any]) -> dict[str, Any]:
    """A self-paying member's line: JKK and JKM only, no JKP split, no fine."""
    shares = {"JKK": {"employer": 0, "worker": 10_000}, "JKM": {"employer": 0, "worker": 6_800}}
    return data | {"npp": None, "shares": shares, "jkp_from_jkk": 0, "jkp_from_jkm": 0, "fine": 0, "total": 16_800}


def late_line(data: dict[str, Any]) -> dict[str, Any]:
    return data | {"fine": data["fine"] + 9_540, "total": data["total"] + 9_540}


Variant = Callable[[dict[str, Any]], dict[str, Any]]
VARIANTS: dict[str, list[Variant]] = {
    **{t: [without_payer] for t in ("MoneyReceived", "MoneyRefunded", "ReceiptReturned",
                                    "ContributionPaymentReceived", "BillClosed", "BillSettled",
                                    "SettlementReversed", "MoneyIdentified")},
    **{t: [lambda d, p=p: d | {"program": p} for p in PROGRAMS] for t in ("ClaimPaid", "ClaimReversed")},
    **{t: [bpu_line, late_line] for t in CONTRIBUTION_SIGNS},
}
# A reversal does not carry its line's JKP splits: the projection looks them up. Samples of them.
REVERSED_SPLITS = [(7_000, 5_000), (0, 0), (7_000, 0)]


def samples(type_name: str) -> list[tuple[dict[str, Any], tuple[int, int]]]:
    base = example(type_name)
    datas = [base, *(variant(base) for variant in VARIANTS.get(type_name, []))]
    out = []
    for data in datas:
        if type_name == "ContributionReversed":
            out += [(data, splits) for splits in REVERSED_SPLITS if share(data, "JKK") >= splits[0]
                    and share(data, "JKM") >= splits[1]]
        else:
            out.append((data, (data.get("jkp_from_jkk", 0), data.get("jkp_from_jkm", 0))))
    return out


@pytest.mark.parametrize("type_name", sorted(POSTING_TYPES))
def test_each_documented_entry_is_the_codes(type_name: str) -> None:
    entry = entries()[type_name]
    for data, splits in samples(type_name):
        documented = [leg for leg in documented_legs(entry, data, splits) if leg[2]]
        computed = [leg for leg in code_legs(type_name, data, splits) if leg[2]]
        assert Counter(documented) == Counter(computed), f"{type_name} of {data}, JKP splits {splits}"
        assert sum(leg[2] for leg in documented) == 0, f"{type_name}: the documented entry does not balance"


@pytest.mark.parametrize("type_name", sorted(POSTING_TYPES))
def test_each_documented_date_and_reference_is_the_codes(type_name: str) -> None:
    entry, data = entries()[type_name], example(type_name)
    event = ev.EVENT_TYPES[type_name].model_validate(data)
    if type_name == "MoneyIdentified":  # booked on the day its held money arrived (the projection looks it up)
        assert entry.dated == "the `received_on` of its `MoneyUnidentified`"
    else:
        field = entry.dated.strip("`")
        assert event.effective_date().isoformat() == data[field], f"{type_name} is dated {field}"
    if entry.reference is None:
        assert entry_reference(type_name, data) is None
    else:
        assert entry_reference(type_name, data) == str(data[entry.reference.strip("`")])


def test_each_accounts_feeders_are_the_types_that_post_to_it() -> None:
    """An account's "what feeds it" names every event type whose entry has a leg on it (in the samples above)."""
    posting: dict[str, set[str]] = {code: set() for code in ACCOUNTS}
    for type_name in POSTING_TYPES:
        for data, splits in samples(type_name):
            for code, _program, value in code_legs(type_name, data, splits):
                if value:
                    posting[code].add(type_name)
    rows = chart_rows()
    for code, types in posting.items():
        named = set(re.findall(r"`(\w+)`", rows[code][6])) & set(ev.EVENT_TYPES)
        assert types <= named, f"{code}: what feeds it does not name {sorted(types - named)}"


# --- The worked example --------------------------------------------------------------------------------------------

def test_the_worked_example_adds_up_to_the_documented_trial_balance() -> None:
    bill, received, settled, refunded = (example(t) for t in ("BillClosed", "MoneyReceived", "BillSettled",
                                                               "MoneyRefunded"))
    assert settled["bill_id"] == bill["bill_id"] and settled["amount"] == bill["total"]
    line = example("ContributionPaid") | {"payment_id": bill["bill_id"], "paid_on": settled["settled_on"],
                                          "months_late": 1, "fine": 9_540, "total": 486_540}
    ev.ContributionPaid.model_validate(line)  # its total is its shares plus its fine
    lines = [line, line | {"kpj": OTHER_KPJ}]
    assert sum(x["total"] for x in lines) == settled["total"]
    assert received["amount"] - settled["total"] == refunded["amount"]
    legs = [*LEGS["BillClosed"](bill), *LEGS["MoneyReceived"](received), *LEGS["BillSettled"](settled),
            *(leg for x in lines for leg in contribution_legs(x, 1, x["jkp_from_jkk"], x["jkp_from_jkm"])),
            *LEGS["MoneyRefunded"](refunded)]
    balances: Counter[str] = Counter()
    for code, _program, value in legs:
        balances[code] += value
    computed = {code: value for code, value in balances.items() if value}
    table = table_rows(section("The trial balance of the branch on 25 April 2024", "\nThe receivable and billed"))
    documented = {}
    for account, debit, credit in table:
        code = re.match(r"`(\d{4})`", account)
        assert code
        documented[code.group(1)] = int(debit.replace(",", "") or 0) - int(credit.replace(",", "") or 0)
    assert documented == computed


# --- docs/projections.md -------------------------------------------------------------------------------------------

def test_the_projections_table_has_every_projection_and_the_general_ledgers_tables() -> None:
    from projections.catalog import PROJECTIONS
    from projections.general_ledger import GeneralLedger

    text = (ROOT / "docs" / "projections.md").read_text(encoding="utf-8")
    rows = {row[0].strip("`"): row for row in table_rows(text.split("## Where the views live", 1)[0])}
    assert sorted(rows) == sorted(PROJECTIONS), "docs/projections.md's table and projections.catalog differ"
    kept = rows[GeneralLedger.name][1]
    for table in GeneralLedger.tables:
        assert f"(`{table.name}`" in kept, f"docs/projections.md does not say what `{table.name}` keeps"
    assert "\n- `general_ledger`:" in text.split("Invariants:", 1)[1], "the invariants list has no general_ledger entry"
    assert "\n## Invariants\n" in BOOKS
