"""Validation of the data contract: one test per error, asserting what the message says."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sopforecast.config import DataConfig
from sopforecast.data.schema import validate
from sopforecast.errors import DataError

HIER = ["category/family/sku", "region/channel"]


def _panel(periods: int = 30) -> pd.DataFrame:
    ds = pd.date_range("2021-01-01", periods=periods, freq="MS")
    rows = []
    for sku, fam in [("S1", "F1"), ("S2", "F1"), ("S3", "F2")]:
        for region in ("North", "South"):
            for i, d in enumerate(ds):
                rows.append(
                    {
                        "category": "C",
                        "family": fam,
                        "sku": sku,
                        "region": region,
                        "channel": "Retail",
                        "ds": d.strftime("%Y-%m-%d"),
                        "y": 10.0 + i % 12,
                        "price": 2.0,
                        "promo": 0,
                    }
                )
    return pd.DataFrame(rows)


def _config(**kw) -> DataConfig:
    return DataConfig(**{"hierarchy": HIER, "drivers": ["price", "promo"], **kw})


def _error(raw: pd.DataFrame, **kw) -> str:
    with pytest.raises(DataError) as info:
        validate(raw, _config(**kw), source="sales.csv")
    return str(info.value)


def test_valid_panel_in_contract_format():
    out = validate(_panel(), _config(), source="sales.csv")
    assert list(out.frame.columns[:3]) == ["unique_id", "ds", "y"]
    assert out.frame["unique_id"].nunique() == 6
    assert out.frame["unique_id"].iloc[0] == "C/F1/S1/North/Retail"
    assert out.report.n_series == 6 and out.report.notes() == []
    assert out.frame["ds"].dtype == "datetime64[ns]"


def test_input_frame_not_modified():
    raw = _panel()
    before = raw.copy()
    validate(raw, _config(), source="sales.csv")
    pd.testing.assert_frame_equal(raw, before)


def test_missing_column_names_it_and_suggests_mapping():
    msg = _error(_panel().rename(columns={"y": "qty"}))
    assert "sales.csv" in msg and "missing column(s) ['y']" in msg
    assert "--target-col" in msg and "'qty'" in msg


def test_close_column_name_is_suggested():
    msg = _error(_panel().rename(columns={"region": "Region"}))
    assert "'Region' looks like 'region'" in msg


def test_unparseable_dates_show_rows_and_fix():
    raw = _panel()
    raw.loc[4, "ds"] = "2021-13-01"
    raw.loc[9, "ds"] = "next month"
    msg = _error(raw)
    assert "column 'ds' has values that are not dates" in msg
    assert "row 5: ds='2021-13-01'" in msg and "row 10" in msg
    assert "--date-format" in msg


def test_date_format_option_parses_local_dates():
    raw = _panel()
    raw["ds"] = pd.to_datetime(raw["ds"]).dt.strftime("%d.%m.%Y")
    out = validate(raw, _config(date_format="%d.%m.%Y"), source="sales.csv")
    assert out.report.start == pd.Timestamp("2021-01-01")


def test_non_numeric_demand_shows_value():
    raw = _panel().astype({"y": object})
    raw.loc[3, "y"] = "12 pcs"
    msg = _error(raw)
    assert "column 'y' must hold numbers" in msg and "row 4: y='12 pcs'" in msg


def test_thousands_separators_are_read():
    raw = _panel().astype({"y": object})
    raw.loc[3, "y"] = "8,222"
    out = validate(raw, _config(), source="sales.csv")
    assert 8222.0 in out.frame["y"].to_numpy()


def test_negative_demand_error_and_clip():
    raw = _panel()
    raw.loc[7, "y"] = -3
    msg = _error(raw)
    assert "negative value(s)" in msg and "y=-3" in msg and "--negative clip" in msg
    out = validate(raw, _config(negative="clip"), source="sales.csv")
    assert out.report.negatives_clipped == 1 and out.frame["y"].min() == 0.0


def test_duplicate_rows_error_and_sum():
    raw = pd.concat([_panel(), _panel().iloc[[2]]], ignore_index=True)
    msg = _error(raw)
    assert "2 rows share a series and period" in msg and "sku='S1'" in msg
    assert "--duplicates sum" in msg
    out = validate(raw, _config(duplicates="sum"), source="sales.csv")
    row = out.frame[(out.frame.unique_id == "C/F1/S1/North/Retail") & (out.frame.ds == "2021-03-01")]
    assert row["y"].item() == 2 * 12.0


def test_dates_off_the_monthly_calendar():
    raw = _panel()
    raw.loc[0, "ds"] = "2021-01-15"
    msg = _error(raw)
    assert "off the 'MS' calendar" in msg and "ds=2021-01-15" in msg and "--freq" in msg


def test_align_dates_moves_invoice_dates_to_month_start():
    raw = _panel()
    raw["ds"] = (pd.to_datetime(raw["ds"]) + pd.Timedelta(days=14)).dt.strftime("%Y-%m-%d")
    out = validate(raw, _config(align_dates=True), source="sales.csv")
    assert out.report.dates_aligned == len(raw)
    assert (out.frame["ds"].dt.day == 1).all()


def test_weekly_data_with_monthly_freq_names_the_weekly_freq():
    raw = _panel()
    raw["ds"] = pd.date_range("2021-01-04", periods=30, freq="W-MON").strftime("%Y-%m-%d").tolist() * 6
    msg = _error(raw)
    assert "W-MON" in msg


def test_monthly_data_with_daily_freq_is_refused():
    msg = _error(_panel(), freq="D")
    assert "'MS' periods" in msg and "--freq MS" in msg


def test_unknown_freq_is_a_config_error():
    with pytest.raises(ValueError, match="unknown frequency 'monthly'"):
        DataConfig(freq="monthly")


def test_missing_values_error_and_zero_policy():
    raw = _panel()
    raw.loc[5, "y"] = np.nan
    raw.loc[6, "price"] = np.nan
    msg = _error(raw)
    assert "column 'y' is empty in 1 row(s)" in msg and "--missing zero" in msg
    out = validate(raw, _config(missing="zero"), source="sales.csv")
    assert out.report.missing_filled == 1
    assert out.frame["price"].notna().all() and out.frame["y"].notna().all()


def test_gaps_are_filled_with_zero_and_reported():
    raw = _panel().drop(index=[10, 11])
    out = validate(raw, _config(), source="sales.csv")
    assert out.report.gaps_filled == {"C/F1/S1/North/Retail": 2}
    series = out.frame[out.frame.unique_id == "C/F1/S1/North/Retail"]
    assert len(series) == 30 and (series["y"].iloc[10:12] == 0).all()
    assert series["sku"].notna().all() and series["price"].notna().all()


def test_short_series_error_names_series_and_length():
    raw = _panel()
    raw = raw[~((raw.sku == "S3") & (pd.to_datetime(raw.ds) < "2023-01-01"))]
    msg = _error(raw, min_length=24, short_series="error")
    assert "2 series have fewer than 24 periods" in msg
    assert "C/F2/S3/North/Retail (6)" in msg and "short_series: report" in msg


def test_short_and_zero_series_are_reported_not_dropped():
    raw = _panel()
    raw = raw[~((raw.sku == "S3") & (pd.to_datetime(raw.ds) < "2023-01-01"))].copy()
    raw.loc[raw.sku == "S2", "y"] = 0.0
    out = validate(raw, _config(min_length=24), source="sales.csv")
    assert out.report.n_series == 6
    assert sorted(out.report.short_series) == ["C/F2/S3/North/Retail", "C/F2/S3/South/Retail"]
    assert len(out.report.zero_series) == 2 and len(out.report.started_late) == 2
    assert any("zero demand throughout" in n for n in out.report.notes())


def test_sku_under_two_families_is_inconsistent():
    raw = _panel()
    raw.loc[(raw.sku == "S1") & (raw.region == "South"), "family"] = "F2"
    msg = _error(raw)
    assert "hierarchy category/family/sku is inconsistent" in msg
    assert "sku='S1' under family ['F1', 'F2']" in msg


def test_empty_key_and_separator_in_key():
    raw = _panel()
    raw.loc[2, "sku"] = None
    assert "key column 'sku' is empty in 1 row(s)" in _error(raw)
    raw = _panel()
    raw.loc[raw.sku == "S1", "sku"] = "S1/old"
    assert "values containing '/'" in _error(raw)


def test_plain_unique_id_frame_without_hierarchy():
    raw = _panel().assign(unique_id=lambda d: d.sku + "-" + d.region)
    out = validate(raw[["unique_id", "ds", "y"]], DataConfig(), source="m.csv")
    assert out.report.n_series == 6 and out.keys == []


def test_messages_use_the_source_column_names():
    raw = _panel().rename(columns={"ds": "month", "y": "qty"})
    raw.loc[7, "qty"] = -3
    with pytest.raises(DataError) as info:
        validate(raw, _config(time_col="month", target_col="qty"), source="erp.csv")
    assert "column 'qty' has 1 negative" in str(info.value) and "month=2021-08-01" in str(info.value)
    raw = pd.concat([raw.assign(qty=1.0), raw.iloc[[0]].assign(qty=1.0)], ignore_index=True)
    with pytest.raises(DataError, match="month=2021-01-01, qty=1"):
        validate(raw, _config(time_col="month", target_col="qty"), source="erp.csv")
