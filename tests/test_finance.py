"""The plan in money: prices from history, cost or a file, revenue up the hierarchy, budget gap."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from sopforecast.errors import DataError
from sopforecast.planning.finance import (
    attach_prices,
    budget_gap,
    prices_from_cost,
    prices_from_history,
    read_budget,
    read_prices,
    revenue,
)
from sopforecast.planning.lines import summing

MONTHS = pd.date_range("2027-01-01", periods=4, freq="MS")


@pytest.fixture
def plan() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Total > A, B > A/a, A/b, B/c; every bottom line plans 10 units a month."""
    bottom = pd.DataFrame(
        {"unique_id": ["A/a", "A/b", "B/c"], "cat": ["A", "A", "B"], "sku": ["a", "b", "c"]}
    )
    S, levels = summing(bottom, ["cat/sku"])
    lines = pd.DataFrame(
        [
            {"unique_id": uid, "level": levels[uid], "ds": ds, "final": 10.0 * len(S.bottom_of(uid))}
            for uid in S.index
            for ds in MONTHS
        ]
    )
    return lines, S


def _history(values: dict[str, dict[str, list]]) -> pd.DataFrame:
    frames = [
        pd.DataFrame(
            {"unique_id": uid, "ds": pd.date_range("2025-01-01", periods=len(cols["y"]), freq="MS"), **cols}
        )
        for uid, cols in values.items()
    ]
    return pd.concat(frames, ignore_index=True)


def _at(view: pd.DataFrame, uid: str, ds: str) -> pd.Series:
    return view[(view["unique_id"] == uid) & (view["ds"] == pd.Timestamp(ds))].iloc[0]


def test_prices_from_history_average_the_last_priced_months(caplog):
    history = _history(
        {
            "x": {"y": [1] * 14, "price": [*range(1, 14), 0]},  # the last month has no price
            "z": {"y": [1] * 3, "price": [0, 0, np.nan]},
        }
    )
    with caplog.at_level(logging.WARNING, logger="sopforecast"):
        prices = prices_from_history(history)
    assert prices["unique_id"].tolist() == ["x", "z"]
    assert prices["price"].iloc[0] == pytest.approx(np.mean(range(2, 14)))  # months 2..13
    assert np.isnan(prices["price"].iloc[1])
    assert "1 series without a price" in caplog.text
    assert prices_from_history(history, months=2)["price"].iloc[0] == pytest.approx(12.5)


def test_prices_from_history_names_a_missing_column():
    with pytest.raises(DataError, match="'list_price'"):
        prices_from_history(_history({"x": {"y": [1], "price": [1.0]}}), price_col="list_price")


def test_prices_from_cost_use_the_last_year_else_all_history(caplog):
    history = _history(
        {
            "x": {"y": [1, 1, *[3] * 12], "Cost": [100, 100, *[6] * 12]},
            "z": {"y": [10, 10, *[0] * 12], "Cost": [50, 50, *[0] * 12]},  # no units in the window
            "w": {"y": [0, 0], "Cost": [0, 0]},  # never sold
        }
    )
    with caplog.at_level(logging.WARNING, logger="sopforecast"):
        prices = prices_from_cost(history).set_index("unique_id")["price"]
    assert prices["x"] == pytest.approx(72 / 36)
    assert prices["z"] == pytest.approx(100 / 20)
    assert np.isnan(prices["w"])
    assert "1 series without a price" in caplog.text
    with pytest.raises(DataError, match="'Cost'"):
        prices_from_cost(history.drop(columns="Cost"))


def test_read_prices_from_key_columns_with_months(tmp_path):
    path = tmp_path / "prices.csv"
    pd.DataFrame(
        {
            "cat": ["A", "A", "A"],
            "sku": ["a", "a", "b"],
            "Price": [2.0, 4.0, 3.0],
            "unit_cost": [1.0, 1.5, None],
            "month": [None, "2027-03", None],
        }
    ).to_csv(path, index=False)
    prices = read_prices(path, ["cat", "sku"])
    assert list(prices.columns) == ["unique_id", "ds", "price", "unit_cost"]
    assert prices["unique_id"].tolist() == ["A/a", "A/a", "A/b"]
    assert prices["ds"].iloc[1] == pd.Timestamp("2027-03-01") and prices["ds"].isna().sum() == 2
    assert prices["price"].tolist() == [2.0, 4.0, 3.0]


def test_read_prices_excel_with_unique_id(tmp_path):
    path = tmp_path / "prices.xlsx"
    pd.DataFrame({"unique_id": ["A/a", "B/c"], "price": [2, 5]}).to_excel(path, index=False)
    prices = read_prices(path, ["cat", "sku"])
    assert list(prices.columns) == ["unique_id", "price"]
    assert prices["price"].tolist() == [2.0, 5.0]


@pytest.mark.parametrize(
    ("columns", "match"),
    [
        ({"unique_id": ["A/a"], "cost": [1.0]}, r"prices\.csv: missing column \['price'\]"),
        (
            {"unique_id": ["A/a", "A/b"], "price": [1.0, "abc"]},
            r"'price' must be a number:\n  row 2: price='abc'",
        ),
        (
            {"unique_id": ["A/a", "A/b"], "price": [1.0, -2.0]},
            r"'price' must not be negative:\n  row 2: price=-2",
        ),
        ({"unique_id": ["A/a"], "price": [1.0], "unit_cost": ["x"]}, r"'unit_cost' must be a number"),
        ({"unique_id": ["A/a"], "price": [1.0], "month": ["March"]}, r"'month' must read YYYY-MM"),
        ({"unique_id": ["A/a", "A/a"], "price": [1.0, 2.0]}, r"rows given twice"),
        ({"cat": ["A"], "price": [1.0]}, r"missing column \['sku'\]"),
    ],
)
def test_read_prices_errors_name_file_column_and_rows(tmp_path, columns, match):
    path = tmp_path / "prices.csv"
    pd.DataFrame(columns).to_csv(path, index=False)
    with pytest.raises(DataError, match=match):
        read_prices(path, ["cat", "sku"])


def test_attach_prices_per_month_on_bottom_lines_only(plan):
    lines, _ = plan
    prices = pd.DataFrame(
        {
            "unique_id": ["A/a", "A/a", "A/b"],
            "ds": [pd.NaT, pd.Timestamp("2027-03-01"), pd.NaT],
            "price": [2.0, 4.0, 3.0],
            "unit_cost": [1.0, 1.5, np.nan],
        }
    )
    priced = attach_prices(lines, prices)
    by = priced.set_index(["unique_id", "ds"])
    # A/a: the flat price until the monthly one takes over from March on
    assert by.loc["A/a", "price"].tolist() == [2.0, 2.0, 4.0, 4.0]
    assert by.loc["A/a", "unit_cost"].tolist() == [1.0, 1.0, 1.5, 1.5]
    assert by.loc["A/b", "price"].tolist() == [3.0] * 4
    assert by.loc["B/c", "price"].isna().all()
    assert priced.loc[priced["level"] != "cat/sku", ["price", "unit_cost"]].isna().all().all()
    assert len(priced) == len(lines) and "price" not in lines.columns


def test_revenue_rolls_up_with_margin_and_unpriced_units(plan):
    lines, S = plan
    prices = pd.DataFrame({"unique_id": ["A/a", "A/b"], "price": [2.0, 3.0], "unit_cost": [1.0, 2.5]})
    view = revenue(attach_prices(lines, prices), S)
    assert list(view.columns) == [
        "unique_id",
        "level",
        "ds",
        "units",
        "revenue",
        "cost",
        "margin",
        "unpriced_units",
    ]
    assert len(view) == len(S) * len(MONTHS)
    a_a, a, b, total = (_at(view, uid, "2027-02-01") for uid in ("A/a", "A", "B", "Total"))
    assert (a_a["revenue"], a_a["cost"], a_a["margin"]) == (20.0, 10.0, 10.0)
    assert (a["units"], a["revenue"], a["cost"], a["margin"], a["unpriced_units"]) == (20, 50, 35, 15, 0)
    assert a["level"] == "cat"
    # B/c has no price: its units add no revenue and are counted as unpriced
    assert (b["revenue"], b["unpriced_units"]) == (0.0, 10.0)
    assert (total["units"], total["revenue"], total["margin"], total["unpriced_units"]) == (30, 50, 15, 10)
    # every aggregate's revenue is the sum of its children's
    children = view[view["level"] == "cat/sku"].groupby("ds")["revenue"].sum()
    assert view[view["unique_id"] == "Total"].set_index("ds")["revenue"].equals(children)


def test_revenue_cost_unknown_without_unit_cost(plan):
    lines, S = plan
    prices = pd.DataFrame({"unique_id": ["A/a", "A/b"], "price": [2.0, 3.0], "unit_cost": [1.0, np.nan]})
    view = revenue(attach_prices(lines, prices), S)
    assert _at(view, "A/a", "2027-01-01")["margin"] == 10.0
    assert np.isnan(_at(view, "A", "2027-01-01")["cost"]) and np.isnan(
        _at(view, "Total", "2027-01-01")["margin"]
    )
    no_cost = revenue(attach_prices(lines, prices.drop(columns="unit_cost")), S)
    assert no_cost["cost"].isna().all() and _at(no_cost, "Total", "2027-01-01")["revenue"] == 50.0


@pytest.fixture
def budget(tmp_path) -> pd.DataFrame:
    path = tmp_path / "budget.csv"
    pd.DataFrame(
        {
            "key": ["Total"] * 4 + ["A", "A", "Nowhere"],
            "month": ["2027-01", "2027-02", "2027-03", "2027-05", "2027-01", "2027-04", "2027-01"],
            "revenue": [40, 50, 60, 10, 40, 40, 1],
            "units": [30, 30, 25, 30, 20, 25, 1],
        }
    ).to_csv(path, index=False)
    return read_budget(path)


def test_budget_gap_by_month_quarter_and_year(plan, budget, caplog):
    lines, S = plan
    prices = pd.DataFrame({"unique_id": ["A/a", "A/b"], "price": [2.0, 3.0]})
    view = revenue(attach_prices(lines, prices), S)  # Total: 50 revenue, 30 units a month
    with caplog.at_level(logging.WARNING, logger="sopforecast"):
        gaps = budget_gap(view, budget)
    assert "Nowhere" in caplog.text
    month = gaps["month"].set_index(["key", "measure", "period"])
    assert month.loc[("Total", "revenue", "2027-01"), ["plan", "budget", "gap"]].tolist() == [50, 40, 10]
    assert month.loc[("Total", "revenue", "2027-01"), "gap_pct"] == pytest.approx(0.25)
    assert month.loc[("Total", "units", "2027-03"), "gap"] == 5
    assert ("Total", "revenue", "2027-05") not in month.index  # the plan has no May
    quarter = gaps["quarter"].set_index(["key", "measure", "period"])
    q1 = quarter.loc[("Total", "revenue", "2027-Q1")]
    assert (q1["months"], q1["plan"], q1["budget"], q1["gap"]) == (3, 150, 150, 0)
    assert quarter.loc[("A", "units", "2027-Q2"), ["plan", "budget", "gap"]].tolist() == [20, 25, -5]
    assert quarter.loc[("A", "units", "2027-Q2"), "gap_pct"] == pytest.approx(-0.2)
    year = gaps["year"].set_index(["key", "measure", "period"])
    y = year.loc[("A", "revenue", "2027")]
    assert (y["months"], y["plan"], y["budget"], y["gap"]) == (2, 100, 80, 20)
    assert set(gaps["year"]["period"]) == {"2027"}


def test_budget_errors(tmp_path, plan, budget):
    path = tmp_path / "b.csv"
    pd.DataFrame({"key": ["Total"], "month": ["2027-01"], "amount": [1]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="no revenue or units column"):
        read_budget(path)
    pd.DataFrame({"key": ["Total"], "month": ["Jan 27"], "revenue": [1]}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"b\.csv: column 'month' must read YYYY-MM:\n  row 1"):
        read_budget(path)
    pd.DataFrame({"key": ["Total"], "revenue": [1]}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"missing column \['month'\]"):
        read_budget(path)
    lines, S = plan
    with pytest.raises(DataError, match="no budget key is a series"):
        budget_gap(revenue(lines, S), budget.assign(key="nope"))
