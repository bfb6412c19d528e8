"""The S&OP review pages of the manager report (``sopforecast.monitoring.sop_review``):
which balance reviews they show, the numbers, colours and ranking they show, user text
escaped, and the pages in a real browser's PDF. Hand-made review frames (three resources,
three months, five decisions) and one tiny plan in a SQLite store."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from test_manager_report import CHROMIUM
from test_store_supply import create_version

from sopforecast.monitoring.report import ReportData, render_html, write_report
from sopforecast.monitoring.sop_review import (
    NO_REVIEW,
    SopReview,
    latest_runs,
    read_review,
    review_page,
    utilisation_grid,
)
from sopforecast.planning import scenarios
from sopforecast.planning.scenarios import SupplyInputs
from sopforecast.store.plans import PlanStore

PDFTOTEXT = shutil.which("pdftotext")
JAN, FEB, MAR = pd.date_range("2027-01-01", periods=3, freq="MS")
APR = pd.Timestamp("2027-04-01")
LINK = '=HYPERLINK("x")'
SCRIPT = "<script>alert(1)</script>"
PROMO = "<b>promo</b>"


def _resources() -> pd.DataFrame:
    """Press fills up to 120% in March; LINK is badly under-used in January and has no
    capacity row for March; SCRIPT has load in a February without capacity."""
    rows = [
        ("Press", JAN, 50.0, 100.0, 0.5),
        ("Press", FEB, 95.0, 100.0, 0.95),
        ("Press", MAR, 120.0, 100.0, 1.2),
        (LINK, JAN, 15.0, 50.0, 0.3),
        (LINK, FEB, 35.0, 50.0, 0.7),
        (LINK, MAR, 10.0, np.nan, np.nan),
        (SCRIPT, JAN, 8.0, 10.0, 0.8),
        (SCRIPT, FEB, 5.0, 0.0, np.nan),
        (SCRIPT, MAR, 6.0, 10.0, 0.6),
    ]
    frame = pd.DataFrame(rows, columns=["resource", "ds", "load", "capacity", "utilisation"])
    return frame.assign(planned_load=frame["load"].clip(upper=100.0))


def _decisions() -> pd.DataFrame:
    """Five decisions, stored out of rank order."""
    rows = [
        (2, "overload", "Press", MAR, MAR, 20.0, 500.0, "add capacity", "utilisation 120%"),
        (4, "underused", LINK, JAN, JAN, -35.0, 0.0, "lend the capacity", ""),
        (1, "stockout", f"SKU-1/{PROMO}", FEB, APR, 30.0, 1200.0, "expedite supply", "3 month(s)"),
        (5, "no capacity", SCRIPT, FEB, FEB, 5.0, 0.0, "give its capacity", ""),
        (3, "below safety stock", "SKU-2", MAR, MAR, 12.4, 80.5, "raise supply by 12 units", ""),
    ]
    columns = ["rank", "kind", "subject", "ds", "last", "gap", "at_stake", "action", "detail"]
    return pd.DataFrame(rows, columns=columns)


def _months() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ds": [JAN, FEB, MAR],
            "demand": [300.0, 350.0, 350.0],
            "served": [300.0, 330.0, 330.0],
            "unmet": [0.0, 20.0, 20.0],
            "revenue_at_stake": [0.0, 300.0, 300.0],
            "closing": [200.0, 90.0, 150.0],
            "safety_stock": [120.0, 120.0, 120.0],
            "stockouts": [0, 1, 1],
            "below_safety": [0, 2, 1],
        }
    )


BASE = {
    "units": 1000.0,
    "revenue": 25000.0,
    "margin": None,  # no unit costs
    "max_utilisation": 1.2,
    "overloaded_resource_months": 1,
    "unmet_units": 40.0,
    "revenue_at_stake": 600.0,
    "fill_rate": 0.96,
    "stockout_months": 2,
    "below_safety_months": 3,
    "closing_stock_end": 150.0,
}


def _review(budget: pd.DataFrame | None = None) -> SopReview:
    promo = {**BASE, "units": 1100.0, "revenue": 27000.0, "max_utilisation": 1.3}
    promo |= {"overloaded_resource_months": 2, "unmet_units": 60.0, "closing_stock_end": 140.0}
    more = {**BASE, "max_utilisation": 0.95, "overloaded_resource_months": 0, "unmet_units": 0.0}
    runs = pd.DataFrame(
        {
            "name": [PROMO, LINK],
            "description": ["promotion on Snacks", "capacity +25% on Press"],
            "source": ["pipeline run 7", "sopforecast balance run"],
            "created_at": pd.to_datetime(["2027-01-05 08:00", "2027-01-06 09:30"]),
            "figures": [promo, more],
        }
    )
    base = {"id": 11, "created_at": pd.Timestamp("2027-01-05 07:41"), "source": "pipeline run 7"}
    base |= {"solver": "highs-lp", "rule": "Scarce capacity goes to priority 1 first.", "figures": BASE}
    return SopReview(
        "demand", "2027-01 v2 (published)", base, _resources(), _months(), _decisions(), runs, budget
    )


@pytest.fixture(scope="module")
def page() -> dict:
    """The page of :func:`_review` (its chart drawn once)."""
    return review_page(_review(), "€")


def _render(sop) -> str:
    return render_html(
        ReportData(plan="demand", cycle="2026-12", generated_at="2027-01-06", currency="€", sop=sop)
    )


def _links(html: str) -> list[str]:
    found = re.findall(r"""\b(?:src|href|xlink:href)\s*=\s*["']([^"']*)["']""", html, flags=re.I)
    return [u for u in found if not u.startswith("#")]


# -- which reviews ---------------------------------------------------------------------------
def test_latest_runs_show_the_newest_base_review_and_each_scenarios_latest_on_its_version():
    balances = pd.DataFrame(
        [
            (9, 5, 2.0),  # a scenario on a newer version without a base review: not shown
            (8, 4, 1.0),
            (7, 4, np.nan),  # the newest base review of the newest version that has one
            (6, 4, 1.0),  # an older review of scenario 1
            (5, 4, np.nan),
            (4, 3, 3.0),  # scenario 3 was reviewed on an older version only
            (3, 3, np.nan),
        ],
        columns=["id", "version_id", "scenario_id"],
    )
    base, runs = latest_runs(balances)
    assert base["id"] == 7 and runs["id"].tolist() == [8]
    assert latest_runs(balances[balances["scenario_id"].notna()])[0] is None
    assert latest_runs(balances.iloc[0:0])[0] is None


def test_read_review_from_a_store_with_its_scenario(tmp_path):
    store = PlanStore(f"sqlite:///{tmp_path / 'plans.db'}")
    try:
        version = create_version(store)
        capacity = pd.DataFrame({"resource": "line", "ds": [JAN, FEB, MAR], "capacity": 25.0})
        routing = pd.DataFrame(
            {"key": ["C1/A", "C1/B", "C2/D"], "resource": "line", "rate": 1.0, "priority": 1}
        )
        inventory = pd.DataFrame({"key": ["C1/A", "C1/B", "C2/D"], "on_hand": 0.0, "lead_time": 0})
        supply = SupplyInputs(capacity, routing, inventory.assign(service_level=0.9))
        assert read_review(store, "demand") is None
        assert review_page(None) == {"available": False, "message": NO_REVIEW}
        scenarios.balance_plan(store, version, supply, source="an early run")
        scenarios.create(store, version, LINK, {"kind": "capacity", "resource": "line", "pct": 100}, by="ana")
        scenarios.compare(store, version, supply, [LINK], source="pipeline run 1")
        review = read_review(store, "demand")
        budget = pd.DataFrame({"key": "Total", "ds": [JAN, FEB, MAR], "revenue": 200.0})
        with_budget = read_review(store, "demand", budget=budget)
    finally:
        store.dispose()
    assert review.version == "2027-01 v1 (draft)" and review.base["source"] == "pipeline run 1"
    assert review.scenarios["name"].tolist() == [LINK] and review.budget is None
    # C1/A 10-30, C1/B 5, C2/D 8 a month on a line of 25: March (43) is over
    assert review.resources.set_index("ds").loc[MAR, "load"].max() == 43.0
    page = review_page(review, "EUR")
    assert page["tiles"][0]["value"] == "172%" and page["tiles"][0]["context"] == "line, Mar 2027"
    assert [row["name"] for row in page["scenarios"]["rows"]] == ["Base plan", LINK]
    assert page["scenarios"]["rows"][1]["cells"][3] == {"value": "86%", "delta": "-86 pts", "sign": "good"}
    assert page["decisions"][0]["kind"] == "Overloaded resource" and page["decisions"][0]["subject"] == "line"
    # revenue 4 x 60 (C1/A) + 2 x 15 (C1/B) + 10 x 24 (C2/D) = 510 against a budget of 600
    gap = review_page(with_budget, "EUR")["finance"][2]
    assert (gap["value"], gap["context"]) == ("-EUR 90", "plan minus budget of Total, 3 months (-15.0%)")


# -- what the page shows ---------------------------------------------------------------------
def test_the_supply_page_answers_with_tiles_and_a_heat_table(page):
    assert page["answer"] == (
        "Supply cannot make the plan as it stands: 1 resource-month is overloaded (the worst: Press in "
        "Mar 2027 at 120% of capacity). Planned within capacity, pre-building where it can, 40 units "
        "(4.00% of demand) stay unmet, €600 of revenue at stake. Projected stock runs out in 2 item-months "
        "and falls below safety stock in 3."
    )
    tiles = [(t["name"], t["value"], t["context"], t["status"]) for t in page["tiles"]]
    assert tiles == [
        ("Peak utilisation", "120%", "Press, Mar 2027", "red"),
        ("Overloaded resource-months", "1", "of 9 resource-months", "red"),
        ("Unmet demand", "40 units", "fill rate 96.00%", "red"),
        ("Revenue at stake", "€600", "of €25k planned", "red"),
        ("Stock-out item-months", "2", "3 below safety stock", "red"),
    ]
    grid = page["grid"]
    assert [m["month"] + m["year"] for m in grid["months"]] == ["Jan2027", "Feb", "Mar"]
    assert [r["resource"] for r in grid["rows"]] == ["Press", SCRIPT, LINK]  # busiest first
    shown = {r["resource"]: [(c["text"], c["level"]) for c in r["cells"]] for r in grid["rows"]}
    assert shown["Press"] == [("50%", "ok"), ("95%", "tight"), ("120%", "over")]
    assert shown[SCRIPT] == [("80%", "ok"), ("no cap.", "over"), ("60%", "ok")]
    assert shown[LINK] == [("30%", "under"), ("70%", "ok"), ("—", "none")]
    assert (
        grid["rows"][0]["cells"][2]["title"]
        == "Press, Mar 2027: load 120 of capacity 100; 100 planned within capacity"
    )
    assert page["about"] == "reviewed 5 January 2027, 07:41 UTC, by pipeline run 7"
    assert page["horizon"] == "Jan–Mar 2027" and page["stock_svg"].startswith("<svg")
    assert grid["hidden"] == 0 and utilisation_grid(_resources(), _decisions(), most=1)["hidden"] == 2


def test_scenarios_side_by_side_with_changes_against_the_base(page):
    table = page["scenarios"]
    assert table["headings"] == [
        "Units planned",
        "Revenue (€)",  # margin left out: no plan has one
        "Peak utilisation",
        "Overloaded resource-months",
        "Unmet demand (units)",
        "Revenue at stake (€)",
        "Stock-out item-months",
        "Closing stock (units)",
    ]
    base, promo, more = table["rows"]
    assert [c["value"] for c in base["cells"]] == ["1,000", "25k", "120%", "1", "40", "600", "2", "150"]
    assert all(c["delta"] == "" for c in base["cells"])
    assert (promo["name"], promo["description"]) == (PROMO, "promotion on Snacks")
    changes = [(c["delta"], c["sign"]) for c in promo["cells"]]
    assert changes == [
        ("+100", "zero"),  # more units: neither good nor bad
        ("+2,000", "good"),
        ("+10 pts", "bad"),
        ("+1", "bad"),
        ("+20", "bad"),
        ("no change", "zero"),
        ("no change", "zero"),
        ("-10", "zero"),
    ]
    assert [(c["delta"], c["sign"]) for c in more["cells"]][2:5] == [
        ("-25 pts", "good"),
        ("-1", "good"),
        ("-40", "good"),
    ]
    notes = page["scenario_notes"]
    assert notes == [
        f"{LINK} was reviewed apart from the base plan (2027-01-06 09:30 UTC, by sopforecast balance run): "
        "its supply inputs may differ."
    ]


def test_money_view_says_what_is_not_given_and_the_gap_to_a_budget(page):
    finance = [(t["name"], t["value"], t["context"]) for t in page["finance"]]
    assert finance == [
        ("Revenue", "€25k", "1,000 units"),
        ("Margin", "not given", "the plan has no unit costs"),
        ("Gap to budget", "not given", "no revenue budget was given (see below)"),
    ]
    assert not page["budget_given"]
    budget = pd.DataFrame(
        {
            "key": ["Total", "Total", "C1"],
            "measure": "revenue",
            "period": ["2027", "2028", "2027"],
            "months": [12, 6, 12],
            "plan": [20000.0, 5000.0, 9000.0],
            "budget": [21000.0, 6000.0, 8000.0],
            "gap": [-1000.0, -1000.0, 1000.0],
        }
    )
    page = review_page(_review(budget), "€")
    assert page["finance"][2] == {
        "name": "Gap to budget",
        "value": "-€2,000",
        "context": "plan minus budget of Total, 18 months (-7.4%)",
        "status": "red",
    }
    assert page["budget_given"]


def test_decisions_are_ranked_by_money_and_written_for_reading():
    page = review_page(_review(), "€", top=4)
    rows = page["decisions"]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4] and page["decisions_total"] == 5
    first, second, third, fourth = rows
    assert (first["kind"], first["subject"], first["months"]) == (
        "Out of stock",
        f"SKU-1/{PROMO}",
        "Feb–Apr 2027",
    )
    assert (first["gap"], first["at_stake"], first["at_stake_sort"]) == (
        "30 units short",
        "€1,200",
        "1200.00",
    )
    assert (second["kind"], second["gap"], second["at_stake"]) == (
        "Overloaded resource",
        "20 over capacity",
        "€500",
    )
    assert (third["kind"], third["gap"], third["at_stake"]) == ("Below safety stock", "12 units short", "€80")
    assert (fourth["kind"], fourth["gap"], fourth["at_stake"]) == ("Under-used resource", "35 spare", "—")
    counts = page["decision_counts"].split(", ")
    assert sorted(counts) == [
        "1 overloaded resource-month",
        "1 resource-month without capacity",
        "1 shortfall below safety stock",
        "1 stock-out",
        "1 under-used resource-month",
    ]


def test_the_page_escapes_user_text_and_stays_self_contained(page):
    html = _render(page)
    for section in ("sop-supply", "sop-money", "sop-decisions"):
        assert f'id="{section}"' in html
    assert SCRIPT not in html and PROMO not in html and LINK not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;b&gt;promo&lt;/b&gt;" in html
    assert "=HYPERLINK(&#34;x&#34;)" in html
    assert 'data-resource="&lt;script&gt;alert(1)&lt;/script&gt;"' in html  # attributes too
    assert _links(html) == [] and html.count("<script>") == 1  # the page's own sorting script
    ranks = re.findall(r'<tr data-rank="(\d+)">', html[html.index('id="decisions-table"') :])
    assert ranks == ["1", "2", "3", "4", "5"]
    assert 'id="no-budget"' in html and "Utilisation</dt>" in html
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    # no review: one line that says what to run; no store read: no page
    empty = _render(review_page(None))
    assert "No balance review yet: run `sopforecast balance run`" in empty and 'id="sop-money"' not in empty
    assert 'id="sop-supply"' not in _render(None) and "Utilisation</dt>" not in _render(None)


def test_a_review_without_capacity_prices_or_stock_still_reads():
    figures = dict.fromkeys(BASE) | {"units": 500.0, "overloaded_resource_months": 0, "unmet_units": 0.0}
    empty = SopReview(
        "demand",
        "2027-01 v1 (draft)",
        {"id": 1, "created_at": pd.Timestamp("2027-01-05"), "source": None, "figures": figures},
        _resources().iloc[0:0],
        _months().iloc[0:0],
        _decisions().iloc[0:0],
        pd.DataFrame(columns=["name", "description", "source", "created_at", "figures"]),
    )
    page = review_page(empty, "€")
    assert page["answer"] == "No capacity was given. All demand can be served."
    assert [t["value"] for t in page["tiles"]] == ["—", "0", "0 units", "—", "—"]
    assert page["stock_svg"] == "" and page["grid"]["rows"] == [] and page["decisions"] == []
    assert page["finance"][0]["value"] == "—" and page["about"] == "reviewed 5 January 2027, 00:00 UTC"
    html = _render(page)
    assert "The review has no resource with a capacity." in html and "Nothing to decide" in html
    assert "No scenario has been reviewed on this plan version yet." in html


# -- in a real browser -----------------------------------------------------------------------
@pytest.mark.skipif(CHROMIUM is None or PDFTOTEXT is None, reason="needs chromium and pdftotext")
def test_the_review_pages_print_to_pdf(page, tmp_path):
    html, pdf = write_report(
        ReportData(
            plan="demand",
            cycle="2026-12",
            generated_at="2027-01-06",
            currency="€",
            sop=page,
        ),
        tmp_path,
        pdf=True,
    )
    text = subprocess.run(
        [PDFTOTEXT, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    for words in (
        "S&OP review: can supply make the plan?",
        "Capacity: how full is each resource",
        "Scenarios side by side",
        "S&OP review: decisions to take",
        SCRIPT,
        "SKU-1/<b>promo</b>",
        "Out of stock",
        "€1,200",
    ):
        assert words in text, words
    pages = text.split("\f")
    decisions = next(i for i, page in enumerate(pages) if "decisions to take" in page)
    supply = next(i for i, page in enumerate(pages) if "can supply make the plan" in page)
    assert decisions > supply  # each review page starts on its own sheet
