"""One entry point for forecasting: :class:`Forecaster`.

Configured once with a :class:`~sopforecast.config.ForecastConfig`, it serves every caller
(the public ``forecast`` / ``backtest``, the CLI, the pipeline runner, the registered MLflow
model and the benchmarks):

- ``fit(history)`` builds the panel (the series, or every level of the hierarchy with its
  aggregated drivers), backtests the candidate models by rolling origin, selects per demand
  class, and estimates the chosen models on the whole history: statistical models forecast
  their longest horizon once (``predict`` slices it), LightGBM is kept fitted because its
  forecast depends on the future drivers;
- ``predict(h=None, future=None)`` combines the fitted candidates with the drivers' effect,
  attaches intervals and reconciles, without re-fitting anything;
- ``cross_validation(history, windows=...)`` is the backtest alone, scored per model and,
  for a hierarchy, per level and reconciliation method.

Each returns a :class:`ForecastRun`: forecast frame, backtest per model and window, accuracy
per level, chosen model per series, stage timings.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import pandas as pd
from pydantic import ValidationError

from ..config import ForecastConfig
from ..data.panel import extend_to_common_end
from ..data.profile import classify_demand
from ..errors import ConfigError, NotFittedError, format_examples
from ..notices import library_warnings
from . import engine
from .bias import BiasFactors, cross_fitted, fit_factors
from .calendar import from_rate, to_rate
from .combine import deliver, with_quantiles
from .dask_engine import engine_session
from .drivers import aggregate_drivers, baseline_future, future_frame
from .hierarchical import (
    Panel,
    build_panel,
    hierarchy_keys,
    known_demand,
    level_accuracy,
    reconciled_backtest,
    score_levels,
)
from .intervals import error_profile
from .launches import delist_forecast, launch_forecast, read_delistings, read_launches
from .ml import last_flags, ml_fit_effect, ml_predict
from .models import CATALOGUE
from .stats import stats_forecast

__all__ = ["Forecaster", "ForecastRun", "stored_horizon"]

logger = logging.getLogger(__name__)


def stored_horizon(config: ForecastConfig) -> int:
    """Periods the statistical models forecast at fit time: enough for any later ``predict``
    within the S&OP range (36 months for monthly data)."""
    return max(config.horizon, 36) if config.freq.startswith("M") else config.horizon


@dataclass
class ForecastRun:
    """What one call of the forecaster produced."""

    forecast: pd.DataFrame
    backtest: engine.BacktestResult | None = None
    accuracy: pd.DataFrame | None = None  # per level and method (hierarchies)
    selection: pd.DataFrame | None = None  # unique_id, members, how (+ class, strategy)
    classes: pd.DataFrame | None = None
    levels: pd.Series | None = None
    timings: dict[str, float] = field(default_factory=dict)
    short_history: list[str] = field(default_factory=list)
    # with working_days the backtest and accuracy are per working day (an average month's);
    # forecast, candidates and series are in the data's units
    candidates: pd.DataFrame | None = None  # every candidate's forecast, wide
    series: pd.DataFrame | None = None  # history of every series forecast (aggregates included)
    bottom_level: str | None = None
    discontinued: list[str] = field(default_factory=list)  # stopped selling: forecast at zero

    @property
    def metrics(self) -> pd.DataFrame:
        """Backtest accuracy: per level and method for a hierarchy, else per model."""
        if self.accuracy is not None:
            return self.accuracy
        if self.backtest is None:
            raise ConfigError("no backtest was run; use cross_validation or more than one model.")
        return self.backtest.summary


def _prepare(history: pd.DataFrame, config: ForecastConfig) -> tuple[Panel, pd.DataFrame]:
    """The panel to fit and each series' demand class. With ``working_days`` the demand is
    modelled per working day; ``predict`` scales it back."""
    if config.working_days:
        history = to_rate(history, ["y"])
    panel = build_panel(history, config)
    return panel, classify_demand(panel.Y[["unique_id", "ds", "y"]])


class _Stages:
    """Wall time per stage, logged as each ends."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        yield
        took = time.perf_counter() - start
        self.seconds[name] = self.seconds.get(name, 0.0) + took
        logger.info("Stage %s took %.1f s", name, took)


class Forecaster:
    """Backtest, select, fit and forecast flat or hierarchical demand history.

    Parameters
    ----------
    config : ForecastConfig
        Models, horizon, backtest windows, intervals, hierarchy, drivers, reconciliation.

    Attributes (after ``fit``)
    --------------------------
    panel_ : Panel
        The series fitted (aggregates included) and the hierarchy.
    backtest_ : BacktestResult or None
        Backtest of the candidates and the selection.
    selection_ : pandas.DataFrame
        Members of each series' forecast.
    """

    def __init__(self, config: ForecastConfig | None = None) -> None:
        self.config = config or ForecastConfig()

    # -- fitting -------------------------------------------------------------------------
    def fit(self, history: pd.DataFrame, *, backtest: bool | None = None, progress=None) -> Forecaster:
        """Backtest, select and estimate the models on ``history``; returns self.

        Parameters
        ----------
        history : pandas.DataFrame
            Validated long history: ``unique_id, ds, y``, the hierarchy's key columns and
            the drivers.
        backtest : bool, optional
            Always backtest (True), or only when selection, calibrated intervals or
            reconciliation need it (None, the default).
        progress : rich.progress.Progress, optional
            Shows the stages.
        """
        # one cluster for every fit of the run (forecast.engine: dask), closed at the end
        with library_warnings(logger), engine_session(self.config):
            return self._fit(history, backtest, progress)

    def _fit(self, history: pd.DataFrame, backtest: bool | None, progress) -> Forecaster:
        config = self.config
        stage = _Stages()
        task = progress.add_task("prepare the panel", total=4) if progress is not None else None

        def advance(description: str) -> None:
            if progress is not None:
                progress.update(task, advance=1, description=description)

        with stage("prepare"):
            panel, classes = _prepare(history, config)
            names, use_ml, _ = engine.candidates(config, classes)
            engine.check_season(panel.Y, engine.season_of(config))
            if config.drivers and not use_ml:
                logger.warning(
                    "The drivers %s are not used: only LightGBM reads them (and carries their effect "
                    "to the other models); add lgbm to models or use models: auto.",
                    ", ".join(config.drivers),
                )
        advance(f"backtest on {panel.Y['unique_id'].nunique():,} series")
        result = None
        if backtest or self._needs_backtest(names, use_ml, panel):
            with stage("backtest"):
                result = engine.run_backtest(panel.Y, config, classes)
        backtest = result
        advance("fit")
        with stage("fit"):
            selection, wide, short, fitted_ml, effects = self._estimate(
                panel, classes, names, use_ml, backtest
            )
        advance("score levels")
        accuracy, errors, delivered, bias = None, None, None, None
        if backtest is not None and backtest.chosen_cv is not None:
            with stage("accuracy"):
                backtest.chosen_cv, bias = self._debias(backtest.chosen_cv, panel)
                accuracy, errors, delivered = self._score(backtest.chosen_cv, panel)
        if panel.discontinued:
            logger.info(
                "%d series have stopped selling (discontinued): forecast at zero: %s",
                len(panel.discontinued),
                format_examples(panel.discontinued),
            )
        advance("fitted")
        self.panel_, self.classes_, self.backtest_ = panel, classes, backtest
        self.selection_, self.stats_wide_, self.short_ = selection, wide, short
        self.ml_, self.accuracy_, self.errors_ = fitted_ml, accuracy, errors
        self.delivered_backtest_ = delivered  # unique_id, cutoff, ds, y, forecast as delivered
        self.bias_ = bias
        self.cleansed_ = int(len(effects)) if effects is not None else 0  # periods cleansed
        self.timings_ = stage.seconds
        return self

    def _estimate(self, panel: Panel, classes: pd.DataFrame, names: list[str], use_ml: bool, backtest):
        """Each series' members (from ``backtest``), LightGBM fitted with its estimate of the
        promotions' effect, and the statistical members fitted on the cleansed history."""
        config = self.config
        selection = engine.selection_for_all(
            panel.Y, backtest, [*names, *(["lgbm"] if use_ml else [])], classes
        )
        used = {m for members in selection["members"] for m in members}
        stats_names = [n for n in names if CATALOGUE[n].alias in used]
        native = backtest is None or backtest.chosen_cv is None  # else intervals from the backtest
        fitted_ml, effects = None, None
        if use_ml:
            settings = engine.ml_settings(panel.Y, config)
            flags = engine.cleansing_flags(panel.Y, config)
            fitted_ml, effects = ml_fit_effect(panel.Y, settings, flags)
        cleansed = engine.cleanse(panel.Y, effects) if effects is not None else panel.Y
        wide, short = self._fit_stats(cleansed, classes, stats_names, selection, native)
        selection, wide, short = self._cover_ml_gaps(panel.Y, selection, wide, short, fitted_ml)
        return selection, wide, short, fitted_ml, effects

    def refit(self, history: pd.DataFrame) -> Forecaster:
        """Re-estimate the fitted forecast's models on ``history`` (the same series and more
        months) without a new backtest: each series keeps its selected models, the interval
        calibration and the bias factors of the last :meth:`fit`. What a team does between
        quarterly model reviews: the parameters follow the data every month, the choice of
        model and the error profile are revisited less often. Returns self."""
        if not hasattr(self, "panel_"):
            raise NotFittedError("refit re-estimates a fitted forecaster: call fit first.")
        config = self.config
        stage = _Stages()
        with library_warnings(logger), engine_session(config):
            with stage("prepare"):
                panel, classes = _prepare(history, config)
                names, use_ml, _ = engine.candidates(config, classes)
            with stage("fit"):
                estimated = self._estimate(panel, classes, names, use_ml, self.backtest_)
        self.panel_, self.classes_ = panel, classes
        self.selection_, self.stats_wide_, self.short_, self.ml_, effects = estimated
        self.cleansed_ = int(len(effects)) if effects is not None else 0
        self.timings_ = stage.seconds
        return self

    def _debias(self, chosen: pd.DataFrame, panel: Panel) -> tuple[pd.DataFrame, BiasFactors | None]:
        """The backtest of the chosen forecasts scored on the items known at each origin and,
        with ``bias_correction``, cross-fitted for each level's lean; with the factors the
        final forecast takes (:mod:`.bias`)."""
        chosen = known_demand(chosen, panel)
        if not self.config.bias_correction or chosen["cutoff"].nunique() < 2:
            return chosen, None
        factors = fit_factors(chosen, panel.levels)
        table = factors.summary()
        on = table[table["applied"]]
        if on.empty:
            logger.info("Bias correction: no level leans the same way in every backtest window; none applied")
        else:
            logger.info(
                "Bias correction on %d of %d level(s): %s",
                len(on),
                len(table),
                "; ".join(
                    f"{r.level} backtest bias {r.bias:+.1%}, "
                    f"factor {r.factor_first:.3f} to {r.factor_last:.3f}"
                    for r in on.itertuples()
                ),
            )
        return cross_fitted(chosen, panel.levels), factors

    def _score(self, chosen: pd.DataFrame, panel: Panel):
        """Accuracy per level (hierarchies) and the interval calibration, both from the
        backtest of the forecast as delivered (reconciled, non-negative)."""
        config = self.config
        column = "forecast"
        accuracy = None
        if panel.tags is not None:
            methods = [] if config.reconcile == "none" else [config.reconcile]
            merged, columns = reconciled_backtest(chosen, panel, config, methods)
            season = engine.main_season(engine.season_of(config))
            accuracy = score_levels(merged, columns, panel, season)
            column = columns[-1]
        else:
            merged = chosen.assign(forecast=chosen["forecast"].clip(lower=0.0)) if config.clip else chosen
        levels = config.interval_levels
        errors = error_profile(merged, column, panel.levels, levels) if levels else None
        delivered = merged[["unique_id", "cutoff", "ds", "y", column]].rename(columns={column: "forecast"})
        return accuracy, errors, delivered

    def _cover_ml_gaps(self, Y, selection, wide, short, fitted_ml):
        """Series whose forecast would come from LightGBM alone but that are too short for
        its lags get the naive forecast instead, and are reported with the short histories."""
        known = set(fitted_ml.ts.uids) if fitted_ml is not None else set()
        alone = selection["members"].map(lambda m: set(m) <= {engine.ML_ALIAS})
        gaps = selection.loc[alone & ~selection["unique_id"].isin(known), "unique_id"]
        if gaps.empty:
            return selection, wide, short
        logger.warning(
            "%d series are too short for LightGBM's lags and get the naive forecast: %s",
            len(gaps),
            format_examples(gaps),
        )
        naive = CATALOGUE["naive"].alias
        selection = selection.copy()
        selection.loc[gaps.index, "members"] = pd.Series([(naive,)] * len(gaps), index=gaps.index)
        selection.loc[gaps.index, "how"] = "mean"
        run = engine.stats_run(self.config, ("naive",), ("naive",))
        fcst, _ = stats_forecast(Y[Y["unique_id"].isin(gaps)], stored_horizon(self.config), run)
        if wide is not None:
            wide = pd.concat([wide[~wide["unique_id"].isin(gaps)], fcst], ignore_index=True)
        else:
            wide = fcst
        return selection, wide, sorted({*short, *gaps})

    def _needs_backtest(self, names: list[str], use_ml: bool, panel: Panel) -> bool:
        config = self.config
        several = len(names) + use_ml > 1
        conformal = any(not CATALOGUE[n].native_intervals for n in names) or use_ml
        residuals = panel.tags is not None and config.reconcile in ("wls_var", "mint_shrink")
        return several or bool(config.interval_levels and conformal) or residuals

    def _fit_stats(
        self, Y: pd.DataFrame, classes: pd.DataFrame, names: list[str], selection: pd.DataFrame, native: bool
    ):
        config = self.config
        horizon = stored_horizon(config)
        by_alias = {CATALOGUE[n].alias: n for n in names}
        # without a backtest to calibrate from, intervals are the models' own: only needed
        # for models some series gets alone
        alone = tuple(
            sorted({by_alias[m[0]] for m in selection["members"] if len(m) == 1 and m[0] in by_alias})
            if native
            else ()
        )
        wide, short = [], []
        # each series fits only the models its forecast is made of (after a refit, a series
        # whose demand class changed keeps the models chosen for it)
        parts = _by_members(Y, tuple(names), selection)
        if parts is None:  # many distinct sets: every candidate of the series' class
            parts = engine.model_groups(Y, config, classes, names)
        for part, needed in parts:
            fcst, part_short = stats_forecast(part, horizon, engine.stats_run(config, needed, alone))
            wide.append(fcst)
            short.extend(part_short)
        if short:
            logger.info("%d series too short for seasonal models used their non-seasonal form", len(short))
        frame = pd.concat(wide, ignore_index=True) if wide else None
        return frame, short

    # -- predicting ----------------------------------------------------------------------
    def predict(
        self,
        h: int | None = None,
        future: pd.DataFrame | None = None,
        *,
        fill: str | None = None,
        launches: pd.DataFrame | None = None,
        delistings: pd.DataFrame | None = None,
    ) -> ForecastRun:
        """Forecast ``h`` periods (default the configured horizon) without re-fitting.

        Parameters
        ----------
        h : int, optional
            Periods ahead, at most the horizon stored at fit time (36 months for monthly data).
        future : pandas.DataFrame, optional
            Promotion calendar / price plan: ``unique_id`` or the key columns, ``ds`` and the
            drivers, for every bottom series and forecast period (or ``future_fill`` set).
        fill : {"error", "carry", "zero"}, optional
            How to fill series and periods missing from ``future`` in this call; default the
            config's ``future_fill``.
        launches : pandas.DataFrame, optional
            New items and the like items they will sell like (``new_item, like_item,
            launch_month[, scale]``, :mod:`.launches`): each new item gets its like item's
            forecast at its own level, and the levels above it follow.
        delistings : pandas.DataFrame, optional
            Items that stop selling (``item, last_month``, or the key columns for ``item``):
            nothing is forecast for them after their last month, and the levels above them
            lose what they were forecast to sell.
        """
        if not hasattr(self, "panel_"):
            raise NotFittedError("this Forecaster is not fitted yet; call fit(history) first.")
        config = self.config
        h = config.horizon if h is None else int(h)
        limit = stored_horizon(config)
        if not 0 < h <= limit:
            raise ConfigError(
                f"horizon {h} is outside 1..{limit}, the range this forecaster was fitted for; "
                "raise forecast.horizon and fit again.",
                setting="horizon",
            )
        stage = _Stages()
        with stage("predict"), library_warnings(logger):
            wide = self._candidates(h, future, fill or config.future_fill)
        with stage("reconcile"):
            residuals = self.backtest_.chosen_cv if self.backtest_ is not None else None
            out = deliver(
                wide,
                self.selection_,
                self.panel_,
                config,
                self.errors_,
                residuals,
                getattr(self, "bias_", None),
            )
        series = self.panel_.Y[["unique_id", "ds", "y"]]
        if config.working_days:
            out = from_rate(out, [c for c in out.columns if c.startswith("forecast")])
            wide = from_rate(wide, [c for c in wide.columns if c not in ("unique_id", "ds")])
            series = from_rate(series, ["y"])
        self.launched_, self.delisted_ = None, None
        if launches is not None and len(launches):
            out, launched = launch_forecast(
                out,
                read_launches(launches, keys=hierarchy_keys(config)),
                series,
                hierarchy=self.panel_.hierarchy,
                hierarchy_spec=list(config.hierarchy),
            )
            self.launched_ = launched
            for row in launched.itertuples():
                logger.info(
                    "Launch %s like %s from %s: scale %.3f (%s)",
                    row.new_item,
                    row.like_item,
                    f"{row.launch_month:%Y-%m}",
                    row.scale,
                    row.how,
                )
        if delistings is not None and len(delistings):
            delisted = read_delistings(delistings, keys=hierarchy_keys(config))
            out = delist_forecast(out, delisted, hierarchy=self.panel_.hierarchy)
            self.delisted_ = delisted
            logger.info("%d delisted items: nothing forecast after their last month", len(delisted))
        out = with_quantiles(out, config)
        timings = {**self.timings_, **stage.seconds}
        return ForecastRun(
            out,
            self.backtest_,
            self.accuracy_,
            self.selection_,
            self.classes_,
            self.panel_.levels,
            timings,
            self.short_,
            wide,
            series,
            self.panel_.bottom_level,
            list(self.panel_.discontinued),
        )

    def _candidates(self, h: int, future: pd.DataFrame | None, fill: str) -> pd.DataFrame:
        """Every candidate's forecast for ``h`` periods, the drivers' effect applied."""
        wide = self.stats_wide_
        if wide is not None:
            wide = wide[wide.groupby("unique_id", sort=False).cumcount() < h]
        if self.ml_ is None:
            return wide.reset_index(drop=True)
        config = self.config
        settings = engine.ml_settings(self.panel_.Y, config)
        plan = self._future(future, h, fill) if config.drivers else None
        ml = ml_predict(self.ml_, h, settings, plan, last_flags(self.panel_.Y, settings))
        if plan is not None:
            baseline = baseline_future(plan, self.panel_.Y, list(config.drivers))
            ml[f"{engine.ML_ALIAS}|baseline"] = ml_predict(self.ml_, h, settings, baseline)[
                engine.ML_ALIAS
            ].to_numpy()
        if wide is None:
            return ml
        wide = wide.merge(ml, on=["unique_id", "ds"], how="outer")
        stats_aliases = [c for c in wide.columns if c in {s.alias for s in CATALOGUE.values()}]
        return engine.apply_driver_effect(wide, [a for a in stats_aliases if a != engine.ML_ALIAS])

    def _future(self, future: pd.DataFrame | None, h: int, fill: str) -> pd.DataFrame:
        """Future drivers of every series fitted, aggregates included."""
        config, panel = self.config, self.panel_
        drivers = list(config.drivers)
        keys = hierarchy_keys(config)
        source = panel.bottom if panel.hierarchy is not None else panel.Y
        plan = future_frame(future, source, drivers, h, config.freq, keys=keys, fill=fill)
        if panel.hierarchy is None:
            return plan
        return aggregate_drivers(plan, panel.hierarchy, drivers, panel.weights)

    def check_future(self, history: pd.DataFrame, future: pd.DataFrame | None) -> None:
        """Check a promotion calendar / price plan against ``history`` before fitting, with
        the rules ``predict`` applies (missing series, periods or drivers are errors unless
        ``future_fill`` says how to fill), so a bad file fails in seconds, not after the fit."""
        config = self.config
        if not config.drivers:
            return
        drivers = list(config.drivers)
        frame = history[["unique_id", "ds", *drivers]]
        if config.hierarchy:
            frame, _ = extend_to_common_end(frame, config.freq)
        future_frame(
            future,
            frame,
            drivers,
            config.horizon,
            config.freq,
            keys=hierarchy_keys(config),
            fill=config.future_fill,
        )

    # -- backtest only -------------------------------------------------------------------
    def cross_validation(
        self, history: pd.DataFrame, windows: int | None = None, *, progress=None
    ) -> ForecastRun:
        """Rolling-origin backtest of the candidates (``windows`` origins, default the
        config's), scored per model and, for a hierarchy, per level and every
        reconciliation method. Does not fit the final models."""
        config = self.config
        if windows is not None:
            try:
                config = ForecastConfig.model_validate({**config.model_dump(), "windows": windows})
            except ValidationError as exc:
                raise ConfigError.from_validation(exc) from exc
        stage = _Stages()
        task = progress.add_task("backtest", total=1) if progress is not None else None
        with stage("prepare"):
            panel, classes = _prepare(history, config)
        with stage("backtest"), library_warnings(logger), engine_session(config):
            bt = engine.run_backtest(panel.Y, config, classes)
        accuracy = None
        if bt.chosen_cv is not None:
            bt.chosen_cv, _ = self._debias(bt.chosen_cv, panel)
        if panel.tags is not None and bt.chosen_cv is not None:
            with stage("accuracy"):
                accuracy = level_accuracy(
                    bt.chosen_cv, panel, config, engine.main_season(engine.season_of(config))
                )
        if progress is not None:
            progress.update(task, advance=1)
        selection = bt.selection.per_series if bt.selection is not None else None
        return ForecastRun(
            pd.DataFrame(),
            bt,
            accuracy,
            selection,
            classes,
            panel.levels,
            stage.seconds,
            series=from_rate(panel.Y[["unique_id", "ds", "y"]], ["y"])
            if config.working_days
            else panel.Y[["unique_id", "ds", "y"]],
            bottom_level=panel.bottom_level,
        )


MAX_MEMBER_SETS = 8  # more distinct model sets than this: the class's candidates for each series


def _by_members(Y: pd.DataFrame, models: tuple[str, ...], selection: pd.DataFrame):
    """``(part, models)`` pairs covering ``Y``: its series split by the statistical models
    their selected forecast is made of, so none estimates a model it does not use (under
    ``auto`` most series combine 3 of the 6 models some series use). Series that use none
    (LightGBM alone) are left out. ``None`` with more than :data:`MAX_MEMBER_SETS` sets."""
    members = dict(zip(selection["unique_id"], selection["members"], strict=True))
    ids = Y["unique_id"].drop_duplicates().tolist()
    wanted = {uid: tuple(m for m in models if CATALOGUE[m].alias in members.get(uid, ())) for uid in ids}
    sets = sorted({w for w in wanted.values() if w})
    if len(sets) > MAX_MEMBER_SETS:
        return None
    code = {key: i for i, key in enumerate(sets)}
    which = Y["unique_id"].map({uid: code.get(w, -1) for uid, w in wanted.items()}).to_numpy()
    return [(Y[which == i], key) for key, i in code.items()]
