"""The ``override``, ``actuals`` and ``db`` commands of the planning cycle.

Registered on the main app by :mod:`sopforecast.cli`; every command calls one function of
:mod:`sopforecast.planning.workflow` or :class:`~sopforecast.store.plans.PlanStore`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .console import console
from .options import WorkdirOption
from .output import FormatOption, OutputOption
from .plan_cli import PlanOption, ReopenOption, StoreOption, number, open_store

__all__ = ["override_app", "actuals_app", "db_app"]

override_app = typer.Typer(
    help="Consensus overrides: apply a file or workbook, list, revert.", no_args_is_help=True
)
actuals_app = typer.Typer(help="Actual demand the plans are judged by.", no_args_is_help=True)
db_app = typer.Typer(help="The plan store's database schema.", no_args_is_help=True)


AuthorOption = Annotated[
    str | None,
    typer.Option(help="Who makes the change, as the audit shows it [default: $SOPFORECAST_USER]."),
]


@override_app.command("apply")
def override_apply(
    file: Annotated[
        Path,
        typer.Argument(
            help="Overrides (CSV/Excel: key, month, value or change_pct, author, "
            "reason) or an edited planner workbook."
        ),
    ],
    version: Annotated[
        str | None,
        typer.Option(
            help="Version name ('2026-01 v2'), id or cycle [default: the workbook's, else the current]."
        ),
    ] = None,
    author: AuthorOption = None,
    reason: Annotated[str | None, typer.Option(help="Why (required for a workbook's changes).")] = None,
    basis: Annotated[
        str, typer.Option(help="Spread aggregate overrides by: statistical or history.")
    ] = "statistical",
    branch: Annotated[
        str | None,
        typer.Option(
            help="Put the change on a named draft branch of the cycle (a what-if) instead of its draft."
        ),
    ] = None,
    rebase: Annotated[
        bool,
        typer.Option("--rebase", help="Apply a stale workbook's edited cells on top of the current plan."),
    ] = False,
    reopen: ReopenOption = None,
    max_factor: Annotated[
        float,
        typer.Option(help="Warn when a change takes a line beyond this factor of its statistical forecast."),
    ] = 5.0,
    plan: PlanOption = None,
    store: StoreOption = None,
    workdir: WorkdirOption = None,
) -> None:
    """Apply consensus overrides to the cycle's draft; one bad row and nothing is applied (exit 2)."""
    from .planning.consensus import implausible_changes, plausibility_warnings
    from .planning.workflow import apply_override_file

    plans = open_store(workdir, store)
    v, result = apply_override_file(
        plans,
        file,
        plan=plan,
        version=version,
        author=author,
        reason=reason,
        basis=basis,
        branch=branch or "",
        reopen=reopen,
        rebase=rebase,
    )
    applied = result.applied
    console.print(
        f"Applied {len(applied)} override(s) from {file.name} to {escape(v.label)}", highlight=False
    )
    table = Table(title="Overrides applied")
    for col in ("id", "key", "month", "was", "requested", "now"):
        table.add_column(col, justify="right" if col in ("was", "requested", "now", "id") else "left")
    for row in applied.itertuples(index=False):
        table.add_row(
            str(row.id),
            escape(row.key),
            f"{row.ds:%Y-%m}",
            number(row.previous),
            number(row.requested),
            number(row.final),
        )
    if len(applied):
        console.print(table)
    far = implausible_changes(applied, result.lines, factor=max_factor)
    for line in plausibility_warnings(far, factor=max_factor):
        console.print(f"[yellow]Warning[/yellow] {escape(line)}", highlight=False)
    for row in result.conflicts.itertuples(index=False):
        outcome = "held" if row.held else f"could not hold: it is now {number(row.result)}"
        console.print(
            f"[yellow]Conflict[/yellow] {row.ds:%Y-%m}: {escape(row.key)} (override {row.override_id}, "
            f"{number(row.requested)}) and {escape(row.descendant_key)} "
            f"(override {row.descendant_override_id}): "
            f"the more specific one holds; the aggregate {outcome}",
            highlight=False,
        )


@override_app.command("list")
def override_list(
    version: Annotated[
        str | None, typer.Option(help="Version name ('2026-01 v2'), id or cycle [default: every version].")
    ] = None,
    fmt: FormatOption = "table",
    output: OutputOption = None,
    plan: PlanOption = None,
    store: StoreOption = None,
    workdir: WorkdirOption = None,
) -> None:
    """Every override: who, when, why, and whether it was reverted (by whom, why)."""
    import pandas as pd

    from .output import emit
    from .planning.workflow import plan_name

    plans = open_store(workdir, store)
    name = plan_name(plans, plan)
    frame = plans.overrides(plans.version(version, name) if version else None, plan=name)
    reverted = frame["reverted_at"].notna()
    shown = pd.DataFrame(
        {
            "id": frame["id"],
            "version": [f"{c} v{n}" for c, n in zip(frame["cycle"], frame["number"], strict=True)],
            "key": frame["key"],
            "month": pd.to_datetime(frame["ds"]).dt.strftime("%Y-%m"),
            "value": frame["value"].astype(float),
            "change %": frame["change_pct"].astype(float),
            "author": frame["author"],
            "when (UTC)": pd.to_datetime(frame["created_at"]).dt.strftime("%Y-%m-%d %H:%M"),
            "reason": frame["reason"],
            "carries": frame["origin_id"].fillna(frame["copied_from"]),
            "status": [
                f"reverted by {b} {pd.Timestamp(t):%Y-%m-%d %H:%M}" + (f": {r}" if r else "")
                if done
                else "active"
                for done, b, t, r in zip(
                    reverted, frame["reverted_by"], frame["reverted_at"], frame["revert_reason"], strict=True
                )
            ],
        }
    )
    emit(shown, fmt, output, title=f"Overrides of {name} (newest first)")


@override_app.command("revert")
def override_revert(
    override_id: Annotated[int, typer.Argument(help="Override id (see 'sopforecast override list').")],
    author: AuthorOption = None,
    reason: Annotated[str, typer.Option(help="Why it is undone; kept in the audit.")] = ...,
    reopen: ReopenOption = None,
    store: StoreOption = None,
    workdir: WorkdirOption = None,
) -> None:
    """Undo an override: the cycle's draft is replayed without it (a published version gets a new draft)."""
    from .planning.service import revert
    from .planning.workflow import who

    plans = open_store(workdir, store)
    if not reason.strip():
        raise typer.BadParameter("give the reason the override is undone", param_hint="--reason")
    version, _ = revert(plans, override_id, by=who(author, action="reverts"), reason=reason, reopen=reopen)
    console.print(
        f"Reverted override {override_id}; {escape(version.label)} replayed without it", highlight=False
    )


@actuals_app.command("load")
def actuals_load(
    file: Annotated[Path, typer.Argument(help="Actuals in the layout of the plan's history file.")],
    sheet: Annotated[str | None, typer.Option(help="Excel sheet [default: the first].")] = None,
    plan: PlanOption = None,
    store: StoreOption = None,
    workdir: WorkdirOption = None,
) -> None:
    """Load actual demand (validated like the history); a restated month is kept as a revision."""
    from .planning.workflow import load_actuals_file

    plans = open_store(workdir, store)
    counts = load_actuals_file(plans, file, plan=plan, sheet=sheet)
    console.print(
        f"Loaded {file.name}: {counts['series']:,} series; {counts['new']:,} new month(s), "
        f"{counts['revised']:,} restated (kept as revisions), {counts['unchanged']:,} unchanged"
        + (f"; {counts['new_items']} series are not in the plan (new items)" if counts["new_items"] else ""),
        highlight=False,
    )


@db_app.command("upgrade")
def db_upgrade(store: StoreOption = None, workdir: WorkdirOption = None) -> None:
    """Migrate the plan store's schema to this version of sopforecast (back it up first)."""
    from .store import schema
    from .store.engine import check_url
    from .store.plans import resolve_store_uri
    from .workdir import resolve_workdir

    url = resolve_store_uri(resolve_workdir(workdir), store)
    check_url(url, url, create=True)
    before, after = schema.upgrade(schema.make_engine(url))
    if before == after:
        console.print(f"The store is at schema revision {after} already; nothing to do.")
    else:
        console.print(f"Upgraded the store from revision {before or '(none)'} to {after}.")
