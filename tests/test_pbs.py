"""The raw PBS export parser, checked against values read from the file by eye."""

from __future__ import annotations

import pandas as pd
import pytest

from sopforecast.data.pbs import PBS_KEYS, load_pbs, pbs_descriptions
from sopforecast.errors import DataError


@pytest.fixture(scope="module")
def pbs(pbs_path) -> pd.DataFrame:
    return load_pbs(pbs_path)


def _value(pbs, concession, type_, atc2, month, col):
    row = pbs[(pbs.Concession == concession) & (pbs.Type == type_) & (pbs.ATC2 == atc2) & (pbs.ds == month)]
    return row[col].item()


def test_series_rows_and_months(pbs):
    assert pbs.groupby(PBS_KEYS).ngroups == 336
    assert len(pbs) == 65222
    assert pbs["ds"].nunique() == 204
    assert (pbs["ds"].min(), pbs["ds"].max()) == (
        pd.Timestamp("1991-07-01"),
        pd.Timestamp("2008-06-01"),
    )
    assert list(pbs.columns) == [*PBS_KEYS, "ds", "Scripts", "Cost"]


def test_values_read_by_eye(pbs):
    assert _value(pbs, "Concessional", "Safety net", "A01", "1991-07-01", "Scripts") == 3939
    assert _value(pbs, "Concessional", "Safety net", "A01", "1991-07-01", "Cost") == 24695
    assert _value(pbs, "Concessional", "Safety net", "A02", "1991-08-01", "Scripts") == 43385
    assert _value(pbs, "General", "Co-payments", "N02", "1991-07-01", "Scripts") == 1981
    assert _value(pbs, "General", "Co-payments", "N02", "1991-07-01", "Cost") == 26517


def test_block_totals_match_file(pbs):
    scripts = pbs.groupby("ds")["Scripts"].sum()
    assert scripts.loc["1991-07-01"] == 8_090_395  # "Total Scripts" row, written "8,090,395"
    assert scripts.loc["1991-08-01"] == 7_308_118
    cost = pbs.groupby("ds")["Cost"].sum()
    assert cost.loc["1991-07-01"] == pytest.approx(90_494_402, abs=1)  # "Total" row of the cost block


def test_keys_and_late_starting_series(pbs):
    combos = pbs[["Concession", "Type"]].drop_duplicates()
    assert len(combos) == 4
    assert (pbs["ATC1"] == pbs["ATC2"].str[0]).all()
    a05 = pbs[(pbs.Concession == "Concessional") & (pbs.Type == "Safety net") & (pbs.ATC2 == "A05")]
    assert a05["ds"].min() == pd.Timestamp("2000-07-01") and a05["Scripts"].iloc[0] == 0


def test_descriptions(pbs_path):
    assert pbs_descriptions(pbs_path)["A01"] == "STOMATOLOGICAL PREPARATIONS"


def test_not_a_pbs_file(tmp_path):
    bad = tmp_path / "sales.csv"
    bad.write_text("sku,ds,y\nA,2024-01-01,3\n")
    with pytest.raises(DataError, match=r"sales.csv: no 'SCRIPTS' block"):
        load_pbs(bad)


def test_missing_pbs_file(tmp_path):
    with pytest.raises(DataError, match="PBS export not found"):
        load_pbs(tmp_path / "PBS.csv")
