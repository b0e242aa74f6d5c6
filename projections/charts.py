"""The console's figures as a person reads them: rupiah, and charts drawn as SVG on the server.

The charts are pygal's, rendered without its JavaScript (`js=[]`, and the inline configuration script it writes
anyway removed: no tooltips, nothing runs in the browser, and the console's pages forbid scripts), then made
accessible here: the root gets `role="img"` and `aria-labelledby` naming its `<title>` and a `<desc>` that says
in a sentence what the chart shows, so a screen reader announces one image with its meaning instead of hundreds of
shapes. Every figure a chart draws is also in a table beside it (the console's templates), which is where exact
amounts are read: a chart's axis ticks are pygal's scale marks (floats it computes), rounded for their labels, never
amounts of money. Text that comes from the data (months, program names, dates) is escaped by the XML serializer.

Money is rupiah as Indonesian staff write it, with a dot between thousands: `Rp5.000.000`, `-Rp5.000`. (The CLI's
lines use commas, `ledger.formatting.rupiah`: they are read by the same people in a terminal, and changing them would
change every script that reads them.)
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import date
from typing import Any

import pygal
from markupsafe import Markup
from pygal.style import Style

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
ET.register_namespace("", SVG_NS)
ET.register_namespace("xlink", XLINK_NS)

CHART_WIDTH, CHART_HEIGHT = 760, 360
X_LABELS_UPRIGHT_MAX = 12  # more month labels than this are drawn slanted, so they do not overlap
# The Okabe-Ito palette: told apart by readers with any common colour-vision deficiency.
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9")
STYLE = Style(background="#ffffff", plot_background="#ffffff", foreground="#1b1b1b", foreground_strong="#1b1b1b",
              foreground_subtle="#5a5a5a", colors=COLOURS, opacity="1", opacity_hover="1", transition="0ms",
              font_family="system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif",
              title_font_size=18, label_font_size=13, major_label_font_size=13, legend_font_size=14)
LINE_STYLE = Style(**{**STYLE.to_dict(), "stroke_width": "3", "stroke_opacity": "1"})


def rupiah(amount: int) -> str:
    """`Rp5.000.000`; a negative amount `-Rp5.000`."""
    assert isinstance(amount, int), amount
    text = f"{abs(amount):,}".replace(",", ".")
    return f"-Rp{text}" if amount < 0 else f"Rp{text}"


def _tick(value: float | None) -> str:
    """An axis tick or a bar's value as pygal hands it (a float for ticks), as rupiah."""
    return "" if value is None else rupiah(round(value))


def _accessible(svg: str, chart_id: str, title: str, description: str) -> Markup:
    """pygal's SVG with `role="img"`, `aria-labelledby` -> its `<title>` and a `<desc>`; scripts and comments dropped.
    Markup for the templates: the serializer escaped every text and attribute in it."""
    root = ET.fromstring(svg)  # noqa: S314 - pygal's own output, made in this process from our numbers
    for parent in list(root.iter()):  # pygal writes its config as an inline script even with `js=[]`
        for script in parent.findall(f"{{{SVG_NS}}}script"):
            parent.remove(script)
    root.set("role", "img")
    root.set("aria-labelledby", f"{chart_id}-title {chart_id}-desc")
    root.set("width", "100%")
    root.set("class", f"{root.get('class', '')} chart".strip())
    heading = root.find(f"{{{SVG_NS}}}title")
    if heading is None:  # pygal writes one for a chart with a title; keep the contract if a release stops
        heading = ET.Element(f"{{{SVG_NS}}}title")
        root.insert(0, heading)
    heading.text = title
    heading.set("id", f"{chart_id}-title")
    desc = ET.Element(f"{{{SVG_NS}}}desc", {"id": f"{chart_id}-desc"})
    desc.text = description
    root.insert(list(root).index(heading) + 1, desc)
    return Markup(ET.tostring(root, encoding="unicode"))  # noqa: S704 - serialized, hence escaped, just above


def _config(**options: Any) -> dict[str, Any]:
    return {"js": [], "disable_xml_declaration": True, "style": STYLE, "width": CHART_WIDTH, "height": CHART_HEIGHT,
            "value_formatter": _tick, "print_values": False, "show_minor_y_labels": True, "legend_box_size": 16,
            "truncate_legend": -1, "truncate_label": -1, "margin": 16, "spacing": 14, **options}


def contributions_by_month(months: Sequence[dict[str, Any]], programs: Sequence[str], *, chart_id: str,
                           title: str) -> Markup | None:
    """Stacked bars: one bar per contribution month, one segment per program (a branch report's `months`).
    None when there is no month to draw."""
    if not months:
        return None
    labels = [row["month"] for row in months]
    chart = pygal.StackedBar(**_config(title=title, x_label_rotation=0 if len(labels) <= X_LABELS_UPRIGHT_MAX else 40))
    chart.x_labels = labels
    for program in programs:
        chart.add(program, [int(row[program]) for row in months])
    totals = [sum(int(row[program]) for program in programs) for row in months]
    top = max(range(len(months)), key=lambda i: totals[i])
    description = (f"Contributions per program for {len(months)} contribution month(s), {labels[0]} to "
                   f"{labels[-1]}: in all {rupiah(sum(totals))}; the highest month is {labels[top]} with "
                   f"{rupiah(totals[top])}. The table below gives every figure.")
    return _accessible(chart.render(is_unicode=True), chart_id, title, description)


def claims_by_program(claims: dict[str, dict[str, int]], *, chart_id: str, title: str) -> Markup | None:
    """Bars: the amount of claims paid per program (a branch report's `claims`). None when no claim was paid."""
    if not any(one["amount"] or one["count"] for one in claims.values()):
        return None
    chart = pygal.Bar(**_config(title=title, show_legend=False))
    chart.x_labels = list(claims)
    chart.add("claims paid", [int(one["amount"]) for one in claims.values()])
    parts = "; ".join(f"{program} {rupiah(one['amount'])} ({one['count']:,} claims)" for program, one in claims.items())
    description = f"Claims paid per program: {parts}. The table below gives every figure."
    return _accessible(chart.render(is_unicode=True), chart_id, title, description)


def balance_steps(history: Sequence[dict[str, Any]], until: date | None = None) -> list[tuple[date, int]]:
    """The JHT balance as a step function: (date, balance at the end of that day), one point per day with a
    movement, and before each change a point at the old balance on the same day, so that lines between the
    points rise and fall straight up and down as the balance did, never slope across days it did not move; and a
    last point on `until` (the page's date), when later than the last movement, at the last balance."""
    days: dict[str, int] = {}
    for row in history:  # oldest first; the last movement of a day leaves that day's balance
        days[row["date"]] = int(row["jht_balance"])
    points: list[tuple[date, int]] = []
    for day, balance in days.items():
        when = date.fromisoformat(day)
        if points and points[-1][1] != balance:
            points.append((when, points[-1][1]))
        points.append((when, balance))
    if points and until is not None and until > points[-1][0]:
        points.append((until, points[-1][1]))
    return points


def jht_balance_over_time(history: Sequence[dict[str, Any]], *, chart_id: str, title: str,
                          until: date | None = None) -> Markup | None:
    """A step line of the member's JHT balance after each day with a movement (a member history, oldest first), up
    to `until`. None when the member has no movement."""
    points = balance_steps(history, until)
    if not points:
        return None
    chart = pygal.DateLine(**_config(title=title, style=LINE_STYLE, show_legend=False, show_dots=False, fill=False,
                                     include_x_axis=True, x_value_formatter=lambda day: day.isoformat(),
                                     x_label_rotation=40))
    chart.add("JHT balance", points)
    first, last = points[0], points[-1]
    highest = max(points, key=lambda point: point[1])
    description = (f"The JHT balance from {first[0].isoformat()} to {last[0].isoformat()}: "
                   f"{rupiah(last[1])} on {last[0].isoformat()}, at most {rupiah(highest[1])} (on "
                   f"{highest[0].isoformat()}). The movements table below gives every change.")
    return _accessible(chart.render(is_unicode=True), chart_id, title, description)
