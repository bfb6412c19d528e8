"""The Dask engine (``forecast.engine: dask``) on a real LocalCluster of 2 worker processes:
the same forecasts and backtest as the local engine (to float32 precision, the Fugue
backend's), the same frame types, the CLI flag, and a pipeline run tracked like any other.
Skipped when dask or distributed is not installed (``pip install -e '.[dask]'``).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")

from mlflow import MlflowClient  # noqa: E402
from sopforecast.cli import main  # noqa: E402
from sopforecast.config import DaskConfig, ForecastConfig  # noqa: E402
from sopforecast.errors import ConfigError  # noqa: E402
from sopforecast.forecasting import dask_engine  # noqa: E402
from sopforecast.forecasting.forecaster import Forecaster  # noqa: E402
from sopforecast.pipeline.runner import run_pipeline  # noqa: E402
from sopforecast.pipeline.spec import load_pipeline  # noqa: E402
from sopforecast.pipeline.tracking import resolve_store  # noqa: E402
from sopforecast.workdir import Workdir  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic import smooth_and_sporadic  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# float32 holds 24 bits of mantissa: 6e-8 relative; a margin for sums of rounded values
RTOL = 1e-5


@pytest.fixture()
def cluster():
    """A LocalCluster for the test; the forecaster's fits join it instead of starting theirs."""
    with dask_engine.session(n_workers=2) as run:
        yield run


@pytest.fixture(scope="module")
def history():
    return smooth_and_sporadic(n_smooth=5, periods=48)


EVERY_PATH = ("ets", "ces", "theta", "croston", "naive")


def _config(engine: str, models: tuple[str, ...] = EVERY_PATH) -> ForecastConfig:
    # by default ETS (carried forward), CES (re-estimated at each origin), theta, Croston
    # (no forward: refit), naive: every path of the statistical backtest
    return ForecastConfig(horizon=6, models=list(models), windows=2, engine=engine)


def test_the_cluster_is_local_loopback_with_two_single_threaded_spawned_workers(cluster):
    info = cluster.client.scheduler_info()
    assert cluster.address.startswith("tcp://127.0.0.1:")
    assert len(info["workers"]) == 2 and cluster.n_workers == 2
    assert all(w["nthreads"] == 1 and w["host"] == "127.0.0.1" for w in info["workers"].values())
    methods = cluster.client.run(lambda: __import__("multiprocessing").get_start_method())
    assert set(methods.values()) == {"spawn"}
    # nothing listens beyond loopback: scheduler, its HTTP endpoints, workers and nannies
    import psutil

    processes = [psutil.Process(), *psutil.Process().children(recursive=True)]
    listening = {c.laddr.ip for p in processes for c in p.net_connections() if c.status == "LISTEN"}
    assert listening == {"127.0.0.1"}


def test_dask_forecasts_and_backtest_match_the_local_engine(cluster, history, caplog):
    local = Forecaster(_config("local")).fit(history)
    with caplog.at_level(logging.INFO, logger="sopforecast"):
        dask = Forecaster(_config("dask")).fit(history)
    said = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("Statistical models fit on the Dask cluster at tcp://127.0.0.1:") for m in said)
    # the backtest: every model, window and series; y exactly the history's
    a = local.backtest_.cv.sort_values(["unique_id", "cutoff", "ds"]).reset_index(drop=True)
    b = dask.backtest_.cv.sort_values(["unique_id", "cutoff", "ds"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b[a.columns], rtol=RTOL)
    assert (a["y"].to_numpy() == b["y"].to_numpy()).all()
    # the same selection, and the forecast delivered (point and intervals)
    pd.testing.assert_frame_equal(local.selection_, dask.selection_)
    ours, theirs = local.predict(), dask.predict()
    pd.testing.assert_frame_equal(ours.forecast, theirs.forecast, rtol=RTOL)
    pd.testing.assert_frame_equal(ours.candidates, theirs.candidates[ours.candidates.columns], rtol=RTOL)
    # typed as the local engine's: str ids, datetime64[ns] dates, float64 numbers
    frame = dask.stats_wide_
    assert frame["unique_id"].dtype == object and isinstance(frame["unique_id"].iloc[0], str)
    assert frame["ds"].dtype == "datetime64[ns]"
    assert all(frame[c].dtype == "float64" for c in frame.columns if c not in ("unique_id", "ds"))


@pytest.fixture()
def scheduler():
    """A cluster of someone else's, known by its address only."""
    from distributed import LocalCluster

    loopback = {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}
    with LocalCluster(n_workers=2, threads_per_worker=1, **loopback) as cluster:
        yield cluster.scheduler_address


def test_cross_validation_on_a_cluster_given_by_address_and_the_cli_flags(
    scheduler, history, tmp_path, capsys, caplog
):
    ours = Forecaster(_config("local", ("ets", "naive"))).cross_validation(history).metrics
    config = _config("dask", ("ets", "naive")).model_copy(update={"dask": DaskConfig(address=scheduler)})
    with caplog.at_level(logging.INFO, logger="sopforecast"):
        theirs = Forecaster(config).cross_validation(history).metrics
    pd.testing.assert_frame_equal(ours, theirs, rtol=RTOL)
    said = [r.getMessage() for r in caplog.records]
    assert f"Connected to the Dask scheduler at {scheduler} (2 workers)" in said
    assert f"Disconnected from the Dask scheduler at {scheduler}" in said
    assert not any("LocalCluster" in m for m in said)
    data = tmp_path / "sales.csv"
    history.to_csv(data, index=False)
    out = tmp_path / "fc.csv"
    args = ["forecast", "--data", str(data), "--horizon", "6", "--models", "ets,naive", "--output", str(out)]
    assert main([*args, "--engine", "dask", "--dask-address", scheduler]) == 0
    assert len(pd.read_csv(out)) == history["unique_id"].nunique() * 6
    assert main([*args, "--engine", "spark"]) == 2
    assert "--engine" in capsys.readouterr().err


def test_without_dask_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ConfigError, match=r"pip install 'sopforecast\[dask\]'") as info:
        dask_engine.require()
    assert info.value.setting == "engine"


# a whole pipeline on a LocalCluster (30 s); the engine's forecasts and backtest are checked
# against the local engine above: CI keeps to 20 minutes
@pytest.mark.slow
def test_a_pipeline_run_with_engine_dask_is_tracked_and_registered(tmp_path, caplog, capfd):
    """The demo pipeline on 6 series (a hierarchy of ~25) with drivers and LightGBM: its own
    cluster, started and closed; params, metrics and the registered model as for any run."""
    settings = [
        "data.demo.series=6",
        "forecast.models=[ets,lgbm]",
        "forecast.horizon=6",
        "forecast.windows=1",
        "forecast.engine=dask",
        "plan.enabled=false",
        "balance.enabled=false",
        "monitor.enabled=false",
    ]
    spec = load_pipeline(REPO / "pipelines" / "monthly_demand_plan.yaml", settings)
    workdir = Workdir(tmp_path / "work")
    assert dask_engine.active() is None  # the run starts its own cluster
    with caplog.at_level(logging.INFO, logger="sopforecast"):
        result = run_pipeline(spec, workdir)
    said = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("Started a Dask LocalCluster at tcp://127.0.0.1:") for m in said)
    assert any(m.startswith("Closed the Dask LocalCluster at tcp://127.0.0.1:") for m in said)
    assert "DataFrameGroupBy.apply" not in capfd.readouterr().err  # the workers' noise is silenced
    assert any(m.startswith("LightGBM fits on the client, not on the Dask cluster") for m in said)
    assert dask_engine.active() is None
    client: MlflowClient = resolve_store(workdir).client()
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["forecast.engine"] == "dask"
    assert run.data.params["forecast.dask.n_workers"] == "2"
    assert {"backtest_wape", "backtest_mase"} <= set(run.data.metrics)
    versions = client.search_model_versions(f"run_id = '{result.run_id}'")
    assert versions and versions[0].name == "monthly_demand_plan"
    forecast = result.evaluation.forecast
    assert forecast["forecast"].notna().all() and (forecast["forecast"] >= 0).all()
