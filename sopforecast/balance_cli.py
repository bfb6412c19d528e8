"""The ``balance`` and ``scenario`` commands: a stored plan version held against supply, and
the what-ifs a meeting asks about, side by side.

Registered on the main app by :mod:`sopforecast.cli`. The work is done by
:mod:`sopforecast.planning.scenarios` (create, balance, compare) and
:mod:`sopforecast.pipeline.balance_output` (the supply files, the tables, the chart); these
commands find the inputs, keep the reviews in the plan store, print them and say where the
files are. A bad supply file or scenario fails before anything is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.markup import escape
from rich.table import Table

from .console import console
from .errors import ConfigError
from .options import WorkdirOption
from .output import FormatOption, OutputOption
from .plan_cli import PlanOption, StoreOption, number, open_store

if TYPE_CHECKING:
    import pandas as pd

    from .pipeline.spec import PipelineSpec
    from .planning.scenarios import SupplyInputs
    from .store.plans import PlanStore, PlanVersion
    from .supply.balance import Balance
    from .workdir import Workdir

__all__ = ["balance_app", "scenario_app"]

balance_app = typer.Typer(
    help="A plan version held against capacity and inventory: exceptions and decisions by money.",
    no_args_is_help=True,
)
scenario_app = typer.Typer(
    help="What-if scenarios on a plan: create, list, compare with the base, delete.", no_args_is_help=True
)

VersionOption = Annotated[
    str | None,
    typer.Option(
        "--version",
        help="Plan version: its name ('2026-01 v2'), id or cycle (default: the current version of the "
        "plan's latest cycle).",
        show_default=False,
    ),
]
PipelineOption = Annotated[
    Path | None,
    typer.Option(
        help="Pipeline YAML: its plan, balance: files and settings, registered model and promotion "
        "calendar (default: the demo's files in the work directory, the plan's registered model).",
        show_default=False,
    ),
]


def _supply_file(what: str, columns: str):
    return typer.Option(
        help=f"{what.capitalize()}: {columns} (default: the pipeline's balance.{what}, else "
        f"<workdir>/data/demo_{what}.csv).",
        rich_help_panel="Supply",
        show_default=False,
    )


def _changes(text: str):
    return typer.Option(help=text, rich_help_panel="Change", show_default=False)


CapacityOption = Annotated[Path | None, _supply_file("capacity", "resource, ds, capacity[, unit]")]
RoutingOption = Annotated[Path | None, _supply_file("routing", "key, resource, rate[, priority]")]
InventoryOption = Annotated[
    Path | None, _supply_file("inventory", "key, on_hand, lead_time, service_level[, batch_size, shelf_life]")
]
OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="Folder for the tables (CSV) and the chart (default: <workdir>/reports/balance).",
        file_okay=False,
        show_default=False,
    ),
]
# figures shown as a share (their changes in points); the rest are units, money or counts
_SHARES = ("max_utilisation", "fill_rate")


@dataclass(frozen=True)
class _Plan:
    """What a command acts on: the store, the plan version, the pipeline (if named)."""

    plans: PlanStore
    version: PlanVersion
    spec: PipelineSpec | None
    workdir: Workdir


def _open(workdir, store, plan, version, pipeline) -> _Plan:
    from .planning.workflow import plan_name
    from .workdir import resolve_workdir

    spec = None
    if pipeline is not None:  # imported only then: the pipeline's settings take seconds to import
        from .pipeline.spec import load_pipeline
        from .pipeline.steps import plan_name as pipeline_plan

        spec = load_pipeline(pipeline)
        store, plan = store or spec.plan.store_uri, plan or pipeline_plan(spec)
    plans = open_store(workdir, store)
    return _Plan(plans, plans.version(version, plan_name(plans, plan)), spec, resolve_workdir(workdir))


def _supply(ctx: _Plan, capacity: Path | None, routing: Path | None, inventory: Path | None) -> SupplyInputs:
    """The three supply files read and checked against the plan's series (any level)."""
    from .pipeline.balance_output import plan_keys, read_inputs, supply_files

    given = {"capacity": capacity, "routing": routing, "inventory": inventory}
    files = {
        what: given[what] or path
        for what, path in supply_files(ctx.spec and ctx.spec.balance, ctx.workdir).items()
    }
    for what, path in files.items():
        if not Path(path).is_file():
            raise ConfigError(
                f"no {what} file at {path}: the balance needs capacity, routing and inventory; give "
                f"--{what} FILE, or the pipeline (--pipeline) whose balance.{what} names it (the demo "
                "writes its own into <workdir>/data when its pipeline runs).",
                setting=what,
            )
    bottom = ctx.plans.bottom(ctx.version)
    hierarchy = ctx.version.hierarchy
    keys = plan_keys(bottom, hierarchy) if hierarchy else set(bottom["unique_id"].astype(str))
    return read_inputs(files["capacity"], files["routing"], files["inventory"], keys)


def _review(ctx: _Plan, supply: SupplyInputs, names: list[str], source: str):
    """The base and each scenario balanced, then kept in the store (all or none): the
    comparison table, the balances by name and the review ids."""
    from .planning.scenarios import BASE, compare
    from .store.plans import user

    names = list(dict.fromkeys(names))
    if BASE in names:
        raise ConfigError(f"{BASE!r} is the plan itself, always compared; name scenarios only.")
    rows = {name: ctx.plans.scenario(ctx.version.plan, name) for name in names}  # unknown: fails here
    settings = ctx.spec.balance.settings() if ctx.spec else None
    table, balances = compare(ctx.plans, ctx.version, supply, names, settings=settings, record=False)
    ids = {
        name: ctx.plans.record_balance(
            ctx.version,
            result,
            scenario_id=int(rows[name]["id"]) if name in rows else None,
            source=source,
            by=user(),
        )
        for name, result in balances.items()
    }
    return table, balances, ids


def _write(ctx: _Plan, out: Path | None, table, balances: dict[str, Balance]) -> tuple[Path, Path]:
    """The base plan's tables, the comparison (with scenarios) and the chart; the folder and chart."""
    from .pipeline.balance_output import FOLDER, chart, write_tables
    from .planning.scenarios import BASE

    folder = out or ctx.workdir.reports / FOLDER
    compared = len(balances) > 1
    write_tables(balances[BASE], folder, table=table if compared else None)
    if not compared:  # an earlier comparison's table would read as this review's
        (folder / "scenarios.csv").unlink(missing_ok=True)
    return folder, chart(balances, folder / "balance.png")


def _figure(name: str, value, change: bool = False) -> str:
    if value is None or value != value:
        return "-"
    if name in _SHARES:  # two decimals: 497 units short of a million is a fill rate of 99.95%
        return f"{round(value * 100, 2) + 0.0:+.2f} pts" if change else f"{value:.2%}"
    return f"{round(value) + 0:+,d}" if change else number(value)  # + 0: no "-0"


def _print_figures(table: pd.DataFrame, title: str) -> None:
    shown = Table(title=title)
    columns = [c for c in table.columns if c != "figure"]
    shown.add_column("figure")
    for col in columns:
        shown.add_column(escape(str(col)), justify="right")
    for row in table.itertuples(index=False):
        figure = row[0]
        shown.add_row(
            figure.replace("_", " "),
            *(
                _figure(figure, value, " vs " in str(col))
                for col, value in zip(columns, row[1:], strict=True)
            ),
        )
    console.print(shown)


def _print_rows(frame: pd.DataFrame, title: str, columns: dict[str, str], top: int, where: Path) -> None:
    """The first ``top`` rows of ``frame``, ``columns`` (name: header) only; months as YYYY-MM."""
    import pandas as pd

    if frame.empty:
        console.print(f"{title}: none", highlight=False)
        return
    more = f"; {len(frame) - top:,} more in {where}" if len(frame) > top else ""
    shown = Table(title=f"{title} ({len(frame):,}{more})")
    for col, header in columns.items():
        numeric = pd.api.types.is_numeric_dtype(frame[col]) and col != "rank"
        shown.add_column(header, justify="right" if numeric or col == "rank" else "left")
    for row in frame.head(top).to_dict("records"):
        cells = []
        for col in columns:
            value = row[col]
            if isinstance(value, pd.Timestamp):
                cells.append(f"{value:%Y-%m}")
            elif col == "utilisation":
                cells.append("-" if value != value else f"{value:.0%}")
            elif isinstance(value, float):
                cells.append(number(value))
            else:
                cells.append(escape(str(value)))
        shown.add_row(*cells)
    console.print(shown)


def _print_review(base: Balance, folder: Path, top: int) -> None:
    """The base plan's rule, capacity exceptions and decisions; inventory exceptions counted
    (each is among the decisions, ranked by its money)."""
    console.print(f"[bold]Allocation rule[/bold]: {escape(base.rule)}", highlight=False)
    columns = ["resource", "ds", "kind", "utilisation", "load", "capacity", "gap", "drivers"]
    headers = dict(zip(columns, [*columns[:1], "month", *columns[2:]], strict=True))
    _print_rows(
        base.capacity_exceptions, "Capacity exceptions", headers, top, folder / "capacity_exceptions.csv"
    )
    stock = base.inventory_exceptions
    kinds = ", ".join(f"{n:,} {kind}" for kind, n in stock["kind"].value_counts().items())
    console.print(
        f"Inventory exceptions: {len(stock):,}{f' ({kinds})' if kinds else ''}, in "
        f"{folder / 'inventory_exceptions.csv'}",
        highlight=False,
    )
    headers = {"rank": "#", "kind": "kind", "subject": "subject", "ds": "from", "gap": "gap"}
    headers.update(at_stake="at stake", action="action")
    _print_rows(base.decisions, "Decisions, ranked by money at stake", headers, top, folder / "decisions.csv")


@balance_app.command("run")
def balance_run(
    capacity: CapacityOption = None,
    routing: RoutingOption = None,
    inventory: InventoryOption = None,
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            "--scenario", help="A scenario to balance beside the plan (repeatable).", show_default=False
        ),
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="Rows of each exception list to print.")] = 10,
    fmt: FormatOption = "table",
    out: OutOption = None,
    pipeline: PipelineOption = None,
    plan: PlanOption = None,
    version: VersionOption = None,
    store: StoreOption = None,
    workdir: WorkdirOption = None,
) -> None:
    """Hold a plan version (and each --scenario, side by side) against capacity and inventory.

    Keeps the review in the plan store, prints the key figures, the allocation rule, the
    capacity and inventory exceptions and the decisions ranked by money, and writes the
    tables and chart into --out. csv/json print the key figures only (the rest: the files).
    """
    from .output import emit
    from .planning.scenarios import BASE

    ctx = _open(workdir, store, plan, version, pipeline)
    supply = _supply(ctx, capacity, routing, inventory)
    table, balances, ids = _review(ctx, supply, scenario or [], "sopforecast balance run")
    folder, picture = _write(ctx, out, table, balances)
    if fmt != "table":
        emit(table, fmt)
        return
    _print_figures(table, f"Balance of {ctx.version.label}")
    _print_review(balances[BASE], folder, top)
    console.print(f"Supply: {', '.join(supply.sources)}", highlight=False)
    kept = ", ".join(f"{i} ({name})" for name, i in ids.items())
    console.print(f"Tables and chart ({picture.name}) in {folder}; review id {kept} kept", highlight=False)


@scenario_app.command("compare")
def scenario_compare(
    names: Annotated[list[str], typer.Argument(help="Scenarios to set beside the base plan.")],
    capacity: CapacityOption = None,
    routing: RoutingOption = None,
    inventory: InventoryOption = None,
    fmt: FormatOption = "table",
    out: OutOption = None,
    pipeline: PipelineOption = None,
    plan: PlanOption = None,
    version: VersionOption = None,
    store: StoreOption = None,
    workdir: WorkdirOption = None,
) -> None:
    """The base plan and each scenario balanced, side by side: key figures and changes."""
    ctx = _open(workdir, store, plan, version, pipeline)
    _compare(ctx, names, _supply(ctx, capacity, routing, inventory), fmt, out)


def _compare(ctx: _Plan, names: list[str], supply: SupplyInputs, fmt: str = "table", out: Path | None = None):
    """Balance the base and ``names``, keep the reviews, write and print them side by side."""
    from .output import emit

    table, balances, _ = _review(ctx, supply, names, "sopforecast scenario compare")
    folder, picture = _write(ctx, out, table, balances)
    if fmt != "table":
        emit(table, fmt)
        return
    _print_figures(table, f"Scenarios on {ctx.version.label}, balanced against supply")
    rows = ctx.plans.scenarios(ctx.version.plan)
    for row in rows[rows["name"].isin(list(balances))].itertuples(index=False):
        console.print(f"  {escape(row.name)}: {escape(row.description)}", highlight=False)
    console.print(f"Chart: {picture}; table: {folder / 'scenarios.csv'}", highlight=False)


Kind = Literal["uplift", "promotion", "launch", "price", "capacity", "delay"]


def _change(kind: str, given: dict):
    """The change the options describe, each option checked against the kind; the errors
    name the options (``--pct``), not the settings."""
    import typing

    from pydantic import ValidationError

    from .errors import validation_problems
    from .supply import scenarios as what_if

    models = {m.model_fields["kind"].default: m for m in typing.get_args(typing.get_args(what_if.Change)[0])}
    takes = [f for f in models[kind].model_fields if f != "kind"]
    flag = {f: "--" + f.replace("_", "-") for f in given}
    stray = [flag[f] for f in given if f not in takes]
    if stray:
        wanted = ", ".join("--" + f.replace("_", "-") for f in takes)
        raise ConfigError(f"{', '.join(stray)}: not a setting of {kind} scenarios; they take {wanted}.")
    try:
        return what_if.parse_change({"kind": kind, **given})
    except ValidationError as exc:
        problems = []
        for where, message in validation_problems(exc):
            field = where.split(".", 1)[1] if "." in where else ""
            name = "--" + field.replace("_", "-") if field else ""
            message = "required" if message == "Field required" else message
            problems.append(f"{name}: {message}" if name else message)
        raise ConfigError(f"invalid {kind} scenario: {'; '.join(problems)}.") from exc


def _scenario_name(name: str) -> str:
    """A new scenario's name: one that can name a file and a spreadsheet column."""
    from .config import check_name
    from .exports import FORMULA_PREFIXES
    from .planning.scenarios import BASE

    try:
        check_name(name)
    except ValueError as exc:
        raise ConfigError(f"scenario {exc}") from exc
    if name.startswith(FORMULA_PREFIXES):
        raise ConfigError(
            f"scenario {name!r} starts with {name[0]!r}: a spreadsheet would read it (a column of "
            "the comparison) as a formula; start the name with a letter or a digit."
        )
    if name.strip().lower() == BASE:
        raise ConfigError(f"{name!r} names the plan itself in every comparison; choose another name.")
    return name


def _check_new(ctx: _Plan, name: str, change) -> None:
    """Refuse, before any work, a name the plan has, or a resource its capacity file lacks."""
    from .data.supply_files import read_capacity
    from .pipeline.balance_output import supply_files
    from .supply.scenarios import SUPPLY_KINDS, capacity_after

    if not ctx.plans.scenarios(ctx.version.plan, name).empty:
        raise ConfigError(
            f"plan {ctx.version.plan!r} already has a scenario named {name!r}; delete it first "
            f"(scenario delete) or choose another name."
        )
    capacity = supply_files(ctx.spec and ctx.spec.balance, ctx.workdir)["capacity"]
    if change.kind in SUPPLY_KINDS and capacity.is_file():
        capacity_after(read_capacity(capacity), change)  # an unknown resource: named, with the known ones


def _champion(ctx: _Plan):
    """The fitted champion of the plan's registered model, from the pipeline's MLflow
    registry (or the work directory's), with its run id and a label."""
    from .pipeline.registry import load_champion
    from .pipeline.tracking import check_reachable, resolve_store

    tracking = ctx.spec.tracking if ctx.spec else None
    name = (tracking and tracking.registered_model) or (ctx.spec.name if ctx.spec else ctx.version.plan)
    where = resolve_store(
        ctx.workdir, tracking and tracking.tracking_uri, tracking and tracking.registry_uri, create=False
    )
    check_reachable(where)
    forecaster, model = load_champion(
        where.client(), name, tracking_uri=where.tracking_uri, where=where.registry_uri
    )
    if ctx.version.source_run_id and model.run_id != ctx.version.source_run_id:
        console.print(
            f"Note: {ctx.version.label} was made by MLflow run {ctx.version.source_run_id[:8]}; the "
            f"promotion's reaction is champion v{model.version}'s (run {model.run_id[:8]}).",
            highlight=False,
        )
    return forecaster, model.run_id, f"{name} v{model.version}"


def _calendar(ctx: _Plan) -> pd.DataFrame:
    """The drivers' planned values the plan was forecast with: the pipeline's data.future,
    else the demo's promotion calendar."""
    from .data.io import read_source

    data = ctx.spec.data if ctx.spec else None
    # the demo pipeline writes its calendar beside its data (pipeline/sources.py)
    path = Path(data.future) if data and data.future else ctx.workdir.data / "demo_promotion_calendar.csv"
    if not path.is_file():
        raise ConfigError(
            f"no promotion calendar at {path}: a promotion re-forecasts the plan with the drivers it "
            "was made with; name the pipeline whose data.future holds them (--pipeline).",
            setting="pipeline",
        )
    keys = [c for c in ctx.plans.bottom(ctx.version).columns if c != "unique_id"]
    future = read_source(path, text_columns=data.series_columns if data else keys or ["unique_id"])
    renames = {data.time_col: "ds", data.id_col: "unique_id"} if data else {}
    return future.rename(columns={k: v for k, v in renames.items() if k != v})


@scenario_app.command("create")
def scenario_create(
    name: Annotated[str, typer.Argument(help="Scenario name, e.g. snacks-promo.")],
    kind: Annotated[Kind, typer.Option(help="What changes.", case_sensitive=False)],
    node: Annotated[str | None, _changes("uplift, promotion, price: the series (any level's id).")] = None,
    pct: Annotated[float | None, _changes("uplift, price, capacity: percent change (10 = +10%).")] = None,
    start: Annotated[str | None, _changes("First month changed, YYYY-MM.")] = None,
    end: Annotated[str | None, _changes("Last month changed, YYYY-MM.")] = None,
    item: Annotated[str | None, _changes("launch: the new item's name.")] = None,
    like: Annotated[str | None, _changes("launch: the like item (a bottom series id).")] = None,
    scale: Annotated[float | None, _changes("launch: volume as a multiple of the like item's.")] = None,
    promo: Annotated[float | None, _changes("promotion: the promo driver's value (default 1).")] = None,
    price_pct: Annotated[float | None, _changes("promotion: price change during it, percent.")] = None,
    elasticity: Annotated[
        float | None, _changes("price: elasticity, e.g. -1.5 (default: estimated).")
    ] = None,
    resource: Annotated[
        str | None, _changes("capacity, delay: the resource, as in the capacity file.")
    ] = None,
    months: Annotated[int | None, _changes("delay: months the supplier delivers nothing.")] = None,
    compare: Annotated[
        bool,
        typer.Option("--compare", help="Then balance it beside the base plan (as scenario compare NAME)."),
    ] = False,
    pipeline: PipelineOption = None,
    plan: PlanOption = None,
    version: VersionOption = None,
    store: StoreOption = None,
    workdir: WorkdirOption = None,
) -> None:
    """Compute a what-if on a plan version and keep it (a promotion re-forecasts with the champion)."""
    from .planning.scenarios import create, plan_baseline

    name = _scenario_name(name)
    values = dict(node=node, pct=pct, start=start, end=end, item=item, like=like, scale=scale, promo=promo)
    values.update(price_pct=price_pct, elasticity=elasticity, resource=resource, months=months)
    change = _change(kind.lower(), {k: v for k, v in values.items() if v is not None})
    ctx = _open(workdir, store, plan, version, pipeline)
    _check_new(ctx, name, change)
    forecaster, future, model, baseline = None, None, None, None
    if change.kind == "promotion":
        future = _calendar(ctx)
        forecaster, run_id, model = _champion(ctx)
        if run_id == ctx.version.source_run_id:  # the plan is this champion's forecast: no second one
            baseline = plan_baseline(ctx.plans.lines(ctx.version))
    row = create(
        ctx.plans, ctx.version, name, change, forecaster=forecaster, future=future, baseline=baseline
    )
    console.print(
        f"Scenario {escape(name)} on {escape(ctx.version.label)}: {escape(row['description'])} "
        f"({row['seconds']:.1f} s{f', champion {escape(model)}' if model else ''})",
        highlight=False,
    )
    _print_change(ctx, row)
    if compare:
        _compare(ctx, [name], _supply(ctx, None, None, None))
    else:
        console.print(
            f"Compare it with the plan: sopforecast scenario compare {escape(name)}", highlight=False
        )


def _print_change(ctx: _Plan, row: dict) -> None:
    from .supply.scenarios import DEMAND_KINDS

    if row["kind"] not in DEMAND_KINDS:
        console.print("  A supply change: the demand plan stays as it is.", highlight=False)
        return
    changed = ctx.plans.scenario_lines(int(row["id"]))
    lines = ctx.plans.lines(ctx.version)
    base = lines.set_index(["unique_id", "ds"])["final"]
    before = base.reindex(changed.set_index(["unique_id", "ds"]).index).fillna(0.0).sum()
    after = changed["final"].sum()
    ratio = f", {after / before - 1:+.1%}" if before else ""
    console.print(
        f"  {len(changed):,} bottom plan lines changed: {number(before)} -> {number(after)} units "
        f"({after - before:+,.0f}{ratio})",
        highlight=False,
    )


@scenario_app.command("list")
def scenario_list(
    fmt: FormatOption = "table",
    output: OutputOption = None,
    plan: PlanOption = None,
    store: StoreOption = None,
    workdir: WorkdirOption = None,
) -> None:
    """The plan's scenarios, oldest first: kind, what changes, the version made on."""
    import pandas as pd

    from .output import emit
    from .planning.workflow import plan_name

    plans = open_store(workdir, store)
    name = plan_name(plans, plan)
    rows = plans.scenarios(name)
    versions = plans.versions(name).set_index("id")["name"]
    shown = pd.DataFrame(
        {
            "name": rows["name"],
            "kind": rows["kind"],
            "change": rows["description"],
            "made on": rows["version_id"].map(versions).fillna(rows["version_id"].astype(str)),
            "created (UTC)": pd.to_datetime(rows["created_at"]).dt.strftime("%Y-%m-%d %H:%M"),
            "by": rows["created_by"],
        }
    )
    emit(shown, fmt, output, title=f"Scenarios of {name}")


@scenario_app.command("delete")
def scenario_delete(
    name: Annotated[str, typer.Argument(help="The scenario.")],
    plan: PlanOption = None,
    store: StoreOption = None,
    workdir: WorkdirOption = None,
) -> None:
    """Remove a scenario, its changed lines and its balance reviews."""
    from .planning.workflow import plan_name

    plans = open_store(workdir, store)
    owner = plan_name(plans, plan)
    plans.delete_scenario(owner, name)
    console.print(
        f"Deleted scenario {escape(name)} of {escape(owner)} (its lines and reviews too)", highlight=False
    )
