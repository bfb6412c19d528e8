"""The S&OP review pages of the manager report: the plan against supply, money and
scenarios, and the decisions to take.

The monthly S&OP meeting agrees one plan: can supply make it (capacity per resource and
month, projected stock against safety stock), what is it worth (revenue, margin, gap to
the budget), what would the scenarios change, and which decisions come first. The figures
are the balance reviews the plan store keeps (written by the pipeline's balance step and by
``sopforecast balance run``): the latest review of the base plan on the newest version of
the plan that has one, and the latest review of each scenario on that same version.

:func:`read_review` is the only reader. :func:`latest_runs` and :func:`review_page` (with
the helpers it calls) are pure: the store's frames in, the template's values out, every
number written for reading. User text (resources, items, scenario names) stays text: the
template escapes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..planning import service
from ..planning.finance import budget_gap, revenue
from ..store.plans import PlanStore
from ..supply.balance import FIGURES
from ..supply.inventory import BELOW_SAFETY, STOCKOUT
from .report import chart_svg, money_text, report_figure, tidy_axes

__all__ = [
    "TOP_DECISIONS",
    "TOP_RESOURCES",
    "TIGHT",
    "NO_REVIEW",
    "SCENARIO_FIGURES",
    "SopReview",
    "latest_runs",
    "read_review",
    "review_page",
    "utilisation_grid",
    "stock_chart_svg",
    "scenario_table",
    "decision_rows",
]

TOP_DECISIONS = 10  # decisions listed on the page, most money at stake first (as the top exceptions)
TOP_RESOURCES = 30  # rows of the utilisation table, busiest first
TIGHT = 0.9  # utilisation from which a resource-month is shown as nearly full
NO_REVIEW = (
    "No balance review yet: run `sopforecast balance run` (or a pipeline with a balance step) to hold "
    "the plan against capacity and inventory; its review then appears here."
)
# figure, heading, how it is written, which way is better (1 higher, -1 lower, 0 neither)
SCENARIO_FIGURES = (
    ("units", "Units planned", "units", 0),
    ("revenue", "Revenue", "money", 1),
    ("margin", "Margin", "money", 1),
    ("max_utilisation", "Peak utilisation", "ratio", -1),
    ("overloaded_resource_months", "Overloaded resource-months", "units", -1),
    ("unmet_units", "Unmet demand (units)", "units", -1),
    ("revenue_at_stake", "Revenue at stake", "money", -1),
    ("stockout_months", "Stock-out item-months", "units", -1),
    ("closing_stock_end", "Closing stock (units)", "units", 0),
)
# kind: what the decisions table calls it, and how many of them are counted (one, several)
_KINDS = {
    "overload": ("Overloaded resource", "overloaded resource-month", "overloaded resource-months"),
    "no capacity": (
        "No capacity given",
        "resource-month without capacity",
        "resource-months without capacity",
    ),
    "underused": ("Under-used resource", "under-used resource-month", "under-used resource-months"),
    STOCKOUT: ("Out of stock", "stock-out", "stock-outs"),
    BELOW_SAFETY: ("Below safety stock", "shortfall below safety stock", "shortfalls below safety stock"),
}
_OVER_KINDS = ("overload", "no capacity")


@dataclass(frozen=True)
class SopReview:
    """The balance reviews the S&OP pages show.

    Attributes
    ----------
    plan : the plan's name.
    version : the reviewed version as planners name it (``2026-01 v1 (draft)``).
    base : the base plan's review row (``id, version_id, created_at, source, solver, rule,
        figures``, ...).
    resources, months, decisions : the base review's tables (``PlanStore.balance_table``).
    scenarios : the latest review of each scenario on the same version: review rows with the
        scenario's ``name`` and ``description``, oldest scenario first.
    budget : plan against budget by year (:func:`~sopforecast.planning.finance.budget_gap`),
        ``None`` when no budget is given.
    """

    plan: str
    version: str
    base: dict
    resources: pd.DataFrame
    months: pd.DataFrame
    decisions: pd.DataFrame
    scenarios: pd.DataFrame
    budget: pd.DataFrame | None = None


def latest_runs(balances: pd.DataFrame) -> tuple[dict | None, pd.DataFrame]:
    """The review rows to show: the newest base review on the newest version that has one,
    and the newest review of each scenario on that version (``None`` and an empty frame
    when there is no base review).

    Parameters
    ----------
    balances : pandas.DataFrame
        ``PlanStore.balances(plan=...)``: ``id, version_id, scenario_id`` (missing for the
        base plan), ...
    """
    none = balances.iloc[0:0]
    if balances.empty:
        return None, none
    is_base = balances["scenario_id"].isna()
    if not is_base.any():
        return None, none
    base = balances[is_base].sort_values(["version_id", "id"], ascending=False).iloc[0]
    same = balances[~is_base & (balances["version_id"] == base["version_id"])]
    same = same.sort_values("id", ascending=False).drop_duplicates("scenario_id")
    return base.to_dict(), same.sort_values("scenario_id").reset_index(drop=True)


def read_review(store: PlanStore, plan: str, *, budget: pd.DataFrame | None = None) -> SopReview | None:
    """The balance reviews of ``plan`` the S&OP pages show; ``None`` when there is none.

    Parameters
    ----------
    store : PlanStore
    plan : str
    budget : pandas.DataFrame, optional
        The annual operating plan (:func:`~sopforecast.planning.finance.read_budget`: ``key,
        ds, revenue`` and/or ``units``), compared with the reviewed version's plan.
    """
    base, runs = latest_runs(store.balances(plan=plan))
    if base is None:
        return None
    version = store.version(int(base["version_id"]))
    named = store.scenarios(plan)[["id", "name", "description"]].rename(columns={"id": "scenario_id"})
    runs = runs.astype({"scenario_id": int}).merge(named, on="scenario_id", how="inner")
    gaps = None
    if budget is not None:
        S, _ = service.structure(store, version)
        gaps = budget_gap(revenue(store.lines(version), S), budget)["year"]
    run_id = int(base["id"])
    return SopReview(
        plan=plan,
        version=f"{version.name} ({version.status})",
        base=base,
        resources=store.balance_table(run_id, "resources"),
        months=store.balance_table(run_id, "months"),
        decisions=store.balance_table(run_id, "decisions"),
        scenarios=runs,
        budget=gaps,
    )


def review_page(review: SopReview | None, currency: str = "", *, top: int = TOP_DECISIONS) -> dict:
    """The template's values of the S&OP pages (``available`` false: only ``message``)."""
    from markupsafe import Markup

    if review is None:
        return {"available": False, "message": NO_REVIEW}
    figures = _figures(review.base["figures"])
    decisions = review.decisions.sort_values("rank", kind="stable")
    counts = decisions["kind"].value_counts()
    return {
        "available": True,
        "version": review.version,
        "about": _about(review.base),
        "rule": _text(review.base.get("rule")),
        "solver": _text(review.base.get("solver")),
        "answer": _supply_sentence(figures, review.resources, currency),
        "tiles": _supply_tiles(figures, review.resources, currency),
        "grid": utilisation_grid(review.resources, decisions),
        "stock_svg": Markup(stock_chart_svg(review.months)),
        "horizon": _span(review.months["ds"].min(), review.months["ds"].max()) if len(review.months) else "",
        "finance": _finance_tiles(figures, review.budget, currency),
        "budget_given": review.budget is not None and bool((review.budget["measure"] == "revenue").any()),
        "scenarios": scenario_table(review.base, review.scenarios, currency),
        "scenario_notes": _scenario_notes(review.base, review.scenarios),
        "decisions": decision_rows(decisions, currency, top=top),
        "decisions_total": len(decisions),
        "decision_counts": ", ".join(
            f"{n:,} {_KINDS.get(k, (k, k, k))[1 if n == 1 else 2]}" for k, n in counts.items()
        ),
        "currency": currency,
    }


def utilisation_grid(resources: pd.DataFrame, decisions: pd.DataFrame, *, most: int = TOP_RESOURCES) -> dict:
    """Utilisation per resource and month as a heat table, the busiest resources first.

    A cell is ``over`` when the review flagged it (overload, load without capacity) or its
    load passes its capacity, ``under`` when flagged as badly under-used, ``tight`` from
    :data:`TIGHT`, ``none`` without a capacity, else ``ok``.

    Returns
    -------
    dict
        ``months`` (``month``, ``year`` shown on the first column and each January),
        ``rows`` (``resource``, ``peak``, ``cells`` of ``text, level, title``), ``hidden``
        (resources left out beyond ``most``).
    """
    if resources.empty:
        return {"months": [], "rows": [], "hidden": 0}
    months = sorted(pd.to_datetime(resources["ds"].unique()))
    capacity_kinds = decisions[decisions["kind"].isin(["overload", "no capacity", "underused"])]
    flagged = {(r.subject, pd.Timestamp(r.ds)): r.kind for r in capacity_kinds.itertuples(index=False)}
    util = pd.to_numeric(resources["utilisation"], errors="coerce")
    peak = util.groupby(resources["resource"]).max()
    order = sorted(peak.index, key=lambda r: (-peak[r] if pd.notna(peak[r]) else np.inf, str(r)))
    by_key = resources.assign(ds=pd.to_datetime(resources["ds"])).set_index(["resource", "ds"])
    rows = []
    for name in order[:most]:
        cells = []
        for month in months:
            rec = by_key.loc[(name, month)] if (name, month) in by_key.index else None
            cells.append(_cell(name, month, rec, flagged.get((name, month))))
        rows.append({"resource": str(name), "peak": _ratio(peak[name]), "cells": cells})
    header = [
        {"month": f"{m:%b}", "year": f"{m:%Y}" if i == 0 or m.month == 1 else ""}
        for i, m in enumerate(months)
    ]
    return {"months": header, "rows": rows, "hidden": max(0, len(order) - most)}


def stock_chart_svg(months: pd.DataFrame) -> str:
    """Projected stock against safety stock by month, and the items short each month.

    Parameters
    ----------
    months : pandas.DataFrame
        A review's month totals: ``ds, closing, safety_stock, stockouts, below_safety``.

    Returns
    -------
    str
        Inline SVG; empty without months.
    """
    if months.empty:
        return ""
    from matplotlib.ticker import FuncFormatter

    frame = months.assign(ds=pd.to_datetime(months["ds"])).sort_values("ds")
    x = np.arange(len(frame))
    fig = report_figure((10, 4.0))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2.2, 1]})
    closing = frame["closing"].astype(float).to_numpy()
    safety = frame["safety_stock"].astype(float).fillna(0.0).to_numpy()
    top.plot(x, closing, color="#0072B2", marker="o", markersize=3.5, linewidth=1.8, label="projected stock")
    if (safety > 0).any():
        top.plot(x, safety, color="#D55E00", linestyle="--", linewidth=1.5, label="safety stock")
        top.fill_between(x, closing, safety, where=closing < safety, color="#fdecea", interpolate=True)
    top.set_ylim(bottom=0)
    top.set_ylabel("Units at month end", fontsize=9)
    top.yaxis.set_major_formatter(
        FuncFormatter(lambda v, _: f"{v / 1e3:,.0f}k" if abs(v) >= 1e4 else f"{v:,.0f}")
    )
    top.legend(loc="lower right", fontsize=9, frameon=False, ncols=2)
    out = frame["stockouts"].astype(float).to_numpy()
    low = np.clip(frame["below_safety"].astype(float).to_numpy() - out, 0, None)
    bottom.bar(x, out, color="#D55E00", label="out of stock")
    bottom.bar(x, low, bottom=out, color="#E69F00", label="below safety stock")
    bottom.set_ylabel("Items short", fontsize=9)
    bottom.legend(loc="upper right", fontsize=9, frameon=False, ncols=2)
    labels = [f"{d:%b}\n{d:%Y}" if i == 0 or d.month == 1 else f"{d:%b}" for i, d in enumerate(frame["ds"])]
    bottom.set_xticks(x, labels)
    for ax in (top, bottom):
        tidy_axes(ax)
    fig.tight_layout()
    return chart_svg(
        fig, label="Projected stock against safety stock by month, and the items short each month"
    )


def scenario_table(base: dict, scenarios: pd.DataFrame, currency: str = "") -> dict:
    """The base plan and each scenario side by side.

    Returns
    -------
    dict
        ``headings`` (money headings name the currency, so cells do not) and ``rows``, the
        base plan's first: ``name, description, cells`` (``value``, and for a scenario
        ``delta`` against the base with its ``sign``: good, bad or zero). A figure no plan
        has (margin without unit costs) is left out.
    """
    first = _figures(base["figures"])
    plans = [("Base plan", "the plan as it stands", first)] + [
        (_text(rec["name"]), _text(rec.get("description")), _figures(rec["figures"]))
        for rec in scenarios.to_dict("records")
    ]
    shown = [f for f in SCENARIO_FIGURES if any(figures[f[0]] == figures[f[0]] for *_, figures in plans)]
    rows = [
        {"name": name, "description": text, "cells": _cells(figures, None if i == 0 else first, shown)}
        for i, (name, text, figures) in enumerate(plans)
    ]
    headings = [
        f"{label} ({currency})" if kind == "money" and currency else label for _, label, kind, _ in shown
    ]
    return {"headings": headings, "rows": rows}


def decision_rows(decisions: pd.DataFrame, currency: str = "", *, top: int = TOP_DECISIONS) -> list[dict]:
    """The first ``top`` decisions by rank (most money at stake first), written for reading."""
    rows = []
    for rec in decisions.sort_values("rank", kind="stable").head(top).to_dict("records"):
        kind = _text(rec["kind"])
        stake = _float(rec["at_stake"])
        rows.append(
            {
                "rank": int(rec["rank"]),
                "kind": _KINDS.get(kind, (kind,))[0],
                "subject": _text(rec["subject"]),
                "months": _span(rec["ds"], rec["last"]),
                "month_sort": "" if pd.isna(rec["ds"]) else f"{pd.Timestamp(rec['ds']):%Y%m}",
                "gap": _gap(kind, _float(rec["gap"])),
                "at_stake": money_text(stake, currency) if stake else "—",
                "at_stake_sort": f"{stake:.2f}" if stake == stake else "",
                "action": _text(rec["action"]),
                "detail": _text(rec["detail"]),
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------
# pieces of the page


def _figures(raw) -> dict:
    """A review's figures, every one of :data:`FIGURES` a float (``nan`` where not given)."""
    raw = raw if isinstance(raw, dict) else {}
    return {name: _float(raw.get(name)) for name in dict.fromkeys([*FIGURES, *raw])}


def _about(base: dict) -> str:
    when = pd.Timestamp(base["created_at"])
    parts = [f"reviewed {when.day} {when:%B %Y, %H:%M} UTC"]
    if _text(base.get("source")):
        parts.append(f"by {_text(base['source'])}")
    return ", ".join(parts)


def _peak(resources: pd.DataFrame) -> tuple[str, str, float] | None:
    util = pd.to_numeric(resources["utilisation"], errors="coerce") if len(resources) else pd.Series([])
    if not util.notna().any():
        return None
    rec = resources.loc[util.idxmax()]
    return str(rec["resource"]), f"{pd.Timestamp(rec['ds']):%b %Y}", float(util.max())


def _supply_sentence(figures: dict, resources: pd.DataFrame, currency: str) -> str:
    over, unmet = figures["overloaded_resource_months"], figures["unmet_units"]
    peak = _peak(resources)
    where = f"{peak[0]} in {peak[1]} at {peak[2]:.0%} of capacity" if peak else ""
    if over > 0:
        parts = [
            f"Supply cannot make the plan as it stands: {over:,.0f} resource-month{_s(over)} "
            f"{'is' if over == 1 else 'are'} overloaded (the worst: {where})."
        ]
    else:
        parts = [f"No resource is overloaded (the busiest: {where})." if peak else "No capacity was given."]
    if unmet > 0:
        units = figures["units"]
        share = f" ({_share(unmet / units)} of demand)" if units > 0 else ""
        stake = figures["revenue_at_stake"]
        money = f", {money_text(stake, currency)} of revenue at stake" if stake == stake else ""
        parts.append(
            f"Planned within capacity, pre-building where it can, {unmet:,.0f} units{share} "
            f"stay unmet{money}."
        )
    elif over > 0:
        parts.append("Planned within capacity, pre-building in earlier months serves all demand.")
    else:
        parts.append("All demand can be served.")
    out, low = figures["stockout_months"], figures["below_safety_months"]
    if out > 0 or low > 0:
        parts.append(
            f"Projected stock runs out in {out:,.0f} item-month{_s(out)} and falls below safety stock in "
            f"{low:,.0f}."
        )
    return " ".join(parts)


def _supply_tiles(figures: dict, resources: pd.DataFrame, currency: str) -> list[dict]:
    peak = _peak(resources)
    top, where = (peak[2], f"{peak[0]}, {peak[1]}") if peak else (np.nan, "no capacity given")
    f = figures
    over, unmet, stake = f["overloaded_resource_months"], f["unmet_units"], f["revenue_at_stake"]
    out, low, fill = f["stockout_months"], f["below_safety_months"], f["fill_rate"]
    planned = f"of {money_text(f['revenue'], currency, compact=True)} planned"
    return _tiles(
        ("Peak utilisation", _ratio(top), where, "red" if top > 1 else "amber" if top >= TIGHT else "green"),
        ("Overloaded resource-months", _count(over), f"of {len(resources):,} resource-months", _flag(over)),
        (
            "Unmet demand",
            f"{_count(unmet)} units",
            f"fill rate {_share(fill)}" if fill == fill else "",
            _flag(unmet),
        ),
        (
            "Revenue at stake",
            money_text(stake, currency, compact=True),
            planned if stake == stake else "",
            _flag(stake),
        ),
        (
            "Stock-out item-months",
            _count(out),
            f"{_count(low)} below safety stock",
            "red" if out > 0 else "amber" if low > 0 else "green",
        ),
    )


def _finance_tiles(figures: dict, budget: pd.DataFrame | None, currency: str) -> list[dict]:
    """Revenue, margin and the gap to the budget of its broadest key (the largest budget)."""
    revenue_, margin = figures["revenue"], figures["margin"]
    if margin == margin:
        share = f"{margin / revenue_:.1%} of revenue" if revenue_ > 0 else ""
        margin_tile = ("Margin", money_text(margin, currency, compact=True), share, "")
    else:
        margin_tile = ("Margin", "not given", "the plan has no unit costs", "")
    rows = budget[budget["measure"] == "revenue"] if budget is not None else pd.DataFrame()
    if rows.empty:
        gap_tile = ("Gap to budget", "not given", "no revenue budget was given (see below)", "")
    else:
        key = rows.groupby("key")["budget"].sum().idxmax()
        mine = rows[rows["key"] == key]
        gap, goal, months = mine["gap"].sum(), mine["budget"].sum(), int(mine["months"].sum())
        share = f" ({gap / goal:+.1%})" if goal else ""
        gap_tile = (
            "Gap to budget",
            _signed_money(gap, currency, compact=True),
            f"plan minus budget of {key}, {months} months{share}",
            "green" if gap >= 0 else "red",
        )
    units = f"{_count(figures['units'])} units"
    return _tiles(("Revenue", money_text(revenue_, currency, compact=True), units, ""), margin_tile, gap_tile)


def _scenario_notes(base: dict, scenarios: pd.DataFrame) -> list[str]:
    """Scenarios reviewed apart from the base plan (another run or command), whose figures
    may rest on other supply files."""
    notes = []
    for rec in scenarios.to_dict("records"):
        if _text(rec.get("source")) != _text(base.get("source")):
            when = pd.Timestamp(rec["created_at"])
            notes.append(
                f"{_text(rec['name'])} was reviewed apart from the base plan ({when:%Y-%m-%d %H:%M} UTC, "
                f"by {_text(rec.get('source')) or 'an unnamed run'}): its supply inputs may differ."
            )
    return notes


def _cells(figures: dict, base: dict | None, shown) -> list[dict]:
    cells = []
    for name, _, kind, better in shown:
        value = figures[name]
        cell = {"value": _value(value, kind), "delta": "", "sign": ""}
        if base is not None:
            change = value - base[name]
            if change != change:
                cell["delta"], cell["sign"] = "—", "zero"
            elif abs(change) < 1e-9 * max(1.0, abs(base[name])):
                cell["delta"], cell["sign"] = "no change", "zero"
            else:
                cell["delta"] = _delta(change, kind)
                cell["sign"] = "zero" if not better else "good" if change * better > 0 else "bad"
        cells.append(cell)
    return cells


def _cell(resource, month: pd.Timestamp, rec, kind: str | None) -> dict:
    place = f"{resource}, {month:%b %Y}"
    if rec is None:
        return {"text": "", "level": "none", "title": f"{place}: no load and no capacity given"}
    load, capacity, util = _float(rec["load"]), _float(rec["capacity"]), _float(rec["utilisation"])
    planned = _float(rec.get("planned_load"))
    title = f"{place}: load {load:,.0f} of capacity {capacity:,.0f}"
    if planned == planned:
        title += f"; {planned:,.0f} planned within capacity"
    if util != util:
        if capacity != capacity:
            return {"text": "—", "level": "over" if kind else "none", "title": f"{place}: no capacity given"}
        if load > 0:  # load in a month without capacity (a shutdown)
            return {"text": "no cap.", "level": "over", "title": title}
        return {"text": "off", "level": "none", "title": f"{place}: no capacity and no load"}
    if kind in _OVER_KINDS or util > 1:
        level = "over"
    elif kind == "underused":
        level = "under"
    else:
        level = "tight" if util >= TIGHT else "ok"
    return {"text": f"{util:.0%}", "level": level, "title": title}


def _tiles(*tiles: tuple[str, str, str, str]) -> list[dict]:
    """Tiles of ``(name, value, context, status)``; status green, amber, red or blank."""
    return [dict(zip(("name", "value", "context", "status"), tile, strict=True)) for tile in tiles]


def _value(value: float, kind: str) -> str:
    if value != value:
        return "not given" if kind == "money" else "—"
    if kind == "money":
        return money_text(value, "", compact=True)
    return _ratio(value) if kind == "ratio" else _count(value)


def _delta(change: float, kind: str) -> str:
    if kind == "money":
        return _signed_money(change, "", compact=True)
    if kind == "ratio":
        return f"{change * 100:+.0f} pts"
    return f"{change:+,.0f}"


def _signed_money(value: float, currency: str, compact: bool = False) -> str:
    text = money_text(value, currency, compact=compact)
    return f"+{text}" if value > 0 else text


def _gap(kind: str, gap: float) -> str:
    if gap != gap:
        return "—"
    if kind == "underused":
        return f"{abs(gap):,.0f} spare"
    if kind in _OVER_KINDS:
        return f"{gap:,.0f} over capacity"
    return f"{gap:,.0f} units short"


def _span(first, last) -> str:
    if pd.isna(first):
        return "—"
    first = pd.Timestamp(first)
    last = first if pd.isna(last) else pd.Timestamp(last)
    if last <= first:
        return f"{first:%b %Y}"
    if last.year == first.year:
        return f"{first:%b}–{last:%b %Y}"
    return f"{first:%b %Y}–{last:%b %Y}"


def _flag(value: float) -> str:
    return "red" if value > 0 else "green"


def _ratio(value) -> str:
    return "—" if value != value or value is None else f"{float(value):.0%}"


def _share(value: float) -> str:
    if value != value:
        return "—"
    return "under 0.01%" if 0 < value < 0.0001 else f"{value:.2%}"


def _count(value: float) -> str:
    return "—" if value != value else f"{value:,.0f}"


def _s(n: float) -> str:
    return "" if n == 1 else "s"


def _float(value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return number if np.isfinite(number) else float("nan")


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip()
