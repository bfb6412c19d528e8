"""New items through a pipeline run: a launch file (``data.launches``) or a ``like_item`` column in
the sales history, into the forecast, the MLflow run and the demand plan; names a spreadsheet
would run as formulas stay text in every export."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest

from sopforecast.cli import main
from sopforecast.errors import DataError
from sopforecast.pipeline.runner import run_pipeline
from sopforecast.pipeline.sources import like_item_launches
from sopforecast.pipeline.spec import load_pipeline
from sopforecast.pipeline.tracking import resolve_store
from sopforecast.workdir import Workdir

MONTHS = pd.date_range("2022-01-01", periods=30, freq="MS")  # to 2024-06
ITEMS = {"101": "NA", "102": "NA", "201": "EU"}


def _history(extra: pd.DataFrame | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    season = 1 + 0.3 * np.sin(2 * np.pi * MONTHS.month / 12)
    rows = [
        pd.DataFrame(
            {
                "region": region,
                "sku": sku,
                "month": MONTHS,
                "qty": np.round(50 * season + rng.normal(0, 3, 30)),
            }
        )
        for sku, region in ITEMS.items()
    ]
    return pd.concat([*rows, *([extra] if extra is not None else [])], ignore_index=True)


def _pipeline(tmp_path, launches: str = "") -> Workdir:
    (tmp_path / "p.yaml").write_text(
        textwrap.dedent(
            f"""
            name: launch
            data: {{path: sales.csv, hierarchy: [region/sku], time_col: month, target_col: qty, freq: MS,
                    min_length: 1, short_series: report{launches}}}
            forecast: {{horizon: 3, models: [naive, snaive], windows: 1, reconcile: bottom_up}}
            plan: {{enabled: true, months: 3}}
            """
        )
    )
    return Workdir(tmp_path / "work")


def _sum_over(forecast: pd.DataFrame, ids: list[str]) -> pd.Series:
    return forecast[forecast["unique_id"].isin(ids)].groupby("ds")["forecast"].sum()


def test_a_launch_file_forecasts_a_new_item_named_like_a_formula_and_its_exports_stay_text(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("SOPFORECAST_USER", "ana")
    _history().to_csv(tmp_path / "sales.csv", index=False)
    # a new region and item whose names a spreadsheet would evaluate
    pd.DataFrame(
        {
            "region": ["=EVIL"],
            "sku": ["-1+2"],
            "like_item": ["NA/101"],
            "launch_month": ["2024-08"],
            "scale": [0.5],
        }
    ).to_csv(tmp_path / "launches.csv", index=False)
    workdir = _pipeline(tmp_path, ", launches: launches.csv")
    result = run_pipeline(load_pipeline(tmp_path / "p.yaml"), workdir)

    forecast = pd.read_csv(result.outputs["forecast"], dtype={"unique_id": str}, keep_default_na=False)
    forecast["ds"] = pd.to_datetime(forecast["ds"])
    ids = set(forecast["unique_id"])
    new = next(i for i in ids if i.endswith("-1+2"))
    like = forecast[forecast["unique_id"] == "NA/101"].set_index("ds")["forecast"]
    mine = forecast[forecast["unique_id"] == new].set_index("ds")["forecast"]
    # nothing before the launch month, half the like item's forecast from it
    assert mine.loc["2024-07-01"] == pytest.approx(0.0)
    assert mine.loc["2024-08-01":].to_numpy() == pytest.approx(0.5 * like.loc["2024-08-01":].to_numpy())
    # the total holds the new item: coherent
    bottoms = [i for i in ids if i.count("/") == 1]
    total = forecast[forecast["unique_id"] == "Total"].set_index("ds")["forecast"]
    assert total.to_numpy() == pytest.approx(_sum_over(forecast, bottoms).to_numpy())
    # the run logs the launch rule
    client = resolve_store(workdir).client()
    run = client.get_run(result.run_id)
    assert run.data.metrics["launched_items"] == 1.0
    logged = pd.read_csv(client.download_artifacts(result.run_id, "results/launches.csv", str(tmp_path)))
    assert logged["how"].tolist() == ["scale"] and logged["like_item"].tolist() == ["NA/101"]
    # no cell of the written forecast or the plan export starts a formula
    raw = (tmp_path / "plan.csv").parent
    assert main(["plan", "export", "-o", str(raw / "plan.csv"), "--workdir", str(workdir.root)]) == 0, (
        capsys.readouterr().err
    )
    for path in (result.outputs["forecast"], raw / "plan.csv"):
        cells = pd.read_csv(path, dtype=str, keep_default_na=False).to_numpy().ravel()
        texts = [c for c in cells if not _is_number(c)]
        assert not [c for c in texts if c.startswith(("=", "+", "-", "@"))], path
        assert any("EVIL" in c for c in texts), path


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_a_like_item_column_in_the_history_launches_its_short_item_from_the_like_item(tmp_path):
    young = pd.DataFrame(
        {
            "region": "EU",
            "sku": "202",
            "month": MONTHS[-4:],
            "qty": [20.0, 22.0, 21.0, 23.0],
            "like_item": "EU/201",
        }
    )
    _history(young).to_csv(tmp_path / "sales.csv", index=False)
    workdir = _pipeline(tmp_path)
    result = run_pipeline(load_pipeline(tmp_path / "p.yaml"), workdir)
    forecast = pd.read_csv(result.outputs["forecast"], dtype={"unique_id": str})
    like = forecast[forecast["unique_id"] == "EU/201"]["forecast"].to_numpy()
    mine = forecast[forecast["unique_id"] == "EU/202"]["forecast"].to_numpy()
    # the like item's profile at the young item's level (about 0.4 of it), not a flat fallback
    ratio = mine / like
    assert ratio == pytest.approx(np.full(len(ratio), ratio[0]))
    assert 0.3 < ratio[0] < 0.55
    client = resolve_store(workdir).client()
    assert client.get_run(result.run_id).data.metrics["launched_items"] == 1.0


def test_like_item_column_rules():
    history = pd.DataFrame(
        {
            "unique_id": ["A"] * 30 + ["N"] * 3,
            "ds": list(MONTHS) + list(MONTHS[-3:]),
            "y": [5.0] * 33,
        }
    )
    from sopforecast.pipeline.spec import PipelineData

    data = PipelineData(path="x.csv", id_col="sku")
    raw = pd.DataFrame({"sku": ["A", "N", "N", "F", "B"], "like_item": ["", "A", "A", "A", None]})
    out = like_item_launches(raw, history, data, "sales.csv").set_index("new_item")
    # A is its own mature item with no like item; N has 3 months: launched at its first sale,
    # level from them; F sells nothing yet: launched next month, like A at scale 1
    assert sorted(out.index) == ["F", "N"]
    assert out.loc["N", "launch_month"] == "2024-04" and np.isnan(out.loc["N", "scale"])
    assert out.loc["F", "launch_month"] == "2024-07" and out.loc["F", "scale"] == 1.0
    # a mature item keeps its own forecast even with a like item named
    raw_mature = pd.DataFrame({"sku": ["A"], "like_item": ["N"]})
    assert like_item_launches(raw_mature, history, data, "sales.csv").empty
    with pytest.raises(DataError, match=r"more than one like item for \[.N.\]"):
        like_item_launches(pd.DataFrame({"sku": ["N", "N"], "like_item": ["A", "B"]}), history, data, "s.csv")


def test_a_delisting_file_ends_an_items_forecast_after_its_last_month(tmp_path):
    _history().to_csv(tmp_path / "sales.csv", index=False)
    pd.DataFrame({"region": ["EU"], "sku": ["201"], "last_month": ["2024-07"]}).to_csv(
        tmp_path / "delistings.csv", index=False
    )
    workdir = _pipeline(tmp_path, ", delistings: delistings.csv")
    result = run_pipeline(load_pipeline(tmp_path / "p.yaml"), workdir)
    forecast = pd.read_csv(result.outputs["forecast"], dtype={"unique_id": str}, parse_dates=["ds"])
    gone = forecast[forecast["unique_id"] == "EU/201"].set_index("ds")["forecast"]
    assert gone.loc["2024-07-01"] > 0 and (gone.loc["2024-08-01":] == 0).all()
    region = forecast[forecast["unique_id"] == "EU"].set_index("ds")["forecast"]
    assert (region.loc["2024-08-01":] == 0).all()  # its only item
    total = forecast[forecast["unique_id"] == "Total"].set_index("ds")["forecast"]
    assert total.to_numpy() == pytest.approx(_sum_over(forecast, ["NA/101", "NA/102", "EU/201"]).to_numpy())
    client = resolve_store(workdir).client()
    assert client.get_run(result.run_id).data.metrics["delisted_items"] == 1.0
    logged = pd.read_csv(client.download_artifacts(result.run_id, "results/delistings.csv", str(tmp_path)))
    assert logged["item"].tolist() == ["EU/201"]
