"""Money and status rules of the manager report: at stake counted once, one rule for bias and
tracking signal, a currency, drift in one unit, FVA without overrides, files kept in their folder."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from sopforecast.errors import SopforecastError
from sopforecast.monitoring.drift import DriftSettings, drift_monitor
from sopforecast.monitoring.report import ReportData, fva_summary, render_html, report_name, write_report
from sopforecast.monitoring.rules import bias_status, count_once, persistent, stake_members

# a grouped hierarchy: Total > category > sku, and region crossing it
S = pd.DataFrame(
    [[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 0, 0], [1, 0, 1, 0], [0, 1, 0, 1]],
    index=["Total", "Food", "Soap", "Food/a", "West", "East"],
    columns=["Food/a", "Food/b", "Soap/c", "Soap/d"],
)


def exceptions(keys: list[str], stakes: list[float]) -> pd.DataFrame:
    rows = [
        {
            "rank": i + 1,
            "key": k,
            "level": "x",
            "metric": "bias",
            "lag": 3,
            "value": 0.1,
            "target": "|x| <= 0.05",
            "trend": "",
            "direction": "new",
            "action": "act",
            "at_stake": s,
        }
        for i, (k, s) in enumerate(zip(keys, stakes, strict=True))
    ]
    return pd.DataFrame(rows)


def test_count_once_keeps_the_broadest_item_and_each_key_once():
    members = stake_members(S)
    frame = exceptions(["Food/a", "Food", "Food/a", "West", "Soap"], [900.0, 500.0, 900.0, 700.0, 300.0])
    once = count_once(frame, members)
    # Food holds Food/a; West overlaps Food (Food/a) and is as broad: the better ranked counts
    assert once["counted"].tolist() == [False, True, False, False, True]
    assert once["within"].tolist()[:4] == [2, pd.NA, 2, 2]
    assert frame.loc[once["counted"], "at_stake"].sum() == 800.0
    # without members every key overlaps only itself: repeated rows still count once
    alone = count_once(frame)
    assert frame.loc[alone["counted"], "at_stake"].sum() == 900 + 500 + 700 + 300
    # segments: all holds everything
    segments = pd.DataFrame({"unique_id": S.columns, "abc": ["A", "A", "B", "C"]})
    members = stake_members(S, segments)
    assert members["abc=A"] == {"Food/a", "Food/b"} and members["all"] == set(S.columns)
    both = exceptions(["abc=A", "all", "Food/a"], [10.0, 4.0, 3.0])
    assert count_once(both, members)["counted"].tolist() == [False, True, False]


def test_report_total_counts_once_and_names_its_rule_and_currency():
    frame = exceptions(["Food/a", "Food", "Food/a", "West", "Soap"], [900.0, 500.0, 900.0, 700.0, 300.0])
    data = ReportData(
        plan="p",
        cycle="2025-12",
        generated_at="now",
        exceptions=frame,
        stake_members=stake_members(S),
        currency="EUR",
    )
    html = render_html(data)
    assert '<strong data-total="800.00">EUR 800</strong>' in html
    assert "counting 2 items" in html and "only the broadest counts" in html
    assert "At stake (EUR)" in html and "EUR 900" in html and "counted in #2" in html


@pytest.mark.parametrize(
    ("bias", "ts", "n", "expected"),
    [
        (-0.15, -4.0, 4, "red"),  # every error one-sided: as off target as its bias
        (-0.08, -4.0, 4, "amber"),
        (-0.01, -4.0, 4, "green"),  # persistent but inside the band: nothing to act on
        (-0.15, -2.0, 4, "green"),  # off, but the errors still cancel: not persistent
        (-0.15, -4.0, 8, "green"),  # eight errors can pass 4: on the bound is not past it
        (0.15, 4.5, 8, "red"),
        (0.15, 4.5, None, "red"),
        (float("nan"), 5.0, 4, "green"),
    ],
)
def test_tracking_signal_shares_the_bias_rule(bias, ts, n, expected):
    assert bias_status(bias, ts, n) == expected


def test_persistent():
    assert persistent(-4.0, 4) and persistent(-3.0, 3) and persistent(4.01)
    assert not persistent(-4.0, 5) and not persistent(float("nan"), 4) and not persistent(-3.9)


def test_fva_without_overrides_says_so():
    fva = pd.DataFrame(
        {
            "level": ["Total", "category"],
            "lag": [1, 3],
            "wape_naive": [0.2, 0.3],
            "wape_statistical": [0.1, 0.2],
            "wape_final": [0.1, 0.2],
            "fva_statistical": [0.1, 0.1],
            "fva_consensus": [0.0, 1e-15],
        }
    )
    text = fva_summary(fva)
    assert text.startswith("No overrides yet") and "Mixed" not in text and "all 2 combinations" in text


def test_drift_rows_in_one_unit():
    frame = exceptions(["Food", "Soap"], [10.0, 5.0]).assign(
        metric=["drift of demand", "drift of forecast errors"], value=[0.6666, 0.58], target="<= 0.5"
    )
    drift = pd.DataFrame(
        {
            "segment": ["Food", "Soap"],
            "column": ["y", "residual"],
            "score": [0.6666, 0.58],
            "change_pct": [40.0, np.nan],
            "drifted": [True, True],
        }
    )
    html = render_html(
        ReportData(
            plan="p", cycle="2025-12", generated_at="now", exceptions=frame, drift=drift, drift_threshold=0.5
        )
    )
    body = html[html.index('id="exceptions-table"') :]
    assert "0.67" in body and "0.58" in body and body.count("≤ 0.50") == 2
    assert "58.0%" not in html and "50.0%" not in html
    table = html[html.index('id="drift-table"') :]
    assert re.search(r">0\.67<.*>0\.50<", table, flags=re.S)


def test_names_from_a_plan_or_cycle_stay_in_the_folder(tmp_path):
    folder = tmp_path / "reports"
    for cycle in ("../../escaped", "2025/12", "..", "/etc/passwd"):
        name = report_name(cycle)
        assert "/" not in name and not name.startswith("manager_report_.")
        html, _ = write_report(
            ReportData(plan="../../escaped", cycle=cycle, generated_at="now"), folder, pdf=False
        )
        assert html.resolve().parent == folder.resolve()
    assert not list(tmp_path.glob("escaped*")) and not (tmp_path.parent / "escaped").exists()
    # drift reports of segments named to escape
    rng = np.random.default_rng(0)
    months = pd.date_range("2024-01-01", periods=15, freq="MS")
    frame = pd.DataFrame(
        [
            {"unique_id": f"s{i}", "ds": d, "y": rng.normal(10, 1), "segment": seg}
            for i, seg in enumerate(["../../escaped", "a/b"])
            for d in months
        ]
    )
    result = drift_monitor(frame, "segment", DriftSettings(columns=["y"], residual=None), folder / "drift")
    assert all((folder / "drift").resolve() in p.resolve().parents for p in result.reports.values())
    with pytest.raises(SopforecastError, match="outside"):
        from sopforecast.exports import inside

        inside(folder, "../escaped.html")
