"""Library warnings: known kinds summarised in one log line each, others passed through."""

from __future__ import annotations

import logging
import multiprocessing
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from sopforecast.notices import library_warnings, quiet_worker_warnings

LOG = logging.getLogger("sopforecast.test_notices")
DROPPED = (
    "The following series were dropped completely due to the transformations and features: "
    "['S1/North', 'S2/South', 'S3/North', 'S4/North', 'S5/North', 'S6/North', ...].\n"
    "These series won't show up if you use `MLForecast.forecast_fitted_values()`.\n"
    "You can set `dropna=False` or use transformations that require less samples to mitigate this"
)


class PlannerWarning(Warning):
    """A category no library in the known list raises."""


def test_numpy_division_by_zero_is_summarised_in_one_line(caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)
    with warnings.catch_warnings(record=True) as outside:
        warnings.simplefilter("always")
        with library_warnings(LOG) as summary:
            for _ in range(3):
                np.log(np.zeros(2))
            np.sqrt(np.array([-1.0]))
    assert outside == []  # nothing re-emitted
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(lines) == 1 and summary.counts == {"numeric": 4}
    assert "Model fits raised 4 numeric warning(s)" in lines[0]
    assert "division by zero in log ×3" in lines[0] and "invalid value in sqrt ×1" in lines[0]


def test_mlforecast_warnings_name_series_and_columns(caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)
    with library_warnings(LOG) as summary:
        warnings.warn(DROPPED, UserWarning, stacklevel=1)
        warnings.warn("Found null values in lag12, rolling_mean_lag1_window_size_12.", stacklevel=1)
        warnings.warn("Found null values in lag12.", stacklevel=1)
    assert summary.counts == {"dropped_series": 1, "null_features": 2}
    dropped, nulls = summary.lines
    assert "at least 6 series" in dropped and "'S1/North'" in dropped
    assert "2 time(s)" in nulls and "(in lag12, rolling_mean_lag1_window_size_12)" in nulls


def test_unknown_warning_passes_through_unchanged(caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)
    with warnings.catch_warnings(record=True) as outside:
        warnings.simplefilter("always")
        with library_warnings(LOG) as summary:
            line = sys._getframe().f_lineno + 1
            warnings.warn("check the promo calendar", PlannerWarning, stacklevel=1)
            warnings.warn("a UserWarning of another text", UserWarning, stacklevel=1)
    assert [w.category for w in outside] == [PlannerWarning, UserWarning]
    assert str(outside[0].message) == "check the promo calendar"
    assert outside[0].filename == __file__ and outside[0].lineno == line
    assert summary.counts == {} and caplog.records == []


def test_summary_is_logged_when_the_run_fails(caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)
    with pytest.raises(KeyError), library_warnings(LOG):
        np.log(np.zeros(1))
        raise KeyError("boom")
    assert "1 numeric warning(s)" in caplog.text


@pytest.mark.parametrize("before", [None, "error::DeprecationWarning"])
def test_environment_is_restored(monkeypatch, before):
    if before is None:
        monkeypatch.delenv("PYTHONWARNINGS", raising=False)
    else:
        monkeypatch.setenv("PYTHONWARNINGS", before)
    with library_warnings(LOG):
        inside = os.environ["PYTHONWARNINGS"]
    assert "ignore:divide by zero encountered:RuntimeWarning" in inside
    assert "ignore:Found null values in:UserWarning" in inside
    assert "ignore::" not in inside  # never a whole category
    if before is not None:
        assert inside.endswith("," + before)  # the user's own setting keeps precedence
    assert os.environ.get("PYTHONWARNINGS") == before


def test_spawned_worker_ignores_known_warnings_only():
    code = (
        "import warnings, numpy as np; np.log(np.zeros(1)); "
        "warnings.warn('worker-side notice', FutureWarning)"
    )
    with quiet_worker_warnings():
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "divide by zero" not in proc.stderr and "worker-side notice" in proc.stderr


def _worker() -> None:
    np.log(np.zeros(1))
    warnings.warn("worker-side notice", PlannerWarning, stacklevel=1)
    sys.stderr.flush()


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_forked_worker_shows_unknown_warnings_and_drops_known(capfd):
    with library_warnings(LOG) as summary:
        proc = multiprocessing.get_context("fork").Process(target=_worker)
        proc.start()
        proc.join(60)
    err = capfd.readouterr().err
    assert proc.exitcode == 0
    assert "worker-side notice" in err and "divide by zero" not in err
    assert summary.counts == {}  # the worker's warnings are not this process's
