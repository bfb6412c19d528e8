"""MLflow tracking and registry on a real PostgreSQL server, started by the test.

Needs the Debian ``postgresql`` package (``.ci/run`` installs it) and psycopg; skips with the
reason when either is missing. The server is the session's ``postgres_url`` (conftest.py).
"""

from __future__ import annotations

import socket

import pytest
from test_pipeline import _history, _pipeline

from sopforecast.cli import main
from sopforecast.pipeline.runner import run_pipeline
from sopforecast.pipeline.spec import load_pipeline
from sopforecast.workdir import Workdir

pytest.importorskip("psycopg", reason="psycopg is not installed (pip install '.[postgres]')")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_pipeline_tracks_and_registers_in_postgresql(postgres_url, tmp_path):
    _history(tmp_path / "sales.csv")
    path = _pipeline(tmp_path)
    workdir = Workdir(tmp_path / "work")
    spec = load_pipeline(path, [f"tracking.tracking_uri={postgres_url}"])
    first = run_pipeline(spec, workdir)
    second = run_pipeline(spec, workdir)
    assert first.decision.promoted and not second.decision.promoted
    import pandas as pd

    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=postgres_url, registry_uri=postgres_url)
    assert client.get_model_version_by_alias("tiny", "champion").version == int(first.decision.version)
    runs = client.search_runs([first.experiment_id], filter_string="tags.`sopforecast.role` = 'pipeline'")
    assert {r.info.run_id for r in runs} == {first.run_id, second.run_id}
    children = client.search_runs(
        [first.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{first.run_id}'"
    )
    assert {c.data.tags["model"] for c in children} == {"SeasonalNaive", "Naive"}
    # the fluent API needs the global URI: set here, in the test only
    mlflow.set_tracking_uri(postgres_url)
    mlflow.set_registry_uri(postgres_url)
    model = mlflow.pyfunc.load_model("models:/tiny@champion")
    assert len(model.predict(pd.DataFrame({"horizon": [3]}))) == 4 * 3


def test_unreachable_postgresql_is_a_clear_error(tmp_path, capsys):
    _history(tmp_path / "sales.csv")
    path = _pipeline(tmp_path)
    url = f"postgresql://nobody:secret@127.0.0.1:{_free_port()}/mlflow"
    code = main(["run", str(path), "--workdir", str(tmp_path / "w"), "--set", f"tracking.tracking_uri={url}"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "cannot connect to the tracking database" in err
    assert "secret" not in err  # the password is not printed
