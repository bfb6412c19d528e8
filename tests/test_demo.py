"""`sopforecast demo`: the main job end to end on the embedded demo data."""

from __future__ import annotations

import json

import pandas as pd

from sopforecast.cli import main


def test_demo_writes_every_output(tmp_path, capsys):
    workdir = tmp_path / "work"
    code = main(["demo", "--workdir", str(workdir), "--series", "80"])
    printed = " ".join(capsys.readouterr().out.split())
    assert code == 0
    forecast = pd.read_csv(workdir / "forecasts" / "demo_seasonal_naive.csv", parse_dates=["ds"])
    history = pd.read_csv(workdir / "data" / "demo_demand.csv", parse_dates=["ds"])
    assert forecast["unique_id"].nunique() == 80
    # every series, discontinued ones too, is forecast from the common origin
    assert forecast["ds"].min() == history["ds"].max() + pd.offsets.MonthBegin(1)
    assert forecast.groupby("unique_id").size().eq(18).all()
    assert (forecast["forecast-lo-80"] >= 0).all()
    report = json.loads((workdir / "reports" / "validation.json").read_text())
    assert report["series"] == 80 and report["started_late"] > 0
    classes = pd.read_csv(workdir / "reports" / "demand_classes.csv")
    assert set(classes["demand_class"]) >= {"smooth", "intermittent"}
    assert str(workdir) in printed and "Series per level" in printed


def test_demo_uses_sopforecast_home(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SOPFORECAST_HOME", str(tmp_path / "home"))
    assert main(["--quiet", "demo", "--series", "30"]) == 0
    assert (tmp_path / "home" / "data" / "demo_demand.csv").exists()
