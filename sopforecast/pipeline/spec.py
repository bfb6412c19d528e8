"""Pipeline definitions: a YAML file validated into :class:`PipelineSpec`.

A pipeline names its data (a file or SQL source with its column mapping, or a built-in
dataset), how to forecast it, the targets the backtest is held to, the plan and monitoring
steps, and where runs are tracked. ``--set key=value`` overrides any setting by its dotted
path (``forecast.horizon=24``).
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..config import (
    MAX_HORIZON_MONTHS,
    NAME_RULE,
    DataConfig,
    ForecastConfig,
    check_cycle,
    check_freq,
    check_name,
)
from ..errors import ConfigError, format_examples, validation_problems
from ..monitoring.mail import MailSettings
from ..monitoring.monitor import MonitorSettings

__all__ = [
    "PipelineSpec",
    "PipelineData",
    "TrackingConfig",
    "Targets",
    "PlanStep",
    "PlanPrices",
    "MonitorStep",
    "BalanceStep",
    "ScenarioSpec",
    "load_pipeline",
    "apply_overrides",
    "check_columns",
    "MAX_HORIZON_MONTHS",
]

logger = logging.getLogger(__name__)

DATASETS = ("demo", "pbs", "m1", "m3", "tourism")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DemoSettings(_Strict):
    """Size of the generated demo data."""

    series: int = Field(500, ge=1, description="Bottom series.")
    periods: int = Field(60, ge=12, description="Months of history.")
    seed: int = Field(0, description="Generator seed.")
    shift_family: str | None = Field(
        None, description="Plant a lasting demand shift in this family (for the monitors to catch)."
    )
    shift_pct: float = Field(40.0, gt=-100, description="Size of the planted shift, percent.")
    shift_months: int = Field(
        4, ge=1, description="The shift starts this many months before the history ends."
    )


class PipelineData(DataConfig):
    """The data section: a source (``path`` with ``table``/``query``) and its column mapping,
    or a built-in ``dataset`` (demo, pbs, m1, m3, tourism; ``group`` for the competitions)."""

    dataset: Literal[DATASETS] | None = Field(  # type: ignore[valid-type]
        None, description="Built-in data instead of a path: demo, pbs, m1, m3, tourism."
    )
    group: str | None = Field(None, description="Competition group: yearly, quarterly, monthly, other.")
    demo: DemoSettings = Field(default_factory=DemoSettings)
    future: str | None = Field(
        None,
        description="Promotion calendar / price plan: a file with unique_id (or the key columns), ds and "
        "the drivers for the forecast months. The demo makes its own.",
    )
    launches: str | None = Field(
        None,
        description="New items: a file with new_item (or the key columns), like_item, launch_month "
        "and optionally scale; each new item is forecast from its like item (forecasting/launches.py).",
    )
    delistings: str | None = Field(
        None,
        description="Items that stop selling: a file with item (or the key columns) and last_month; "
        "nothing is forecast for them after it. The demo makes its own from its calendar.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> PipelineData:
        if self.dataset and self.dataset != "pbs" and self.path:
            raise ValueError("give either data.path or data.dataset, not both (path only with pbs)")
        if self.dataset in ("m1", "m3", "tourism") and not self.group:
            raise ValueError(f"data.group is needed for {self.dataset}: yearly, quarterly, monthly or other")
        return self


class Targets(_Strict):
    """Accuracy the backtest is held to (overall, chosen forecasts); empty means no target."""

    wape: float | None = Field(None, gt=0, description="Highest acceptable WAPE (0.25 = 25%).")
    mase: float | None = Field(None, gt=0, description="Highest acceptable MASE.")
    bias: float | None = Field(None, gt=0, description="Largest acceptable |bias| (0.05 = 5%).")


class PlanPrices(_Strict):
    """Where the plan's prices come from (revenue and margin in the financial view)."""

    source: Literal["auto", "driver", "file", "none"] = Field(
        "auto",
        description="driver: the data's price column; file: a price file; none: no prices; "
        "auto: the price driver when the data has one, else none.",
    )
    column: str = Field("price", description="The price driver column (source: driver).")
    months: int = Field(12, ge=1, description="Recent months the price is averaged over (source: driver).")
    file: str | None = Field(
        None, description="Price file (source: file): unique_id or key columns, price, optional unit_cost."
    )
    cost_share: float | None = Field(
        None,
        gt=0,
        lt=10,
        description="Unit cost as a share of the price where no unit_cost is given (a standard cost "
        "ratio, e.g. 0.62): margin in the financial view. Default: no cost, no margin.",
    )


class PlanStep(_Strict):
    """Turn the delivered forecast into a versioned demand plan in the plan store."""

    enabled: bool = False
    name: str | None = Field(None, description=f"Plan name; default the pipeline's. Allowed: {NAME_RULE}.")
    months: int | None = Field(
        None,
        ge=1,
        le=36,
        description="Planning buckets (months): default 18 (fewer if the forecast is shorter), up to 36.",
    )
    bucket: Literal["month", "445"] = Field(
        "month", description="month, or 445: fiscal periods of 4, 4 and 5 weeks (weekly or daily data)."
    )
    cycle: str | None = Field(
        None, description="Planning cycle, YYYY-MM (e.g. 2026-11); default the first plan month."
    )
    publish: bool = Field(False, description="Publish the draft at once (unattended runs).")
    store_uri: str | None = Field(
        None,
        description="Plan store: SQLAlchemy URL (postgresql+psycopg://...); default "
        "$SOPFORECAST_STORE_URI, else <workdir>/sopforecast.db.",
    )
    prices: PlanPrices = Field(default_factory=PlanPrices)

    @field_validator("name")
    @classmethod
    def _name_safe(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value)

    @field_validator("cycle", mode="before")
    @classmethod
    def _cycle_format(cls, value: Any) -> Any:
        if isinstance(value, date):  # YAML reads 2026-11-01 as a date: its month is the cycle
            return value.strftime("%Y-%m")
        return None if value is None else check_cycle(str(value))


class MonitorStep(MonitorSettings):
    """Judge the published plans against the actuals after each run: accuracy per lag,
    level and segment against targets, drift, exceptions, the manager report (and e-mail)."""

    enabled: bool = False
    recipients: list[str] = Field(
        default_factory=list, description="E-mail the manager report to these addresses after each run."
    )
    mail: MailSettings = Field(default_factory=MailSettings)
    budget: str | None = Field(
        None,
        description="Annual operating plan (key, month, revenue and/or units) for the gap to budget "
        "in the report's S&OP review; the demo makes its own.",
    )


class TrackingConfig(_Strict):
    """Where runs and models are tracked; by default a SQLite store in the work directory."""

    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; default sqlite:///<workdir>/mlflow/mlflow.db."
    )
    registry_uri: str | None = Field(None, description="Model registry URI; default the tracking URI.")
    experiment: str | None = Field(None, description="Experiment name; default the pipeline's name.")
    registered_model: str | None = Field(
        None, description=f"Registered model; default the pipeline's name. Allowed: {NAME_RULE}."
    )
    promote_metric: Literal["wape", "mase", "rmsse", "smape"] = Field(
        "wape", description="Backtest metric that decides champion and challenger (lower wins)."
    )
    promote_margin: float = Field(
        0.0, ge=0, lt=1, description="Relative improvement a challenger needs (0.02 = 2% lower)."
    )
    log_model: bool = Field(True, description="Log and register the fitted forecaster.")

    @field_validator("registered_model")
    @classmethod
    def _model_name_safe(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value)


class ScenarioSpec(_Strict):
    """A named what-if the balance step creates on the run's plan and compares with the base."""

    name: str = Field(..., description=f"Scenario name. Allowed: {NAME_RULE}.")
    change: dict[str, Any] = Field(
        ...,
        description="What it changes: kind (uplift, promotion, launch, price, capacity, delay) and its "
        "settings, e.g. {kind: capacity, resource: Line Snacks, pct: 20}.",
    )

    @field_validator("name")
    @classmethod
    def _name_safe(cls, value: str) -> str:
        return check_name(value)

    @field_validator("change")
    @classmethod
    def _change_valid(cls, value: dict[str, Any]) -> dict[str, Any]:
        from ..supply.scenarios import parse_change

        parse_change(value)  # a bad change fails with the pipeline, before anything runs
        return value


class BalanceStep(_Strict):
    """Hold the run's plan against capacity and inventory, with what-if scenarios side by side."""

    enabled: bool = False
    capacity: str | None = Field(
        None, description="Capacity file (resource, ds, capacity[, unit]); the demo makes its own."
    )
    routing: str | None = Field(
        None, description="Routing file (key, resource, rate[, priority]); the demo makes its own."
    )
    inventory: str | None = Field(
        None,
        description="Inventory file (key, on_hand, lead_time, service_level[, batch_size, shelf_life]); "
        "the demo makes its own.",
    )
    over: float = Field(1.0, gt=0, description="Utilisation above which a resource-month is overloaded.")
    under: float = Field(0.5, ge=0, description="Utilisation below which a resource-month is under-used.")
    storage: float | None = Field(None, gt=0, description="Most stock held at any month end, units.")
    time_limit: float = Field(60.0, gt=0, description="Seconds for the LP before the greedy fallback.")
    batches: Literal["round", "milp"] = Field(
        "round",
        description="Batch sizes: the LP rounded to whole batches by priority (seconds), or milp "
        "(exact, about 20 s on the demo; scenarios are compared with the same method).",
    )
    scenarios: list[ScenarioSpec] = Field(
        default_factory=list, description="What-ifs created on the run's plan and compared with it."
    )

    @model_validator(mode="after")
    def _distinct(self) -> BalanceStep:
        names = [s.name for s in self.scenarios]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"scenario names must differ: {twice} given twice")
        if self.under >= self.over:
            raise ValueError(f"under ({self.under}) must be below over ({self.over})")
        return self

    def settings(self):
        """The supply package's :class:`~sopforecast.supply.balance.BalanceSettings`."""
        from ..supply.balance import BalanceSettings

        return BalanceSettings(
            over=self.over,
            under=self.under,
            storage=self.storage,
            time_limit=self.time_limit,
            batches=self.batches,
        )


class PipelineSpec(_Strict):
    """A pipeline: data, forecast, targets, plan, monitor, tracking."""

    name: str = Field(..., description=f"Pipeline name. Allowed: {NAME_RULE}.")
    description: str = ""
    data: PipelineData = Field(default_factory=PipelineData)
    forecast: ForecastConfig = Field(default_factory=ForecastConfig)
    targets: Targets = Field(default_factory=Targets)
    plan: PlanStep = Field(default_factory=PlanStep)
    balance: BalanceStep = Field(default_factory=BalanceStep)
    monitor: MonitorStep = Field(default_factory=MonitorStep)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    output: str | None = Field(None, description="Forecast file to write; default <workdir>/forecasts/.")

    @field_validator("name")
    @classmethod
    def _name_safe(cls, value: str) -> str:
        return check_name(value)

    @model_validator(mode="before")
    @classmethod
    def _freq_from_data(cls, raw: Any) -> Any:
        # the forecast section is checked with the data's frequency (a 37-period horizon is
        # fine for weeks, not for months), so it gets data.freq before it is validated
        if not isinstance(raw, dict) or not isinstance(raw.get("forecast", {}), dict):
            return raw
        data = raw.get("data")
        freq = data.get("freq") if isinstance(data, dict) else None
        freq = PipelineData.model_fields["freq"].default if freq is None else freq
        forecast = raw.get("forecast", {})
        if "freq" in forecast or not isinstance(freq, str):
            return raw
        try:
            check_freq(freq)
        except ValueError:
            return raw  # reported once, under data.freq
        return {**raw, "forecast": {**forecast, "freq": freq}}

    @model_validator(mode="after")
    def _consistent(self) -> PipelineSpec:
        given = self.forecast.model_fields_set
        if "freq" in given and self.forecast.freq != self.data.freq:
            raise ValueError(
                f"forecast.freq {self.forecast.freq!r} differs from data.freq {self.data.freq!r}; "
                "give the frequency once, under data"
            )
        self.forecast.freq = self.data.freq
        if not self.forecast.hierarchy and self.data.hierarchy:
            self.forecast.hierarchy = list(self.data.hierarchy)
        if self.forecast.drivers and "drivers" in self.forecast.model_fields_set:
            raise ConfigError(
                f"give the drivers once, under data.drivers (got {self.forecast.drivers} under forecast)",
                setting="forecast.drivers",
            )
        self.forecast.drivers = list(self.data.drivers)
        if self.plan.enabled and self.data.freq in ("MS", "ME", "M"):
            if self.plan.months is None:
                self.plan.months = min(18, self.forecast.horizon)
            elif self.plan.months > self.forecast.horizon:
                raise ConfigError(
                    f"plan.months is {self.plan.months} but forecast.horizon is {self.forecast.horizon} "
                    "months; lower plan.months or raise forecast.horizon",
                    setting="plan.months",
                )
        elif self.plan.months is None:
            self.plan.months = 18
        prices = self.plan.prices
        if self.plan.enabled and prices.source == "file" and not prices.file:
            raise ConfigError(
                "plan.prices.source is file: name it in plan.prices.file", setting="plan.prices.file"
            )
        if self.plan.enabled and prices.source == "driver" and prices.column not in self.data.drivers:
            raise ConfigError(
                f"plan.prices.source is driver but {prices.column!r} is not among data.drivers "
                f"{self.data.drivers}; add it there, or set plan.prices.column / plan.prices.source",
                setting="plan.prices.column",
            )
        if self.balance.enabled and not self.plan.enabled:
            raise ConfigError(
                "balance.enabled needs plan.enabled: the balance holds the run's plan against supply",
                setting="balance.enabled",
            )
        given_files = [f for f in ("capacity", "routing", "inventory") if getattr(self.balance, f)]
        if self.balance.enabled and self.data.dataset != "demo" and len(given_files) < 3:
            missing = [f"balance.{f}" for f in ("capacity", "routing", "inventory") if f not in given_files]
            raise ConfigError(
                f"balance.enabled needs the supply files: name {', '.join(missing)} (only the demo "
                "makes its own)",
                setting=missing[0],
            )
        if self.monitor.enabled and not self.plan.enabled:
            raise ConfigError(
                "monitor.enabled needs plan.enabled: the monitor judges the published plans",
                setting="monitor.enabled",
            )
        self.tracking.experiment = self.tracking.experiment or self.name
        self.tracking.registered_model = self.tracking.registered_model or self.name
        return self


def _parse_value(text: str) -> Any:
    """``--set`` values are YAML scalars or lists: 24, true, [ets, theta], mint_shrink."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``key.path=value`` overrides to the raw mapping (a copy)."""
    import copy

    out = copy.deepcopy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: write it as key=value, e.g. forecast.horizon=24.")
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is a value, not a section.")
            node = child
        node[parts[-1]] = _parse_value(value)
    return out


def _format_errors(exc: ValidationError, where: str) -> str:
    lines = []
    for err, (loc, msg) in zip(exc.errors(), validation_problems(exc), strict=True):
        loc = loc or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"  {loc}: unknown key; check its spelling (see pipelines/README.md)")
        elif isinstance(err.get("input"), dict | list):
            lines.append(f"  {loc}: {msg}")  # a whole section: the message says what is wrong
        else:
            lines.append(f"  {loc}: {msg} (got {err.get('input')!r})")
    return f"{where}: invalid pipeline:\n" + "\n".join(lines)


def load_pipeline(path: str | Path, overrides: list[str] | None = None) -> PipelineSpec:
    """Read and validate a pipeline YAML; relative data paths resolve against its folder.

    Raises
    ------
    ConfigError
        Missing or unreadable file, invalid YAML (with the line), unknown keys, wrong types.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"pipeline file {path} does not exist; give the path to a .yaml in pipelines/.")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}.") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a pipeline is a YAML mapping (name:, data:, forecast:, ...).")
    raw = apply_overrides(raw, overrides or [])
    try:
        spec = PipelineSpec.model_validate(raw)
    except ValidationError as exc:
        first = validation_problems(exc)[0][0] or None
        raise ConfigError(_format_errors(exc, str(path)), setting=first) from exc
    data_path = spec.data.path
    if data_path and "://" not in data_path and not Path(data_path).is_absolute():
        spec.data.path = str((path.parent / data_path).resolve())
    if spec.data.future and not Path(spec.data.future).is_absolute():
        spec.data.future = str((path.parent / spec.data.future).resolve())
    for what in ("launches", "delistings"):
        given = getattr(spec.data, what)
        if given and not Path(given).is_absolute():
            setattr(spec.data, what, str((path.parent / given).resolve()))
    prices = spec.plan.prices
    if prices.file and not Path(prices.file).is_absolute():
        prices.file = str((path.parent / prices.file).resolve())
    for what in ("capacity", "routing", "inventory"):  # the supply files, like the data's
        given = getattr(spec.balance, what)
        if given and "://" not in given and not Path(given).is_absolute():
            setattr(spec.balance, what, str((path.parent / given).resolve()))
    budget = spec.monitor.budget
    if budget and "://" not in budget and not Path(budget).is_absolute():
        spec.monitor.budget = str((path.parent / budget).resolve())
    if spec.data.future and not Path(spec.data.future).is_file():
        raise ConfigError(
            f"{path}: data.future {spec.data.future} does not exist; fix the path or use --set.",
            setting="data.future",
        )
    for what in ("launches", "delistings"):
        given = getattr(spec.data, what)
        if given and not Path(given).is_file():
            raise ConfigError(
                f"{path}: data.{what} {given} does not exist; fix the path or use --set.",
                setting=f"data.{what}",
            )
    if spec.data.path and "://" not in spec.data.path and not Path(spec.data.path).exists():
        raise ConfigError(
            f"{path}: data.path {spec.data.path} does not exist; fix the path or use --set.",
            setting="data.path",
        )
    check_columns(spec)
    return spec


def _header(path: Path) -> list[str] | None:
    """Column names of a CSV or Parquet file, read cheaply; ``None`` for other sources."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            import pandas as pd

            return [str(c) for c in pd.read_csv(path, nrows=0).columns]
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
    except Exception as exc:  # an unreadable file is reported, with its fix, when it is read
        logger.debug("could not read the header of %s (%s); columns are checked on reading", path, exc)
    return None


def check_columns(spec: PipelineSpec) -> None:
    """Check that the data file has every column the pipeline names, before anything runs.

    Only CSV and Parquet files are checked (their header is cheap to read); Excel, SQL and
    built-in datasets are checked when the data is read.

    Raises
    ------
    ConfigError
        Naming the setting (``data.hierarchy``, ``data.drivers``, ``data.time_col``, ...),
        the missing columns and the columns found.
    """
    data = spec.data
    if data.dataset or not data.path or "://" in data.path:
        return
    present = _header(Path(data.path))
    if present is None:
        return
    if data.hierarchy:
        series = "data.hierarchy"
    elif data.keys:
        series = "data.keys"
    else:
        series = "data.id_col"
    roles = [
        (series, data.series_columns),
        ("data.time_col", [data.time_col]),
        ("data.target_col", [data.target_col]),
        ("data.drivers", data.drivers),
    ]
    problems = [(name, [c for c in cols if c not in present]) for name, cols in roles]
    problems = [(name, missing) for name, missing in problems if missing]
    if problems:
        text = "; ".join(f"{name} names column(s) {missing} not in the file" for name, missing in problems)
        raise ConfigError(
            f"{data.path}: {text}. Columns found: {format_examples(present, 12)}. "
            "Fix the names in the pipeline's data: section (or rename the columns in the file).",
            setting=problems[0][0],
        )
