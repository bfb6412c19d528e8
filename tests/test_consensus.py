"""Consensus overrides: reading and checking them, applying them coherently to a plan."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sopforecast.planning.consensus import apply_overrides
from sopforecast.planning.lines import LINE_COLUMNS, is_coherent, rollup, summing
from sopforecast.planning.overrides import (
    OVERRIDE_COLUMNS,
    OverrideError,
    read_overrides,
    validate_overrides,
)

HIERARCHY = ["category/family/sku", "region"]
MONTHS = pd.date_range("2027-01-01", periods=3, freq="MS")
# statistical forecast of the bottom series in the three months
STAT = {
    "Bev/Juice/j1/N": [10, 11, 12],
    "Bev/Juice/j2/N": [30, 31, 32],
    "Bev/Water/w1/N": [20, 0, 22],
    "Snk/Chips/c1/N": [40, 41, 42],
    "Bev/Juice/j1/S": [5, 6, 7],
    "Bev/Juice/j2/S": [15, 16, 17],
    "Bev/Water/w1/S": [0, 0, 2],
    "Snk/Chips/c1/S": [20, 21, 22],
}


def make_plan(stat: dict[str, list[float]] = STAT, months=MONTHS, hierarchy=HIERARCHY):
    """Plan lines of every level (final = statistical, no consensus) and the summing frame."""
    keys = [k for chain in hierarchy for k in chain.split("/")]
    bottom = pd.DataFrame([dict(zip(keys, uid.split("/"), strict=True), unique_id=uid) for uid in stat])
    S, levels = summing(bottom, hierarchy)
    values = pd.DataFrame(
        [(uid, ds, float(v)) for uid, vals in stat.items() for ds, v in zip(months, vals, strict=True)],
        columns=["unique_id", "ds", "statistical"],
    )
    lines = rollup(values, S, "statistical").reset_index()
    lines["level"] = lines["unique_id"].map(levels)
    lines["naive"] = 1.0
    lines["consensus"] = np.nan
    lines["final"] = lines["statistical"]
    lines["author"] = None
    lines["price"] = np.where(lines["unique_id"].isin(S.columns), 2.5, np.nan)
    return lines[[*LINE_COLUMNS, "price"]], S


def ov(key, month, value=np.nan, change_pct=np.nan, author="ana", id=None):
    row = {"key": key, "ds": pd.Timestamp(month), "value": value, "change_pct": change_pct}
    return {**row, "author": author, "reason": "test", **({"id": id} if id is not None else {})}


def frame(*rows) -> pd.DataFrame:
    out = pd.DataFrame(list(rows))
    if "id" not in out:
        out["id"] = np.arange(1, len(out) + 1)
    return out


def at(lines: pd.DataFrame, key: str, month: str = "2027-01", column: str = "final"):
    hit = lines[(lines["unique_id"] == key) & (lines["ds"] == pd.Timestamp(month))]
    assert len(hit) == 1, key
    return hit[column].iloc[0]


# --- applying ----------------------------------------------------------------------------


def test_aggregate_override_spreads_in_proportion_and_stays_coherent():
    lines, S = make_plan()
    result = apply_overrides(lines, frame(ov("Bev/Juice", "2027-01", value=120)), S)
    out = result.lines
    # Juice was 10 + 30 + 5 + 15 = 60: every Juice series doubles
    assert at(out, "Bev/Juice/j1/N") == pytest.approx(20)
    assert at(out, "Bev/Juice/j2/N") == pytest.approx(60)
    assert at(out, "Bev/Juice/j1/S") == pytest.approx(10)
    assert at(out, "Bev/Juice/j2/S") == pytest.approx(30)
    assert at(out, "Bev/Juice") == pytest.approx(120)
    assert at(out, "Bev") == pytest.approx(140)  # juice 120 + water 20
    assert at(out, "N") == pytest.approx(140)  # 20 + 60 + 20 + 40
    assert at(out, "Total") == pytest.approx(200)
    assert is_coherent(out, S) and is_coherent(out, S, "statistical")
    assert list(out.columns) == list(lines.columns) and len(out) == len(lines)
    # consensus on the key, its bottom series and the aggregates above them, in that month only
    touched = set(out.loc[out["consensus"].notna(), "unique_id"])
    assert {"Bev/Juice", "Bev/Juice/j1/N", "Bev", "Total", "N", "S", "Bev/N", "Bev/Juice/j1"} <= touched
    assert not touched & {"Snk", "Bev/Water", "Snk/Chips/c1/N", "Bev/Water/w1/N"}
    assert set(out.loc[out["consensus"].notna(), "ds"]) == {MONTHS[0]}
    assert set(out.loc[out["consensus"].notna(), "author"]) == {"ana"}
    assert out.loc[out["consensus"].isna(), "author"].isna().all()
    untouched = out["consensus"].isna()
    assert (out.loc[untouched, "final"] == out.loc[untouched, "statistical"]).all()
    assert result.applied[["requested", "previous", "final"]].iloc[0].tolist() == pytest.approx(
        [120, 60, 120]
    )
    assert result.conflicts.empty


def test_change_pct_scales_every_bottom_series():
    lines, S = make_plan()
    out = apply_overrides(lines, frame(ov("Total", "2027-02", change_pct=-10)), S).lines
    feb = out[out["ds"] == MONTHS[1]]
    assert np.allclose(feb["final"], 0.9 * feb["statistical"])
    assert at(out, "Total", "2027-02") == pytest.approx(0.9 * 126)
    assert at(out, "Bev/Water/w1/N", "2027-02", "consensus") == 0  # touched, still zero
    assert is_coherent(out, S)


def test_bottom_override_rolls_up():
    lines, S = make_plan()
    out = apply_overrides(lines, frame(ov("Bev/Juice/j1/N", "2027-03", value=50)), S).lines
    assert at(out, "Bev/Juice/j1/N", "2027-03") == 50
    assert at(out, "Bev/Juice/j2/N", "2027-03", "consensus") != at(out, "Bev/Juice/j2/N", "2027-03")
    assert at(out, "Bev/Juice/j1", "2027-03") == pytest.approx(57)  # 50 + 7
    assert at(out, "Total", "2027-03") == pytest.approx(156 + 38)
    assert at(out, "Snk", "2027-03", "consensus") != at(out, "Snk", "2027-03")  # NaN: untouched
    assert is_coherent(out, S)


def test_history_basis_uses_the_last_twelve_months():
    lines, S = make_plan()
    before = pd.date_range("2025-01-01", "2026-12-01", freq="MS")
    history = pd.concat(
        [
            # a year ago and older j2/N sold a lot: outside the window, it must not count
            pd.DataFrame(
                {"unique_id": "Bev/Juice/j2/N", "ds": before, "y": np.r_[np.full(12, 1000.0), np.ones(12)]}
            ),
            pd.DataFrame({"unique_id": "Bev/Juice/j1/N", "ds": before[12:], "y": 3.0}),
            pd.DataFrame({"unique_id": "Bev/Juice/j1/S", "ds": before[12:], "y": 0.0}),
            # after the plan starts: not history for this plan
            pd.DataFrame({"unique_id": "Bev/Juice/j2/S", "ds": MONTHS, "y": 500.0}),
        ]
    )
    result = apply_overrides(
        lines, frame(ov("Bev/Juice", "2027-01", value=80)), S, basis="history", history=history
    )
    out = result.lines
    # shares 36 : 12 : 0 : 0 of the last twelve months
    assert at(out, "Bev/Juice/j1/N") == pytest.approx(60)
    assert at(out, "Bev/Juice/j2/N") == pytest.approx(20)
    assert at(out, "Bev/Juice/j1/S") == 0 and at(out, "Bev/Juice/j2/S") == 0
    assert is_coherent(out, S)
    with pytest.raises(OverrideError, match="history"):
        apply_overrides(lines, frame(ov("Bev/Juice", "2027-01", value=80)), S, basis="history")


def test_zero_sum_falls_back_to_history_then_equal_split():
    lines, S = make_plan()
    override = frame(ov("Bev/Water", "2027-02", value=30))  # w1 is 0 in N and S in February
    equal = apply_overrides(lines, override, S).lines
    assert at(equal, "Bev/Water/w1/N", "2027-02") == pytest.approx(15)
    assert at(equal, "Bev/Water/w1/S", "2027-02") == pytest.approx(15)
    history = pd.DataFrame(
        {"unique_id": ["Bev/Water/w1/N", "Bev/Water/w1/S"], "ds": pd.Timestamp("2026-06-01"), "y": [2.0, 1.0]}
    )
    shared = apply_overrides(lines, override, S, history=history).lines
    assert at(shared, "Bev/Water/w1/N", "2027-02") == pytest.approx(20)
    assert at(shared, "Bev/Water/w1/S", "2027-02") == pytest.approx(10)
    assert is_coherent(equal, S) and is_coherent(shared, S)


def test_conflict_child_holds_and_parent_holds_through_its_other_series():
    lines, S = make_plan()
    # the child has the smaller id, yet the aggregate applies first
    overrides = frame(
        ov("Bev/Juice/j1/N", "2027-01", value=50, author="bo", id=1), ov("Bev", "2027-01", value=200, id=2)
    )
    result = apply_overrides(lines, overrides, S)
    out = result.lines
    assert at(out, "Bev/Juice/j1/N") == pytest.approx(50)
    assert at(out, "Bev") == pytest.approx(200)
    # Bev (80) x 2.5 puts j2/N at 75 and w1/N at 50; the other series then share 150 of 175
    assert at(out, "Bev/Juice/j2/N") == pytest.approx(75 * 150 / 175)
    assert at(out, "Bev/Water/w1/N") == pytest.approx(50 * 150 / 175)
    assert at(out, "Snk") == pytest.approx(60)
    assert is_coherent(out, S)
    assert result.applied["id"].tolist() == [2, 1]
    assert at(out, "Bev", column="author") == "bo"  # the child applied last
    assert at(out, "Bev/Water/w1/N", column="author") == "ana"
    conflict = result.conflicts.iloc[0]
    assert len(result.conflicts) == 1
    assert (conflict["key"], conflict["override_id"]) == ("Bev", 2)
    assert (conflict["descendant_key"], conflict["descendant_override_id"]) == ("Bev/Juice/j1/N", 1)
    assert conflict["requested"] == pytest.approx(200) and conflict["result"] == pytest.approx(200)
    assert conflict["held"] and conflict["ds"] == MONTHS[0]


def test_conflict_parent_cannot_hold():
    lines, S = make_plan()
    # Bev 100 puts water at 25; Juice 150 alone exceeds 100: water cannot go below zero
    below = apply_overrides(
        lines, frame(ov("Bev", "2027-01", value=100), ov("Bev/Juice", "2027-01", value=150)), S
    )
    assert at(below.lines, "Bev/Juice") == pytest.approx(150)
    assert at(below.lines, "Bev") == pytest.approx(175)
    assert below.conflicts[["requested", "result", "held"]].iloc[0].tolist() == [
        100,
        pytest.approx(175),
        False,
    ]
    # every series under Snk/Chips overridden: nothing is left to absorb the difference
    chips = frame(
        ov("Snk/Chips", "2027-01", value=90),
        ov("Snk/Chips/c1/N", "2027-01", value=50),
        ov("Snk/Chips/c1/S", "2027-01", value=10),
    )
    result = apply_overrides(lines, chips, S)
    assert at(result.lines, "Snk/Chips") == pytest.approx(60)
    assert len(result.conflicts) == 2 and not result.conflicts["held"].any()
    assert set(result.conflicts["descendant_key"]) == {"Snk/Chips/c1/N", "Snk/Chips/c1/S"}
    assert is_coherent(below.lines, S) and is_coherent(result.lines, S)


def test_revert_is_a_replay_without_the_override():
    lines, S = make_plan()
    first, second = ov("Bev", "2027-01", value=100, id=1), ov("N", "2027-01", change_pct=20, id=2)
    both = apply_overrides(lines, frame(first, second), S).lines
    only_first = apply_overrides(lines, frame(first), S).lines
    # replaying from the statistical forecast ignores the consensus already in the lines
    again = apply_overrides(both, frame(first), S).lines
    pd.testing.assert_frame_equal(again, only_first)
    none = apply_overrides(both, frame(first).iloc[:0], S).lines
    assert (none["final"] == lines["statistical"]).all()
    assert none["consensus"].isna().all() and none["author"].isna().all()


def test_many_overrides_on_a_demo_sized_plan_stay_coherent():
    rng = np.random.default_rng(0)
    stat = {f"C{i // 25}/F{i // 5}/s{i}/R{r}": rng.uniform(0, 100, 18) for i in range(125) for r in range(4)}
    lines, S = make_plan(stat, pd.date_range("2027-01-01", periods=18, freq="MS"))
    keys = rng.choice(S.index.to_numpy(), 60)
    overrides = frame(*[ov(k, f"2027-{1 + i % 12:02d}", change_pct=5.0 + i) for i, k in enumerate(keys)])
    result = apply_overrides(lines, overrides, S)
    assert len(S.columns) == 500 and is_coherent(result.lines, S)
    assert (result.lines["final"] >= 0).all()


# --- checking ----------------------------------------------------------------------------


def raw(*rows) -> pd.DataFrame:
    return pd.DataFrame(
        [dict(zip(["key", "month", "value", "change_pct", "author", "reason"], r, strict=True)) for r in rows]
    )


def test_validate_returns_clean_frame_from_python_rows():
    lines, _ = make_plan()
    clean = validate_overrides(
        pd.DataFrame(
            {
                "Key": ["Bev", "Total"],
                "DS": ["2027-01-01", pd.Timestamp("2027-03-15")],
                "change_pct": [5, "-3%"],
            }
            | {"author": ["ana", "bo"], "reason": ["promo", "price"]}
        ),
        lines,
    )
    assert list(clean.columns) == [*OVERRIDE_COLUMNS, "row", "source"]
    assert clean["ds"].tolist() == [MONTHS[0], MONTHS[2]]
    assert clean["change_pct"].tolist() == [5.0, -3.0] and clean["value"].isna().all()
    assert clean["row"].tolist() == [1, 2] and set(clean["source"]) == {"overrides"}


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            ("Bev/Jiuce", "2027-01", 10, None, "ana", "x"),
            "row 1: key='Bev/Jiuce' is not a series of the plan; did you mean 'Bev/Juice'?",
        ),
        (
            ("Bev", "2029-05", 10, None, "ana", "x"),
            "month=2029-05 is outside the plan (its months run 2027-01 to 2027-03)",
        ),
        (("Bev", "March", 10, None, "ana", "x"), "month='March' is not a month"),
        (("Bev", "2027-01", "ten", None, "ana", "x"), "row 1: value='ten' is not a number"),
        (("Bev", "2027-01", 10, 5, "ana", "x"), "value=10 and change_pct=5 are both given"),
        (("Bev", "2027-01", None, None, "ana", "x"), "value and change_pct are both empty"),
        (("Bev", "2027-01", -4, None, "ana", "x"), "value=-4 is below zero"),
        (("Bev", "2027-01", None, -120, "ana", "x"), "change_pct=-120 would take the plan below zero"),
        (("Bev", "2027-01", 10, None, "  ", "x"), "row 1: author is empty"),
        (("Bev", "2027-01", 10, None, "ana", None), "row 1: reason is empty"),
    ],
)
def test_validate_names_row_and_value(row, expected):
    lines, _ = make_plan()
    with pytest.raises(OverrideError) as info:
        validate_overrides(raw(row), lines)
    assert expected in str(info.value)
    assert info.value.exit_code == 2


def test_validate_lists_every_problem_in_one_error():
    lines, _ = make_plan()
    rows = raw(
        ("Bev", "2027-01", 10, None, "ana", "ok"),
        ("Totl", "2027-01", 10, None, "ana", "typo"),
        ("Bev", "2031-01", "x", None, "", "two problems"),
        ("Snk", "2027-02", 1, None, "ana", "first"),
        ("Snk", "2027-02", 2, None, "bo", "ambiguous"),
        ("Snk", "2027-03", 1, None, "ana", "same"),
        ("Snk", "2027-03", 1, None, "ana", "same twice: fine"),
    )
    with pytest.raises(OverrideError) as info:
        validate_overrides(rows, lines)
    text = str(info.value)
    assert "5 problem(s)" in text
    assert "row 2: key='Totl' is not a series of the plan; did you mean 'Total'?" in text
    assert "row 3: month=2031-01 is outside" in text and "row 3: value='x' is not a number" in text
    assert "row 3: author is empty" in text
    assert "row 5: key='Snk', month=2027-02 is also overridden by row 4 with a different value" in text
    assert "row 1:" not in text and "row 7:" not in text
    assert text.rstrip().splitlines()[-1].startswith("Correct these rows")
    clean = validate_overrides(rows.iloc[[0, 5, 6]], lines)
    assert clean["row"].tolist() == [1, 2]  # an exact repeat is kept once


def test_read_csv_and_excel(tmp_path):
    lines, _ = make_plan()
    sheet = pd.DataFrame(
        {
            " Key ": ["Bev/Juice", "Total"],
            "MONTH": [pd.Timestamp("2027-02-01"), pd.Timestamp("2027-03-01")],
            "Value": [120.0, None],
            "Change_Pct": [None, -5.0],
            "Author": ["ana", "bo"],
            "Reason": ["promo", "price"],
        }
    )
    sheet.to_csv(tmp_path / "over.csv", index=False)
    sheet.to_excel(tmp_path / "over.xlsx", index=False)
    for name in ("over.csv", "over.xlsx"):
        read = read_overrides(tmp_path / name)
        assert read["row"].tolist() == [1, 2] and set(read["source"]) == {name}
        clean = validate_overrides(read, lines)
        assert clean["key"].tolist() == ["Bev/Juice", "Total"]
        assert clean["ds"].tolist() == [MONTHS[1], MONTHS[2]]
        assert clean["value"].tolist()[0] == 120 and clean["change_pct"].tolist()[1] == -5
    pd.DataFrame({"key": ["Bev"], "month": ["2027-01"], "author": ["ana"]}).to_csv(
        tmp_path / "bad.csv", index=False
    )
    with pytest.raises(
        OverrideError, match=r"bad.csv: missing column\(s\) reason, value or change_pct"
    ) as info:
        read_overrides(tmp_path / "bad.csv")
    assert "key,month,value,change_pct,author,reason" in str(info.value)
    # a row problem names the file
    pd.DataFrame(
        {"key": ["Bev/Jiuce"], "month": ["2027-01"], "value": [1], "author": ["a"], "reason": ["r"]}
    ).to_csv(tmp_path / "typo.csv", index=False)
    with pytest.raises(OverrideError, match=r"typo.csv: 1 problem\(s\)"):
        validate_overrides(read_overrides(tmp_path / "typo.csv"), lines)


# --- limits, ids as text and plausibility (issue 19) ----------------------------------------


def test_values_above_the_history_limit_are_refused():
    from sopforecast.data.schema import MAX_ABS_VALUE
    from sopforecast.errors import DataError

    lines, _ = make_plan()
    rows = raw(
        ("Bev", "2027-01", "1e300", None, "ana", "typo"),
        ("Bev", "2027-02", MAX_ABS_VALUE, None, "ana", "at the limit: fine"),
        ("Total", "2027-03", None, 1e12, "ana", "percent typo"),
        ("Bev", "2027-03", "nan", None, "ana", "not a number"),
    )
    with pytest.raises(OverrideError) as info:
        validate_overrides(rows.assign(source="plan.csv"), lines)
    text = str(info.value)
    assert isinstance(info.value, DataError) and info.value.exit_code == 2
    assert text.startswith("plan.csv: 3 problem(s)")
    assert "row 1: value='1e300' is above the limit of 1,000,000,000,000 units" in text
    assert "row 3: change_pct=1000000000000 would take the plan to" in text and "above the limit" in text
    assert "row 4: value='nan' is not a finite number" in text and "row 2" not in text


def test_read_overrides_keeps_ids_as_written(tmp_path):
    stat = {"00101/NA": [1, 2, 3], "0101/None": [4, 5, 6], "101/NULL": [7, 8, 9]}
    lines, _ = make_plan(stat, hierarchy=["group/item"])
    path = tmp_path / "over.csv"
    path.write_text(
        "key,month,value,author,reason\n"
        "00101/NA,2027-01,5,ana,x\n0101,2027-02,6,ana,x\n101/NULL,2027-03,7,ana,x\nNA,2027-01,1,ana,x\n,,,,\n"
    )
    read = read_overrides(path)
    assert read["key"].tolist() == ["00101/NA", "0101", "101/NULL", "NA"]
    with pytest.raises(OverrideError, match="row 4: key='NA' is not a series"):
        validate_overrides(read, lines)
    clean = validate_overrides(read.iloc[:3], lines)
    assert clean["key"].tolist() == ["00101/NA", "0101", "101/NULL"]
    assert clean["value"].tolist() == [5.0, 6.0, 7.0]


def test_implausible_changes_beyond_five_times_either_way():
    from sopforecast.planning.consensus import implausible_changes, plausibility_warnings

    lines, S = make_plan()
    overrides = frame(
        ov("Bev/Juice/j1/N", "2027-01", value=400.0),  # 10 -> 400: 40x
        ov("Bev/Juice/j2/N", "2027-01", value=149.0),  # 30 -> 149: under 5x
        ov("Snk/Chips/c1/N", "2027-02", value=8.0),  # 41 -> 8: 1/5.1
        ov("Bev/Water/w1/N", "2027-02", value=6.0),  # 0 -> 6: beyond 5x of the 1-unit floor
        ov("Bev/Water/w1/S", "2027-01", value=0.5),  # 0 -> 0.5: both under the floor
    )
    result = apply_overrides(lines, overrides, S)
    found = implausible_changes(result.applied, lines)
    assert list(found.columns) == ["key", "ds", "statistical", "requested", "final", "ratio"]
    assert found["key"].tolist() == ["Bev/Juice/j1/N", "Snk/Chips/c1/N", "Bev/Water/w1/N"]
    assert found["ratio"].tolist() == pytest.approx([40.0, 8 / 41, 6.0])
    lines_text = plausibility_warnings(found)
    assert lines_text[0] == (
        "Bev/Juice/j1/N 2027-01: 400 is 40x the statistical forecast 10 (beyond 5x either way); "
        "check it is meant"
    )
    assert "is 1/5.12 the statistical forecast 41" in lines_text[1]
    assert implausible_changes(result.applied, lines, factor=50).empty
    assert len(implausible_changes(result.applied, lines, factor=2)) == 4
    with pytest.raises(OverrideError, match="factor must be above 1"):
        implausible_changes(result.applied, lines, factor=1)
