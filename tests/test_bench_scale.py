"""The scale benchmark (``python -m sopforecast.bench.scale``): a tiny cycle runs and its
table adds up; the 1,000-series cycle is a ``slow`` benchmark."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from sopforecast.bench import scale

COLUMNS = {
    "models",
    "series",
    "all_series",
    "wall_s",
    "backtest_s",
    "fit_s",
    "reconcile_s",
    "tracking_s",
    "plan_s",
    "other_s",
    "peak_rss_mb",
    "s_per_series",
    "tracking_plan_share",
    "series_x",
    "time_x",
    "memory_x",
    "time_exponent",
    "load_1min",
}


def _check(table: pd.DataFrame, sizes: list[int]) -> None:
    assert COLUMNS <= set(table.columns)
    assert table["series"].tolist() == sizes
    assert (table["all_series"] > table["series"]).all()  # the aggregates are forecast too
    for column in ("wall_s", "backtest_s", "fit_s", "tracking_s", "plan_s", "peak_rss_mb", "s_per_series"):
        assert (table[column] > 0).all(), column
    per_series = (table["s_per_series"] * table["series"]).to_numpy()
    assert per_series == pytest.approx(table["wall_s"].to_numpy(), rel=1e-3)
    stages = table.filter(regex=r"_s$").drop(columns=["wall_s", "generate_s", "model_s"])
    assert stages.sum(axis=1).to_numpy() == pytest.approx(table["wall_s"].to_numpy(), abs=0.1)
    assert table["tracking_plan_share"].iloc[0] > 0
    model = table[[c for c in scale.MODEL_STAGES if c in table]].sum(axis=1)
    assert table["model_s"].to_numpy() == pytest.approx(model.to_numpy())
    assert table["engine"].tolist() == ["local"] * len(table)
    first = table.iloc[0]
    assert (first["series_x"], first["time_x"], first["memory_x"]) == (1, 1, 1)


@pytest.mark.slow  # a whole monthly cycle through the benchmark (50 s): CI keeps to 20 minutes
def test_a_tiny_cycle_adds_up(tmp_path):
    assert scale.main(["--sizes", "60", "--models", "fast", "--output", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "scale.csv")
    _check(table, [60])
    assert json.loads((tmp_path / "scale.json").read_text())[0]["series"] == 60


def test_the_cycle_runs_the_demo_pipeline_on_the_engine_asked(tmp_path):
    import yaml

    spec = yaml.safe_load(scale._spec_file(tmp_path / "d.csv", ["theta"], tmp_path, "dask").read_text())
    assert spec["forecast"]["engine"] == "dask" and spec["forecast"]["models"] == ["theta"]
    assert spec["plan"]["enabled"] and not spec["balance"]["enabled"] and not spec["monitor"]["enabled"]


def test_growth_compares_each_size_with_the_smallest_of_its_model_set():
    table = pd.DataFrame(
        {
            "models": ["fast", "fast", "auto"],
            "series": [100, 1000, 100],
            "wall_s": [10.0, 100.0, 30.0],
            "backtest_s": [4.0, 40.0, 10.0],
            "fit_s": [4.0, 40.0, 10.0],
            "tracking_s": [1.0, 5.0, 1.0],
            "plan_s": [1.0, 5.0, 2.0],
            "other_s": [0.0, 5.0, 4.0],
            "load_validate_s": [0.0, 5.0, 3.0],
            "peak_rss_mb": [500.0, 1000.0, 800.0],
        }
    )
    out = scale.growth(table)
    assert out["time_x"].tolist() == [1.0, 10.0, 1.0]
    assert out["memory_x"].tolist() == [1.0, 2.0, 1.0]
    assert out["time_exponent"].iloc[1] == pytest.approx(1.0)  # linear
    # all but the models and the data's loading, of the model time
    assert out["tracking_plan_share"].tolist() == [0.25, 0.188, 0.35]
    assert "time_x" not in table  # the table given is left as it was


@pytest.mark.slow
def test_the_1000_series_cycle(tmp_path):
    sizes = ["--sizes", "1000", "--models", "fast", "--output", str(tmp_path)]
    assert scale.main([*sizes, "--profile", "1000:fast"]) == 0
    _check(pd.read_csv(tmp_path / "scale.csv"), [1000])
    assert "cumulative" in (tmp_path / "profile_1000_fast.txt").read_text()
