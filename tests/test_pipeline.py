"""Tracked pipelines: YAML validation, MLflow runs, registry aliases, failures, history.

A tiny flat pipeline (a few series, cheap models) keeps runs to seconds; a hierarchical run
on small demo data checks per-level logging and plots.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlflow import MlflowClient
from sopforecast.cli import main
from sopforecast.errors import ConfigError
from sopforecast.pipeline import steps
from sopforecast.pipeline.history import AlreadyRunning, RunHistory, pipeline_lock
from sopforecast.pipeline.runner import run_pipeline
from sopforecast.pipeline.spec import load_pipeline
from sopforecast.pipeline.tracking import resolve_store
from sopforecast.workdir import Workdir

REPO = Path(__file__).resolve().parents[1]


def _history(path: Path, n: int = 4, periods: int = 40, seed: int = 0, scale: float = 1.0) -> Path:
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2021-01-01", periods=periods, freq="MS")
    season = 1 + 0.3 * np.sin(np.arange(periods) * 2 * np.pi / 12)
    frame = pd.concat(
        [
            pd.DataFrame(
                {
                    "sku": f"SKU-{i}",
                    "month": ds,
                    "qty": np.round(scale * 50 * (i + 1) * season + rng.normal(0, 4, periods)),
                }
            )
            for i in range(n)
        ]
    )
    frame.to_csv(path, index=False)
    return path


def _pipeline(folder: Path, name: str = "tiny", data: str = "sales.csv", extra: str = "") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            name: {name}
            data:
              path: {data}
              id_col: sku
              time_col: month
              target_col: qty
              freq: MS
            forecast:
              horizon: 6
              models: [snaive, naive]
              windows: 2
            tracking:
              promote_margin: 0.01
            """
        )
        + extra
    )
    return path


@pytest.fixture()
def tiny(tmp_path):
    _history(tmp_path / "sales.csv")
    return _pipeline(tmp_path), Workdir(tmp_path / "work")


def _client(workdir: Workdir) -> MlflowClient:
    """The work directory store's client (no global tracking URI)."""
    return resolve_store(workdir).client()


# --- definitions ---------------------------------------------------------------------------


def test_shipped_pipelines_validate():
    for path in sorted((REPO / "pipelines").glob("*.yaml")):
        spec = load_pipeline(path)
        assert spec.name == path.stem
        assert spec.forecast.freq == spec.data.freq


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("name: x\nforcast: {horizon: 6}\n", "forcast: unknown key"),
        ("name: x\nforecast: {horizon: soon}\n", "forecast.horizon"),
        ("name: x\nforecast: {horizon: 48}\n", "at most 36"),
        ("name: x\ndata: {path: nowhere.csv}\n", "does not exist"),
        ("name: x\nforecast:\n  horizon: 6\n   models: auto\n", "invalid YAML at line"),
        ("name: x\nmonitor: {enabled: true}\n", "monitor.enabled needs plan.enabled"),
        ("name: x\nmonitor: {targets: [{metric: accurcy, level: Total, min: 0.8}]}\n", "accurcy"),
        ("name: x\nplan: {enabled: true, prices: {source: file}}\n", "plan.prices.file"),
        ("name: x\nplan: {enabled: true, months: 24}\n", "plan.months is 24 but forecast.horizon is 18"),
        ("- just\n- a list\n", "YAML mapping"),
    ],
)
def test_bad_pipeline_files_give_clear_errors(tmp_path, capsys, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_pipeline(path)
    assert main(["run", str(path), "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "bad.yaml" in err


def test_overrides_set_nested_keys_and_reject_bad_ones(tiny):
    path, _ = tiny
    spec = load_pipeline(
        path, ["forecast.horizon=12", "forecast.models=[ets, theta]", "tracking.promote_margin=0.05"]
    )
    assert spec.forecast.horizon == 12 and spec.forecast.models == ["ets", "theta"]
    assert spec.tracking.promote_margin == 0.05
    with pytest.raises(ConfigError, match="key=value"):
        load_pipeline(path, ["forecast.horizon"])
    with pytest.raises(ConfigError, match="unknown key"):
        load_pipeline(path, ["forecast.horizn=3"])


# --- the steps, without MLflow ---------------------------------------------------------------


def test_steps_compute_metrics_candidates_and_outputs_without_writing(tiny, tmp_path):
    path, workdir = tiny
    spec = load_pipeline(path, ["targets.wape=0.0001", "targets.bias=1.0"])
    data = steps.load(spec, workdir)
    assert data.frame["unique_id"].nunique() == 4
    ev = steps.evaluate(data.frame, spec.forecast, data.future)
    metrics = steps.run_metrics(ev, data)
    assert metrics["backtest_wape"] == ev.headline["wape"] and "test_smape" not in metrics
    # the targets: a wape no forecast meets, a bias every forecast meets
    assert steps.target_checks(spec, ev.headline) == {"wape": False, "bias": True}
    # without a hierarchy, one row: every series, as delivered
    checks = steps.level_checks(spec, ev).iloc[0]
    assert checks["level"] == "all" and checks["method"] == "base" and ev.method == "base"
    assert checks["wape"] == ev.headline["wape"] and checks["wape_target"] == 0.0001
    assert not checks["wape_met"] and checks["bias_met"]
    candidates = {c.name: c for c in steps.candidate_runs(ev, spec.forecast)}
    assert set(candidates) == {"SeasonalNaive", "Naive"}
    naive = candidates["Naive"]
    assert naive.params["model"] == "naive" and naive.params["windows"] == "2"
    assert len(naive.windows) == 2 and set(naive.windows[0]) >= {"window_wape", "window_mase"}
    summary = ev.backtest.summary.set_index("model")
    assert naive.metrics["wape"] == pytest.approx(summary.loc["Naive", "wape"])
    written = steps.result_tables(ev, data, spec, tmp_path / "results")
    assert {p.name for p in written} >= {
        "forecast.parquet",
        "validation.json",
        "pipeline.yaml",
        "level_targets.csv",
    }
    assert all(p.is_file() for p in written)
    targets = steps.output_targets(spec, workdir, ev)
    assert set(targets) == {"forecast", "backtest summary"}
    assert not targets["forecast"][1].exists()  # places only: the runner writes them
    folder = steps.challenger_folder(workdir, "tiny", "2")
    assert folder == workdir.root / "challengers" / "tiny" / "v2"
    moved = steps.output_targets(spec, workdir, ev, folder=folder)
    assert {label: path for label, (_, path) in moved.items()} == {
        "forecast": folder / "tiny.csv",
        "backtest summary": folder / "tiny_backtest.csv",
    }


# --- a tracked run -------------------------------------------------------------------------


def test_run_is_tracked_with_children_dataset_artifacts_and_model(tiny, caplog):
    path, workdir = tiny
    with caplog.at_level(logging.INFO, logger="sopforecast"):
        result = run_pipeline(load_pipeline(path), workdir)
    client = _client(workdir)
    parent = client.get_run(result.run_id)
    assert parent.info.status == "FINISHED"
    # stage times: metrics of the run and one line of the log
    for stage in ("load_validate", "backtest", "fit", "tracking"):
        assert parent.data.metrics[f"time_{stage}_seconds"] >= 0
    assert [r for r in caplog.records if r.getMessage().startswith("Stage times: load_validate")]
    tags = parent.data.tags
    assert tags["sopforecast.pipeline"] == "tiny"
    assert len(tags["sopforecast.data_fingerprint"]) == 16
    assert tags["sopforecast.code_version"].startswith("0.")
    assert parent.data.params["forecast.horizon"] == "6"
    assert {"backtest_wape", "backtest_mase"} <= set(parent.data.metrics)
    dataset = parent.inputs.dataset_inputs[0].dataset
    assert dataset.name == "tiny-history"
    assert dataset.digest == tags["sopforecast.data_fingerprint"]  # the whole content's hash
    assert json.loads(dataset.profile)["num_rows"] == len(result.data.frame)
    columns = {c["name"]: c for c in json.loads(dataset.schema)["mlflow_colspec"]}
    assert {"unique_id", "ds", "y"} <= set(columns) and columns["y"]["type"] == "double"
    children = client.search_runs(
        [result.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'"
    )
    assert {c.data.tags["model"] for c in children} == {"SeasonalNaive", "Naive"}
    for child in children:
        assert {"wape", "mase", "smape", "rmsse", "bias"} <= set(child.data.metrics)
        steps = client.get_metric_history(child.info.run_id, "window_wape")
        assert sorted(m.step for m in steps) == [0, 1]  # one step per backtest window
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "results")}
    for name in ("forecast.parquet", "backtest_summary.csv", "validation.json", "pipeline.yaml"):
        assert f"results/{name}" in artifacts
    assert client.list_artifacts(result.run_id, "plots")
    # the outputs for planners, and the run history
    forecast = pd.read_csv(result.outputs["forecast"])
    assert len(forecast) == 4 * 6 and {"forecast", "forecast-lo-80", "model"} <= set(forecast.columns)
    history = RunHistory.for_workdir(workdir).frame()
    assert history.iloc[0]["status"] == "FINISHED" and history.iloc[0]["mlflow_run_id"] == result.run_id


def test_champion_challenger_promote_and_fresh_process_predict(tiny, tmp_path):
    path, workdir = tiny
    first = run_pipeline(load_pipeline(path), workdir)
    assert first.decision.promoted and first.decision.reason == "first version"
    # same data, same models: no better by the 1% margin, so challenger
    second = run_pipeline(load_pipeline(path), workdir)
    assert not second.decision.promoted and second.decision.champion_value == pytest.approx(
        first.decision.challenger_value
    )
    client = _client(workdir)
    assert client.get_model_version_by_alias("tiny", "champion").version == int(first.decision.version)
    assert client.get_model_version_by_alias("tiny", "challenger").version == int(second.decision.version)
    # re-running on the same data gives the same forecast under a new run id
    assert second.run_id != first.run_id
    pd.testing.assert_frame_equal(first.evaluation.forecast, second.evaluation.forecast)
    forced = run_pipeline(load_pipeline(path), workdir, promote=True)
    assert forced.decision.promoted and forced.decision.reason == "forced (promote)"
    assert client.get_model_version_by_alias("tiny", "champion").version == int(forced.decision.version)
    code = textwrap.dedent(
        f"""
        import mlflow, pandas as pd
        mlflow.set_tracking_uri({resolve_store(workdir).tracking_uri!r})
        model = mlflow.pyfunc.load_model("models:/tiny@champion")
        out = model.predict(pd.DataFrame({{"horizon": [4]}}))
        out.to_csv({str(tmp_path / "pred.csv")!r}, index=False)
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300)
    pred = pd.read_csv(tmp_path / "pred.csv", parse_dates=["ds"])
    assert len(pred) == 4 * 4
    delivered = forced.evaluation.forecast.groupby("unique_id").head(4).reset_index(drop=True)
    np.testing.assert_allclose(pred["forecast"], delivered["forecast"], rtol=1e-6)


def test_delivered_outputs_stay_the_champions_and_a_challengers_go_aside(tiny, caplog):
    path, workdir = tiny
    first = run_pipeline(load_pipeline(path), workdir)
    assert first.delivered and first.outputs["forecast"] == workdir.forecasts / "tiny.csv"
    delivered = {label: Path(p).read_bytes() for label, p in first.outputs.items()}
    # naive alone is worse than seasonal naive on seasonal demand: the new version is challenger
    worse = load_pipeline(path, ["forecast.models=[naive]"])
    with caplog.at_level(logging.INFO, logger="sopforecast"):
        second = run_pipeline(worse, workdir)
    assert not second.decision.promoted and not second.delivered
    # the delivered files are still v1's, byte for byte, and hold v1's forecast
    assert {label: Path(p).read_bytes() for label, p in first.outputs.items()} == delivered
    shipped = pd.read_csv(workdir.forecasts / "tiny.csv")
    np.testing.assert_allclose(shipped["forecast"], first.evaluation.forecast["forecast"])
    assert not np.allclose(shipped["forecast"], second.evaluation.forecast["forecast"])
    # the challenger's files: in challengers/<model>/v<version>/ and among its run's artifacts
    folder = workdir.root / "challengers" / "tiny" / "v2"
    assert second.outputs == {
        "forecast": folder / "tiny.csv",
        "backtest summary": folder / "tiny_backtest.csv",
    }
    aside = pd.read_csv(second.outputs["forecast"])
    np.testing.assert_allclose(aside["forecast"], second.evaluation.forecast["forecast"])
    assert not list(folder.glob(".*.tmp"))
    client = _client(workdir)
    tags = client.get_run(second.run_id).data.tags
    assert tags["sopforecast.alias"] == "challenger" and tags["sopforecast.outputs"] == str(folder)
    assert client.get_run(first.run_id).data.tags["sopforecast.outputs"] == "delivered"
    artifacts = {a.path for a in client.list_artifacts(second.run_id, "results")}
    assert "results/forecast.parquet" in artifacts
    said = [r.getMessage() for r in caplog.records]
    assert any(
        m.startswith("tiny v2 is challenger; delivered outputs stay champion v1's; challenger outputs in ")
        and str(folder) in m
        for m in said
    )
    # the same model promoted: now it is the champion's, so it replaces the delivered files
    third = run_pipeline(worse, workdir, promote=True)
    assert third.delivered and third.outputs["forecast"] == workdir.forecasts / "tiny.csv"
    shipped = pd.read_csv(workdir.forecasts / "tiny.csv")
    np.testing.assert_allclose(shipped["forecast"], third.evaluation.forecast["forecast"])
    assert not (workdir.root / "challengers" / "tiny" / "v3").exists()


def test_better_challenger_on_other_data_rescored_champion(tiny, tmp_path):
    path, workdir = tiny
    run_pipeline(load_pipeline(path, ["forecast.models=[naive]", "forecast.windows=2"]), workdir)
    _history(tmp_path / "sales.csv", seed=1)  # new month's data: the champion is re-scored on it
    better = run_pipeline(load_pipeline(path, ["forecast.models=[snaive]"]), workdir)
    assert better.decision.champion_value is not None
    assert better.decision.promoted == (
        better.decision.challenger_value < better.decision.champion_value * 0.99
    )
    assert better.decision.promoted  # seasonal naive beats naive on seasonal demand


def test_failed_step_marks_run_failed_and_keeps_champion_and_outputs(tiny, tmp_path, capsys):
    path, workdir = tiny
    good = run_pipeline(load_pipeline(path), workdir)
    before = Path(good.outputs["forecast"]).read_bytes()
    frame = pd.read_csv(tmp_path / "sales.csv")
    frame.loc[3, "qty"] = -5
    frame.to_csv(tmp_path / "sales.csv", index=False)
    assert main(["run", str(path), "--workdir", str(workdir.root)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "negative" in err and "Traceback" not in err
    client = _client(workdir)
    failed = client.search_runs([good.experiment_id], filter_string="attributes.status = 'FAILED'")
    assert len(failed) == 1 and "negative" in failed[0].data.tags["sopforecast.error"]
    assert client.get_model_version_by_alias("tiny", "champion").version == int(good.decision.version)
    assert len(client.search_model_versions("name='tiny'")) == 1
    assert Path(good.outputs["forecast"]).read_bytes() == before
    assert RunHistory.for_workdir(workdir).frame().iloc[0]["status"] == "FAILED"


def test_failure_at_the_last_step_promotes_nothing(tiny, tmp_path, capsys):
    path, workdir = tiny
    good = run_pipeline(load_pipeline(path), workdir)
    before = Path(good.outputs["forecast"]).read_bytes()
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the output folder should be")
    # everything succeeds, the new version is registered, then its forecast cannot be written
    code = main(
        ["run", str(path), "--workdir", str(workdir.root), "--promote", "--set", f"output={blocker}/fc.csv"]
    )
    assert code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "cannot write the output" in err and "Traceback" not in err
    client = _client(workdir)
    assert client.get_model_version_by_alias("tiny", "champion").version == int(good.decision.version)
    assert len(client.search_model_versions("name='tiny'")) == 2
    assert Path(good.outputs["forecast"]).read_bytes() == before
    assert not list(Path(good.outputs["forecast"]).parent.glob(".*.tmp"))
    assert RunHistory.for_workdir(workdir).frame().iloc[0]["status"] == "FAILED"


def test_unreachable_tracking_uri_and_registry_clash(tiny, capsys):
    path, workdir = tiny
    code = main(
        [
            "run",
            str(path),
            "--workdir",
            str(workdir.root),
            "--set",
            "tracking.tracking_uri=http://127.0.0.1:9",
        ]
    )
    assert code == 2
    assert "cannot reach the MLflow tracking server" in " ".join(capsys.readouterr().err.split())
    _client(workdir).create_registered_model("taken", tags={"sopforecast.pipeline": "another"})
    code = main(
        ["run", str(path), "--workdir", str(workdir.root), "--set", "tracking.registered_model=taken"]
    )
    assert code == 2
    assert "belongs to pipeline 'another'" in " ".join(capsys.readouterr().err.split())


def test_one_run_of_a_pipeline_at_a_time(tiny):
    path, workdir = tiny
    with pipeline_lock(workdir, "tiny"), pytest.raises(AlreadyRunning, match="already running"):
        run_pipeline(load_pipeline(path), workdir)


_LOCK_THEN_FORK = """
import os, sys, time
from pathlib import Path
from sopforecast.pipeline.history import pipeline_lock
from sopforecast.workdir import Workdir
with pipeline_lock(Workdir(Path(sys.argv[1])), "tiny"):
    if os.fork() == 0:  # a worker the run forked, as statsforecast's pool does: it outlives the run
        time.sleep(60)
        os._exit(0)
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_killed_runs_forked_workers_do_not_hold_its_lock(tmp_path):
    workdir = Workdir(tmp_path / "work")
    workdir.root.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", _LOCK_THEN_FORK, str(workdir.root)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(AlreadyRunning):  # held while the run lives
            with pipeline_lock(workdir, "tiny"):
                pass
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        survivors = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout
        assert survivors.split(), "the forked worker should still be alive for this test to mean anything"
        with pipeline_lock(workdir, "tiny"):  # the worker alive, the lock free
            pass
    finally:
        os.killpg(proc.pid, signal.SIGKILL)


def test_sigkill_mid_run_leaves_champion_and_results_intact(tiny):
    path, workdir = tiny
    good = run_pipeline(load_pipeline(path), workdir)
    before = Path(good.outputs["forecast"]).read_bytes()
    env = {**os.environ, "SOPFORECAST_HOME": str(workdir.root)}
    # a slower run (more models, windows) so it is still going when killed
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sopforecast",
            "run",
            str(path),
            "--promote",
            "--set",
            "forecast.models=[ets,ces,theta]",
            "--set",
            "forecast.windows=3",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    runs = RunHistory.for_workdir(workdir)
    deadline = time.time() + 120
    while time.time() < deadline:
        latest = runs.frame(limit=1)
        if latest.iloc[0]["status"] == "RUNNING" and latest.iloc[0]["mlflow_run_id"]:
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the run never started")
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    client = _client(workdir)
    assert client.get_model_version_by_alias("tiny", "champion").version == int(good.decision.version)
    assert Path(good.outputs["forecast"]).read_bytes() == before
    assert client.get_run(good.run_id).info.status == "FINISHED"
    assert runs.frame(limit=1).iloc[0]["status"] == "KILLED"
    # and the pipeline runs again afterwards (the lock died with the process)
    again = run_pipeline(load_pipeline(path), workdir)
    assert again.run_id != good.run_id


def test_compare_prints_a_leaderboard(tiny, capsys):
    path, workdir = tiny
    run_pipeline(load_pipeline(path), workdir)
    assert main(["compare", "--experiment", "tiny", "--workdir", str(workdir.root)]) == 0
    out = capsys.readouterr().out
    assert "SeasonalNaive" in out and "delivered forecast" in out and "wape" in out
    assert main(["compare", "--experiment", "nope", "--workdir", str(workdir.root)]) == 2
    assert main(["runs", "--workdir", str(workdir.root)]) == 0
    assert "FINISHED" in capsys.readouterr().out


# --- a hierarchy on demo data --------------------------------------------------------------


def test_demo_pipeline_logs_levels_and_plots(tmp_path):
    spec = load_pipeline(
        REPO / "pipelines" / "monthly_demand_plan.yaml",
        ["data.demo.series=16", "forecast.models=[snaive,naive]", "forecast.windows=1", "forecast.horizon=6"],
    )
    workdir = Workdir(tmp_path / "work")
    result = run_pipeline(spec, workdir)
    client = _client(workdir)
    metrics = client.get_run(result.run_id).data.metrics
    assert "wape_mint_shrink_category/family/sku/region/channel" in metrics
    assert "wape_base_Total" in metrics
    plots = {Path(a.path).name for a in client.list_artifacts(result.run_id, "plots")}
    assert {"level_total.png", "level_category.png", "largest_series.png"} <= plots
    assert set(result.evaluation.forecast["level"]) >= {"Total", "category", "region/channel"}


@pytest.mark.slow  # a full demo pipeline for the summary text (17 s): CI keeps to 20 minutes
def test_run_summary_states_each_levels_reconciled_accuracy_against_targets(tmp_path, capsys):
    workdir = tmp_path / "work"
    settings = ["data.demo.series=16", "forecast.models=[snaive,naive]", "forecast.horizon=6"]
    # a WAPE target the top levels meet and the bottom levels miss; a bias target all meet
    settings += ["targets.wape=0.25", "targets.bias=0.5"]
    args = [a for s in settings for a in ("--set", s)]
    pipeline = REPO / "pipelines" / "monthly_demand_plan.yaml"
    assert main(["run", str(pipeline), "--workdir", str(workdir), *args]) == 0
    out = capsys.readouterr().out
    flat = " ".join(out.split())
    assert "backtest of the delivered forecast (reconciled with mint_shrink) per level" in flat
    assert "targets: wape <= 0.25, |bias| <= 0.5" in flat
    # every level's row: the reconciled accuracy, as in the levels report, and its verdict
    levels = pd.read_csv(workdir / "reports" / "monthly_demand_plan_levels.csv")
    delivered = levels[levels["method"] == "mint_shrink"]
    assert len(delivered) == 12 and (levels["method"] == "base").sum() == 12
    verdicts = set()
    for row in delivered.itertuples():
        verdict = "met" if row.wape <= 0.25 else "missed wape"
        verdicts.add(verdict)
        line = rf"^\s*{row.level}\s+{row.wape:.3f}\s+{row.bias:.3f}\s+{row.mase:.3f}\s+{verdict}\s*$"
        assert re.search(line, out, flags=re.MULTILINE), line
    assert verdicts == {"met", "missed wape"}


# --- the shipped real-data pipelines, on cheap models ---------------------------------------


def test_pbs_pipeline_on_the_raw_export(pbs_path, tmp_path):
    spec = load_pipeline(
        REPO / "pipelines" / "pbs_monthly.yaml",
        [
            f"data.path={pbs_path}",
            "forecast.models=[snaive,naive]",
            "forecast.windows=1",
            "forecast.horizon=12",
        ],
    )
    result = run_pipeline(spec, Workdir(tmp_path / "work"))
    forecast = result.evaluation.forecast
    assert forecast["unique_id"].nunique() == 403 and "Total" in set(forecast["unique_id"])
    assert result.evaluation.headline_level == "Concession/Type/ATC1/ATC2"
    assert result.decision.promoted


def test_m3_pipeline_scores_itself_on_the_test_part(tmp_path):
    spec = load_pipeline(
        REPO / "pipelines" / "backtest_m3.yaml",
        [
            "data.group=other",
            "data.freq=YS",
            "forecast.horizon=8",
            "forecast.season_length=1",
            "forecast.models=[naive,theta]",
        ],
    )
    result = run_pipeline(spec, Workdir(tmp_path / "work"))
    metrics = _client(Workdir(tmp_path / "work")).get_run(result.run_id).data.metrics
    assert 2 < metrics["test_smape"] < 10  # M3 other: Theta scores about 4.5
    assert result.decision is None  # a benchmark registers no model


# --- a remote tracking server ----------------------------------------------------------------


def test_pipeline_against_a_tracking_server(tiny, tmp_path):
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the MLflow server did not start")
        path, workdir = tiny
        result = run_pipeline(load_pipeline(path, [f"tracking.tracking_uri={url}"]), workdir)
        assert result.tracking_uri == url and result.decision.promoted
        mlflow_client = MlflowClient(tracking_uri=url, registry_uri=url)
        assert mlflow_client.get_run(result.run_id).info.status == "FINISHED"
        assert str(mlflow_client.get_model_version_by_alias("tiny", "champion").version) == "1"
        assert not (workdir.mlflow / "mlflow.db").exists()  # nothing went to the local store
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_forecast_plots_leave_the_process_matplotlib_backend_alone(tmp_path):
    import matplotlib

    from sopforecast.pipeline.plots import plot_series

    ds = pd.date_range("2024-01-01", periods=6, freq="MS")
    history = pd.DataFrame({"unique_id": "a", "ds": ds, "y": [5.0, 6, 7, 6, 5, 6]})
    forecast = pd.DataFrame(
        {
            "unique_id": "a",
            "ds": pd.date_range("2024-07-01", periods=3, freq="MS"),
            "forecast": 6.0,
            "forecast-lo-80": 5.0,
            "forecast-hi-80": 7.0,
        }
    )
    before = matplotlib.get_backend()
    matplotlib.use("svg")  # what a notebook or an application chose
    try:
        path = plot_series(history, forecast, ["a"], "t", tmp_path / "a.png")
        assert matplotlib.get_backend() == "svg"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        matplotlib.use(before)
