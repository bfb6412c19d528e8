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


def _exc(raw: pd.DataFrame, **kw) -> DataError:
    with pytest.raises(DataError) as info:
        validate(raw, _config(**kw), source="sales.csv")
    return info.value


def _error(raw: pd.DataFrame, **kw) -> str:
    return str(_exc(raw, **kw))


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
    exc = _exc(_panel().rename(columns={"y": "qty"}))
    msg = str(exc)
    assert "sales.csv" in msg and "missing column(s) ['y']" in msg
    assert "setting(s) target_col" in msg and "'qty'" in msg and "--" not in msg
    assert exc.setting == "target_col"


def test_missing_columns_name_their_settings_first_one_carried():
    exc = _exc(_panel().drop(columns=["ds", "sku", "price"]))
    assert "setting(s) time_col, hierarchy, drivers" in str(exc) and exc.setting == "time_col"
    exc = _exc(_panel().drop(columns=["promo"]))
    assert "setting(s) drivers" in str(exc) and exc.setting == "drivers"
    raw = _panel().assign(unique_id="A")
    exc = _exc(raw.drop(columns=["unique_id"]), hierarchy=[], drivers=[])
    assert "setting(s) id_col" in str(exc) and exc.setting == "id_col"


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
    assert "set date_format to their format" in msg and "--" not in msg
    assert _exc(raw).setting == "date_format"


def test_date_format_option_parses_local_dates():
    raw = _panel()
    raw["ds"] = pd.to_datetime(raw["ds"]).dt.strftime("%d.%m.%Y")
    out = validate(raw, _config(date_format="%d.%m.%Y"), source="sales.csv")
    assert out.report.start == pd.Timestamp("2021-01-01")


def _dated(days: list[str] | pd.Index) -> pd.DataFrame:
    """One series with the given date cells, as a file holds them."""
    return pd.DataFrame({"unique_id": "A", "ds": list(days), "y": np.arange(len(days), dtype=float)})


MONTHS = pd.date_range("2021-01-01", periods=24, freq="MS")


@pytest.mark.parametrize(
    "cells",
    [
        MONTHS.strftime("%Y-%m-%d %H:%M:%S"),  # ERP export with a time part
        MONTHS.strftime("%Y-%m-%dT%H:%M:%S"),
        MONTHS.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        MONTHS.strftime("%Y-%m-%dT%H:%M:%S+01:00"),  # local midnight, offset written
        MONTHS.strftime("%Y-%m-%dT%H:%M:%S-0500"),
        MONTHS.strftime("%Y-%m-%d %H:%M:%S UTC"),
        [d.strftime("%Y-%m-%dT00:00:00") + ("+02:00" if 4 <= d.month <= 10 else "+01:00") for d in MONTHS],
        [d.strftime("%Y-%m-%d" if i % 2 else "%Y-%m-%d %H:%M") for i, d in enumerate(MONTHS)],
    ],
    ids=["space-time", "T-time", "Z-millis", "offset", "offset-hhmm", "UTC", "summer-time", "mixed-iso"],
)
def test_dates_with_time_and_offset_keep_the_written_date(cells):
    """The offset is dropped, not converted: 2021-01-01T00:00+01:00 is 1 January (in UTC it
    would be 31 December 23:00, the previous month)."""
    out = validate(_dated(cells), DataConfig(freq="MS"), source="erp.csv")
    assert out.frame["ds"].tolist() == MONTHS.tolist()
    assert out.frame["ds"].dtype == "datetime64[ns]" and out.report.notes() == []


def test_time_zone_aware_datetimes_keep_their_wall_clock():
    raw = _dated(MONTHS.tz_localize("Europe/Berlin"))  # as Parquet or a database returns them
    out = validate(raw, DataConfig(freq="MS"), source="erp.parquet")
    assert out.frame["ds"].tolist() == MONTHS.tolist()
    assert raw["ds"].dt.tz is not None  # input untouched


def test_date_format_with_offset_directive_reads_offsets_dropped():
    raw = _dated(MONTHS.strftime("%d/%m/%Y %H:%M%z").str.replace("$", "+0100", regex=True))
    out = validate(raw, DataConfig(freq="MS", date_format="%d/%m/%Y %H:%M%z"), source="erp.csv")
    assert out.frame["ds"].tolist() == MONTHS.tolist()


def test_midnight_turned_into_utc_is_explained_not_moved():
    cells = (MONTHS - pd.Timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")  # 2020-12-31T23:00:00Z
    exc = _exc(_dated(cells), hierarchy=[], drivers=[])
    assert "off the 'MS' calendar" in str(exc) and "ds=2020-12-31 23:00:00" in str(exc)
    assert "carry a time of day" in str(exc) and "local midnight into UTC" in str(exc)


@pytest.mark.parametrize(
    ("strftime", "example", "month_first"),
    [("%d/%m/%Y", "01/02/2021", "%m/%d/%Y"), ("%d.%m.%Y %H:%M", "01.02.2021 00:00", "%m.%d.%Y %H:%M")],
)
def test_day_and_month_that_read_both_ways_are_refused(strftime, example, month_first):
    """Monthly 01/02/2021 is 1 February or 2 January: no silent month-first reading (which
    used to lead through align_dates and freq YS to yearly data)."""
    exc = _exc(_dated(MONTHS.strftime(strftime)), hierarchy=[], drivers=[])
    msg = str(exc)
    assert f"sales.csv: column 'ds' has dates such as {example!r}" in msg
    assert "day first (1 February 2021)" in msg and "month first (2 January 2021)" in msg
    assert f"Set date_format to {strftime!r} if the day comes first, or to {month_first!r}" in msg
    assert exc.setting == "date_format" and "--" not in msg
    out = validate(_dated(MONTHS.strftime(strftime)), DataConfig(freq="MS", date_format=strftime))
    assert out.frame["ds"].tolist() == MONTHS.tolist()


@pytest.mark.parametrize(("strftime", "expected"), [("%d/%m/%Y", "%d/%m/%Y"), ("%m-%d-%y", "%m-%d-%y")])
def test_day_and_month_order_the_values_allow_is_used_and_reported(strftime, expected):
    days = pd.date_range("2021-01-01", periods=40, freq="D")  # days past 12 tell the order
    out = validate(_dated(days.strftime(strftime)), DataConfig(freq="D"), source="pos.csv")
    assert out.frame["ds"].tolist() == days.tolist()
    assert out.report.date_format == expected
    assert out.report.to_dict()["date_format_inferred"] == expected
    assert [n for n in out.report.notes() if n.startswith(f"dates read as {expected}, the only order")]


def test_same_day_and_month_read_either_way_need_no_format():
    out = validate(_dated(["01/01/2021", "02/02/2021", "03/03/2021"]), DataConfig(freq="D"))
    assert (out.report.start, out.report.end) == (pd.Timestamp("2021-01-01"), pd.Timestamp("2021-03-03"))
    assert out.report.date_format is None


def test_day_first_and_month_first_mixed_in_one_column_are_refused():
    cells = ["13/01/2021", "14/01/2021", "01/15/2021"]
    exc = _exc(_dated(cells), hierarchy=[], drivers=[], freq="D")
    assert "mixes dates with the day first (such as '13/01/2021')" in str(exc)
    assert "month first (such as '01/15/2021')" in str(exc) and exc.setting == "date_format"


def test_day_and_month_impossible_either_way_are_not_dates():
    exc = _exc(_dated(["01/01/2021", "45/01/2021", "02/01/2021"]), hierarchy=[], drivers=[], freq="D")
    assert "values that are not dates" in str(exc) and "row 2: ds='45/01/2021'" in str(exc)


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
    assert "negative value(s)" in msg and "y=-3" in msg and "set negative: clip" in msg
    assert "--" not in msg and _exc(raw).setting == "negative"
    out = validate(raw, _config(negative="clip"), source="sales.csv")
    assert out.report.negatives_clipped == 1 and out.frame["y"].min() == 0.0


def test_duplicate_rows_error_and_sum():
    raw = pd.concat([_panel(), _panel().iloc[[2]]], ignore_index=True)
    msg = _error(raw)
    assert "2 rows share a series and period" in msg and "sku='S1'" in msg
    assert "set duplicates: sum" in msg and "--" not in msg
    assert _exc(raw).setting == "duplicates"
    out = validate(raw, _config(duplicates="sum"), source="sales.csv")
    row = out.frame[(out.frame.unique_id == "C/F1/S1/North/Retail") & (out.frame.ds == "2021-03-01")]
    assert row["y"].item() == 2 * 12.0


def test_dates_off_the_monthly_calendar():
    raw = _panel()
    raw.loc[0, "ds"] = "2021-01-15"
    msg = _error(raw)
    assert "off the 'MS' calendar" in msg and "ds=2021-01-15" in msg and "Set freq" in msg
    assert "align_dates: true" in msg and "--" not in msg and _exc(raw).setting == "freq"


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
    assert "'MS' periods" in msg and "Set freq to MS." in msg and "--" not in msg
    assert _exc(_panel(), freq="D").setting == "freq"


def test_unknown_freq_is_a_config_error():
    with pytest.raises(ValueError, match="unknown frequency 'monthly'"):
        DataConfig(freq="monthly")


def test_missing_values_error_and_zero_policy():
    raw = _panel()
    raw.loc[5, "y"] = np.nan
    raw.loc[6, "price"] = np.nan
    msg = _error(raw)
    assert "column 'y' is empty in 1 row(s)" in msg and "set missing: zero" in msg
    assert "--" not in msg and _exc(raw).setting == "missing"
    out = validate(raw, _config(missing="zero"), source="sales.csv")
    assert out.report.missing_filled == 1
    assert out.frame["price"].notna().all() and out.frame["y"].notna().all()


def test_driver_empty_in_every_period_of_a_series_is_refused():
    raw = _panel()
    raw.loc[raw["sku"] == "S2", "price"] = np.nan  # S2 North and South have no price at all
    raw.loc[3, "price"] = np.nan  # S1 has a gap, carried forward
    exc = _exc(raw, missing="zero")
    msg = str(exc)
    assert "driver 'price' is empty for every period of series" in msg
    assert "C/F1/S2/North/Retail" in msg and "C/F1/S2/South/Retail" in msg and "S1" not in msg
    assert "Fill it in the export" in msg and exc.setting == "drivers"


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


def test_infinite_demand_is_refused_with_column_and_rows():
    raw = _panel()
    raw.loc[4, "y"] = np.inf
    msg = _error(raw)
    assert "sales.csv" in msg and "column 'y' has 1 infinite value(s)" in msg
    assert "row 5:" in msg and "y=inf" in msg and "not demand quantities" in msg
    assert "Correct the cells in the export" in msg


def test_infinite_demand_is_refused_even_when_empty_cells_read_as_zero():
    raw = _panel().astype({"y": object})
    raw.loc[4, "y"] = "inf"  # as a CSV cell reads
    assert "infinite value(s)" in _error(raw, missing="zero")


def test_negative_infinite_driver_is_refused_under_every_policy():
    raw = _panel()
    raw.loc[6, "price"] = -np.inf
    for missing in ("error", "zero"):
        msg = _error(raw, missing=missing)
        assert "column 'price' has 1 infinite value(s)" in msg and "price=-inf" in msg
        assert "a driver must be finite" in msg and "missing: zero" in msg


def test_huge_demand_is_refused_as_outlier():
    raw = _panel()
    raw.loc[2, "y"] = 1e300
    msg = _error(raw, negative="clip", missing="zero")
    assert "column 'y' has 1 outlier(s) beyond ±1e+12" in msg
    assert "row 3:" in msg and "y=1e+300" in msg and "larger units" in msg


def test_huge_driver_is_refused_as_outlier():
    raw = _panel()
    raw.loc[[1, 8], "promo"] = 4006381333931  # a barcode in the promo column
    msg = _error(raw)
    assert "column 'promo' has 2 outlier(s)" in msg and "promo=4006381333931" in msg


def test_values_up_to_the_limit_pass_and_input_is_untouched():
    from sopforecast.data.schema import MAX_ABS_VALUE

    raw = _panel()
    raw.loc[0, "y"] = MAX_ABS_VALUE
    raw.loc[1, "price"] = -MAX_ABS_VALUE
    raw.loc[2, "y"] = np.inf
    before = raw.copy()
    _error(raw)
    pd.testing.assert_frame_equal(raw, before)
    raw.loc[2, "y"] = 5.0
    out = validate(raw, _config(), source="sales.csv")
    assert out.frame["y"].max() == MAX_ABS_VALUE and np.isfinite(out.frame["price"]).all()
