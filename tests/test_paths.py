"""Names that become paths: a plan, cycle, pipeline or model name can never put a file
outside the work directory's folders, and a bad one is refused at the door naming the
setting and what is allowed, without a traceback."""

from __future__ import annotations

import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from sopforecast.cli import main
from sopforecast.config import check_cycle, check_name
from sopforecast.errors import ConfigError
from sopforecast.pipeline.spec import load_pipeline
from sopforecast.pipeline.steps import challenger_folder, output_targets
from sopforecast.workdir import Workdir

ESCAPES = ["../../escaped", "a/b", "..", "x/../../y", "a\\b", ".hidden", "two..dots", "bell\x07"]


def _history(path: Path, n: int = 3, periods: int = 36) -> Path:
    rng = np.random.default_rng(0)
    ds = pd.date_range("2022-01-01", periods=periods, freq="MS")
    frame = pd.concat(
        pd.DataFrame(
            {"sku": f"SKU-{i}", "month": ds, "qty": np.round(40 + 10 * i + rng.normal(0, 3, periods))}
        )
        for i in range(n)
    )
    frame.to_csv(path, index=False)
    return path


def _pipeline(folder: Path, name: str = "tiny", plan: str = "{enabled: true}") -> Path:
    _history(folder / "sales.csv")
    path = folder / "pipeline.yaml"
    text = f"""
        name: {name!r}
        data: {{path: sales.csv, id_col: sku, time_col: month, target_col: qty, freq: MS}}
        forecast: {{horizon: 6, models: [snaive, naive], windows: 1}}
        plan: {plan}
        """
    path.write_text(textwrap.dedent(text))
    return path


def _refused(path: Path, setting: str, overrides: list[str]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_pipeline(path, overrides)
    message = str(info.value)
    assert setting in message, message
    return info.value


@pytest.mark.parametrize("name", ESCAPES)
@pytest.mark.parametrize("setting", ["plan.name", "name", "tracking.registered_model"])
def test_names_that_could_leave_a_folder_are_refused_naming_the_setting(tmp_path, setting, name):
    path = _pipeline(tmp_path)
    error = _refused(path, setting, [f"{setting}={name}"])
    assert "cannot be a name" in str(error) and "no '/'" in str(error)  # what is allowed
    assert error.setting == setting


@pytest.mark.parametrize("name", ["Plan Süd 2026", "Démo S&OP (EU)", "plan_v1.2", "Nord-Ost"])
def test_spaces_accents_and_punctuation_are_names(tmp_path, name):
    spec = load_pipeline(_pipeline(tmp_path), [f"plan.name={name}", f"name={name}"])
    assert spec.plan.name == name and spec.name == name


@pytest.mark.parametrize("cycle", ["2026/01", "2026-13", "26-01", "../../2026-01", "2026-1", "Nov 2026"])
def test_a_cycle_is_yyyy_mm(tmp_path, cycle):
    error = _refused(_pipeline(tmp_path), "plan.cycle", [f"plan.cycle={cycle}"])
    assert "YYYY-MM" in str(error)


def test_a_cycle_in_yyyy_mm_or_as_a_date_is_kept(tmp_path):
    assert load_pipeline(_pipeline(tmp_path), ["plan.cycle=2026-11"]).plan.cycle == "2026-11"
    # YAML reads a full date as a date: its month is the cycle
    dated = _pipeline(tmp_path, plan="{enabled: true, cycle: 2026-11-01}")
    assert load_pipeline(dated).plan.cycle == "2026-11"


def test_a_slash_in_the_cycle_exits_2_without_a_traceback(tmp_path, capsys):
    path = _pipeline(tmp_path)
    code = main(["run", str(path), "--workdir", str(tmp_path / "work"), "--set", "plan.cycle=2026/01"])
    err = capsys.readouterr().err
    assert code == 2
    assert "plan.cycle" in err and "YYYY-MM" in err and "Traceback" not in err
    assert not (tmp_path / "work" / "forecasts").exists()


def test_check_name_and_check_cycle_directly():
    for bad in ESCAPES + ["", "   "]:
        with pytest.raises(ValueError, match="cannot be a name"):
            check_name(bad)
    assert check_name("Plan Süd") == "Plan Süd"
    assert check_cycle(" 2026-02 ") == "2026-02"


@pytest.mark.parametrize("name", ESCAPES)
def test_outputs_stay_in_their_folders_whatever_the_name(tmp_path, name):
    """Past the door (a spec built in Python and changed later): file names are made safe."""
    workdir = Workdir(tmp_path / "work")
    spec = SimpleNamespace(name=name, output=None)
    ev = SimpleNamespace(
        forecast=pd.DataFrame(),
        backtest=SimpleNamespace(summary=pd.DataFrame()),
        accuracy=pd.DataFrame(),
        discontinued=["a"],
        all_series=pd.DataFrame({"unique_id": ["a"], "ds": [pd.Timestamp("2024-01-01")], "y": [1.0]}),
    )
    targets = output_targets(spec, workdir, ev)
    assert targets["forecast"][1].parent == workdir.forecasts.resolve()
    for label in ("backtest summary", "accuracy per level", "discontinued series"):
        assert targets[label][1].parent == workdir.reports.resolve(), label
    folder = challenger_folder(workdir, name, "3")
    assert folder.parent.parent == (workdir.root / "challengers").resolve()
    assert folder.name == "v3"


@pytest.mark.integration
def test_a_pipeline_named_with_spaces_and_accents_writes_only_inside_the_workdir(tmp_path):
    from sopforecast.pipeline.runner import run_pipeline

    name = "Plan Süd 2026"
    before = set(tmp_path.parent.iterdir())
    spec = load_pipeline(_pipeline(tmp_path, name))
    workdir = Workdir(tmp_path / "work")
    result = run_pipeline(spec, workdir)
    assert result.outputs["forecast"] == (workdir.forecasts / "Plan_Süd_2026.csv").resolve()
    assert result.plan is not None and result.plan.plan == name
    assert result.decision is not None and result.decision.name == name
    for path in result.outputs.values():
        assert workdir.root.resolve() in path.parents
    assert set(tmp_path.parent.iterdir()) == before  # nothing written beside the test's folder
