"""Accuracy targets and the exceptions that break them, worst money first.

A :class:`Target` holds one metric of one forecast at one lag to a bound, for every series of
a level (``level: category``) or for a segment of the bottom series (``segment: abc=A``,
``segment: all``). :func:`check_targets` returns the breaches with how far out they are,
their trend over the last cycles, a suggested action and the money at stake, ranked so a
planner starts at the top of the list.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ..data.hierarchy import TOTAL
from ..errors import ConfigError, DataError
from .accuracy import FORECASTS
from .rules import BIAS_BAND, TRACKING_BOUND, bias_status
from .segments import ALL, SEGMENT_COLUMNS, SEGMENT_VALUES

__all__ = [
    "TARGET_METRICS",
    "TREND_CYCLES",
    "ACTIONS",
    "EXCEPTION_COLUMNS",
    "Target",
    "default_targets",
    "check_targets",
]

logger = logging.getLogger(__name__)

TARGET_METRICS = ("accuracy", "wape", "bias", "mase", "tracking_signal", "coverage_gap")
TREND_CYCLES = 3  # cycles shown in the trend text
_STEADY = 0.01  # a change below 1% of the bound (at least 0.01) is noise, not a trend
_EPS = 1e-9  # 1 - 0.25 is not quite 0.75 in floating point: no breach for that
ACTIONS = {
    "over_persistent": "Persistent over-forecast: review overrides by author (plan fva) and the promotion "
    "assumptions",
    "under_persistent": "Persistent under-forecast: check for lost sales / stock-outs and raise the plan",
    "over": "Over-forecast this cycle: review overrides by author (plan fva); act if it persists",
    "under": "Under-forecast this cycle: check for lost sales / stock-outs; act if it persists",
    "tracking_signal": "Re-fit the model or check for a structural change in demand",
    "coverage_low": "Widen intervals: more backtest windows, check calibration",
    "coverage_high": "Intervals wider than needed: safety stocks are too high",
    "accuracy": "Review model selection and overrides for this series; check data quality",
    "accuracy_segment": "Review model selection and overrides for this segment's series; check data quality",
}
EXCEPTION_COLUMNS = (
    "key level metric forecast lag value target breach trend direction action at_stake rank".split()
)
_MATCH = ["key", "level", "forecast", "lag", "metric"]


class Target(BaseModel):
    """One accuracy target: ``metric`` of ``forecast`` at ``lag`` for a level or a segment."""

    model_config = ConfigDict(extra="forbid")

    metric: str = Field(..., description=f"One of {', '.join(TARGET_METRICS)}.")
    forecast: str = Field("final", description="final (the consensus plan) or statistical.")
    lag: int = Field(3, ge=1, description="Months ahead the plan was made (1 = the version's first month).")
    level: str | None = Field(None, description="Check every series of this level.")
    segment: str | None = Field(None, description="Check a segment of the bottom series: abc=A, all, ...")
    min: float | None = Field(None, description="The value must be at least this.")
    max: float | None = Field(None, description="The value must be at most this.")
    within: float | None = Field(None, ge=0, description="The value's magnitude must be at most this.")

    @field_validator("metric", "forecast")
    @classmethod
    def _known(cls, value: str, info: ValidationInfo) -> str:
        choices = {"metric": TARGET_METRICS, "forecast": FORECASTS}[info.field_name]
        if value not in choices:
            raise ValueError(f"unknown {info.field_name} {value!r}; choose one of: {', '.join(choices)}")
        return value

    @field_validator("segment")
    @classmethod
    def _segment_known(cls, value: str | None) -> str | None:
        if value is None or value == ALL:
            return value
        column, sep, name = (part.strip() for part in value.partition("="))
        if not sep or column not in SEGMENT_VALUES:
            raise ValueError(
                f"segment {value!r} is not 'column=value' or {ALL!r}; columns: {', '.join(SEGMENT_COLUMNS)} "
                "(e.g. abc=A, demand_class=intermittent)"
            )
        if name not in SEGMENT_VALUES[column]:
            raise ValueError(
                f"segment {value!r}: {column} is one of {', '.join(SEGMENT_VALUES[column])}, not {name!r}"
            )
        return f"{column}={name}"

    @model_validator(mode="after")
    def _scope_and_bound(self) -> Target:
        if self.level is None and self.segment is None:
            raise ConfigError(
                "a target needs a level (every series of it) or a segment (abc=A, all, ...)", setting="level"
            )
        if self.level is not None and self.segment is not None:
            raise ConfigError(
                f"a target takes a level or a segment, not both (level {self.level!r}, segment "
                f"{self.segment!r}); split it into two targets",
                setting="segment",
            )
        if self.min is None and self.max is None and self.within is None:
            raise ConfigError(
                "a target needs a bound: min, max or within (e.g. min: 0.75 for accuracy, "
                "within: 0.05 for bias)",
                setting="min",
            )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ConfigError(f"min {self.min:g} is above max {self.max:g}", setting="max")
        return self

    @property
    def bound_text(self) -> str:
        """The bounds as a planner reads them: ``>= 0.75``, ``|x| <= 0.05``."""
        parts = [f">= {self.min:g}"] if self.min is not None else []
        parts += [f"<= {self.max:g}"] if self.max is not None else []
        if self.within is not None and self.metric == "tracking_signal":
            # the rule shared with bias (rules.bias_status): a signal at its bound is off target
            # when every error leans one way and the bias is outside its band
            parts.append(f"|x| < {self.within:g}, errors both ways")
        elif self.within is not None:
            parts.append(f"|x| <= {self.within:g}")
        return ", ".join(parts)


def default_targets(levels: Sequence[str]) -> list[Target]:
    """Sensible targets for every level but the bottom (``levels`` ordered top to bottom).

    Lag-3 final accuracy at least 0.75 (0.9 for the Total), lag-3 final bias and tracking
    signal within 0.05 and 4, and the statistical 80% intervals covering 75% to 85% of actuals.
    The bottom level is left out: single items are too noisy for a fixed bound; hold them to
    segment targets instead.
    """
    out = []
    for level in list(levels)[:-1]:
        out += [
            Target(metric="accuracy", level=level, min=0.9 if level == TOTAL else 0.75),
            Target(metric="bias", level=level, within=0.05),
            Target(metric="tracking_signal", level=level, within=4),
            Target(metric="coverage_gap", forecast="statistical", level=level, within=0.05),
        ]
    return out


def check_targets(
    series_metrics: pd.DataFrame | None,
    segment_metrics: pd.DataFrame | None,
    targets: Sequence[Target | dict],
    *,
    history_metrics: pd.DataFrame | None = None,
    at_stake: pd.Series | None = None,
    top: int | None = None,
) -> pd.DataFrame:
    """The breaches of ``targets``, ranked by money at stake, then by how far out they are.

    Parameters
    ----------
    series_metrics : pandas.DataFrame or None
        ``accuracy_table(scored, by=("unique_id", "level"))``: level targets check each of
        their level's series here.
    segment_metrics : pandas.DataFrame or None
        ``accuracy_table(scored, by=(column,))`` of segment columns, stacked (as
        :func:`~sopforecast.monitoring.segments.segment_accuracy` returns them); rows with
        every segment column empty are the ``all`` segment.
    targets : sequence of Target (or dicts of its fields)
        The targets.
    history_metrics : pandas.DataFrame, optional
        The same metrics per ``cycle`` (``by=("cycle", "unique_id", "level")``, and/or
        segments by cycle) for the trend, its direction and persistent bias.
    at_stake : pandas.Series, optional
        Money at stake by key (series id or ``abc=A``), e.g. revenue at risk = |error| x price.
    top : int, optional
        Keep the first ``top`` exceptions.

    Returns
    -------
    pandas.DataFrame
        ``key, level, metric, forecast, lag, value, target, breach, trend, direction, action,
        at_stake, rank``. ``level`` is the segment column for segment targets; ``breach`` is
        the positive distance outside the bound; ``trend`` the values of the last
        :data:`TREND_CYCLES` cycles (``0.81 → 0.74 → 0.62``); ``direction`` ``worsening``,
        ``improving``, ``steady`` (last cycle against the one before) or ``new`` (fewer than two
        cycles known). Targets without a scored value (lag not reached yet) are skipped.
    """
    spec = pd.DataFrame(
        [{**t.model_dump(), "target": t.bound_text} for t in (_target(t) for t in targets)],
        columns=[*Target.model_fields, "target"],
    ).astype({"min": float, "max": float, "within": float})
    spec["number"] = spec.index
    found = []
    by_level, by_segment = spec[spec["level"].notna()], spec[spec["segment"].notna()]
    if series_metrics is not None and len(by_level):
        scope = by_level.drop(columns="segment").assign(scope="series")
        found.append(_long(series_metrics).merge(scope, on=_MATCH[1:]))
    if segment_metrics is not None and len(by_segment):
        scope = by_segment.drop(columns="level").rename(columns={"segment": "key"}).assign(scope="segment")
        found.append(_long(segment_metrics).merge(scope, on=["key", *_MATCH[2:]]))
    empty = pd.DataFrame(columns=[*_MATCH, "value", "min", "max", "within", "target", "scope", "number"])
    found = pd.concat(found, ignore_index=True) if found else empty.astype({"value": float, "min": float})
    unchecked = spec.index.difference(found["number"]) if len(found) else spec.index
    if len(unchecked):  # a misspelt level would otherwise never raise an exception
        logger.info(
            "targets without a scored value (lag not reached, or no such level/segment): %s",
            [
                f"{r.metric} {r.forecast} lag {r.lag} {r.level or r.segment}"
                for r in spec.loc[unchecked].itertuples()
            ],
        )
    found["breach"] = _badness(found, found["value"])
    tracking = found["metric"] == "tracking_signal"
    if tracking.any():  # the rule it shares with bias (rules.bias_status)
        wide = [m for m in (series_metrics, segment_metrics) if m is not None]
        found.loc[tracking, "breach"] = _tracking_breach(found[tracking], spec, wide)
    found = found[found["breach"] > _EPS].reset_index(drop=True)
    trend, direction, persistent = _history(found, history_metrics)
    found["trend"], found["direction"] = trend, direction
    found["action"] = _action(found, persistent)
    found["at_stake"] = found["key"].map(at_stake).astype(float) if at_stake is not None else np.nan
    found = found.sort_values(
        ["at_stake", "breach", "key", "metric"], ascending=[False, False, True, True], na_position="last"
    )
    found["rank"] = np.arange(1, len(found) + 1)
    found = found.reindex(columns=EXCEPTION_COLUMNS).reset_index(drop=True)
    return found.head(top) if top is not None else found


def _tracking_breach(rows: pd.DataFrame, spec: pd.DataFrame, metrics: list[pd.DataFrame]) -> pd.Series:
    """Breach of tracking-signal rows under :func:`~.rules.bias_status`: off target only when
    the same key's bias is outside its band (the bias target's, else :data:`~.rules.BIAS_BAND`)
    and persists; then by the larger of the signal past its bound and the bias past its band."""
    parts = []
    for m in metrics:
        if "bias" not in m.columns:
            continue
        key, group = _keys(m)
        parts.append(
            m.assign(key=key, level=group, n=m["n"] if "n" in m.columns else np.nan)[
                ["key", "level", "forecast", "lag", "bias", "n"]
            ]
        )
    if not parts:
        return pd.Series(-1.0, index=rows.index)
    lookup = pd.concat(parts, ignore_index=True).drop_duplicates(["key", "level", "forecast", "lag"])
    bias_targets = spec[spec["metric"] == "bias"]
    bands = {}
    for t in bias_targets.itertuples():
        scope = t.level if isinstance(t.level, str) else t.segment
        bands[(scope, t.forecast, t.lag)] = t.within if t.within == t.within else BIAS_BAND
    joined = rows.reset_index().merge(lookup, on=["key", "level", "forecast", "lag"], how="left")
    out = []
    for r in joined.itertuples(index=False):
        band = bands.get((r.level, r.forecast, r.lag), bands.get((r.key, r.forecast, r.lag), BIAS_BAND))
        bound = r.within if r.within == r.within else TRACKING_BOUND
        if bias_status(r.bias, r.value, r.n, band=band, bound=bound) == "green":
            out.append(-1.0)
        else:
            out.append(max(abs(r.value) - bound, abs(r.bias) - band))
    return pd.Series(out, index=joined["index"].to_numpy(), dtype=float)


def _target(item: Target | dict) -> Target:
    return item if isinstance(item, Target) else Target.model_validate(item)


def _long(metrics: pd.DataFrame) -> pd.DataFrame:
    """Metric rows as ``key, level, forecast, lag, metric, value`` (and ``cycle`` if present)."""
    missing = [c for c in ("forecast", "lag") if c not in metrics.columns]
    if missing:
        raise DataError(f"metrics lack the column(s) {missing}; pass accuracy_table output")
    key, group = _keys(metrics)
    ids = [c for c in ("cycle",) if c in metrics.columns]
    values = [m for m in TARGET_METRICS if m in metrics.columns]
    keyed = metrics.assign(key=key, level=group)[["key", "level", "forecast", "lag", *ids, *values]]
    ids = ["key", "level", "forecast", "lag", *ids]
    long = keyed.melt(id_vars=ids, var_name="metric", value_name="value")
    return long[long["value"].notna()]


def _keys(metrics: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Key and level of every metric row: the series id and level, else ``abc=A`` and ``abc``,
    else ``all`` (the row of every bottom series)."""
    key = pd.Series("", index=metrics.index, dtype=object)
    group = pd.Series("", index=metrics.index, dtype=object)
    for c in (c for c in SEGMENT_COLUMNS if c in metrics.columns):
        has = metrics[c].notna()
        joint = has & (key != "")  # a row of several segment columns (abc x xyz) keeps them all
        key = key + np.where(joint, ",", "") + (c + "=" + metrics[c].astype(str)).where(has, "")
        group = group + np.where(joint, ",", "") + pd.Series(c, index=metrics.index).where(has, "")
    key, group = key.mask(key == "", ALL), group.mask(group == "", ALL)
    if "unique_id" in metrics.columns:
        series = metrics["unique_id"].notna()
        key = key.mask(series, metrics["unique_id"].astype(object))
        group = group.mask(series, metrics.get("level", pd.Series(np.nan, index=metrics.index)))
    return key, group


def _badness(bounds: pd.DataFrame, value: pd.Series) -> pd.Series:
    """How far ``value`` lies outside each row's bounds (negative: inside; NaN: no value)."""
    parts = [bounds["min"] - value, value - bounds["max"], value.abs() - bounds["within"]]
    stacked = np.vstack([p.to_numpy(dtype=float) for p in parts])
    with np.errstate(invalid="ignore"):
        worst = np.fmax.reduce(stacked, axis=0) if len(value) else np.array([], dtype=float)
    return pd.Series(worst, index=value.index)


def _history(found: pd.DataFrame, history: pd.DataFrame | None) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Trend text, direction and whether the bias kept its sign, for every exception row."""
    trend = pd.Series("", index=found.index, dtype=object)
    direction = pd.Series("new", index=found.index, dtype=object)
    persistent = pd.Series(False, index=found.index)
    if history is None or not len(found):
        return trend, direction, persistent
    past = _long(history)
    if "cycle" not in past:
        raise DataError("history_metrics lacks the column 'cycle'; pass accuracy_table(by=('cycle', ...))")
    rows = found[[*_MATCH, "value", "min", "max", "within"]].rename(columns={"value": "now"})
    past = rows.reset_index(names="row").merge(past, on=_MATCH).sort_values(["row", "cycle"], kind="stable")
    past = past.groupby("row", sort=False).tail(TREND_CYCLES)
    trend.update(past["value"].map("{:.2f}".format).groupby(past["row"]).agg(" → ".join))
    change = _badness(past, past["value"]).groupby(past["row"]).diff()
    last = change.groupby(past["row"]).last()  # NaN when only one cycle is known
    scale = np.fmax.reduce(np.abs(rows[["min", "max", "within"]].to_numpy(dtype=float)), axis=1)
    tol = _STEADY * np.fmax(np.nan_to_num(scale, nan=1.0), 1.0)
    tol = pd.Series(tol, index=found.index).reindex(last.index)
    direction.loc[last.index] = np.select(
        [last.isna(), last > tol, last < -tol], ["new", "worsening", "improving"], default="steady"
    )
    # persistent: the last two cycles and the current value share the sign
    recent = past.groupby("row", sort=False).tail(2)
    sign = np.sign(recent["value"]).groupby(recent["row"])
    same = (sign.size() >= 2) & (sign.min() == sign.max())
    now_sign = np.sign(rows["now"]).reindex(same.index)
    persistent.loc[same.index] = (same & (sign.min() == now_sign)).to_numpy()
    return trend, direction, persistent


def _action(found: pd.DataFrame, persistent: pd.Series) -> np.ndarray:
    """The suggested action of each exception row, by metric and the sign of its value."""
    metric, value = found["metric"], found["value"].astype(float)
    bias, segment = metric == "bias", found["scope"] == "segment"
    rules = {  # the first rule that holds gives the action
        "over_persistent": bias & (value > 0) & persistent,
        "over": bias & (value > 0),
        "under_persistent": bias & persistent,
        "under": bias,
        "tracking_signal": metric == "tracking_signal",
        "coverage_low": (metric == "coverage_gap") & (value < 0),
        "coverage_high": metric == "coverage_gap",
        "accuracy_segment": segment,
    }
    return np.select(list(rules.values()), [ACTIONS[n] for n in rules], default=ACTIONS["accuracy"])
