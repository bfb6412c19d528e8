"""Configuration models: one place for every setting and its default.

A pipeline YAML, the CLI options and the Python API all build these pydantic models, so a bad
setting is caught at the door with a message that names the key and the valid choices.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "DataConfig",
    "DaskConfig",
    "ForecastConfig",
    "RECONCILERS",
    "MAX_HORIZON_MONTHS",
    "NAME_RULE",
    "check_freq",
    "check_name",
    "check_cycle",
]


def check_freq(freq: str) -> str:
    """Return ``freq`` if pandas understands it as a frequency, else raise ``ValueError``."""
    try:
        pd.tseries.frequencies.to_offset(freq)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"unknown frequency {freq!r}; use a pandas alias such as MS (month start), "
            "W-MON (weeks starting Monday), D (daily), QS (quarter start) or YS (year start)"
        ) from exc
    return freq


NAME_RULE = (
    "any letters (accents too), digits, spaces and punctuation, but no '/' or '\\', no '..', "
    "no control characters, not starting with a dot"
)
_CYCLE = re.compile(r"^(?P<year>\d{4})-(?P<month>0[1-9]|1[0-2])$")


def check_name(value: str) -> str:
    """Return ``value`` if it can name a plan, a pipeline or a model whose name becomes part
    of file names (see :data:`NAME_RULE`), else raise ``ValueError`` saying what is allowed.

    Spaces and accents are fine (``Plan Süd 2026``); what could climb out of a folder or
    hide a file is not. Where a name becomes a path it is still passed through
    :func:`sopforecast.exports.safe_name`.
    """
    text = str(value)
    problems = []
    if not text.strip():
        problems.append("it is empty")
    if "/" in text or "\\" in text:
        problems.append("it contains a path separator")
    if ".." in text:
        problems.append("it contains '..'")
    if any(unicodedata.category(c) == "Cc" for c in text):
        problems.append("it contains a control character")
    if text.startswith("."):
        problems.append("it starts with a dot")
    if problems:
        raise ValueError(f"{value!r} cannot be a name: {', '.join(problems)}; use {NAME_RULE}")
    return text


def check_cycle(value: str) -> str:
    """Return ``value`` if it is a planning cycle ``YYYY-MM`` (the month the plan starts, as
    the plan store names cycles, also for 4-4-5 fiscal periods), else raise ``ValueError``."""
    text = str(value).strip()
    if not _CYCLE.match(text):
        raise ValueError(
            f"{value!r} is not a planning cycle: write the month the plan starts as YYYY-MM, e.g. 2026-11"
        )
    return text


class DataConfig(BaseModel):
    """Where demand history comes from and how to read it into the data contract.

    The contract is long format: one row per series and period with a series key, a date
    and the demand. A series is named either by one id column or by hierarchy key columns
    (``category``, ``family``, ``sku``, ``region``, ``channel``), whose values joined with
    ``/`` become its ``unique_id``.
    """

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(
        None, description="File (CSV, Parquet, Excel) or SQLAlchemy URL; empty means the demo data."
    )
    table: str | None = Field(None, description="Table to read from a database URL.")
    query: str | None = Field(None, description="SQL query to run against a database URL.")
    sheet: str | int | None = Field(None, description="Excel sheet; default the first.")
    id_col: str = Field("unique_id", description="Column naming the series (if no keys).")
    time_col: str = Field("ds", description="Column with the period's date.")
    target_col: str = Field("y", description="Column with the demand quantity.")
    keys: list[str] = Field(
        default_factory=list,
        description="Hierarchy key columns, top to bottom, e.g. [category, family, sku, region, channel].",
    )
    hierarchy: list[str] = Field(
        default_factory=list,
        description="Nesting of the keys, one chain per dimension, top to bottom: "
        "['category/family/sku', 'region/channel']. Sets keys when keys is empty.",
    )
    drivers: list[str] = Field(
        default_factory=list, description="Driver columns kept beside the demand (price, promo)."
    )
    freq: str = Field("MS", description="pandas frequency of the buckets: MS, W-MON, D, QS, YS.")
    date_format: str | None = Field(None, description="strftime format of the dates, if unusual.")
    align_dates: bool = Field(
        False, description="Snap each date to the start of its period (invoice dates to months)."
    )
    negative: Literal["error", "clip"] = Field(
        "error", description="Negative demand (returns): stop with an error, or clip to zero."
    )
    missing: Literal["error", "zero"] = Field(
        "error", description="Empty demand cells: stop with an error, or read them as zero."
    )
    duplicates: Literal["error", "sum"] = Field(
        "error", description="Several rows for one series and period: error, or add them up."
    )
    min_length: int = Field(1, ge=1, description="Fewest periods of history the models need.")
    short_series: Literal["error", "report"] = Field(
        "report",
        description="Series shorter than min_length: stop, or report them and forecast them "
        "with the short-history fallback.",
    )

    @field_validator("freq")
    @classmethod
    def _freq_known(cls, value: str) -> str:
        return check_freq(value)

    @model_validator(mode="after")
    def _no_overlap(self) -> DataConfig:
        chained = [c for chain in self.hierarchy for c in chain.split("/") if c]
        if self.hierarchy and not self.keys:
            self.keys = chained
        elif self.hierarchy and sorted(chained) != sorted(self.keys):
            raise ValueError(
                f"hierarchy {self.hierarchy} names columns {chained} but keys are {self.keys}; "
                "give the same columns (or leave keys empty)"
            )
        roles = [self.time_col, self.target_col, *self.keys, *self.drivers]
        repeated = sorted({c for c in roles if roles.count(c) > 1})
        if repeated:
            raise ValueError(f"column(s) {repeated} are given more than one role")
        if self.table and self.query:
            raise ValueError("give either table or query, not both")
        return self

    @property
    def series_columns(self) -> list[str]:
        """The columns that name a series in the source: the keys, else the id column."""
        return list(self.keys) if self.keys else [self.id_col]


RECONCILERS = (
    "none",
    "bottom_up",
    "top_down",
    "middle_out",
    "ols",
    "wls_struct",
    "wls_var",
    "mint_shrink",
)

# S&OP plans look 18-36 months ahead; beyond that a statistical forecast is noise
MAX_HORIZON_MONTHS = 36
_MONTHLY = ("MS", "ME", "M")
# LightGBM keys the package itself sets, and the mlforecast feature keys of params['lgbm']
_LGBM_EXTRA = ("verbosity", "lags", "windows", "date_features")


class DaskConfig(BaseModel):
    """Where the Dask engine runs (``forecast.engine: dask``)."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        None,
        description="Scheduler of an existing Dask cluster (tcp://host:8786); empty: start a "
        "LocalCluster on 127.0.0.1 for the run and close it at the end.",
    )
    n_workers: int = Field(2, ge=1, description="Worker processes of the LocalCluster (1 thread each).")


def quantile_level(q: float) -> int:
    """The central interval whose bound is the ``q`` quantile: 0.1 and 0.9 -> 80."""
    return int(round(abs(2 * q - 1) * 100))


def quantile_column(q: float) -> str:
    """The forecast column of the ``q`` quantile: ``q10`` for 0.1, ``q2.5`` for 0.025."""
    return f"q{100 * q:g}"


class ForecastConfig(BaseModel):
    """How to forecast: models, horizon, backtest, intervals, hierarchy and reconciliation."""

    model_config = ConfigDict(extra="forbid")

    horizon: int = Field(18, description="Periods ahead to forecast (months for MS data).")
    freq: str = Field("MS", description="pandas frequency of the data.")
    models: str | list[str] = Field(
        "auto", description="'auto' (select per series by backtest) or names: ets, arima, ..."
    )
    level: list[int] = Field(default_factory=lambda: [80, 95], description="Interval levels, %.")
    quantiles: list[float] = Field(
        default_factory=list,
        description="Quantile forecasts, e.g. [0.1, 0.5, 0.9] (safety stock): columns q10, q50, q90 "
        "from the same calibrated error profile as the intervals; 0.5 is the point forecast.",
    )
    season_length: int | list[int] | None = Field(
        None, description="Periods per season; default from freq (MS 12, W 52, D 7, QS 4, YS 1)."
    )
    windows: int = Field(2, ge=1, description="Backtest windows (rolling origins).")
    step: int | None = Field(None, ge=1, description="Periods between origins; default horizon.")
    hierarchy: list[str] = Field(default_factory=list, description="Key chains to aggregate.")
    reconcile: Literal[RECONCILERS] = Field(  # type: ignore[valid-type]
        "mint_shrink", description="Reconciliation method for hierarchies."
    )
    reconcile_sparse_above: int = Field(
        4000,
        ge=1,
        description="Above this many series (every level) reconciliation uses sparse matrices and "
        "mint_shrink becomes wls_var: its dense error covariance needs up to 70 bytes per squared "
        "series (1.1 GB at 4,000 series, 22 GB at 18,000). Logged when it switches.",
    )
    middle_level: str | None = Field(None, description="Level for middle_out, e.g. category/family.")
    nonnegative: bool = Field(False, description="Non-negative reconciliation (MinTrace).")
    clip: bool = Field(
        True,
        description="No negative demand: bottom forecasts clipped at zero, aggregates re-summed, "
        "lower bounds at zero.",
    )
    working_days: bool = Field(
        False,
        description="Forecast demand per working day (Monday to Friday) and scale each month "
        "back by its working days; for demand that happens on business days. Monthly data only.",
    )
    discontinued_after: int | None = Field(
        6,
        ge=1,
        description="A series with no demand for this many periods, and longer than any gap "
        "between its sales before, is discontinued: forecast at zero and reported. None: never.",
    )
    cleanse_promotions: bool = Field(
        True,
        description="Fit the statistical models on history cleansed of the promotions' effect "
        "(uplift and the dip after) that LightGBM estimates from the drivers, then apply the "
        "plan's effect on top; in the backtest as in the final forecast. Needs a 0/1 driver "
        "(promo) and LightGBM.",
    )
    bias_correction: bool = Field(
        False,
        description="Take out a level's systematic lean seen in every backtest window (all under- "
        "or all over-forecast): a factor per level and horizon step, cross-fitted in the backtest "
        "(forecasting/bias.py). Off by default: on the demo's held-out months it lowered the Total's "
        "error on three seeds of four but cost the intervals their calibration (BENCHMARKS.md); "
        "for data whose lean persists.",
    )
    params: dict[str, dict] = Field(default_factory=dict, description="Per-model overrides.")
    engine: Literal["local", "dask"] = Field(
        "local",
        description="Where models fit: 'local' (processes on this machine, n_jobs cores) or 'dask' "
        "(statistical models on a Dask cluster, see dask; pip install 'sopforecast[dask]').",
    )
    dask: DaskConfig = Field(default_factory=DaskConfig, description="The Dask engine's cluster.")
    n_jobs: int = Field(-1, description="Cores for local fitting; -1 = all.")
    top_k: list[int] = Field(default_factory=lambda: [2, 3], description="Top-k ensembles tried.")
    drivers: list[str] = Field(
        default_factory=list,
        description="Driver columns (price, promo): LightGBM uses them, and their effect reaches the "
        "statistical candidates (future values needed).",
    )
    ml_min_series: int = Field(
        20, ge=1, description="Under auto, LightGBM joins the candidates from this many series."
    )
    seed: int = Field(0, description="Seed of the machine-learning models.")
    future_fill: Literal["error", "carry", "zero"] = Field(
        "error",
        description="Future drivers missing for a series or period: error, carry the last value, "
        "or zero (flags off, other drivers carried).",
    )
    refit: bool = Field(
        False,
        description="Re-estimate statistical models at every backtest origin; by default they are "
        "estimated at the first origin and carried forward (parameters kept, states updated); "
        "CES is re-estimated at every origin either way.",
    )

    @field_validator("freq")
    @classmethod
    def _freq_known(cls, value: str) -> str:
        return check_freq(value)

    @field_validator("horizon")
    @classmethod
    def _positive_horizon(cls, value: int) -> int:
        if value <= 0:
            raise ValueError(f"horizon must be a positive number of periods, got {value}")
        return value

    @field_validator("level")
    @classmethod
    def _levels(cls, value: list[int]) -> list[int]:
        bad = [v for v in value if not 0 < v < 100]
        if bad:
            raise ValueError(f"interval levels must lie between 0 and 100, got {bad}")
        return sorted(set(value))

    @field_validator("quantiles")
    @classmethod
    def _quantiles(cls, value: list[float]) -> list[float]:
        bad = [q for q in value if not 0 < q < 1]
        if bad:
            raise ValueError(f"quantiles must lie between 0 and 1 (0.1 for the 10th percentile), got {bad}")
        return sorted(set(value))

    @property
    def interval_levels(self) -> list[int]:
        """The interval levels the forecaster computes: ``level`` and those the ``quantiles``
        are read from (the 10% and 90% quantiles are the 80% interval's bounds)."""
        return sorted({*self.level, *(quantile_level(q) for q in self.quantiles if q != 0.5)})

    @field_validator("models")
    @classmethod
    def _models_known(cls, value: str | list[str]) -> str | list[str]:
        from .forecasting.models import resolve_models  # here: sopforecast.forecasting imports us

        resolve_models(value)  # a ConfigError listing the valid names
        return value

    @field_validator("params")
    @classmethod
    def _params_accepted(cls, value: dict[str, dict]) -> dict[str, dict]:
        from .errors import ConfigError
        from .forecasting.models import CATALOGUE, build_stats_model

        for name, overrides in value.items():
            if name not in CATALOGUE:
                raise ConfigError(
                    f"{name!r} is not a model; params take model names: {', '.join(CATALOGUE)}",
                    setting=name,
                )
            if CATALOGUE[name].kind == "stats":
                try:
                    build_stats_model(name, 12, overrides)
                except (TypeError, ValueError) as exc:  # the constructor refuses them
                    raise ConfigError(str(exc), setting=name) from exc
            else:
                import lightgbm as lgb

                known = {*lgb.LGBMRegressor().get_params(), *_LGBM_EXTRA}
                unknown = sorted(set(overrides) - known)
                if unknown:
                    raise ConfigError(
                        f"unknown parameter(s) {unknown} for {name}; valid: {', '.join(sorted(known))}",
                        setting=name,
                    )
        return value

    @model_validator(mode="after")
    def _horizon_in_range(self) -> ForecastConfig:
        from .errors import ConfigError

        if self.working_days and self.freq not in _MONTHLY:
            raise ConfigError(
                f"working_days scales months by their working days; freq is {self.freq!r}. "
                "Use it with monthly data (MS) or set it to false.",
                setting="working_days",
            )
        if self.freq in _MONTHLY and self.horizon > MAX_HORIZON_MONTHS:
            raise ConfigError(
                f"a horizon of {self.horizon} months is beyond the S&OP range; "
                f"use at most {MAX_HORIZON_MONTHS} for monthly data",
                setting="horizon",
            )
        return self
