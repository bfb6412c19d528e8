"""Statistical models through statsforecast: backtest and forecast frames, one column per model.

Series too short for a model's needs (less than two seasons for seasonal models) are handled
by the short-history path: a seasonal model is swapped for its non-seasonal counterpart
and statsforecast's own fallback catches what still fails. Both are recorded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import pandas as pd

from .models import CATALOGUE, build_stats_model

__all__ = ["StatsRun", "stats_backtest", "stats_forecast"]

logger = logging.getLogger(__name__)

# Models whose parameters cannot be carried to a later backtest origin: statsforecast's
# ``forward`` re-runs CES's filter over the longer history with the parameters estimated on
# the shorter one, and that filter can diverge (the demo's Beverages total: 2.6e12 at the
# second origin, at most 9,871 with a re-fit). CES fits in milliseconds without intervals,
# so it is re-estimated at every origin.
FORWARD_UNSTABLE = ("ces",)


@dataclass(frozen=True)
class StatsRun:
    """Settings shared by backtest and forecast runs of statistical models."""

    models: tuple[str, ...]
    freq: str
    season_length: int | list[int]
    level: tuple[int, ...] = (80, 95)
    params: dict | None = None
    n_jobs: int = -1
    engine: str = "local"
    refit: bool = True
    interval_models: tuple[str, ...] = ()  # models whose native intervals the forecast needs

    def aliases(self) -> list[str]:
        return [CATALOGUE[m].alias for m in self.models]


def _instances(run: StatsRun, seasonal: bool) -> list:
    # models without native intervals (Croston family) get conformal ones from our own
    # backtest, not from statsforecast's, which would fit every series twice more
    season = run.season_length if seasonal else 1
    params = run.params or {}
    out = []
    for name in run.models:
        model = build_stats_model(name, season, params.get(name))
        model.alias = CATALOGUE[name].alias  # one column name per catalogue entry
        out.append(model)
    return out


def _split_short(df: pd.DataFrame, need: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    sizes = df.groupby("unique_id", sort=False)["y"].transform("size")
    return df[sizes >= need], df[sizes < need]


def _min_seasonal(run: StatsRun) -> int:
    season = max(run.season_length) if isinstance(run.season_length, list) else run.season_length
    # two full seasons to estimate a seasonal pattern
    return max(2 * season, 2)


def _engine_settings(run: StatsRun) -> dict:
    """Where the fits run. ``local``: worker processes on this machine; ``dask``: the
    workers of the run's Dask cluster (statsforecast's Fugue backend fits each partition
    with one process). The rest of the engine only sees frames in and frames out."""
    if run.engine == "local":
        return {"n_jobs": run.n_jobs}
    if run.engine == "dask":
        return {"n_jobs": 1}
    raise ValueError(f"unknown engine {run.engine!r}; use local or dask")


def _call(sf, df: pd.DataFrame, run: StatsRun, action: str, keys: list[str], **kw) -> pd.DataFrame:
    """``sf.forecast`` or ``sf.cross_validation`` on this machine, or on the Dask cluster
    (the frame scattered by series, the result collected and typed as the local one's)."""
    method = sf.forecast if action == "forecast" else sf.cross_validation
    if run.engine != "dask":
        return method(df=df, **kw)
    from . import dask_engine

    with dask_engine.session() as cluster:  # the run's cluster, else one for this call
        cluster.note_once(
            "stats",
            "Statistical models fit on the Dask cluster at %s (%d workers)",
            cluster.address,
            cluster.n_workers,
        )
        return dask_engine.collect(method(df=dask_engine.scatter(df, cluster), **kw), df, keys)


def _run(df: pd.DataFrame, run: StatsRun, h: int, seasonal: bool, action: str, **kw):
    from statsforecast import StatsForecast
    from statsforecast.models import Naive

    sf = StatsForecast(
        models=_instances(run, seasonal),
        freq=run.freq,
        fallback_model=Naive(),
        **_engine_settings(run),
    )
    df = df[["unique_id", "ds", "y"]]  # other columns would be taken as exogenous regressors
    if action == "forecast":
        # native intervals only when asked (CES simulates them: most of its cost)
        level = list(run.level) if run.level else None
        return _call(sf, df, run, action, ["unique_id", "ds"], h=h, level=level)
    # the backtest scores point forecasts; intervals come from its residuals later.
    # Carrying parameters forward needs every model to implement it (the Croston family
    # does not, and fits in microseconds anyway)
    refit = run.refit or not all(hasattr(m, "forward") for m in sf.models)
    return _call(sf, df, run, action, ["unique_id", "cutoff", "ds"], h=h, refit=refit, **kw)


def _cv(df: pd.DataFrame, run: StatsRun, h: int, seasonal: bool, **kw) -> pd.DataFrame:
    """A backtest call; without ``refit`` the models in :data:`FORWARD_UNSTABLE` are
    backtested in a call of their own that re-estimates them at every origin."""
    unstable = tuple(m for m in run.models if m in FORWARD_UNSTABLE)
    stable = tuple(m for m in run.models if m not in FORWARD_UNSTABLE)
    if run.refit or not unstable or not stable:
        return _run(df, replace(run, refit=run.refit or not stable), h, seasonal, "cv", **kw)
    out = _run(df, replace(run, models=stable), h, seasonal, "cv", **kw)
    refitted = _run(df, replace(run, models=unstable, refit=True), h, seasonal, "cv", **kw)
    return out.merge(refitted.drop(columns="y"), on=["unique_id", "ds", "cutoff"], how="outer")


def _forecast_parts(df: pd.DataFrame, run: StatsRun, h: int, seasonal: bool) -> pd.DataFrame:
    """One call for the models whose native intervals are wanted, one for the rest."""
    with_level = tuple(m for m in run.models if m in run.interval_models and CATALOGUE[m].native_intervals)
    without = tuple(m for m in run.models if m not in with_level)
    frames = []
    if with_level:
        frames.append(_run(df, replace(run, models=with_level), h, seasonal, "forecast"))
    if without:
        frames.append(_run(df, replace(run, models=without, level=()), h, seasonal, "forecast"))
    out = frames[0]
    for extra in frames[1:]:
        out = out.merge(extra, on=["unique_id", "ds"], how="outer")
    return out


def stats_forecast(df: pd.DataFrame, h: int, run: StatsRun) -> tuple[pd.DataFrame, list[str]]:
    """Forecast every series with every model of ``run``.

    Returns
    -------
    (pandas.DataFrame, list of str)
        Wide frame ``unique_id, ds, <alias>, <alias>-lo-80, ...`` and the ids that took the
        short-history path (non-seasonal models).
    """
    long_, short = _split_short(df, _min_seasonal(run))
    parts = []
    if len(long_):
        parts.append(_forecast_parts(long_, run, h, True))
    if len(short):
        parts.append(_forecast_parts(short, run, h, False))
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
        ``unique_id, ds, cutoff, y`` and one column per model (point forecasts).
    """
    step = step_size or h
    need = _min_seasonal(run) + h + step * (n_windows - 1)
    long_, short = _split_short(df, need)
    parts = []
    if len(long_):
        parts.append(_cv(long_, run, h, True, n_windows=n_windows, step_size=step))
    if len(short):
        fits = short.groupby("unique_id")["y"].transform("size") >= h + step * (n_windows - 1) + 2
        if fits.any():
            parts.append(_cv(short[fits], run, h, False, n_windows=n_windows, step_size=step))
    if not parts:
        return pd.DataFrame(columns=["unique_id", "ds", "cutoff", "y", *run.aliases()])
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["unique_id", "cutoff", "ds"], kind="stable").reset_index(drop=True)
