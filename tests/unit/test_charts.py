"""The console's charts and money: SVG drawn on the server, accessible, escaped, without a script."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date

import pytest

from projections import charts

SVG = "{http://www.w3.org/2000/svg}"
MONTHS = [{"month": "2017-01", "JHT": 5_700_000, "JKK": 240_000, "JKM": 300_000, "JP": 3_000_000},
          {"month": "2017-02", "JHT": 6_000_000, "JKK": 250_000, "JKM": 300_000, "JP": 3_100_000}]
PROGRAMS = ("JHT", "JKK", "JKM", "JP")


@pytest.mark.parametrize(("amount", "text"), [(5_000_000, "Rp5.000.000"), (-5_000, "-Rp5.000"), (0, "Rp0"),
                                              (999, "Rp999"), (1_000, "Rp1.000"),
                                              (256_910_000_000, "Rp256.910.000.000")])
def test_rupiah_is_written_with_a_dot_between_thousands(amount: int, text: str) -> None:
    assert charts.rupiah(amount) == text


def parsed(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 - the module's own output


def assert_accessible(svg: str, chart_id: str) -> ET.Element:
    """An image named by its <title> and described by its <desc>, with no script anywhere."""
    root = parsed(svg)
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == f"{chart_id}-title {chart_id}-desc"
    ids = {element.get("id"): element.tag for element in root.iter() if element.get("id")}
    assert ids[f"{chart_id}-title"] == f"{SVG}title" and ids[f"{chart_id}-desc"] == f"{SVG}desc"
    assert not [element for element in root.iter() if element.tag == f"{SVG}script"]
    assert "<script" not in svg and "javascript" not in svg.lower()
    return root


def test_contributions_per_month_are_stacked_bars_described_in_words() -> None:
    svg = charts.contributions_by_month(MONTHS, PROGRAMS, chart_id="c", title="Contributions per month")
    assert svg is not None
    root = assert_accessible(svg, "c")
    desc = root.find(f"{SVG}desc")
    assert desc is not None and desc.text == (
        "Contributions per program for 2 contribution month(s), 2017-01 to 2017-02: in all Rp18.890.000; the "
        "highest month is 2017-02 with Rp9.650.000. The table below gives every figure.")
    labels = [text.text for text in root.iter(f"{SVG}text")]
    assert {"2017-01", "2017-02", *PROGRAMS} <= set(labels)
    assert len([rect for rect in root.iter(f"{SVG}rect") if "rect" in (rect.get("class") or "")]) == 2 * 4


def test_text_from_the_data_is_escaped() -> None:
    svg = charts.contributions_by_month([{**MONTHS[0], "month": "<script>x</script>"}], PROGRAMS, chart_id="e",
                                        title='A "title" & <b>')
    assert svg is not None
    assert_accessible(svg, "e")
    assert "<script>x" not in svg and "&lt;script&gt;x" in svg
    assert "<b>" not in svg and "&lt;b&gt;" in svg


def test_claims_per_program_are_bars_and_no_claim_draws_no_chart() -> None:
    claims = {"JHT": {"count": 2, "amount": 241_550_000}, "JKK": {"count": 1, "amount": 9_420_000},
              "JKM": {"count": 0, "amount": 0}, "JP": {"count": 1, "amount": 73_410}}
    svg = charts.claims_by_program(claims, chart_id="k", title="Claims")
    assert svg is not None
    desc = assert_accessible(svg, "k").find(f"{SVG}desc")
    assert desc is not None and desc.text is not None
    assert "JHT Rp241.550.000 (2 claims); JKK Rp9.420.000 (1 claims); JKM Rp0 (0 claims); JP Rp73.410" in desc.text
    assert charts.claims_by_program({p: {"count": 0, "amount": 0} for p in PROGRAMS}, chart_id="n", title="") is None
    assert charts.contributions_by_month([], PROGRAMS, chart_id="m", title="") is None


def test_the_balance_is_a_step_function_that_changes_only_on_days_with_a_movement() -> None:
    history = [{"date": "2017-01-15", "jht_balance": 100}, {"date": "2017-02-15", "jht_balance": 300},
               {"date": "2017-02-15", "jht_balance": 250}, {"date": "2017-03-01", "jht_balance": 250},
               {"date": "2017-04-01", "jht_balance": 0}]
    assert charts.balance_steps(history, until=date(2017, 6, 30)) == [
        (date(2017, 1, 15), 100),
        (date(2017, 2, 15), 100), (date(2017, 2, 15), 250),  # the day's last balance, reached straight up
        (date(2017, 3, 1), 250),  # a movement that left the balance as it was: no step
        (date(2017, 4, 1), 250), (date(2017, 4, 1), 0),
        (date(2017, 6, 30), 0),  # carried to the page's date
    ]
    assert charts.balance_steps(history, until=date(2017, 4, 1))[-1] == (date(2017, 4, 1), 0)
    assert charts.balance_steps([]) == []


def test_the_balance_chart_says_where_the_balance_ended_and_peaked() -> None:
    history = [{"date": "2017-01-15", "jht_balance": 1_000_000}, {"date": "2017-05-02", "jht_balance": 0}]
    svg = charts.jht_balance_over_time(history, chart_id="b", title="JHT balance", until=date(2017, 6, 30))
    assert svg is not None
    desc = assert_accessible(svg, "b").find(f"{SVG}desc")
    assert desc is not None and desc.text == (
        "The JHT balance from 2017-01-15 to 2017-06-30: Rp0 on 2017-06-30, at most Rp1.000.000 (on 2017-01-15). "
        "The movements table below gives every change.")
    assert charts.jht_balance_over_time([], chart_id="b", title="") is None
