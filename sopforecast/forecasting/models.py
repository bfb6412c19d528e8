"""The model catalogue: short config names, the library model behind each, sensible defaults.

Statistical models come from statsforecast, the machine-learning model is LightGBM through
mlforecast (see :mod:`sopforecast.forecasting.ml`). Every parameter can be overridden from
the config; unknown names fail with the list of valid ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..errors import ConfigError

__all__ = [
    "ModelSpec",
    "CATALOGUE",
    "CLASS_CANDIDATES",
    "class_candidates",
    "ml_is_candidate",
    "default_season_length",
    "resolve_models",
    "build_stats_model",
]

_SEASON = {
    "MS": 12,
    "ME": 12,
    "M": 12,
    "W": 52,
    "D": 7,
    "QS": 4,
    "QE": 4,
    "Q": 4,
    "YS": 1,
    "YE": 1,
    "Y": 1,
    "A": 1,
    "AS": 1,
    "h": 24,
    "H": 24,
    "B": 5,
}


def default_season_length(freq: str) -> int:
    """Periods per season for a pandas frequency: MS 12, W 52, D 7, QS 4, YS 1."""
    base = pd.tseries.frequencies.to_offset(freq).name.split("-")[0]
    return _SEASON.get(base, 1)


@dataclass(frozen=True)
class ModelSpec:
    """One entry of the catalogue."""

    name: str
    alias: str
    kind: str  # "stats" or "ml"
    native_intervals: bool
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)


def _spec(name, alias, kind, native, description, **defaults) -> ModelSpec:
    return ModelSpec(name, alias, kind, native, description, defaults)


CATALOGUE: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        _spec("ets", "AutoETS", "stats", True, "exponential smoothing, state space, auto-selected"),
        _spec("arima", "AutoARIMA", "stats", True, "seasonal ARIMA, stepwise auto-selected"),
        _spec("theta", "DynamicOptimizedTheta", "stats", True, "dynamic optimised theta"),
        _spec("ces", "CES", "stats", True, "complex exponential smoothing"),
        _spec("mstl", "MSTL", "stats", True, "several seasonalities (weekly/daily data)"),
        _spec("snaive", "SeasonalNaive", "stats", True, "last season's value"),
        _spec("naive", "Naive", "stats", True, "last value"),
        _spec("mean", "HistoricAverage", "stats", True, "historical average"),
        _spec("croston", "CrostonOptimized", "stats", False, "Croston, optimised smoothing"),
        _spec("sba", "CrostonSBA", "stats", False, "Croston with Syntetos-Boylan correction"),
        _spec("adida", "ADIDA", "stats", False, "aggregate-disaggregate intermittent demand"),
        _spec("imapa", "IMAPA", "stats", False, "multiple aggregation for intermittent demand"),
        _spec(
            "tsb",
            "TSB",
            "stats",
            False,
            "Teunter-Syntetos-Babai, for obsolescence",
            alpha_d=0.2,
            alpha_p=0.2,
        ),
        _spec("lgbm", "LightGBM", "ml", False, "LightGBM on lags, rolling means, calendar, keys"),
    )
}

# candidates per demand class for models: auto (smooth and erratic get the continuous models,
# intermittent and lumpy the Croston family; ml joins where there is enough data)
CLASS_CANDIDATES: dict[str, tuple[str, ...]] = {
    "smooth": ("ets", "arima", "theta", "ces", "snaive"),
    "erratic": ("ets", "arima", "theta", "ces", "snaive", "naive"),
    "intermittent": ("croston", "sba", "adida", "imapa", "tsb", "mean"),
    "lumpy": ("sba", "adida", "imapa", "tsb", "mean"),
    "zero": ("naive",),
}


# What `auto` runs depends on the season length, from measurements (BENCHMARKS.md, "time
# per model" and "M3"): AutoARIMA's search grows with the season; on monthly data it costs
# 5-8x AutoETS and 100x Theta per series and does not earn it in the median of the class's
# candidates (M3 monthly 13.44 sMAPE without it). LightGBM (a global model on lags, weak
# alone on M3) steadies the median on yearly and quarterly data but pulls it off on monthly
# (13.57 with it, 13.44 without). So from seasons of LONG_SEASON periods neither is a
# candidate; LightGBM still runs there when drivers are given, to carry their effect to the
# statistical models. Any model list may name either.
COSTLY_ON_LONG_SEASONS = ("arima",)
LONG_SEASON = 12


def ml_is_candidate(season_length: int) -> bool:
    """Whether LightGBM joins the smooth and erratic candidates under ``models: auto``."""
    return season_length < LONG_SEASON


def class_candidates(season_length: int) -> dict[str, tuple[str, ...]]:
    """Candidates per demand class under ``models: auto`` for a season length."""
    if season_length < LONG_SEASON:
        return dict(CLASS_CANDIDATES)
    return {
        cls: tuple(m for m in models if m not in COSTLY_ON_LONG_SEASONS)
        for cls, models in CLASS_CANDIDATES.items()
    }


def resolve_models(models: str | list[str]) -> list[str]:
    """Turn ``"ets,arima"``, ``["ets", "arima"]`` or ``"auto"`` into catalogue names.

    ``auto`` returns every name that some demand class uses.
    """
    if isinstance(models, str):
        names = [m.strip().lower() for m in models.split(",") if m.strip()]
    else:
        names = [str(m).strip().lower() for m in models]
    if names == ["auto"]:
        return sorted({m for ms in CLASS_CANDIDATES.values() for m in ms})
    unknown = [m for m in names if m not in CATALOGUE]
    if unknown or not names:
        raise ConfigError(f"unknown model(s) {unknown or names}; valid names: auto, {', '.join(CATALOGUE)}.")
    return list(dict.fromkeys(names))


def build_stats_model(
    name: str,
    season_length: int,
    params: dict[str, Any] | None = None,
    *,
    conformal: Any = None,
) -> Any:
    """Instantiate the statsforecast model behind a catalogue name.

    Parameters
    ----------
    name : str
        Catalogue name (``ets``, ``croston``, ...).
    season_length : int or list of int
        Season length(s); MSTL takes several.
    params : dict, optional
        Overrides of the model's constructor arguments.
    conformal : statsforecast.utils.ConformalIntervals, optional
        Conformal intervals for models without native ones.
    """
    from statsforecast import models as sm

    spec = CATALOGUE[name]
    kwargs = {**spec.defaults, **(params or {})}
    seasons = season_length if isinstance(season_length, list) else [season_length]
    main = max(seasons)
    builders: dict[str, Callable[[], Any]] = {
        "ets": lambda: sm.AutoETS(season_length=main, **kwargs),
        "arima": lambda: sm.AutoARIMA(season_length=main, **kwargs),
        "theta": lambda: sm.DynamicOptimizedTheta(season_length=main, **kwargs),
        "ces": lambda: sm.AutoCES(season_length=main, **kwargs),
        "mstl": lambda: sm.MSTL(season_length=seasons, **kwargs),
        "snaive": lambda: sm.SeasonalNaive(season_length=main, **kwargs),
        "naive": lambda: sm.Naive(**kwargs),
        "mean": lambda: sm.HistoricAverage(**kwargs),
        "croston": lambda: sm.CrostonOptimized(**kwargs),
        "sba": lambda: sm.CrostonSBA(**kwargs),
        "adida": lambda: sm.ADIDA(**kwargs),
        "imapa": lambda: sm.IMAPA(**kwargs),
        "tsb": lambda: sm.TSB(**kwargs),
    }
    if name not in builders:
        raise ConfigError(f"{name!r} is not a statistical model.")
    if conformal is not None and not spec.native_intervals:
        kwargs["prediction_intervals"] = conformal
    try:
        return builders[name]()
    except TypeError as exc:
        raise ConfigError(f"bad parameters for model {name!r} ({spec.alias}): {exc}.") from exc
