"""Supply inputs: every rule of the capacity, routing and inventory tables, by its message."""

from __future__ import annotations

import pandas as pd
import pytest

from sopforecast.data.supply_files import read_capacity, read_inventory, read_routing
from sopforecast.errors import DataError
from sopforecast.supply.inputs import (
    CAPACITY_COLUMNS,
    INVENTORY_COLUMNS,
    ROUTING_COLUMNS,
    validate_capacity,
    validate_inventory,
    validate_routing,
)

SKU = "Beverages/Juice/SKU-00001"
BOTTOM = f"{SKU}/North/Retail"
PLAN = {SKU, BOTTOM, "Beverages/Juice/SKU-00002/North/Retail", "Beverages/North", "Total", "00101", "NA"}


def _capacity(**cols):
    base = {
        "resource": ["FILL", "FILL", "PACK"],
        "ds": ["2026-01", "2026-02", "2026-01"],
        "capacity": [100, 0, 50],
        "unit": ["units", "units", "hours"],
    }
    return pd.DataFrame({**base, **cols})


def _routing(**cols):
    base = {"key": [SKU, "00101", "NA"], "resource": ["FILL", "FILL", "PACK"], "rate": [1.0, 2.0, 0.5]}
    return pd.DataFrame({**base, **cols})


def _inventory(**cols):
    base = {"key": [BOTTOM, "00101"], "on_hand": [10, 0], "lead_time": [1, 0], "service_level": [0.95, 0.9]}
    return pd.DataFrame({**base, **cols})


def _error(func, raw, **kw) -> str:
    with pytest.raises(DataError) as info:
        func(raw, source="in.csv", **kw)
    return str(info.value)


def _names(msg: str, column: str, row: int) -> None:
    assert msg.startswith("in.csv: "), msg
    assert repr(column) in msg, msg
    assert f"row {row}:" in msg, msg


# --- capacity -------------------------------------------------------------------------


def test_capacity_valid_frame():
    out = validate_capacity(_capacity(), source="in.csv")
    assert list(out.columns) == CAPACITY_COLUMNS
    assert out["ds"].tolist() == list(pd.to_datetime(["2026-01-01", "2026-02-01", "2026-01-01"]))
    assert out["capacity"].tolist() == [100.0, 0.0, 50.0]
    assert out["unit"].tolist() == ["units", "units", "hours"]


def test_capacity_months_written_every_way():
    raw = _capacity(ds=["2026-03", "2026-04-01", pd.Timestamp("2026-03-15")])
    out = validate_capacity(raw, source="in.csv")
    assert sorted(out["ds"].dt.strftime("%Y-%m-%d")) == ["2026-03-01", "2026-03-01", "2026-04-01"]


def test_capacity_unit_optional_defaults_to_units():
    out = validate_capacity(_capacity().drop(columns="unit"), source="in.csv")
    assert set(out["unit"]) == {"units"}


def test_missing_column_says_required_and_optional():
    msg = _error(validate_capacity, _capacity().drop(columns="capacity"))
    assert "missing column(s) ['capacity']" in msg
    assert "['resource', 'ds', 'capacity'] (required)" in msg and "['unit'] (optional)" in msg


def test_unknown_column_refused_with_hint():
    msg = _error(validate_capacity, _capacity().rename(columns={"ds": "month"}))
    assert "unknown column(s) ['month']" in msg and "'month' looks like 'ds'" in msg


def test_column_names_ignore_case_and_spaces():
    out = validate_capacity(_capacity().rename(columns={"resource": " Resource "}), source="in.csv")
    assert out["resource"].tolist() == ["FILL", "FILL", "PACK"]


def test_capacity_not_a_number():
    msg = _error(validate_capacity, _capacity(capacity=[100, "lots", 50]))
    _names(msg, "capacity", 2)
    assert "must hold numbers" in msg and "'lots'" in msg


def test_capacity_negative():
    msg = _error(validate_capacity, _capacity(capacity=[100, -5, 50]))
    _names(msg, "capacity", 2)
    assert "negative" in msg and "write 0 for a shutdown" in msg


def test_capacity_empty_cell():
    msg = _error(validate_capacity, _capacity(capacity=[100, None, 50]))
    _names(msg, "capacity", 2)
    assert "is empty" in msg


def test_capacity_month_not_a_date():
    msg = _error(validate_capacity, _capacity(ds=["2026-01", "March", "2026-01"]))
    _names(msg, "ds", 2)
    assert "not dates" in msg


def test_capacity_year_typo():
    msg = _error(validate_capacity, _capacity(ds=["2026-01", "2062-02", "2026-01"]))
    _names(msg, "ds", 2)


def test_resource_with_two_units():
    msg = _error(validate_capacity, _capacity(unit=["units", "hours", "hours"]))
    _names(msg, "unit", 1)
    assert "row 2:" in msg and "two units" in msg


def test_unknown_unit():
    msg = _error(validate_capacity, _capacity(unit=["units", "units", "kg"]))
    _names(msg, "unit", 3)
    assert "['units', 'hours']" in msg


def test_duplicate_resource_month():
    msg = _error(validate_capacity, _capacity(ds=["2026-01", "2026-01-01", "2026-01"]))
    assert "rows repeat a resource and month" in msg
    assert "row 1:" in msg and "row 2:" in msg and "resource='FILL'" in msg


def test_empty_resource():
    msg = _error(validate_capacity, _capacity(resource=["FILL", " ", "PACK"]))
    _names(msg, "resource", 2)


def test_every_problem_listed_at_once():
    msg = _error(validate_capacity, _capacity(capacity=[-1, "x", 50], unit=["units", "units", "kg"]))
    assert "3 problems" in msg
    assert "negative" in msg and "must hold numbers" in msg and "unknown units" in msg


def test_no_rows():
    with pytest.raises(DataError, match="in.csv: no rows"):
        validate_capacity(_capacity().iloc[:0], source="in.csv")


def test_input_not_modified():
    raw = _capacity()
    before = raw.copy()
    validate_capacity(raw, source="in.csv")
    pd.testing.assert_frame_equal(raw, before)


# --- routing --------------------------------------------------------------------------


def test_routing_valid_frame_priority_defaults_to_one():
    out = validate_routing(_routing(), source="in.csv", plan_keys=PLAN)
    assert list(out.columns) == ROUTING_COLUMNS
    assert out["priority"].tolist() == [1, 1, 1] and out["priority"].dtype == "int64"
    assert set(out["key"]) == {SKU, "00101", "NA"}


def test_routing_rate_must_be_positive():
    msg = _error(validate_routing, _routing(rate=[1.0, 0.0, 0.5]))
    _names(msg, "rate", 2)
    assert "above 0" in msg


def test_routing_rate_text():
    msg = _error(validate_routing, _routing(rate=[1.0, "2 min", 0.5]))
    _names(msg, "rate", 2)


@pytest.mark.parametrize("bad", [0, 1.5, -2])
def test_priority_positive_whole(bad):
    msg = _error(validate_routing, _routing(priority=[1, bad, 2]))
    _names(msg, "priority", 2)
    assert "whole number from 1" in msg


def test_priority_empty_cell_is_one():
    out = validate_routing(_routing(priority=[2, None, 3]), source="in.csv")
    assert dict(zip(out["key"], out["priority"], strict=True)) == {SKU: 2, "00101": 1, "NA": 3}


def test_duplicate_key_and_resource():
    msg = _error(validate_routing, _routing(key=["00101", "00101", "NA"]))
    assert "rows repeat a key and resource" in msg and "row 1:" in msg and "row 2:" in msg
    assert "key='00101'" in msg


def test_key_not_in_plan_with_close_match():
    msg = _error(validate_routing, _routing(key=["Beverages/Juice/SKU-0001", "00101", "NA"]), plan_keys=PLAN)
    _names(msg, "key", 1)
    assert "not in the plan" in msg and f"looks like {SKU!r}" in msg


def test_keys_not_checked_without_plan():
    assert len(validate_routing(_routing(key=["X", "Y", "Z"]), source="in.csv")) == 3


@pytest.mark.parametrize("above", [SKU, "Beverages/North", "Total"])
def test_aggregate_and_descendant_on_one_resource_refused(above):
    raw = pd.DataFrame({"key": [above, "00101", BOTTOM], "resource": ["FILL", "PACK", "FILL"], "rate": 1.0})
    msg = _error(validate_routing, raw, plan_keys=PLAN)
    assert f"key {above!r} and its descendant {BOTTOM!r}" in msg and "'FILL'" in msg
    assert "row 1:" in msg and "row 3:" in msg and "row 2:" not in msg


def test_aggregate_and_descendant_on_different_resources_allowed():
    raw = pd.DataFrame({"key": [SKU, BOTTOM], "resource": ["FILL", "PACK"], "rate": [1.0, 0.2]})
    assert len(validate_routing(raw, source="in.csv", plan_keys=PLAN)) == 2


def test_siblings_do_not_overlap():
    other = "Beverages/Juice/SKU-00002/North/Retail"
    raw = pd.DataFrame({"key": [BOTTOM, other], "resource": "FILL", "rate": 1.0})
    assert len(validate_routing(raw, source="in.csv", plan_keys=PLAN)) == 2


# --- inventory ------------------------------------------------------------------------


def test_inventory_valid_frame_optional_columns_empty():
    out = validate_inventory(_inventory(), source="in.csv", plan_keys=PLAN)
    assert list(out.columns) == INVENTORY_COLUMNS
    assert out["lead_time"].dtype == "int64"
    assert out["batch_size"].isna().all() and out["shelf_life"].isna().all()


def test_inventory_optional_columns_given():
    out = validate_inventory(_inventory(batch_size=[50, None], shelf_life=[6, None]), source="in.csv")
    row = out.set_index("key").loc[BOTTOM]
    assert row["batch_size"] == 50 and row["shelf_life"] == 6


def test_on_hand_negative():
    msg = _error(validate_inventory, _inventory(on_hand=[10, -1]))
    _names(msg, "on_hand", 2)


def test_lead_time_not_whole():
    msg = _error(validate_inventory, _inventory(lead_time=[1.5, 0]))
    _names(msg, "lead_time", 1)
    assert "whole months" in msg


@pytest.mark.parametrize("level", [95, 1.0, 0.3])
def test_service_level_out_of_range(level):
    msg = _error(validate_inventory, _inventory(service_level=[level, 0.9]))
    _names(msg, "service_level", 1)
    assert "95% is 0.95" in msg


@pytest.mark.parametrize(("col", "value"), [("batch_size", 0), ("shelf_life", 2.5), ("shelf_life", -1)])
def test_optional_numbers_out_of_range(col, value):
    msg = _error(validate_inventory, _inventory(**{col: [value, None]}))
    _names(msg, col, 1)


def test_inventory_duplicate_key():
    msg = _error(validate_inventory, _inventory(key=["00101", "00101"]))
    assert "rows repeat a key" in msg and "row 1:" in msg and "row 2:" in msg


def test_inventory_key_not_in_plan():
    msg = _error(validate_inventory, _inventory(key=[BOTTOM, "SKU-9"]), plan_keys=PLAN)
    _names(msg, "key", 2)


# --- reading files: ids stay text -----------------------------------------------------


def test_read_files_keep_ids(tmp_path):
    (tmp_path / "capacity.csv").write_text(
        "resource,ds,capacity,unit\n007,2026-01,10,units\nNA,2026-01,5,hours\n"
    )
    (tmp_path / "routing.csv").write_text("key,resource,rate,priority\n00101,007,1.5,1\nNA,NA,2,2\n")
    (tmp_path / "inventory.csv").write_text(
        "key,on_hand,lead_time,service_level\n00101,5,1,0.95\nNA,0,2,0.9\n"
    )
    cap = read_capacity(tmp_path / "capacity.csv")
    assert cap["resource"].tolist() == ["007", "NA"]
    routing = read_routing(tmp_path / "routing.csv", plan_keys=PLAN)
    assert routing["key"].tolist() == ["00101", "NA"] and routing["resource"].tolist() == ["007", "NA"]
    inventory = read_inventory(tmp_path / "inventory.csv", plan_keys=PLAN)
    assert inventory["key"].tolist() == ["00101", "NA"]


def test_read_names_the_file(tmp_path):
    path = tmp_path / "routing.csv"
    path.write_text("key,resource,rate\n00101,FILL,fast\n")
    with pytest.raises(DataError) as info:
        read_routing(path)
    msg = str(info.value)
    assert msg.startswith(str(path)) and "'rate'" in msg and "row 1:" in msg and "key='00101'" in msg


def test_read_excel(tmp_path):
    path = tmp_path / "capacity.xlsx"
    _capacity().to_excel(path, index=False)
    assert len(read_capacity(path)) == 3


def test_read_sql_table(tmp_path):
    sqlalchemy = pytest.importorskip("sqlalchemy")
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    engine = sqlalchemy.create_engine(url)
    _inventory().to_sql("stock", engine, index=False)
    engine.dispose()
    assert read_inventory(url, table="stock")["key"].tolist() == ["00101", BOTTOM]
