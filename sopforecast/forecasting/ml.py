"""LightGBM through mlforecast: one global model over all series.

Features are chosen from the frequency (lags, rolling means of the last value, calendar),
each series is scaled locally so large and small SKUs share one model, hierarchy keys enter
as categorical static features, and drivers (price, promo) as dynamic features whose future
values the caller supplies. Forecasts are recursive, so a driver's value in every future
period reaches the forecast of that period (mlforecast's direct strategy has used only the
first step's values: Nixtla/mlforecast #705). Intervals are conformal, from the backtest
(:mod:`sopforecast.forecasting.intervals`).

With ``forecast.engine: dask`` LightGBM still fits here, on the client, with this code
(logged once per run). mlforecast's ``DistributedMLForecast`` with ``DaskLGBMForecast``
does not reproduce it (mlforecast 1.1, LightGBM 4.7, measured on 40 demo series): the
hierarchy keys cannot be static features (category columns fail in its Fugue schema, text
columns in LightGBM), it keeps series the local path leaves to other models (too short for
the lags), and data-parallel training over the workers grows other trees (forecasts 10%
apart at the median, several-fold at worst), so a dask run would not select or forecast as
a local one does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DataError
from .drivers import EFFECT_RANGE, previous_flags, regular_history
from .models import CATALOGUE

__all__ = [
    "MLSettings",
    "ml_fit",
    "ml_fit_effect",
    "ml_predict",
    "ml_backtest",
    "ml_frame",
    "last_flags",
    "default_features",
    "static_columns",
    "ALIAS",
]

logger = logging.getLogger(__name__)
ALIAS = CATALOGUE["lgbm"].alias

_FEATURES = {
    # base freq: (lags, rolling windows over lag 1, calendar features)
    "MS": ([1, 2, 3, 6, 12], [3, 6, 12], ["month"]),
    "QS": ([1, 2, 4], [2, 4], ["quarter"]),
    "YS": ([1, 2, 3], [2, 3], []),
    "W": ([1, 2, 4, 52], [4, 13], ["month", "week"]),
    "D": ([1, 7, 14, 28], [7, 28], ["dayofweek", "month"]),
}


def default_features(freq: str) -> tuple[list[int], list[int], list[str]]:
    """Lags, rolling-mean windows and calendar features suited to a frequency."""
    base = pd.tseries.frequencies.to_offset(freq).name.split("-")[0]
    base = {"ME": "MS", "M": "MS", "QE": "QS", "Q": "QS", "YE": "YS", "Y": "YS", "B": "D"}.get(base, base)
    lags, windows, dates = _FEATURES.get(base, ([1, 2, 3], [3], []))
    return list(lags), list(windows), list(dates)


def static_columns(frame: pd.DataFrame, drivers: list[str]) -> list[str]:
    """Text columns besides the id and the drivers (hierarchy keys): LightGBM's static features."""
    reserved = {"unique_id", "ds", "y", *drivers}
    return [
        c
        for c in frame.columns
        if c not in reserved
        and not pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_datetime64_any_dtype(frame[c])
    ]


@dataclass
class MLSettings:
    """LightGBM features and parameters (every one overridable from ``params['lgbm']``)."""

    freq: str
    statics: list[str] = field(default_factory=list)
    drivers: list[str] = field(default_factory=list)
    level: tuple[int, ...] = (80, 95)
    params: dict = field(default_factory=dict)
    n_jobs: int = 1
    seed: int = 0
    lagged: list[str] = field(default_factory=list)  # flags whose previous period is a feature

    def build(self):
        import lightgbm as lgb
        from mlforecast import MLForecast
        from mlforecast.lag_transforms import RollingMean
        from mlforecast.target_transforms import LocalStandardScaler

        params = dict(self.params)
        lags, windows, dates = default_features(self.freq)
        lags = params.pop("lags", lags)
        windows = params.pop("windows", windows)
        dates = params.pop("date_features", dates)
        model = lgb.LGBMRegressor(
            **{
                "n_estimators": 300,
                "learning_rate": 0.05,
                "num_leaves": 31,
                "min_child_samples": 10,
                "verbosity": -1,
                "random_state": self.seed,
                # one thread: OpenMP threads stall each other when the cores are also busy
                # with statsforecast's worker processes (seen: 0.1 s fits taking minutes)
                "n_jobs": 1,
                **params,
            }
        )
        return MLForecast(
            models={ALIAS: model},
            freq=self.freq,
            lags=lags,
            lag_transforms={1: [RollingMean(window_size=w) for w in windows]},
            date_features=dates,
            target_transforms=[LocalStandardScaler()],
            num_threads=max(self.n_jobs, 1),
        )


def ml_frame(df: pd.DataFrame, settings: MLSettings) -> pd.DataFrame:
    """What LightGBM is fitted on: ``unique_id, ds, y``, the statics as categories, the
    drivers and each lagged flag's value in the period before (0 in a series' first)."""
    cols = ["unique_id", "ds", "y", *settings.statics, *settings.drivers]
    frame = df[cols].copy()
    for col in settings.statics:
        frame[col] = frame[col].astype("category")
    return previous_flags(frame, settings.lagged)


def last_flags(history: pd.DataFrame, settings: MLSettings) -> pd.DataFrame | None:
    """Each series' lagged flags in its last period (index ``unique_id``): the previous value
    of a forecast's first period."""
    if not settings.lagged:
        return None
    return history.sort_values("ds").groupby("unique_id", sort=True)[settings.lagged].last()


def _min_rows(freq: str) -> int:
    return max(default_features(freq)[0]) + 2


def _note_engine() -> None:
    from . import dask_engine

    cluster = dask_engine.active()
    if cluster is not None:
        cluster.note_once(
            "lgbm",
            "LightGBM fits on the client, not on the Dask cluster: mlforecast's distributed LightGBM "
            "takes no categorical hierarchy keys and trains a different model, so it would not "
            "match the local engine (see sopforecast.forecasting.ml)",
        )


def _fit(df: pd.DataFrame, settings: MLSettings):
    """The fitted MLForecast, its training rows (features, scaled target) and the raw frame."""
    _note_engine()
    frame = ml_frame(df, settings)
    sizes = frame.groupby("unique_id")["y"].transform("size")
    frame = frame[sizes >= _min_rows(settings.freq)]
    if frame.empty:
        return None
    fcst = settings.build()
    # fit() is preprocess() then fit_models(): done in two steps to keep the training rows
    prep = fcst.preprocess(frame, static_features=settings.statics)
    fcst.fit_models(prep.drop(columns=["unique_id", "ds", "y"]), prep["y"].to_numpy())
    return fcst, prep, frame


def ml_fit(df: pd.DataFrame, settings: MLSettings):
    """Fit LightGBM on every series long enough for its lags; return the fitted MLForecast
    (``None`` when no series is long enough)."""
    fitted = _fit(df, settings)
    return None if fitted is None else fitted[0]


def ml_fit_effect(df: pd.DataFrame, settings: MLSettings, flags: list[str]):
    """LightGBM as :func:`ml_fit`, and its in-sample estimate of the promotions' effect on the
    history: per series and period it fitted, the ratio of its prediction under the actual
    drivers to its prediction under the regular ones (:func:`~.drivers.regular_history`:
    no flag on, none the period before, the regular price), clipped to the drivers' effect
    range. Promoted months get their uplift, the months after their dip; every other
    month 1. A series whose flags are fractions (an aggregate's share on promotion) has its
    effects divided by their mean: its level stays, its promotion-heavy months are evened
    out. Returns ``(fitted or None, frame unique_id, ds, effect)``."""
    empty = pd.DataFrame(
        {"unique_id": pd.Series(dtype=object), "ds": pd.Series(dtype="datetime64[ns]"), "effect": []}
    )
    fitted = _fit(df, settings)
    if fitted is None:
        return None, empty
    fcst, prep, frame = fitted
    if not flags:
        return fcst, empty
    features = [c for c in prep.columns if c not in ("unique_id", "ds", "y")]
    regular = regular_history(prep, settings.drivers, [f for f in flags if f in settings.drivers])
    model = fcst.models_[ALIAS]
    actual = model.predict(prep[features])
    usual = model.predict(regular[features])
    # predictions are on each series' standardised scale: back to units through the
    # training rows (raw = mean + std * scaled)
    raw = prep[["unique_id", "ds"]].merge(frame[["unique_id", "ds", "y"]], on=["unique_id", "ds"], how="left")
    raw_y, scaled_y = raw["y"].to_numpy(dtype=float), prep["y"].to_numpy(dtype=float)
    ids = prep["unique_id"].to_numpy()
    spread = pd.DataFrame({"id": ids, "raw": raw_y, "scaled": scaled_y}).groupby("id", sort=False).std()
    ratio = (spread["raw"] / spread["scaled"]).replace([np.inf, -np.inf], np.nan).fillna(0.0)
    std = pd.Series(ids).map(ratio).to_numpy(dtype=float)
    with_drivers = raw_y + std * (actual - scaled_y)
    without = raw_y + std * (usual - scaled_y)
    with np.errstate(divide="ignore", invalid="ignore"):
        effect = np.where((with_drivers > 0) & (without > 0), with_drivers / without, 1.0)
    effect = np.clip(np.nan_to_num(effect, nan=1.0), *EFFECT_RANGE)
    out = pd.DataFrame({"unique_id": ids, "ds": prep["ds"].to_numpy(), "effect": effect})
    # an aggregate's flag is the share of its demand on promotion: some of it is promoted in
    # almost every month, so taking the whole effect out would lower its entire history (a
    # 4% lean at every level in the demo's backtests); it keeps its level, only the months
    # with more (or less) promotion than usual are evened out
    values = prep[[f for f in flags if f in prep.columns]].to_numpy(dtype=float)
    binary = pd.Series(((values == 0.0) | (values == 1.0)).all(axis=1)).groupby(ids).all()
    shares = ~pd.Series(ids).map(binary).to_numpy(dtype=bool)
    if shares.any():
        mean = out.groupby("unique_id", sort=False)["effect"].transform("mean").to_numpy()
        out.loc[shares, "effect"] = effect[shares] / mean[shares]
    return fcst, out[out["effect"] != 1.0].reset_index(drop=True)


def ml_predict(
    fitted, h: int, settings: MLSettings, future: pd.DataFrame | None = None, last: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Recursive forecast ``unique_id, ds, LightGBM`` of a fitted model; ``future`` holds the
    drivers of every step (``unique_id, ds, <drivers>``), ``last`` the lagged flags of the
    period before the first (:func:`last_flags`; none: off)."""
    x_df = None
    if settings.drivers:
        if future is None:
            raise DataError(f"LightGBM uses the drivers {settings.drivers}: their future values are needed.")
        x_df = previous_flags(future[["unique_id", "ds", *settings.drivers]], settings.lagged, last)
    ids = list(fitted.ts.uids)
    if x_df is not None:
        x_df = x_df[x_df["unique_id"].isin(ids)]
    return fitted.predict(h, X_df=x_df)


def ml_backtest(
    df: pd.DataFrame,
    h: int,
    settings: MLSettings,
    *,
    n_windows: int,
    step_size: int | None = None,
    baseline=None,
    cleanse: list[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rolling-origin backtest of LightGBM (refit at every origin): ``unique_id, ds,
    cutoff, LightGBM``. Given ``baseline`` (a function of the window's future drivers and
    the training part that returns the drivers without the plan's moves), also the column
    ``LightGBM|baseline``: the same model's forecast under those drivers. Given ``cleanse``
    (flags), each window's model also estimates the promotions' effect on its training
    history (:func:`ml_fit_effect`). Returns ``(cv, effects)``: ``effects`` holds
    ``unique_id, ds, effect, cutoff`` (empty without ``cleanse``)."""
    from utilsforecast.processing import backtest_splits

    cols = ["unique_id", "ds", "y", *settings.statics, *settings.drivers]
    frame = df[cols].sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
    parts, effects = [], []
    splits = backtest_splits(
        frame,
        n_windows=n_windows,
        h=h,
        id_col="unique_id",
        time_col="ds",
        freq=settings.freq,
        step_size=step_size or h,
    )
    for cutoffs, train, valid in splits:
        if cleanse:
            fitted, effect = ml_fit_effect(train, settings, cleanse)
            effects.append(effect.assign(cutoff=cutoffs["cutoff"].max()))
        else:
            fitted = ml_fit(train, settings)
        if fitted is None:
            continue
        future = valid[["unique_id", "ds", *settings.drivers]]
        pred = ml_predict(fitted, h, settings, future, last_flags(train, settings))
        if baseline is not None and settings.drivers:
            base = ml_predict(fitted, h, settings, baseline(future, train))
            pred[f"{ALIAS}|baseline"] = base[ALIAS].to_numpy()
        pred = pred.merge(cutoffs, on="unique_id", how="left")
        pred = pred.merge(valid[["unique_id", "ds"]], on=["unique_id", "ds"], how="inner")
        parts.append(pred)
    effect = (
        pd.concat(effects, ignore_index=True)
        if effects
        else pd.DataFrame(columns=["unique_id", "ds", "effect", "cutoff"])
    )
    if not parts:
        return pd.DataFrame(columns=["unique_id", "ds", "cutoff", ALIAS]), effect
    return pd.concat(parts, ignore_index=True), effect
