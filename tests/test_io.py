"""Readers for every supported source, and their errors."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from sopforecast.data.io import read_source, write_frame
from sopforecast.errors import DataError


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sku": ["A", "A", "B", "B"],
            "ds": pd.to_datetime(["2024-01-01", "2024-02-01"] * 2),
            "y": [1.0, 2.0, 3.5, 0.0],
        }
    )


def _same(read: pd.DataFrame, frame: pd.DataFrame) -> None:
    read = read.assign(ds=pd.to_datetime(read["ds"]))
    pd.testing.assert_frame_equal(read[frame.columns].reset_index(drop=True), frame, check_dtype=False)


def test_csv(tmp_path, frame):
    frame.to_csv(tmp_path / "d.csv", index=False)
    _same(read_source(tmp_path / "d.csv"), frame)


def test_parquet(tmp_path, frame):
    frame.to_parquet(tmp_path / "d.parquet", index=False)
    _same(read_source(tmp_path / "d.parquet"), frame)


def test_excel_with_sheet(tmp_path, frame):
    with pd.ExcelWriter(tmp_path / "d.xlsx") as writer:
        pd.DataFrame({"note": ["cover"]}).to_excel(writer, sheet_name="Cover", index=False)
        frame.to_excel(writer, sheet_name="Sales", index=False)
    _same(read_source(tmp_path / "d.xlsx", sheet="Sales"), frame)
    _same(read_source(tmp_path / "d.xlsx", sheet=1), frame)
    _same(read_source(tmp_path / "d.xlsx", sheet="1"), frame)  # as --sheet 1 gives it
    assert read_source(tmp_path / "d.xlsx").columns.tolist() == ["note"]  # default the first


@pytest.mark.parametrize("sheet", ["Nope", "sales", 2, "7"])
def test_missing_excel_sheet_lists_the_workbook_sheets(tmp_path, frame, sheet):
    with pd.ExcelWriter(tmp_path / "d.xlsx") as writer:
        pd.DataFrame({"note": ["cover"]}).to_excel(writer, sheet_name="Cover", index=False)
        frame.to_excel(writer, sheet_name="Sales", index=False)
    with pytest.raises(DataError) as info:
        read_source(tmp_path / "d.xlsx", sheet=sheet)
    message = str(info.value)
    assert f"d.xlsx: no sheet {sheet!r} in the workbook. Its sheets: ['Cover', 'Sales']." in message
    assert "Set sheet to one of these names" in message and info.value.setting == "sheet"


def test_sqlite_table_and_query(tmp_path, frame):
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    engine = sa.create_engine(url)
    frame.to_sql("sales", engine, index=False)
    engine.dispose()
    _same(read_source(url, table="sales"), frame)
    got = read_source(url, query="SELECT sku, ds, y FROM sales WHERE sku = 'B'")
    assert got["y"].tolist() == [3.5, 0.0]
    with pytest.raises(DataError, match="no table 'orders'. Tables there: sales"):
        read_source(url, table="orders")
    with pytest.raises(DataError, match="give table or query") as info:
        read_source(url)
    assert info.value.setting == "table" and "--" not in str(info.value)
    with pytest.raises(DataError, match="the database query failed"):
        read_source(url, query="SELECT nothing FROM nowhere")


def test_missing_file_lists_neighbours(tmp_path, frame):
    frame.to_csv(tmp_path / "sales_2024.csv", index=False)
    with pytest.raises(DataError) as info:
        read_source(tmp_path / "sales.csv")
    assert "sales.csv: file not found" in str(info.value)
    assert "sales_2024.csv" in str(info.value)
    assert "Check the data path" in str(info.value) and info.value.setting == "path"
    with pytest.raises(DataError, match="is a folder, not a file. Point the data path") as info:
        read_source(tmp_path)
    assert info.value.setting == "path"


def test_empty_and_header_only_files(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty.csv: the file is empty"):
        read_source(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("sku,ds,y\n")
    with pytest.raises(DataError, match="header.csv: the source has a header but no rows") as info:
        read_source(tmp_path / "header.csv")
    assert "the data path" in str(info.value) and info.value.setting == "path"
    # a list that may be empty this month (launches, delistings): no rows, its columns kept
    listed = read_source(tmp_path / "header.csv", empty_ok=True)
    assert listed.empty and list(listed.columns) == ["sku", "ds", "y"]


def test_unreadable_files(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(DataError, match="bad.parquet: cannot be read as Parquet"):
        read_source(tmp_path / "bad.parquet")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x81\x00garbage\xff")
    with pytest.raises(DataError, match="bin.csv: cannot be read"):
        read_source(tmp_path / "bin.csv")
    (tmp_path / "d.json").write_text("{}")
    with pytest.raises(DataError, match="unknown file type '.json'"):
        read_source(tmp_path / "d.json")


def test_write_frame_atomic_and_suffix(tmp_path, frame):
    path = write_frame(frame, tmp_path / "out" / "f.parquet")
    _same(pd.read_parquet(path), frame)
    assert not list((tmp_path / "out").glob(".*tmp"))
    with pytest.raises(DataError, match="must end in .csv or .parquet"):
        write_frame(frame, tmp_path / "f.xlsx")
