"""Forecast value added: lags, WAPE and bias per level and lag, authors, the chart."""

from __future__ import annotations

import struct

import pandas as pd
import pytest

from sopforecast.planning.fva import NO_OVERRIDE, fva_by_author, fva_chart, fva_table, with_lags

COLUMNS = ["version_id", "cycle", "unique_id", "level", "ds", "naive", "statistical", "final", "author", "y"]
# one row per plan line with its actual (None: not known yet); sku lines first, so the level
# order of the tables ("sku", then "Total") is the order of appearance, not alphabetical
ROWS = [
    ("v1", "2026-11", "A", "sku", "2026-12", 8, 9, 10, "ann", 10),
    ("v1", "2026-11", "B", "sku", "2026-12", 25, 22, 24, "bob", 20),
    ("v1", "2026-11", "A", "sku", "2027-01", 8, 8, 8, None, 5),
    ("v1", "2026-11", "A", "sku", "2027-02", 8, 12, 11, None, 10),
    ("v1", "2026-11", "B", "sku", "2027-02", 10, 10, 10, "", 10),
    ("v1", "2026-11", "Total", "Total", "2026-12", 33, 31, 34, None, 30),
    ("v1", "2026-11", "Total", "Total", "2027-02", 18, 22, 21, None, 20),
    ("v2", "2026-12", "A", "sku", "2027-01", 5, 4, 6, "ann", 5),
    ("v2", "2026-12", "A", "sku", "2027-03", 7, 7, 7, None, None),
    ("v2", "2026-12", "Total", "Total", "2027-01", 15, 15, 15, None, 15),
]


@pytest.fixture
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = pd.DataFrame(ROWS, columns=COLUMNS).assign(ds=lambda f: pd.to_datetime(f["ds"]))
    frame["author"] = frame["author"].astype(object).where(frame["author"].notna(), None)
    plans = frame.drop(columns="y")
    # actuals hold each (series, month) once, though two versions may plan the same month
    actuals = frame.loc[frame["y"].notna(), ["unique_id", "ds", "y"]].drop_duplicates(["unique_id", "ds"])
    return plans, actuals


def _row(table: pd.DataFrame, **keys) -> pd.Series:
    mask = pd.Series(True, index=table.index)
    for col, value in keys.items():
        mask &= table[col] == value
    assert mask.sum() == 1, keys
    return table[mask].iloc[0]


def test_lag_counts_months_from_the_versions_first_month(data):
    plans, _ = data
    lagged = with_lags(plans)
    assert lagged["lag"].tolist() == [1, 1, 2, 3, 3, 1, 3, 1, 3, 1]
    assert lagged["lag"].dtype == "int64"
    assert "lag" not in plans.columns


def test_wape_bias_and_fva_per_level_and_lag(data):
    table = fva_table(*data)
    assert list(zip(table["level"], table["lag"], strict=True)) == [
        ("sku", 1),
        ("sku", 3),
        ("Total", 1),
        ("Total", 3),
    ]
    sku1 = _row(table, level="sku", lag=1)
    # A (v1) y 10, B y 20, A (v2) y 5: sum|y| = 35
    assert sku1["n"] == 3 and sku1["actual"] == 35
    assert sku1["wape_naive"] == pytest.approx((2 + 5 + 0) / 35)
    assert sku1["wape_statistical"] == pytest.approx((1 + 2 + 1) / 35)
    assert sku1["wape_final"] == pytest.approx((0 + 4 + 1) / 35)
    assert sku1["bias_naive"] == pytest.approx((-2 + 5 + 0) / 35)
    assert sku1["bias_statistical"] == pytest.approx((-1 + 2 - 1) / 35)
    assert sku1["bias_final"] == pytest.approx((0 + 4 + 1) / 35)
    # the statistical forecast beats naive (positive), the overrides made it worse (negative)
    assert sku1["fva_statistical"] == pytest.approx(3 / 35)
    assert sku1["fva_consensus"] == pytest.approx(-1 / 35)

    sku3 = _row(table, level="sku", lag=3)  # the v2 line without an actual is left out
    assert sku3["n"] == 2 and sku3["actual"] == 20
    assert (sku3["wape_naive"], sku3["wape_statistical"], sku3["wape_final"]) == pytest.approx(
        (0.1, 0.1, 0.05)
    )
    assert sku3["fva_statistical"] == pytest.approx(0) and sku3["fva_consensus"] == pytest.approx(0.05)

    total1 = _row(table, level="Total", lag=1)
    assert total1["n"] == 2
    assert (total1["wape_naive"], total1["wape_statistical"], total1["wape_final"]) == pytest.approx(
        (3 / 45, 1 / 45, 4 / 45)
    )
    assert total1["bias_final"] == pytest.approx(4 / 45)


def test_lags_none_scores_every_lag(data):
    table = fva_table(*data, lags=None)
    assert sorted(table.loc[table["level"] == "sku", "lag"]) == [1, 2, 3]
    assert _row(table, level="sku", lag=2)["wape_naive"] == pytest.approx(3 / 5)


def test_by_author_groups_lines_without_an_author(data):
    table = fva_by_author(*data)
    assert list(table.columns) == [
        "author",
        "level",
        "lag",
        "n",
        "wape_statistical",
        "wape_final",
        "bias_statistical",
        "bias_final",
        "fva_consensus",
    ]
    assert list(zip(table["author"], table["level"], table["lag"], strict=True)) == [
        ("ann", "sku", 1),
        ("bob", "sku", 1),
        (NO_OVERRIDE, "sku", 3),  # the empty author counts as no override
        (NO_OVERRIDE, "Total", 1),
        (NO_OVERRIDE, "Total", 3),
    ]
    ann = _row(table, author="ann")
    assert ann["n"] == 2
    assert ann["wape_statistical"] == pytest.approx(2 / 15) and ann["wape_final"] == pytest.approx(1 / 15)
    assert ann["bias_statistical"] == pytest.approx(-2 / 15) and ann["bias_final"] == pytest.approx(1 / 15)
    assert ann["fva_consensus"] == pytest.approx(1 / 15)
    bob = _row(table, author="bob")
    assert bob["fva_consensus"] == pytest.approx(0.1 - 0.2)
    assert _row(table, author=NO_OVERRIDE, level="sku")["n"] == 2


def test_zero_actuals_give_no_wape():
    plans = pd.DataFrame(
        {"version_id": "v", "unique_id": "A", "level": "sku", "ds": pd.to_datetime(["2027-01-01"])}
    ).assign(naive=1.0, statistical=1.0, final=1.0, author=None)
    actuals = pd.DataFrame({"unique_id": ["A"], "ds": pd.to_datetime(["2027-01-01"]), "y": [0.0]})
    row = fva_table(plans, actuals).iloc[0]
    assert row["n"] == 1 and pd.isna(row["wape_final"]) and pd.isna(row["bias_final"])


def test_no_actuals_yet_gives_empty_frames(data, tmp_path):
    plans, actuals = data
    table = fva_table(plans, actuals.iloc[:0])
    assert table.empty and "wape_final" in table.columns and "fva_consensus" in table.columns
    by_author = fva_by_author(plans, actuals.iloc[:0])
    assert by_author.empty and list(by_author.columns)[:3] == ["author", "level", "lag"]
    assert fva_table(plans.iloc[:0], actuals).empty
    path = fva_chart(table, tmp_path / "empty.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_chart_is_a_png(data, tmp_path):
    path = fva_chart(fva_table(*data), tmp_path / "out" / "fva.png")
    assert path == tmp_path / "out" / "fva.png"
    raw = path.read_bytes()
    assert len(raw) > 10_000
    width, height = _png_size(raw)
    assert width == 660  # 6 inches at dpi 110
    assert height > 600  # two panels: lags 1 and 3
