"""Data errors stop at the door, valid files get in: implausible dates and a column named
twice are refused with the file, column, rows and fix (exit 2 from the CLI); UTF-16 and
UTF-8 files with a byte-order mark and the empty rows a spreadsheet leaves are read."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from sopforecast.cli import main
from sopforecast.config import DataConfig
from sopforecast.data.io import read_source
from sopforecast.data.schema import validate
from sopforecast.errors import DataError

CONFIG = DataConfig(id_col="sku", target_col="qty")
MONTHS = pd.date_range("2022-01-01", periods=24, freq="MS")


def _sales(months=MONTHS) -> pd.DataFrame:
    n = len(months)
    return pd.DataFrame(
        {
            "sku": ["A"] * n + ["B"] * n,
            "ds": list(months.strftime("%Y-%m-%d")) * 2,
            "qty": range(1, 2 * n + 1),
        }
    )


def _csv_text(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, lineterminator="\n")


def _refused(path, config=CONFIG) -> str:
    with pytest.raises(DataError) as info:
        validate(read_source(path), config)
    return " ".join(str(info.value).split())


def _cli(capsys, command: str, path, tmp_path) -> tuple[int, str]:
    """``forecast`` or ``run`` on the file, as a user types it: exit code and stderr."""
    if command == "forecast":
        args = ["forecast", "--data", str(path), "--id-col", "sku", "--target-col", "qty"]
        code = main([*args, "--models", "naive", "--horizon", "2", "--output", str(tmp_path / "fc.csv")])
    else:
        spec = tmp_path / "door.yaml"
        spec.write_text(
            textwrap.dedent(
                f"""
                name: door
                data: {{path: {path}, id_col: sku, target_col: qty, freq: MS}}
                forecast: {{horizon: 2, models: [naive], windows: 1}}
                """
            )
        )
        code = main(["run", str(spec), "--workdir", str(tmp_path / "work")])
    return code, capsys.readouterr().err


def _exit_2(capsys, command, path, tmp_path, *phrases) -> None:
    code, err = _cli(capsys, command, path, tmp_path)
    flat = " ".join(err.split())
    assert code == 2, err
    assert "Traceback" not in err
    for phrase in phrases:
        assert phrase in flat, err


# --- dates -----------------------------------------------------------------------------------


def test_date_before_1900_is_refused_with_its_rows(tmp_path):
    frame = _sales()
    frame.loc[3, "ds"] = "1819-04-01"
    frame.to_csv(tmp_path / "sales.csv", index=False)
    message = _refused(tmp_path / "sales.csv")
    assert "sales.csv: column 'ds' has 1 row(s) with dates before 1900-01-01" in message
    assert "row 4: sku='A', ds=1819-04-01" in message and "Correct the year" in message


def test_year_typo_more_than_5_years_before_the_rest_is_refused(tmp_path):
    frame = _sales()
    frame.loc[[5, 30], "ds"] = "2015-06-01"
    frame.to_csv(tmp_path / "sales.csv", index=False)
    message = _refused(tmp_path / "sales.csv")
    assert "column 'ds' has 2 row(s) with dates more than 5 years apart from the rest of the file" in message
    assert "which runs 2022-01-01 to 2023-12-01" in message and "a gap of more than 5 years" in message
    assert "row 6: sku='A', ds=2015-06-01" in message and "row 31: sku='B'" in message


def test_year_typo_after_the_rest_is_refused_too(tmp_path):
    frame = _sales()
    frame.loc[7, "ds"] = "2098-08-01"
    frame.to_csv(tmp_path / "sales.csv", index=False)
    assert "row 8: sku='A', ds=2098-08-01" in _refused(tmp_path / "sales.csv")


def test_a_start_within_5_years_of_the_rest_passes(tmp_path):
    frame = _sales()
    frame.loc[0, "ds"] = "2017-02-01"  # 4 years 11 months before the next date
    frame.to_csv(tmp_path / "sales.csv", index=False)
    out = validate(read_source(tmp_path / "sales.csv"), CONFIG)
    assert out.report.start == pd.Timestamp("2017-02-01")


@pytest.mark.parametrize("command", ["forecast", "run"])
def test_cli_refuses_a_year_typo_with_exit_2(tmp_path, capsys, command):
    frame = _sales()
    frame.loc[3, "ds"] = "1819-04-01"
    frame.to_csv(tmp_path / "sales.csv", index=False)
    _exit_2(capsys, command, tmp_path / "sales.csv", tmp_path, "sales.csv: column 'ds'", "before 1900-01-01")


# --- a column named twice --------------------------------------------------------------------


def test_csv_header_naming_a_column_twice_is_refused(tmp_path):
    path = tmp_path / "sales.csv"
    path.write_text(_csv_text(_sales().assign(qty2=0)).replace("qty2", "qty", 1))
    message = _refused(path)
    assert "sales.csv: the header names column 'qty' 2 times (columns 3, 4)" in message
    assert "Rename or delete the extra column(s)" in message


def test_excel_header_naming_a_column_twice_is_refused(tmp_path):
    _sales().assign(other=0).rename(columns={"other": "qty"}).to_excel(tmp_path / "sales.xlsx", index=False)
    assert "sales.xlsx: the header names column 'qty' 2 times (columns 3, 4)" in _refused(
        tmp_path / "sales.xlsx"
    )


def test_query_returning_a_column_twice_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    engine = sa.create_engine(url)
    _sales().to_sql("sales", engine, index=False)
    engine.dispose()
    with pytest.raises(DataError, match=r"\(query\): the source's columns name column 'qty' 2 times"):
        read_source(url, query="SELECT sku, ds, qty, qty FROM sales")
    raw = _sales()[["sku", "ds", "qty", "qty"]]  # built in Python
    with pytest.raises(DataError, match=r"column name\(s\) \['qty'\] appear more than once"):
        validate(raw, CONFIG)


@pytest.mark.parametrize("command", ["forecast", "run"])
def test_cli_refuses_a_column_named_twice_with_exit_2(tmp_path, capsys, command):
    path = tmp_path / "sales.csv"
    path.write_text(_csv_text(_sales().assign(qty2=0)).replace("qty2", "qty", 1))
    _exit_2(capsys, command, path, tmp_path, "sales.csv: the header names column 'qty' 2 times")


# --- encodings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: text.encode("utf-16"),  # BOM, native order (little-endian here)
        lambda text: b"\xff\xfe" + text.encode("utf-16-le"),
        lambda text: b"\xfe\xff" + text.encode("utf-16-be"),
        lambda text: text.encode("utf-8-sig"),
    ],
    ids=["utf-16", "utf-16-le", "utf-16-be", "utf-8-bom"],
)
def test_files_with_a_byte_order_mark_are_read(tmp_path, encode):
    frame = _sales().assign(sku=["Café"] * 24 + ["00101"] * 24)
    (tmp_path / "sales.csv").write_bytes(encode(_csv_text(frame)))
    raw = read_source(tmp_path / "sales.csv")
    assert raw.columns.tolist() == ["sku", "ds", "qty"]
    out = validate(raw, CONFIG)
    assert sorted(out.frame["unique_id"].unique()) == ["00101", "Café"] and out.report.n_rows == 48


def test_cli_forecasts_a_utf16_file(tmp_path, capsys):
    (tmp_path / "sales.csv").write_bytes(_csv_text(_sales()).encode("utf-16"))
    code, err = _cli(capsys, "forecast", tmp_path / "sales.csv", tmp_path)
    assert code == 0, err
    assert set(pd.read_csv(tmp_path / "fc.csv")["unique_id"]) == {"A", "B"}


# --- empty rows ------------------------------------------------------------------------------


def test_trailing_empty_rows_are_dropped(tmp_path):
    path = tmp_path / "sales.csv"
    path.write_text(_csv_text(_sales()) + ",,\n,,\n , ,\n")
    raw = read_source(path)
    assert len(raw) == 48 and raw["qty"].dtype.kind == "i"
    assert validate(raw, CONFIG).report.n_rows == 48


def test_empty_rows_inside_are_dropped_and_rows_keep_their_file_numbers(tmp_path):
    lines = _csv_text(_sales()).splitlines()
    lines.insert(3, ",,")  # between data rows 2 and 3
    path = tmp_path / "sales.csv"
    path.write_text("\n".join(lines).replace("A,2022-05-01,5", "A,2022-05-01,-5") + "\n")
    message = _refused(path)
    assert "row 6: sku='A', ds=2022-05-01, qty=-5" in message  # the file's 6th data row
    assert validate(read_source(path), CONFIG.model_copy(update={"negative": "clip"})).report.n_rows == 48


def test_a_row_with_an_id_but_no_quantity_is_still_an_error(tmp_path):
    path = tmp_path / "sales.csv"
    path.write_text(_csv_text(_sales()) + "A,2024-01-01,\n,,\n")
    assert "column 'qty' is empty in 1 row(s): row 49: sku='A', ds=2024-01-01" in _refused(path)


def test_empty_rows_in_a_workbook_are_dropped(tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["sku", "ds", "qty"])
    for row in _sales().itertuples(index=False):
        sheet.append(list(row))
    sheet.append([" ", None, ""])  # a row a planner cleared
    sheet.append([None, None, None])
    sheet.cell(row=60, column=2).number_format = "yyyy-mm-dd"  # formatted, empty
    book.save(tmp_path / "sales.xlsx")
    raw = read_source(tmp_path / "sales.xlsx")
    assert len(raw) == 48
    assert validate(raw, CONFIG).report.n_rows == 48


@pytest.mark.parametrize("command", ["forecast", "run"])
def test_cli_accepts_trailing_empty_rows(tmp_path, capsys, command):
    path = tmp_path / "sales.csv"
    path.write_text(_csv_text(_sales()) + ",,\n,,\n")
    code, err = _cli(capsys, command, path, tmp_path)
    assert code == 0, err


# --- values ----------------------------------------------------------------------------------


def test_a_barcode_in_the_quantity_column_is_refused(tmp_path):
    frame = _sales().astype({"qty": object})
    frame.loc[2, "qty"] = "4006381333931"
    frame.loc[3, "qty"] = "12345678901234567890"  # beyond what a float holds exactly: read as text
    frame.to_csv(tmp_path / "sales.csv", index=False)
    message = _refused(tmp_path / "sales.csv")
    assert "column 'qty' has 2 outlier(s) beyond ±1e+12" in message
    assert "row 3: sku='A', ds=2022-03-01, qty=4006381333931" in message


def test_na_markers_in_the_quantity_column_are_empty_cells(tmp_path):
    frame = _sales().astype({"qty": object})
    frame.loc[[2, 3], "qty"] = ["NA", "NULL"]
    frame.to_csv(tmp_path / "sales.csv", index=False)
    assert "column 'qty' is empty in 2 row(s)" in _refused(tmp_path / "sales.csv")
    filled = validate(read_source(tmp_path / "sales.csv"), CONFIG.model_copy(update={"missing": "zero"}))
    assert filled.report.missing_filled == 2 and np.isfinite(filled.frame["y"]).all()
