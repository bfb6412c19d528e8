"""The forecasting engine's building blocks: candidates per demand class, the rolling-origin
backtest with selection, the driver effect, and intervals.

:class:`~sopforecast.forecasting.forecaster.Forecaster` wires them; nothing else should
call them directly. The engine is a setting (``n_jobs`` locally today), not a different API.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..config import ForecastConfig
from ..data.profile import classify_demand
from ..errors import ConfigError, DataError
from .drivers import EFFECT_RANGE, baseline_future, flag_drivers
from .metrics import evaluate_backtest, summarise_metrics
from .ml import MLSettings, default_features, ml_backtest, static_columns
from .models import (
    CATALOGUE,
    CLASS_CANDIDATES,
    class_candidates,
    default_season_length,
    ml_is_candidate,
    resolve_models,
)
from .selection import Selection, combine_forecasts, select_models, series_scale
from .stats import StatsRun, stats_backtest

__all__ = [
    "BacktestResult",
    "run_backtest",
    "check_backtest_fits",
    "candidates",
    "model_groups",
    "stats_run",
    "ml_settings",
    "selection_for_all",
    "attach_intervals",
    "apply_driver_effect",
    "cleanse",
    "cleansing_flags",
    "main_season",
    "season_of",
    "is_auto",
    "check_season",
    "ML_ALIAS",
]

logger = logging.getLogger(__name__)

ML_ALIAS = CATALOGUE["lgbm"].alias
ML_CLASSES = ("smooth", "erratic")  # a global model on lags needs regular demand


@dataclass
class BacktestResult:
    """Backtest of every candidate model: the raw frame, per-series scores, the summary."""

    cv: pd.DataFrame
    scores: pd.DataFrame
    summary: pd.DataFrame
    selection: Selection | None = None
    chosen_cv: pd.DataFrame | None = None


def season_of(config: ForecastConfig) -> int | list[int]:
    return config.season_length if config.season_length is not None else default_season_length(config.freq)


def main_season(season: int | list[int]) -> int:
    return max(season) if isinstance(season, list) else season


def is_auto(config: ForecastConfig) -> bool:
    return isinstance(config.models, str) and config.models.strip().lower() == "auto"


def candidates(config: ForecastConfig, classes: pd.DataFrame):
    """Statistical models to run, whether LightGBM runs, and the aliases each demand class
    may choose from."""
    names = resolve_models(config.models)
    if is_auto(config):
        present = set(classes["demand_class"].astype(str))
        by_class = class_candidates(main_season(season_of(config)))
        names = sorted({m for c in present for m in by_class.get(c, ())})
        enough = len(classes) >= config.ml_min_series
        member = enough and ml_is_candidate(main_season(season_of(config)))
        # LightGBM runs as a candidate, or to carry the drivers' effect to the others
        use_ml = member or (enough and bool(config.drivers))
        per_class = {c: [CATALOGUE[m].alias for m in by_class[c]] for c in by_class}
        if member:
            for cls in ML_CLASSES:
                per_class[cls] = [*per_class[cls], ML_ALIAS]
    else:
        use_ml = "lgbm" in names
        aliases = [CATALOGUE[n].alias for n in names]
        per_class = {c: aliases for c in CLASS_CANDIDATES}
    stats = [n for n in names if CATALOGUE[n].kind == "stats"]
    return stats, use_ml, per_class


def ml_settings(df: pd.DataFrame, config: ForecastConfig) -> MLSettings:
    # text columns (hierarchy keys) are static features; numeric ones only when named drivers
    statics = static_columns(df, list(config.drivers))
    params = dict(config.params.get("lgbm", {}))
    return MLSettings(
        freq=config.freq,
        statics=statics,
        drivers=list(config.drivers),
        level=tuple(config.interval_levels),
        params=params,
        n_jobs=_cores(config.n_jobs),
        seed=config.seed,
        # the month after a promotion is a feature: demand dips when customers stocked up
        lagged=flag_drivers(df, list(config.drivers)),
    )


def cleansing_flags(df: pd.DataFrame, config: ForecastConfig) -> list[str]:
    """The flags whose effect is taken out of the statistical models' history
    (``cleanse_promotions``): none when it is off or no driver is a 0/1 flag."""
    return flag_drivers(df, list(config.drivers)) if config.cleanse_promotions and config.drivers else []


def cleanse(df: pd.DataFrame, effects: pd.DataFrame) -> pd.DataFrame:
    """``df`` with ``y`` divided by the promotions' effect (:func:`~.ml.ml_fit_effect`). In a
    backtest (``effects`` with a ``cutoff``) each period takes the estimate of the earliest
    window whose training history holds it, so no window's history is cleansed with what
    came after its origin. Returns a new frame."""
    if effects.empty:
        return df
    if "cutoff" in effects.columns:
        effects = effects.sort_values("cutoff", kind="stable")
    first = effects.drop_duplicates(["unique_id", "ds"], keep="first").set_index(["unique_id", "ds"])[
        "effect"
    ]
    factor = first.reindex(pd.MultiIndex.from_frame(df[["unique_id", "ds"]])).fillna(1.0).to_numpy()
    return df.assign(y=df["y"].to_numpy(dtype=float) / factor)


def _cores(n_jobs: int) -> int:
    import os

    return os.cpu_count() or 1 if n_jobs < 1 else n_jobs


def _ml_backtest_part(df: pd.DataFrame, config: ForecastConfig) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    step = config.step or config.horizon
    need = config.horizon + step * (config.windows - 1) + max(default_features(config.freq)[0]) + 2
    sizes = df.groupby("unique_id")["y"].transform("size")
    part = df[sizes >= need]
    if part.empty:
        return None, pd.DataFrame(columns=["unique_id", "ds", "effect", "cutoff"])
    drivers = list(config.drivers)

    def baseline(future: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
        return baseline_future(future, train, drivers)

    cv, effects = ml_backtest(
        part,
        config.horizon,
        ml_settings(df, config),
        n_windows=config.windows,
        step_size=config.step,
        baseline=baseline if drivers else None,
        cleanse=cleansing_flags(df, config),
    )
    keep = [c for c in cv.columns if c in ("unique_id", "ds", "cutoff") or c.startswith(ML_ALIAS)]
    return cv[keep], effects


def apply_driver_effect(wide: pd.DataFrame, aliases: list[str]) -> pd.DataFrame:
    """Carry the drivers' effect into models that cannot see drivers.

    LightGBM forecasts every series twice: under the planned drivers (``LightGBM``) and
    under the baseline without the plan's promotions and price moves
    (``LightGBM|baseline``). Their ratio, clipped to :data:`EFFECT_RANGE`, is the
    drivers' effect per series and period; each statistical candidate (and its interval
    bounds) is multiplied by it, so a promotion lifts every candidate, not only LightGBM.
    Rows without a LightGBM forecast keep their values. Returns a new frame.
    """
    base_col = f"{ML_ALIAS}|baseline"
    if base_col not in wide.columns:
        return wide
    planned, base = wide[ML_ALIAS].to_numpy(dtype=float), wide[base_col].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((base > 0) & np.isfinite(planned), planned / base, 1.0)
    ratio = np.clip(np.nan_to_num(ratio, nan=1.0), *EFFECT_RANGE)
    out = wide.drop(columns=base_col)
    cols = [c for c in out.columns if c in aliases or any(c.startswith(f"{a}-") for a in aliases)]
    out[cols] = out[cols].mul(ratio, axis=0)
    return out


def model_groups(df, config, classes, names) -> list[tuple[pd.DataFrame, tuple[str, ...]]]:
    """Split the panel so each series runs only its class's candidates under ``auto``
    (no ARIMA on lumpy demand, no Croston on smooth); otherwise one group, every model."""
    if not names:
        return []
    if not is_auto(config):
        return [(df, tuple(names))]
    cls = df["unique_id"].map(classes.set_index("unique_id")["demand_class"].astype(str))
    by_class = class_candidates(main_season(season_of(config)))
    groups = []
    for name, part in df.groupby(cls, sort=True):
        models = tuple(m for m in by_class.get(name, ("naive",)) if m in names) or ("naive",)
        groups.append((part, models))
    return groups


def stats_run(
    config: ForecastConfig, models: tuple[str, ...], interval_models: tuple[str, ...] = ()
) -> StatsRun:
    """Settings of a statsforecast run; ``interval_models`` forecast with native intervals."""
    return StatsRun(
        models,
        config.freq,
        season_of(config),
        tuple(config.interval_levels),
        config.params,
        config.n_jobs,
        engine=config.engine,
        refit=config.refit,
        interval_models=interval_models,
    )


def check_backtest_fits(df: pd.DataFrame, config: ForecastConfig) -> None:
    """Raise when no series has the history the requested backtest windows need."""
    step = config.step or config.horizon
    need = config.horizon + step * (config.windows - 1) + 2
    longest = int(df.groupby("unique_id").size().max())
    if longest < need:
        raise DataError(
            f"too little history for {config.windows} backtest window(s) of {config.horizon} "
            f"periods every {step}: that needs at least {need} periods, the longest series has "
            f"{longest}. Lower windows or horizon.",
            setting="windows",
        )


def run_backtest(
    df: pd.DataFrame,
    config: ForecastConfig,
    classes: pd.DataFrame | None = None,
    *,
    select: bool = True,
) -> BacktestResult:
    """Rolling-origin backtest of the candidate models, with metrics and selection.

    Parameters
    ----------
    df : pandas.DataFrame
        Long history ``unique_id, ds, y``.
    config : ForecastConfig
        Models, horizon, windows and step.
    classes : pandas.DataFrame, optional
        Demand classes (:func:`classify_demand`); computed when missing.
    select : bool, default True
        Also choose a strategy per demand class and score the chosen forecasts.
    """
    check_backtest_fits(df, config)
    classes = classes if classes is not None else classify_demand(df)
    names, use_ml, per_class = candidates(config, classes)
    season = season_of(config)
    logger.info(
        "Backtesting %d model(s) on %d series: %d window(s) of %d periods",
        len(names) + use_ml,
        df["unique_id"].nunique(),
        config.windows,
        config.horizon,
    )
    # LightGBM first: each window's model estimates the promotions' effect on its history,
    # and the statistical candidates forecast that history cleansed of it
    ml_cv, effects = _ml_backtest_part(df, config) if use_ml else (None, pd.DataFrame())
    cleansed = cleanse(df, effects)
    if not effects.empty:
        logger.info(
            "Promotion cleansing: %d promoted periods and periods after of %d series taken out "
            "of the statistical models' history",
            len(effects.drop_duplicates(["unique_id", "ds"])),
            effects["unique_id"].nunique(),
        )
    parts = [
        stats_backtest(
            part,
            config.horizon,
            stats_run(config, models),
            n_windows=config.windows,
            step_size=config.step,
        )
        for part, models in model_groups(cleansed, config, classes, names)
    ]
    parts = [p for p in parts if not p.empty]
    cv = pd.concat(parts, ignore_index=True) if parts else None
    if cv is not None and cleansed is not df:  # scored against what was sold
        actual = df.set_index(["unique_id", "ds"])["y"]
        cv["y"] = actual.reindex(pd.MultiIndex.from_frame(cv[["unique_id", "ds"]])).to_numpy()
    if ml_cv is not None:
        if cv is None:
            cv = ml_cv.merge(df[["unique_id", "ds", "y"]], on=["unique_id", "ds"], how="left")
        else:
            cv = cv.merge(ml_cv, on=["unique_id", "ds", "cutoff"], how="left")
    if cv is None or cv.empty:
        raise DataError("no series has enough history to backtest; lower windows.", setting="windows")
    stats_aliases = [CATALOGUE[n].alias for n in names]
    cv = apply_driver_effect(cv, stats_aliases)
    names = [*names, "lgbm"] if use_ml else names
    if config.clip:
        num = [c for c in cv.columns if c not in ("unique_id", "ds", "cutoff", "y")]
        cv[num] = cv[num].clip(lower=0.0)
    train = df[df["ds"] <= cv["cutoff"].min()]
    aliases = [CATALOGUE[n].alias for n in names if CATALOGUE[n].alias in cv.columns]
    scores = evaluate_backtest(cv, train, aliases, season_length=main_season(season))
    summary = summarise_metrics(scores, cv)
    if not select:
        return BacktestResult(cv, scores, summary)
    scale = series_scale(train, main_season(season))
    class_of = classes.set_index("unique_id")["demand_class"].astype(str)
    class_of = class_of[class_of.index.isin(cv["unique_id"].unique())]
    selection = select_models(cv, scale, class_of, per_class, top_k=tuple(config.top_k))
    chosen = combine_forecasts(cv, selection.per_series)
    chosen["y"] = (
        cv.set_index(["unique_id", "cutoff", "ds"])
        .loc[pd.MultiIndex.from_frame(chosen[["unique_id", "cutoff", "ds"]]), "y"]
        .to_numpy()
    )
    chosen_scores = evaluate_backtest(
        chosen.rename(columns={"forecast": "auto"}),
        train,
        ["auto"],
        season_length=main_season(season),
    )
    summary = pd.concat(
        [summary, summarise_metrics(chosen_scores, chosen.rename(columns={"forecast": "auto"}))],
        ignore_index=True,
    )
    return BacktestResult(
        cv, pd.concat([scores, chosen_scores], ignore_index=True), summary, selection, chosen
    )


def check_season(df: pd.DataFrame, season: int | list[int]) -> None:
    longest = int(df.groupby("unique_id").size().max())
    main = main_season(season)
    if main < 1 or main > longest:
        raise ConfigError(
            f"season length {main} does not fit the data: the longest series has {longest} "
            "periods. Set season_length no longer than the history (1 for no seasonality).",
            setting="season_length",
        )


def selection_for_all(df, backtest, names, classes) -> pd.DataFrame:
    """Each series' members: from the backtest, else the single model (or first candidate
    of its class for series too short to backtest)."""
    ids = pd.Index(sorted(df["unique_id"].unique()))
    alias = {n: CATALOGUE[n].alias for n in names}
    if backtest is None or backtest.selection is None:
        only = (alias[names[0]],)
        return pd.DataFrame({"unique_id": ids, "members": [only] * len(ids), "how": "mean"})
    chosen = backtest.selection.per_series[["unique_id", "members", "how"]]
    missing = ids.difference(chosen["unique_id"])
    if len(missing):
        cls = classes.set_index("unique_id")["demand_class"].astype(str)
        fallback = []
        for uid in missing:
            first = next(
                (alias[m] for m in CLASS_CANDIDATES.get(cls.get(uid, "smooth"), ()) if m in alias),
                alias[names[0]],
            )
            fallback.append({"unique_id": uid, "members": (first,), "how": "mean"})
        logger.info("%d series too short to backtest got their class's first model", len(missing))
        chosen = pd.concat([chosen, pd.DataFrame(fallback)], ignore_index=True)
    return chosen


def attach_intervals(point, wide, selection, config: ForecastConfig) -> pd.DataFrame:
    """The chosen models' own intervals where a series has a single model that has them;
    NaN elsewhere (a backtest calibrates those: :mod:`.intervals`)."""
    out = point.copy()
    levels = list(config.interval_levels)
    if not levels:
        return out
    members = selection.set_index("unique_id")["members"]
    first = f"-lo-{levels[0]}"
    single = out["unique_id"].map(members).map(lambda m: len(m) == 1 and f"{m[0]}{first}" in wide.columns)
    single = single.to_numpy(dtype=bool)
    for lv in levels:
        for side in ("lo", "hi"):
            out[f"forecast-{side}-{lv}"] = np.nan
    if single.any():
        idx = np.flatnonzero(single)
        model_of = out["unique_id"].map(members).str[0].to_numpy()
        wide_idx = wide.set_index(["unique_id", "ds"])
        keys = pd.MultiIndex.from_frame(out.loc[idx, ["unique_id", "ds"]])
        for lv in levels:
            for side in ("lo", "hi"):
                col = f"forecast-{side}-{lv}"
                values = np.full(len(idx), np.nan)
                for model in np.unique(model_of[idx]):
                    sub = model_of[idx] == model
                    src = f"{model}-{side}-{lv}"
                    if src in wide_idx.columns:
                        values[sub] = wide_idx.loc[keys[sub], src].to_numpy()
                out.loc[idx, col] = values
    cols = ["unique_id", "ds", "forecast"] + [f"forecast-{s}-{lv}" for lv in levels for s in ("lo", "hi")]
    return out[[*cols, "model"]]
