"""Plan versions as files: long / wide tables, and the planner workbook round trip."""

from __future__ import annotations

import numpy as np
import openpyxl
import pandas as pd
import pytest

from sopforecast.errors import SopforecastError
from sopforecast.planning import layouts
from sopforecast.planning.layouts import (
    LAYOUTS,
    long_layout,
    read_planner_workbook,
    wide_layout,
    write_plan,
    write_planner_workbook,
)
from sopforecast.planning.lines import series_keys, summing
from sopforecast.planning.staleness import lines_checksum

HIERARCHY = ["category/family/sku", "region"]
KEY_COLUMNS = ["category", "family", "sku", "region"]
PLAN_MONTHS = [f"2025-{m:02d}" for m in range(1, 7)]
META = {"version": "v3", "plan": "Demo plan", "cycle": "2025-01", "status": "draft"}
BOTTOM_ID = "Bev/Juice/J1/North"


@pytest.fixture(scope="module")
def bottom() -> pd.DataFrame:
    rows = [
        ("Bev", "Juice", "J1", "North"),
        ("Bev", "Juice", "J1", "South"),
        ("Bev", "Juice", "J2", "North"),
        ("Bev", "Soda", "S1", "South"),
        ("Food", "Bread", "B1", "North"),
    ]
    frame = pd.DataFrame(rows, columns=KEY_COLUMNS)
    return frame.assign(unique_id=frame[KEY_COLUMNS].agg("/".join, axis=1))


@pytest.fixture(scope="module")
def keys(bottom) -> pd.DataFrame:
    return series_keys(bottom, HIERARCHY)


def _long(S: pd.DataFrame, levels: pd.Series, bottom_values: np.ndarray, months) -> pd.DataFrame:
    """Every series' values (the sum of its bottom series) as a long frame."""
    values = S.to_numpy() @ bottom_values
    return pd.DataFrame(
        {
            "unique_id": np.repeat(S.index.to_numpy(), len(months)),
            "level": np.repeat(levels.to_numpy(), len(months)),
            "ds": np.tile(pd.DatetimeIndex(months), len(S)),
            "value": values.ravel(),
        }
    )


@pytest.fixture(scope="module")
def lines(bottom) -> pd.DataFrame:
    S, levels = summing(bottom, HIERARCHY)
    rng = np.random.default_rng(7)
    out = _long(
        S, levels, rng.uniform(50, 500, (len(bottom), 6)), pd.date_range("2025-01-01", periods=6, freq="MS")
    )
    out = out.rename(columns={"value": "statistical"})
    for level, width in [(80, 0.2), (95, 0.35)]:
        out[f"statistical-lo-{level}"] = out["statistical"] * (1 - width)
        out[f"statistical-hi-{level}"] = out["statistical"] * (1 + width)
    out["naive"] = 100.0
    touched = out["unique_id"].eq(BOTTOM_ID) & out["ds"].eq(pd.Timestamp("2025-02-01"))
    out["consensus"] = np.where(touched, 999.0, np.nan)
    out["final"] = out["consensus"].fillna(out["statistical"])
    out["author"] = np.where(touched, "ann", None)
    # levels in hierarchy order (Total first), but rows within a level out of order
    order = pd.Categorical(out["level"], categories=pd.unique(levels), ordered=True)
    shuffled = out.assign(_order=order).sample(frac=1, random_state=1)
    return shuffled.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)


@pytest.fixture(scope="module")
def history(bottom) -> pd.DataFrame:
    S, levels = summing(bottom, HIERARCHY)
    rng = np.random.default_rng(3)
    months = pd.date_range("2023-07-01", periods=18, freq="MS")
    return _long(S, levels, rng.uniform(50, 500, (len(bottom), 18)), months).rename(columns={"value": "y"})


@pytest.fixture
def workbook(tmp_path, lines, keys, history):
    return write_plan(lines, tmp_path / "plan.xlsx", layout="planner", keys=keys, history=history, meta=META)


def _final(lines, uid, month) -> float:
    row = lines[lines["unique_id"].eq(uid) & lines["ds"].eq(pd.Timestamp(f"{month}-01"))]
    return float(row["final"].iloc[0])


def _rows(ws) -> dict[tuple[str, str], int]:
    """Excel row of every (unique_id, measure) in the Plan sheet."""
    header = [c.value for c in ws[2]]
    uid, measure = header.index("unique_id") + 1, header.index("measure") + 1
    return {(ws.cell(r, uid).value, ws.cell(r, measure).value): r for r in range(3, ws.max_row + 1)}


def _column(ws, month: str) -> int:
    return [c.value for c in ws[2]].index(month) + 1


def _edit(path, changes: dict[tuple[str, str], object]) -> None:
    wb = openpyxl.load_workbook(path)
    ws = wb["Plan"]
    rows = _rows(ws)
    for (uid, month), value in changes.items():
        ws.cell(rows[(uid, "consensus")], _column(ws, month)).value = value
    wb.save(path)


def test_long_layout_columns_order_and_values(lines):
    out = long_layout(lines)
    intervals = ["statistical-lo-80", "statistical-hi-80", "statistical-lo-95", "statistical-hi-95"]
    assert list(out.columns) == [
        "unique_id",
        "level",
        "ds",
        "statistical",
        "consensus",
        "final",
    ] + intervals + ["author"]
    assert len(out) == len(lines)
    first_seen = list(pd.unique(lines["level"]))
    assert list(pd.unique(out["level"])) == first_seen
    for _, part in out.groupby("level", sort=False):
        assert part[["unique_id", "ds"]].equals(part[["unique_id", "ds"]].sort_values(["unique_id", "ds"]))
    merged = out.merge(lines, on=["unique_id", "ds"], suffixes=("", "_in"))
    assert np.allclose(merged["final"], merged["final_in"])
    assert merged.loc[merged["author"].notna(), "unique_id"].tolist() == [BOTTOM_ID]


def test_wide_layout_one_column_per_month_with_keys(lines, keys):
    out = wide_layout(lines, keys)
    assert list(out.columns) == ["unique_id", "level", *KEY_COLUMNS, *PLAN_MONTHS]
    assert len(out) == lines["unique_id"].nunique()
    row = out.set_index("unique_id").loc[BOTTOM_ID]
    assert row["2025-02"] == 999.0 and row["region"] == "North" and row["sku"] == "J1"
    bev = out.set_index("unique_id").loc["Bev"]
    assert bev["category"] == "Bev" and pd.isna(bev["family"]) and pd.isna(bev["region"])
    assert bev["2025-04"] == pytest.approx(_final(lines, "Bev", "2025-04"))
    stat = wide_layout(lines, None, column="statistical")
    assert list(stat.columns) == ["unique_id", "level", *PLAN_MONTHS]
    with pytest.raises(SopforecastError, match="no column 'bogus'"):
        wide_layout(lines, keys, column="bogus")


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".parquet"])
@pytest.mark.parametrize("layout", ["long", "wide"])
def test_round_trip_by_extension(tmp_path, lines, keys, suffix, layout):
    path = write_plan(lines, tmp_path / f"plan{suffix}", layout=layout, keys=keys, meta=META)
    assert path.exists() and [p.name for p in tmp_path.iterdir()] == [path.name]
    read = {".csv": pd.read_csv, ".xlsx": pd.read_excel, ".parquet": pd.read_parquet}[suffix]
    back = read(path)
    expected = long_layout(lines) if layout == "long" else wide_layout(lines, keys)
    assert list(back.columns) == list(expected.columns)
    assert back["unique_id"].tolist() == expected["unique_id"].tolist()
    numbers = ["final", "statistical-hi-95"] if layout == "long" else PLAN_MONTHS
    assert np.allclose(back[numbers].to_numpy(float), expected[numbers].to_numpy(float))
    if layout == "long":
        assert (pd.to_datetime(back["ds"]) == expected["ds"]).all()
    if suffix == ".xlsx":
        wb = openpyxl.load_workbook(path)
        assert wb["_meta"].sheet_state == "hidden"
        assert dict(wb["_meta"].iter_rows(min_row=2, values_only=True)) == {
            **META,
            "checksum": lines_checksum(lines),
        }


def test_bad_extension_layout_and_planner_needs(tmp_path, lines, keys, history):
    with pytest.raises(SopforecastError, match=r"'\.json'.*\.csv, \.xlsx, \.parquet"):
        write_plan(lines, tmp_path / "plan.json")
    with pytest.raises(SopforecastError, match="unknown plan layout 'pivot'"):
        write_plan(lines, tmp_path / "plan.csv", layout="pivot")
    with pytest.raises(SopforecastError, match=r"planner layout is a workbook.*\.csv"):
        write_plan(lines, tmp_path / "plan.csv", layout="planner", keys=keys, history=history)
    with pytest.raises(SopforecastError, match="history"):
        write_plan(lines, tmp_path / "plan.xlsx", layout="planner", keys=keys)
    assert list(tmp_path.iterdir()) == [] and LAYOUTS == ("long", "wide", "planner")


def test_planner_workbook_sheets_and_values(workbook, lines, history):
    wb = openpyxl.load_workbook(workbook)
    assert wb.sheetnames == ["Plan", "Read me", "_export"]
    assert wb["_export"].sheet_state == "hidden" and wb["Plan"].sheet_state == "visible"
    readme = "\n".join(str(c.value) for c in wb["Read me"]["A"] if c.value)
    assert (
        "consensus" in readme and "sopforecast override apply plan.xlsx --author NAME --reason TEXT" in readme
    )
    ws = wb["Plan"]
    header = [c.value for c in ws[2]]
    history_months = [f"{y}-{m:02d}" for y, m in [(2024, m) for m in range(1, 13)]]
    assert header == ["level", "unique_id", *KEY_COLUMNS, "measure", *history_months, *PLAN_MONTHS]
    assert ws.freeze_panes == "H3" and ws.auto_filter.ref.startswith("A2:")
    assert (
        ws.cell(2, _column(ws, "2024-12")).fill.fgColor.rgb
        != ws.cell(2, _column(ws, "2025-01")).fill.fgColor.rgb
    )
    rows = _rows(ws)
    ids = lines["unique_id"].unique()
    aggregates = [
        u
        for u in ids
        if u != BOTTOM_ID
        and lines.loc[lines["unique_id"].eq(u), "level"].iloc[0] != "category/family/sku/region"
    ]
    assert {m for _, m in rows} == {"history", "statistical", "consensus", "bottom-up"}
    assert len(rows) == 3 * len(ids) + len(aggregates) == ws.max_row - 2
    assert ws.cell(3, 2).value == "Total" and ws.cell(3, 1).value == "Total"
    for uid in ids:
        consensus = rows[(uid, "consensus")]
        for month in PLAN_MONTHS:
            cell = ws.cell(consensus, _column(ws, month))
            assert cell.value == pytest.approx(_final(lines, uid, month), rel=1e-12)
            assert cell.number_format == "#,##0" and cell.fill.fgColor.rgb.endswith("FFF2CC")
        assert ws.cell(consensus, _column(ws, "2024-06")).value is None
    actual = history.set_index(["unique_id", "ds"])["y"]
    cell = ws.cell(rows[("Bev/North", "history")], _column(ws, "2024-06"))
    assert cell.value == pytest.approx(actual[("Bev/North", pd.Timestamp("2024-06-01"))])
    assert ws.cell(rows[("Bev/North", "statistical")], _column(ws, "2024-06")).value is None
    bottom_keys = [ws.cell(rows[(BOTTOM_ID, "history")], c).value for c in range(3, 7)]
    assert bottom_keys == ["Bev", "Juice", "J1", "North"]


def test_edits_read_back_after_rows_moved(workbook, lines):
    _edit(workbook, {("Total", "2025-03"): 12345.5, (BOTTOM_ID, "2025-05"): 0})
    wb = openpyxl.load_workbook(workbook)
    ws = wb["Plan"]
    data = sorted(ws.iter_rows(min_row=3, values_only=True), key=lambda r: (r[1], r[6]), reverse=True)
    for r, values in enumerate(data, start=3):  # sort the data rows, as a planner might in Excel
        for c, value in enumerate(values, start=1):
            ws.cell(r, c).value = value
    wb.save(workbook)
    rows = _rows(ws)

    overrides, meta = read_planner_workbook(workbook, author="bob", reason="promo")
    assert meta == {**META, "checksum": lines_checksum(lines)}
    assert list(overrides.columns) == ["key", "month", "value", "author", "reason", "row", "source"]
    got = overrides.sort_values("key").reset_index(drop=True)
    assert got["key"].tolist() == [BOTTOM_ID, "Total"]
    assert got["month"].tolist() == ["2025-05", "2025-03"]
    assert got["value"].tolist() == [0.0, 12345.5]
    assert got["row"].tolist() == [rows[(BOTTOM_ID, "consensus")], rows[("Total", "consensus")]]
    assert (got["author"] == "bob").all() and (got["reason"] == "promo").all()
    assert (got["source"] == "plan.xlsx").all()


def test_no_edits_and_tiny_differences_give_no_overrides(workbook, lines):
    overrides, meta = read_planner_workbook(workbook, author="bob", reason="none")
    assert overrides.empty and meta == {**META, "checksum": lines_checksum(lines)}
    assert list(overrides.columns) == ["key", "month", "value", "author", "reason", "row", "source"]
    old = _final(lines, "Bev", "2025-02")
    _edit(workbook, {("Bev", "2025-02"): old * (1 + 1e-9), ("Food", "2025-01"): "  "})
    with pytest.raises(SopforecastError, match="blank"):
        read_planner_workbook(workbook, author="bob", reason="none")
    _edit(
        workbook, {("Food", "2025-01"): f"{_final(lines, 'Food', '2025-01') * 2}"}
    )  # a number typed as text
    overrides, _ = read_planner_workbook(workbook, author="bob", reason="none")
    assert overrides["key"].tolist() == ["Food"]


def test_text_in_a_consensus_cell_names_the_cell(workbook):
    _edit(workbook, {("Bev/Juice", "2025-04"): "about 300"})
    ws = openpyxl.load_workbook(workbook)["Plan"]
    cell = ws.cell(_rows(ws)[("Bev/Juice", "consensus")], _column(ws, "2025-04")).coordinate
    with pytest.raises(SopforecastError, match=rf"Plan!{cell}: 'about 300' is not a number.*type a number"):
        read_planner_workbook(workbook, author="bob", reason="x")


def test_blank_consensus_cell_asks_for_zero(workbook):
    _edit(workbook, {(BOTTOM_ID, "2025-06"): None})
    with pytest.raises(SopforecastError, match=r"Plan!\w+\d+: .*blank.*enter 0 if you mean zero"):
        read_planner_workbook(workbook, author="bob", reason="x")


def test_edit_in_a_history_month_or_unknown_series_is_an_error(workbook):
    _edit(workbook, {("Total", "2024-11"): 5})
    with pytest.raises(SopforecastError, match="2024-11 is not a plan month"):
        read_planner_workbook(workbook, author="bob", reason="x")
    wb = openpyxl.load_workbook(workbook)
    ws = wb["Plan"]
    ws.cell(_rows(ws)[("Total", "consensus")], 2).value = "Everything"
    wb.save(workbook)
    with pytest.raises(SopforecastError, match="'Everything' was not exported"):
        read_planner_workbook(workbook, author="bob", reason="x")


def test_workbook_without_export_sheet(workbook, tmp_path, lines):
    wb = openpyxl.load_workbook(workbook)
    del wb["_export"]
    wb.save(workbook)
    with pytest.raises(SopforecastError, match="not exported by `sopforecast plan export --layout planner`"):
        read_planner_workbook(workbook, author="bob", reason="x")
    other = write_plan(lines, tmp_path / "long.xlsx")
    with pytest.raises(SopforecastError, match="not exported"):
        read_planner_workbook(other, author="bob", reason="x")
    csv = write_plan(lines, tmp_path / "plan.csv")
    with pytest.raises(SopforecastError, match="cannot open .*plan.csv as an Excel workbook"):
        read_planner_workbook(csv, author="bob", reason="x")


def test_failed_write_leaves_no_file(tmp_path, lines, keys, history, monkeypatch):
    unwritable = keys.astype(object)
    unwritable.loc[BOTTOM_ID, "sku"] = object()  # no Excel cell holds this: fails mid-sheet
    with pytest.raises(ValueError):
        write_planner_workbook(lines, unwritable, history, tmp_path / "plan.xlsx")
    assert list(tmp_path.iterdir()) == []

    def half_write(frame, path, suffix, meta):
        path.write_text("unique_id,level\nTotal,")
        raise OSError("disk full")

    monkeypatch.setattr(layouts, "_write_frame", half_write)
    (tmp_path / "plan.csv").write_text("old plan")
    with pytest.raises(OSError, match="disk full"):
        write_plan(lines, tmp_path / "plan.csv")
    assert [p.name for p in tmp_path.iterdir()] == ["plan.csv"]
    assert (tmp_path / "plan.csv").read_text() == "old plan"
