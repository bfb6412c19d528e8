"""Statistical models through statsforecast: backtest and forecast frames, one column per model.

Series too short for a model's needs (less than two seasons for seasonal models) are handled
by the short-history path: a seasonal model is swapped for its non-seasonal counterpart
and statsforecast's own fallback catches what still fails. Both are recorded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd

from .models import CATALOGUE, build_stats_model

__all__ = ["StatsRun", "stats_backtest", "stats_forecast"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StatsRun:
    """Settings shared by backtest and forecast runs of statistical models."""

    models: tuple[str, ...]
    freq: str
    season_length: int | list[int]
    level: tuple[int, ...] = (80, 95)
    params: dict | None = None
    n_jobs: int = -1
    conformal_windows: int = 2
    engine: str = "local"

    def aliases(self) -> list[str]:
        return [CATALOGUE[m].alias for m in self.models]


def _instances(run: StatsRun, h: int, seasonal: bool) -> list:
    from statsforecast.utils import ConformalIntervals

    conformal = ConformalIntervals(h=h, n_windows=run.conformal_windows) if run.level else None
    season = run.season_length if seasonal else 1
    params = run.params or {}
    out = []
    for name in run.models:
        model = build_stats_model(name, season, params.get(name), conformal=conformal)
        model.alias = CATALOGUE[name].alias  # one column name per catalogue entry
        out.append(model)
    return out


def _split_short(df: pd.DataFrame, need: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    sizes = df.groupby("unique_id", sort=False)["y"].transform("size")
    return df[sizes >= need], df[sizes < need]


def _min_seasonal(run: StatsRun, h: int) -> int:
    season = max(run.season_length) if isinstance(run.season_length, list) else run.season_length
    # two full seasons to estimate a seasonal pattern, plus room for conformal windows
    # when a model without native intervals needs them
    conformal = run.level and any(not CATALOGUE[m].native_intervals for m in run.models)
    return max(2 * season, 2) + (run.conformal_windows * h if conformal else 0)


def _engine_settings(run: StatsRun) -> dict:
    """Where the fits run. ``local``: worker processes on this machine. A distributed engine
    (Dask) plugs in here: the rest of the engine only sees frames in and frames out."""
    if run.engine == "local":
        return {"n_jobs": run.n_jobs}
    raise ValueError(f"unknown engine {run.engine!r}")


def _run(df: pd.DataFrame, run: StatsRun, h: int, seasonal: bool, action: str, **kw):
    from statsforecast import StatsForecast
    from statsforecast.models import Naive

    sf = StatsForecast(
        models=_instances(run, h, seasonal),
        freq=run.freq,
        fallback_model=Naive(),
        **_engine_settings(run),
    )
    level = list(run.level) if run.level else None
    df = df[["unique_id", "ds", "y"]]  # other columns would be taken as exogenous regressors
    if action == "forecast":
        return sf.forecast(df=df, h=h, level=level)
    return sf.cross_validation(df=df, h=h, level=level, **kw)


def stats_forecast(df: pd.DataFrame, h: int, run: StatsRun) -> tuple[pd.DataFrame, list[str]]:
    """Forecast every series with every model of ``run``.

    Returns
    -------
    (pandas.DataFrame, list of str)
        Wide frame ``unique_id, ds, <alias>, <alias>-lo-80, ...`` and the ids that took the
        short-history path (non-seasonal models).
    """
    long_, short = _split_short(df, _min_seasonal(run, h))
    parts = []
    if len(long_):
        parts.append(_run(long_, run, h, True, "forecast"))
    if len(short):
        parts.append(_run(short, run, h, False, "forecast"))
        logger.info(
            "%d series too short for seasonal models used their non-seasonal form",
            short["unique_id"].nunique(),
        )
    out = pd.concat(parts, ignore_index=True).sort_values(["unique_id", "ds"], kind="stable")
    return out.reset_index(drop=True), sorted(short["unique_id"].unique().tolist())


def stats_backtest(
    df: pd.DataFrame, h: int, run: StatsRun, *, n_windows: int, step_size: int | None = None
) -> pd.DataFrame:
    """Rolling-origin backtest: ``n_windows`` origins ``step_size`` apart, ``h`` ahead each.

    Returns
    -------
    pandas.DataFrame
        ``unique_id, ds, cutoff, y`` and one column per model (plus interval bounds).
    """
    step = step_size or h
    need = _min_seasonal(run, h) + h + step * (n_windows - 1)
    long_, short = _split_short(df, need)
    parts = []
    if len(long_):
        parts.append(_run(long_, run, h, True, "cv", n_windows=n_windows, step_size=step))
    if len(short):
        fits = short.groupby("unique_id")["y"].transform("size") >= h + step * (n_windows - 1) + 2
        if fits.any():
            parts.append(_run(short[fits], run, h, False, "cv", n_windows=n_windows, step_size=step))
    if not parts:
        return pd.DataFrame(columns=["unique_id", "ds", "cutoff", "y", *run.aliases()])
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["unique_id", "cutoff", "ds"], kind="stable").reset_index(drop=True)
