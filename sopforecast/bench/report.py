"""Markdown tables from benchmark outputs, for BENCHMARKS.md.

``python -m sopforecast.bench.report --m3 DIR --pbs DIR --overhead DIR``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

__all__ = ["m3_table", "m3_time_table", "coverage_table", "pbs_table", "main"]

GROUPS = ["yearly", "quarterly", "monthly", "other", "all"]


def _md(frame: pd.DataFrame) -> str:
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


def m3_table(folder: Path) -> str:
    rows = pd.DataFrame(json.loads((folder / "m3_results.json").read_text()))
    table = rows.pivot_table(index="model", columns="group", values="smape", aggfunc="first")
    table = table[[g for g in GROUPS if g in table.columns]].round(2)
    order = ["auto", "reference mean(ETS,ARIMA,Theta,CES)"]
    table = table.reindex(order + sorted(i for i in table.index if i not in order)).dropna(how="all")
    seconds = rows[rows["model"] == "auto"].set_index("group")["seconds"]
    out = table.reset_index().rename(columns={"model": "model (sMAPE)"})
    text = _md(out.fillna("-"))
    text += "\n\nWall time of `auto` (backtest, selection and forecast), seconds: " + ", ".join(
        f"{g} {seconds[g]:.0f}" for g in GROUPS if g in seconds.index
    )
    return text


def m3_time_table(folder: Path) -> str:
    """Wall seconds per group: ``auto`` by stage, each reference model, the reference sum."""
    rows = pd.DataFrame(json.loads((folder / "m3_results.json").read_text()))
    stages = [c for c in rows.columns if c.startswith("seconds_")]
    auto = rows[rows["model"] == "auto"].set_index("group")[["seconds", *stages]]
    auto = auto.rename(columns={c: f"auto {c.removeprefix('seconds_')}" for c in stages})
    auto = auto.rename(columns={"seconds": "auto total"})
    others = rows[rows["model"] != "auto"].pivot_table(index="group", columns="model", values="seconds")
    table = auto.join(others).reindex([g for g in GROUPS if g in auto.index]).round(1)
    return _md(table.reset_index().fillna("-"))


def coverage_table(folder: Path, group: str = "monthly") -> str:
    rows = pd.DataFrame(json.loads((folder / "m3_results.json").read_text()))
    part = rows[(rows["group"] == group) & rows["coverage_80"].notna()]
    out = part[["model", "coverage_80", "coverage_95"]].round(1)
    names = {"coverage_80": "80% interval covers", "coverage_95": "95% interval covers"}
    return _md(out.rename(columns=names))


def pbs_table(folder: Path, metric: str = "mase") -> str:
    table = pd.read_csv(folder / "pbs_levels.csv")
    wide = table.pivot_table(index="level", columns="method", values=metric, aggfunc="first", sort=False)
    wide = wide[["base", *[c for c in wide.columns if c != "base"]]].round(3)
    gaps = table.groupby("method")["coherence_gap"].first()
    text = _md(wide.reset_index())
    text += "\n\nLargest relative coherence gap (aggregate vs sum of its bottom series): " + ", ".join(
        f"{m} {gaps[m]:.1e}" for m in wide.columns
    )
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sopforecast.bench.report", description=__doc__)
    parser.add_argument("--m3", type=Path)
    parser.add_argument("--pbs", type=Path)
    parser.add_argument("--overhead", type=Path)
    args = parser.parse_args(argv)
    if args.m3:
        print("## M3 sMAPE\n\n" + m3_table(args.m3) + "\n")
        print("## M3 wall time, seconds\n\n" + m3_time_table(args.m3) + "\n")
        print("## M3 monthly interval coverage\n\n" + coverage_table(args.m3) + "\n")
    if args.pbs:
        for metric in ("mase", "wape"):
            print(f"## PBS {metric}\n\n" + pbs_table(args.pbs, metric) + "\n")
    if args.overhead:
        print("## Overhead\n\n```\n" + (args.overhead / "overhead.json").read_text() + "\n```")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
