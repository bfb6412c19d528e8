"""The ``monitor`` and ``report`` commands: judge the published plans, list the
exceptions, find the manager report, e-mail it.

Registered on the main app by :mod:`sopforecast.cli`; ``monitor run`` calls
:func:`~sopforecast.monitoring.monitor.run_monitor`, as a pipeline's monitor step does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .console import console
from .options import WorkdirOption
from .output import FormatOption, OutputOption, emit
from .plan_cli import PlanOption, StoreOption, open_store

__all__ = ["monitor_app", "report_app"]

monitor_app = typer.Typer(
    help="Accuracy of the published plans against actuals, exceptions, drift.", no_args_is_help=True
)
report_app = typer.Typer(help="The manager report: e-mail it.", no_args_is_help=True)

PipelineOption = Annotated[
    Path | None,
    typer.Option(
        "--pipeline", help="Take the monitor settings (targets, lags, mail) from this pipeline YAML."
    ),
]


def _settings(pipeline: Path | None):
    from .pipeline.spec import MonitorStep, load_pipeline

    return load_pipeline(pipeline).monitor if pipeline else MonitorStep()


@monitor_app.command("run")
def monitor_run(
    plan: PlanOption = None,
    pipeline: PipelineOption = None,
    store: StoreOption = None,
    workdir: WorkdirOption = None,
    budget: Annotated[
        Path | None,
        typer.Option(
            "--budget",
            help="Annual operating plan (key, month, revenue and/or units): the gap to budget in the "
            "report's S&OP review; default the pipeline's monitor.budget.",
        ),
    ] = None,
) -> None:
    """Score every published plan version at every lag, check the targets, look for drift,
    write the manager report, and log it all to MLflow."""
    from .monitoring.monitor import run_monitor
    from .pipeline.monitor_output import cycle_step, log_to_mlflow, read_budget_of
    from .pipeline.spec import load_pipeline
    from .pipeline.tracking import get_experiment_id, resolve_store
    from .planning.finance import read_budget
    from .planning.workflow import plan_name
    from .workdir import resolve_workdir

    wd = resolve_workdir(workdir)
    plans = open_store(workdir, store)
    name = plan_name(plans, plan)
    settings = _settings(pipeline)
    aop = (
        read_budget(budget) if budget else (read_budget_of(load_pipeline(pipeline), wd) if pipeline else None)
    )
    result = run_monitor(plans, name, settings, wd.reports, budget=aop)
    tracking = resolve_store(wd)
    client = tracking.client()
    experiment = get_experiment_id(client, name, tracking.artifact_root)
    run = client.create_run(
        experiment,
        run_name=f"monitor {name} {result.cycle}",
        tags={"sopforecast.role": "monitor", "sopforecast.plan": name},
    )
    log_to_mlflow(client, run.info.run_id, result)
    client.set_terminated(run.info.run_id)
    plans.link_monitor(result.run_id, run.info.run_id)
    _print_kpis(result)
    _print_exceptions(result.exceptions, 10, settings.currency)
    _print_stake(result, 10)
    console.print(
        f"Report: {result.report}"
        + (f" and {result.pdf}" if result.pdf else " (no PDF: Chromium not found)"),
        highlight=False,
    )
    console.print(f"MLflow run {run.info.run_id} (step {cycle_step(result.cycle)})", highlight=False)
    if settings.recipients:
        from .pipeline.monitor_output import send

        send(settings.mail, settings.recipients, result)


@monitor_app.command("exceptions")
def monitor_exceptions(
    top: Annotated[
        int | None, typer.Option(help="Rows to show [default: 20 in a table, all in csv/json].")
    ] = None,
    fmt: FormatOption = "table",
    output: OutputOption = None,
    pipeline: PipelineOption = None,
    plan: PlanOption = None,
    store: StoreOption = None,
    workdir: WorkdirOption = None,
) -> None:
    """The latest monitoring run's exceptions, most money at stake first (``--format csv``
    or ``json`` for scripts: every exception, keys in full)."""
    plans, _, row = _latest_run(workdir, store, plan)
    frame = plans.monitor_exceptions(int(row["id"]))
    currency = _currency(row, pipeline)
    if fmt == "table" and output is None:
        _print_exceptions(frame, 20 if top is None else top, currency)
        return
    shown = frame if top is None else frame.head(top)
    emit(
        _exception_rows(shown, currency),
        fmt,
        output,
        title=f"Top {len(shown)} of {len(frame)} exceptions (most money at stake first)",
    )
    if output is not None:
        console.print(f"Wrote {len(shown)} of {len(frame)} exceptions to {output}", highlight=False)


@monitor_app.command("report")
def monitor_report(plan: PlanOption = None, store: StoreOption = None, workdir: WorkdirOption = None) -> None:
    """Where the latest manager report (and its PDF) is."""
    _, name, row = _latest_run(workdir, store, plan)
    html = Path(row["report"])
    pdf = html.with_suffix(".pdf")
    console.print(f"Manager report of {name}, cycle {row['cycle']}: {html}", highlight=False)
    console.print(f"PDF: {pdf if pdf.exists() else '(none: Chromium was not found)'}", highlight=False)


@report_app.command("send")
def report_send(
    to: Annotated[list[str], typer.Option("--to", help="Recipient (repeatable).")],
    pipeline: PipelineOption = None,
    host: Annotated[
        str | None, typer.Option(help="SMTP host [default: the pipeline's monitor.mail].")
    ] = None,
    port: Annotated[int | None, typer.Option(help="SMTP port.")] = None,
    starttls: Annotated[bool | None, typer.Option("--starttls/--no-starttls", help="Use STARTTLS.")] = None,
    sender: Annotated[str | None, typer.Option(help="From address.")] = None,
    plan: PlanOption = None,
    store: StoreOption = None,
    workdir: WorkdirOption = None,
) -> None:
    """E-mail the latest manager report: KPI tiles in the body, the report and its PDF
    attached. The SMTP user and password come from $SOPFORECAST_SMTP_USER and
    $SOPFORECAST_SMTP_PASSWORD, never from options."""
    from .monitoring.mail import MailSettings, send_report
    from .pipeline.monitor_output import tiles_html

    plans, name, row = _latest_run(workdir, store, plan)
    base = _settings(pipeline).mail.model_dump()
    given = {"host": host, "port": port, "starttls": starttls, "sender": sender}
    settings = MailSettings(**{**base, **{k: v for k, v in given.items() if v is not None}})
    html = Path(row["report"])
    pdf = html.with_suffix(".pdf")
    run_id = int(row["id"])
    summary = tiles_html(
        name,
        row["cycle"],
        plans.monitor_kpis(run_id),
        plans.monitor_exceptions(run_id),
        _currency(row, pipeline),
    )
    send_report(
        settings,
        list(to),
        html,
        pdf if pdf.exists() else None,
        subject=f"S&OP accuracy report {name} {row['cycle']}",
        summary_html=summary,
    )
    console.print(f"Sent the {row['cycle']} report of {name} to {', '.join(to)}", highlight=False)


def _currency(row, pipeline) -> str:
    """The currency a monitoring run's money is in: as stored with it, else the pipeline's."""
    stored = row.get("currency") if hasattr(row, "get") else None
    return stored if isinstance(stored, str) and stored else _settings(pipeline).currency


def _latest_run(workdir, store, plan):
    """The store, the plan's name and its latest monitoring run (a row of
    ``monitor_runs``); a plan never monitored is a user error."""
    from .monitoring.monitor import NothingToMonitor
    from .planning.workflow import plan_name

    plans = open_store(workdir, store)
    name = plan_name(plans, plan)
    runs = plans.monitor_runs(name)
    if runs.empty:
        raise NothingToMonitor(
            f"plan {name!r} has not been monitored yet; run 'sopforecast monitor run' first."
        )
    return plans, name, runs.iloc[0]


def _print_kpis(result) -> None:
    colours = {"green": "green", "amber": "yellow", "red": "red"}
    table = Table(title=f"{result.plan}: targets, up to {result.cycle}")
    for col in ("measure", "level", "lag", "value", "target", "status"):
        table.add_column(col, justify="right" if col in ("lag", "value") else "left")
    for row in result.kpis.itertuples(index=False):
        value = f"{row.value:.1%}" if row.unit == "%" else f"{row.value:.2f}"
        colour = colours.get(row.status, "white")
        table.add_row(
            row.name, row.level, str(row.lag), value, row.target, f"[{colour}]{row.status}[/{colour}]"
        )
    console.print(table)


EXCEPTION_FIELDS = ["rank", "key", "level", "metric", "forecast", "lag", "value", "target", "breach"]
EXCEPTION_FIELDS += ["trend", "direction", "at_stake", "currency", "action"]


def _exception_rows(frame, currency: str):
    """The stored exceptions as scripts read them: every column, money with its currency."""
    return frame.assign(currency=currency).reindex(columns=EXCEPTION_FIELDS)


def _print_exceptions(frame, top: int, currency: str) -> None:
    table = Table(title=f"Top {min(top, len(frame))} of {len(frame)} exceptions (most money at stake first)")
    stake = f"at stake ({currency})"
    for col in ("#", "key", "measure", "lag", "value", "target", "trend", stake, "action"):
        table.add_column(col, justify="right" if col in ("#", "lag", "value", stake) else "left")
    for row in frame.head(top).itertuples(index=False):
        table.add_row(
            str(row.rank),
            escape(str(row.key)),
            str(row.metric),
            str(row.lag),
            f"{row.value:.3f}",
            escape(str(row.target)),
            escape(str(row.trend)),
            "-" if row.at_stake != row.at_stake else f"{row.at_stake:,.0f}",
            escape(str(row.action)),
        )
    console.print(table)


def _print_stake(result, top: int) -> None:
    """The report's total at stake of the top exceptions, by the same rule (rules.count_once)."""
    from .monitoring.rules import STAKE_RULE, count_once

    shown = result.exceptions.head(top)
    if shown.empty:
        return
    once = count_once(shown, result.stake_members)
    total = float(shown.loc[once["counted"], "at_stake"].sum())
    console.print(
        f"These {len(shown)} exceptions put {result.currency} {total:,.0f} at stake, counting "
        f"{int(once['counted'].sum())} item(s). {STAKE_RULE}",
        highlight=False,
    )
