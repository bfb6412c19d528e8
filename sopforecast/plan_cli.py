"""The ``plan`` commands: list, show, publish, diff, export, fva, finance.

Registered on the main app by :mod:`sopforecast.cli`; every command calls one function of
:mod:`sopforecast.planning.workflow` or :class:`~sopforecast.store.plans.PlanStore`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .console import console
from .options import WorkdirOption
from .output import FormatOption, OutputOption

if TYPE_CHECKING:
    from .store.plans import PlanStore

__all__ = ["plan_app", "PLAN_FLAGS", "StoreOption", "PlanOption", "ReopenOption", "VersionArg", "open_store"]
__all__ += ["number"]

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Plan store URL (sqlite:///plans.db, postgresql+psycopg://user@host/db) "
        "[default: $SOPFORECAST_STORE_URI, else the work directory's sopforecast.db].",
        show_default=False,
    ),
]
PlanOption = Annotated[
    str | None, typer.Option("--plan", help="Plan name [default: the only plan in the store].")
]
VersionArg = Annotated[
    str | None,
    typer.Argument(
        help="Version: its name ('2026-01 v2'; v2 alone: of the latest cycle), id, or a cycle "
        "(its current version) [default: the current version of the latest cycle]."
    ),
]
ReopenOption = Annotated[
    str | None,
    typer.Option(
        "--reopen",
        help="Why a closed cycle (one whose months already have actuals) is changed; kept with the version.",
        metavar="REASON",
    ),
]

# the settings library messages name, as the flags of these commands
PLAN_FLAGS = {
    "plan": "--plan",
    "store": "--store",
    "workdir": "--workdir",
    "reopen": "--reopen",
    "rebase": "--rebase",
    "author": "--author",
    "reason": "--reason",
    "factor": "--max-factor",
    "decimals": "--decimals",
    "levels": "--levels",
}

plan_app = typer.Typer(
    help="Versioned demand plans: list, show, publish, diff, export.", no_args_is_help=True
)


def open_store(workdir: Path | None, store: str | None) -> PlanStore:
    """The plan store of a planner's command: it must exist already (a pipeline's plan step
    makes it); a missing one is an error and nothing is created."""
    import os

    from .store.plans import STORE_ENV, PlanStore
    from .workdir import resolve_workdir

    wd = resolve_workdir(workdir)
    if not (store or os.environ.get(STORE_ENV)):
        wd.require(wd.database)
    return PlanStore.open(wd, store, create=False)


def _chosen(plans: PlanStore, version: str | None, plan: str | None):
    """The version a command acts on: ``version`` (of ``--plan`` when given), else the
    current version of the plan's latest cycle (the only plan in the store unless ``--plan``
    names it)."""
    from .planning.workflow import plan_name

    return plans.version(version, plan_name(plans, plan) if plan or version is None else None)


def number(value, digits: int = 0) -> str:
    return "-" if value is None or value != value else f"{value:,.{digits}f}"


@plan_app.command("list")
def plan_list(
    plan: PlanOption = None,
    fmt: FormatOption = "table",
    output: OutputOption = None,
    store: StoreOption = None,
    workdir: WorkdirOption = None,
) -> None:
    """Every plan version, newest first: name, status, total, overrides."""
    import pandas as pd

    from .output import emit

    plans = open_store(workdir, store)
    frame = plans.versions(plan)
    shown = pd.DataFrame(
        {
            "id": frame["id"],
            "plan": frame["plan"],
            "version": frame["name"],
            "status": frame["status"],
            "created (UTC)": pd.to_datetime(frame["created_at"]).dt.strftime("%Y-%m-%d %H:%M"),
            "by": frame["created_by"],
            "total plan": frame["total_final"].astype(float).round(1),
            "overrides": frame["overrides"].astype(int),
        }
    )
    emit(shown, fmt, output, title=f"Plan versions in {plans.where}")


@plan_app.command("show")
def plan_show(
    version: VersionArg = None,
    level: Annotated[
        str | None, typer.Option(help="Level to show month by month [default: the top].")
    ] = None,
    fmt: FormatOption = "table",
    output: OutputOption = None,
    plan: PlanOption = None,
    store: StoreOption = None,
    workdir: WorkdirOption = None,
) -> None:
    """A version's totals per level and one level month by month (csv/json: that level's lines)."""
    from .output import emit
    from .planning.lines import is_coherent
    from .planning.service import structure

    plans = open_store(workdir, store)
    v = _chosen(plans, version, plan)
    lines = plans.lines(v)
    chosen = level or lines["level"].iloc[0]
    part = lines[lines["level"] == chosen]
    if part.empty:
        raise typer.BadParameter(
            f"no level {chosen!r}; levels: {', '.join(lines['level'].unique())}", param_hint="--level"
        )
    if fmt != "table":  # for scripts: the level's lines, every series and month
        emit(part.drop(columns=["level"]).reset_index(drop=True), fmt, output)
        return
    S, _ = structure(plans, v)
    console.print(
        f"[bold]{escape(f'{v.plan} {v.name}')}[/bold] ({v.status}, id {v.id}) made "
        f"{v.created_at:%Y-%m-%d %H:%M} by {escape(v.created_by)} from MLflow run "
        f"{v.source_run_id or '-'}; history to {v.history_end or '-'}; "
        f"coherent at every level: {'yes' if is_coherent(lines, S) else 'NO'}",
        highlight=False,
    )
    per_level = lines.groupby("level", sort=False).agg(
        series=("unique_id", "nunique"),
        statistical=("statistical", "sum"),
        final=("final", "sum"),
        changed=("consensus", "count"),
    )
    ratio = per_level["final"] / per_level["statistical"].where(per_level["statistical"] != 0) - 1
    per_level["change"] = [f"{r:+.1%}" for r in ratio.fillna(0.0)]
    per_level = per_level.rename(columns={"changed": "lines overridden"}).reset_index()
    per_level = per_level[["level", "series", "statistical", "final", "change", "lines overridden"]]
    bounds = [c for c in lines.columns if c.startswith("statistical-")]
    monthly = part.groupby("ds")[["statistical", *bounds, "final"]].sum().round(1)
    monthly.columns = [c.replace("statistical-", "") for c in monthly.columns]
    monthly.insert(0, "month", monthly.index.strftime("%Y-%m"))
    title = f"{chosen} by month" + (" (sum of its series)" if part["unique_id"].nunique() > 1 else "")
    tables = [
        (per_level.round(1), f"Per level, {lines['ds'].nunique()} months"),
        (monthly.reset_index(drop=True), title),
    ]
    if output is None:
        for frame, name in tables:
            emit(frame, fmt, title=name)
        return
    texts = []
    for frame, name in tables:  # both tables, one after the other, in the one file
        emit(frame, fmt, output, title=name)
        texts.append(output.read_text(encoding="utf-8"))
    output.write_text("\n".join(texts), encoding="utf-8")


@plan_app.command("publish")
def plan_publish(
    cycle: Annotated[
        str,
        typer.Argument(
            help="Cycle (its draft is published), e.g. 2026-11, or a version name ('2026-11 v2') or id."
        ),
    ],
    reopen: ReopenOption = None,
    plan: PlanOption = None,
    store: StoreOption = None,
    workdir: WorkdirOption = None,
) -> None:
    """Freeze a cycle's plan: a published version never changes (later changes continue a new draft)."""
    from .planning.service import publish
    from .planning.workflow import plan_name

    plans = open_store(workdir, store)
    version = publish(plans, cycle, plan_name(plans, plan), reopen=reopen)
    console.print(f"Published {escape(version.label)}", highlight=False)


@plan_app.command("diff")
def plan_diff(
    first: Annotated[str, typer.Argument(help="Version name ('2026-01 v2'), id or cycle.")],
    second: Annotated[str, typer.Argument(help="Version name ('2026-01 v2'), id or cycle.")],
    top: Annotated[int, typer.Option(help="Largest line changes to list.")] = 10,
    plan: PlanOption = None,
    store: StoreOption = None,
    workdir: WorkdirOption = None,
) -> None:
    """What changed between two versions: totals per level, the largest line changes."""
    from .planning.compare import diff_versions
    from .planning.workflow import plan_name

    plans = open_store(workdir, store)
    name = plan_name(plans, plan)
    a, b = plans.version(first, name), plans.version(second, name)
    levels, changes = diff_versions(plans.lines(a), plans.lines(b))
    table = Table(title=f"{a.name} -> {b.name}: final plan per level (common months)")
    for col in ("level", "first", "second", "change", "change %"):
        table.add_column(col, justify="left" if col == "level" else "right")
    for row in levels.itertuples(index=False):
        table.add_row(
            row.level, number(row.first), number(row.second), number(row.change), f"{row.change_pct:+.1%}"
        )
    console.print(table)
    table = Table(title=f"Largest line changes (top {top})")
    for col in ("series", "month", "first", "second", "change", "author"):
        table.add_column(col, justify="right" if col in ("first", "second", "change") else "left")
    for row in changes.head(top).itertuples(index=False):
        table.add_row(
            escape(row.unique_id),
            f"{row.ds:%Y-%m}",
            number(row.first),
            number(row.second),
            number(row.change),
            escape(str(row.author or "")),
        )
    console.print(table)


@plan_app.command("export")
def plan_export(
    version: VersionArg = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="File: .csv, .xlsx or .parquet.")] = Path(
        "plan.csv"
    ),
    layout: Annotated[
        str, typer.Option(help="long, wide (one column per month, for ERP import) or planner.")
    ] = "long",
    decimals: Annotated[
        int | None,
        typer.Option(help="wide layout: round to this many decimals (0: whole units) [default: unrounded]."),
    ] = None,
    levels: Annotated[
        str | None,
        typer.Option(help="Only these levels, comma-separated (e.g. the bottom level for an ERP)."),
    ] = None,
    plan: PlanOption = None,
    store: StoreOption = None,
    workdir: WorkdirOption = None,
) -> None:
    """Write a plan version (default: the latest) for an ERP or a planner."""
    from .planning.workflow import export_version

    plans = open_store(workdir, store)
    v = _chosen(plans, version, plan)
    chosen = [x.strip() for x in levels.split(",") if x.strip()] if levels else None
    path = export_version(plans, output, version=v, layout=layout, decimals=decimals, levels=chosen)
    console.print(f"Wrote {escape(v.label)} ({layout} layout) to {path}", highlight=False)


@plan_app.command("fva")
def plan_fva(
    lags: Annotated[str, typer.Option(help="Lags in months, comma-separated.")] = "1,3,6",
    output: Annotated[Path | None, typer.Option(help="Folder for the tables and the chart.")] = None,
    plan: PlanOption = None,
    store: StoreOption = None,
    workdir: WorkdirOption = None,
) -> None:
    """Forecast value added: naive vs statistical vs consensus error per level, lag and author."""
    from .exports import safe_name, write_table
    from .planning.fva import fva_chart
    from .planning.workflow import fva_report, plan_name
    from .workdir import resolve_workdir

    plans = open_store(workdir, store)
    name = plan_name(plans, plan)
    chosen = [int(x) for x in lags.split(",") if x.strip()]
    table, authors = fva_report(plans, name, chosen)
    folder = output or resolve_workdir(workdir).reports
    folder.mkdir(parents=True, exist_ok=True)
    stem = safe_name(name)
    write_table(table, folder / f"{stem}_fva.csv")
    write_table(authors, folder / f"{stem}_fva_by_author.csv")
    chart = fva_chart(table, folder / f"{stem}_fva.png")
    shown = Table(title=f"Forecast value added of {name} (WAPE; FVA > 0: the step helps)")
    for col in ("level", "lag", "lines", "naive", "statistical", "consensus", "FVA stat", "FVA consensus"):
        shown.add_column(col, justify="left" if col == "level" else "right")
    for row in table.itertuples(index=False):
        shown.add_row(
            row.level,
            str(row.lag),
            str(row.n),
            f"{row.wape_naive:.3f}",
            f"{row.wape_statistical:.3f}",
            f"{row.wape_final:.3f}",
            f"{row.fva_statistical:+.3f}",
            f"{row.fva_consensus:+.3f}",
        )
    console.print(shown)
    console.print(f"Tables and chart: {folder / f'{stem}_fva.csv'}, {chart}", highlight=False)


@plan_app.command("finance")
def plan_finance(
    version: VersionArg = None,
    budget: Annotated[
        Path | None, typer.Option(help="Annual operating plan: key, month, revenue and/or units.")
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Folder for the revenue and budget-gap tables.")] = None,
    plan: PlanOption = None,
    store: StoreOption = None,
    workdir: WorkdirOption = None,
) -> None:
    """Revenue and margin of a plan version per level and month, and its gap to the budget."""
    from .exports import safe_name, write_table
    from .planning.finance import budget_gap, read_budget, revenue
    from .planning.service import structure
    from .workdir import resolve_workdir

    plans = open_store(workdir, store)
    v = _chosen(plans, version, plan)
    S, _ = structure(plans, v)
    view = revenue(plans.lines(v), S)
    folder = output or resolve_workdir(workdir).reports
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{safe_name(v.plan)}_{safe_name(v.cycle)}"
    write_table(view, folder / f"{stem}_revenue.csv")
    per_level = view.groupby("level", sort=False)[["units", "revenue", "margin", "unpriced_units"]].sum(
        min_count=1
    )
    table = Table(title=f"{v.label}: plan in money, all months")
    for col in ("level", "units", "revenue", "margin", "unpriced units"):
        table.add_column(col, justify="left" if col == "level" else "right")
    for name, row in per_level.iterrows():
        table.add_row(name, *(number(x) for x in row.to_numpy()))
    console.print(table)
    if budget is not None:
        gaps = budget_gap(view, read_budget(budget))
        for period, frame in gaps.items():
            write_table(frame, folder / f"{stem}_budget_gap_{safe_name(period)}.csv")
        year = gaps["year"]
        table = Table(title="Gap to budget by year (plan - budget)")
        for col in ("key", "measure", "year", "plan", "budget", "gap", "gap %"):
            table.add_column(col, justify="right" if col in ("plan", "budget", "gap", "gap %") else "left")
        for row in year.itertuples(index=False):
            table.add_row(
                escape(row.key),
                row.measure,
                str(row.period),
                number(row.plan),
                number(row.budget),
                number(row.gap),
                f"{row.gap_pct:+.1%}",
            )
        console.print(table)
    console.print(f"Tables in {folder}", highlight=False)
