"""Australian PBS prescriptions: parse the raw Medicare export into long format.

The export (``shared/data/pbs/PBS.csv``) is one sheet with two stacked blocks, ``SCRIPTS``
and ``GOVT COST $``, each a header row of months (``Jul-91`` ...) and one row per
concession/type and ATC2 group, followed by a total row. Empty cells mean no scripts that
month. The parser checks itself against the file's own total rows, so a changed export
fails loudly instead of giving wrong numbers.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, format_examples

__all__ = ["load_pbs", "default_pbs_path", "PBS_KEYS", "pbs_descriptions"]

PBS_KEYS = ["Concession", "Type", "ATC1", "ATC2"]
_SCRIPTS, _COST = "SCRIPTS", "GOVT COST $"
_LABELS = {
    "CONCESSIONAL SAFETY NET": ("Concessional", "Safety net"),
    "CONCESSIONAL NON-SAFETY NET": ("Concessional", "Co-payments"),
    "GENERAL SAFETY NET": ("General", "Safety net"),
    "GENERAL NON-SAFETY NET": ("General", "Co-payments"),
}


def default_pbs_path() -> Path:
    """``$SOPFORECAST_SHARED_DATA/pbs/PBS.csv``, else ``../shared/data/pbs/PBS.csv`` from the
    current folder, else from the source checkout (a notebook runs in ``notebooks/``)."""
    root = os.environ.get("SOPFORECAST_SHARED_DATA")
    if root:
        return Path(root) / "pbs" / "PBS.csv"
    candidates = [Path.cwd().parent, Path(__file__).resolve().parents[3]]
    found = [c / "shared" / "data" / "pbs" / "PBS.csv" for c in candidates]
    return next((p for p in found if p.exists()), found[0])


def _rows(path: Path) -> list[list[str]]:
    if not path.exists():
        raise DataError(
            f"{path}: PBS export not found. Put the Medicare PBS export (PBS.csv) there, or "
            "set SOPFORECAST_SHARED_DATA to the folder holding pbs/PBS.csv."
        )
    try:
        with path.open(newline="", encoding="ascii", errors="strict") as fh:
            return list(csv.reader(fh))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not the plain-text PBS export ({exc}).") from exc


def _block(rows: list[list[str]], title: str, path: Path) -> tuple[pd.DataFrame, list[float]]:
    starts = [i for i, r in enumerate(rows) if r and r[0].strip() == title]
    if not starts:
        raise DataError(
            f"{path}: no {title!r} block. Expected the Medicare PBS export layout: a title row "
            f"{_SCRIPTS!r}, a header row of months (Jul-91 ...), key rows, then {_COST!r}."
        )
    i = starts[0] + 1
    while i < len(rows) and not (len(rows[i]) > 3 and rows[i][3].strip()):
        i += 1
    if i >= len(rows):
        raise DataError(f"{path}: the {title!r} block has no header row of months.")
    months = [m.strip() for m in rows[i][3:] if m.strip()]
    try:
        dates = pd.to_datetime(months, format="%b-%y")
    except ValueError as exc:
        raise DataError(f"{path}: month headers of {title!r} are not like 'Jul-91': {exc}.") from exc
    keys, values, total = [], [], None
    for row in rows[i + 1 :]:
        label = row[0].strip() if row else ""
        if label in _LABELS:
            keys.append((label, row[1].strip(), row[2].strip()))
            values.append(
                [_number(v) for v in (row[3 : 3 + len(months)] + [""] * len(months))[: len(months)]]
            )
        elif len(row) > 2 and row[2].strip().lower().startswith("total"):
            total = [_number(v) for v in row[3 : 3 + len(months)]]
            break
        elif label in (_SCRIPTS, _COST):
            break
    if not keys or total is None:
        raise DataError(f"{path}: the {title!r} block has no key rows or no total row.")
    wide = pd.DataFrame(values, columns=dates)
    wide.index = pd.MultiIndex.from_tuples(keys, names=["label", "ATC2", "description"])
    return wide, total


def _number(text: str) -> float:
    text = text.strip().replace(",", "")
    return float(text) if text else np.nan


def load_pbs(path: str | Path | None = None) -> pd.DataFrame:
    """Parse the raw PBS export into long format.

    Parameters
    ----------
    path : str or Path, optional
        The export; default :func:`default_pbs_path`.

    Returns
    -------
    pandas.DataFrame
        ``Concession, Type, ATC1, ATC2, ds, Scripts, Cost``: one row per series and month
        with a value (months with both cells empty are left out), sorted by keys and date.

    Raises
    ------
    DataError
        When the file is missing, not in the export's layout, the two blocks list different
        series, or the parsed values do not add up to the file's total rows.
    """
    path = Path(path) if path is not None else default_pbs_path()
    rows = _rows(path)
    scripts, scripts_total = _block(rows, _SCRIPTS, path)
    cost, cost_total = _block(rows, _COST, path)
    if not scripts.index.equals(cost.index):
        only = scripts.index.symmetric_difference(cost.index)
        raise DataError(
            f"{path}: the SCRIPTS and GOVT COST blocks list different series: "
            f"{format_examples([' '.join(k[:2]) for k in only])}."
        )
    # the export's own totals differ from its rows by a few units in some months (under
    # 1e-6 relative), so the check allows 1e-5
    _check_total(scripts, scripts_total, "Total Scripts", path, rel=1e-5)
    _check_total(cost, cost_total, "Total (cost)", path, rel=1e-5)
    long = (
        scripts.stack(future_stack=True)
        .rename("Scripts")
        .to_frame()
        .join(cost.stack(future_stack=True).rename("Cost"))
        .reset_index()
        .rename(columns={"level_3": "ds"})
    )
    long = long.dropna(subset=["Scripts", "Cost"], how="all")
    concession_type = long["label"].map(_LABELS)
    long["Concession"] = concession_type.str[0]
    long["Type"] = concession_type.str[1]
    long["ATC1"] = long["ATC2"].str[0]
    out = long[["Concession", "Type", "ATC1", "ATC2", "ds", "Scripts", "Cost"]]
    out = out.sort_values([*PBS_KEYS, "ds"], kind="stable").reset_index(drop=True)
    out["ds"] = pd.to_datetime(out["ds"])
    return out


def _check_total(block: pd.DataFrame, total: list[float], name: str, path: Path, rel: float):
    parsed = block.sum(axis=0, skipna=True).to_numpy()
    expected = np.asarray(total[: len(parsed)], dtype=float)
    bad = ~np.isclose(parsed, expected, rtol=rel, atol=1.0)
    if bad.any():
        months = [
            f"{d:%b-%y}: parsed {p:,.0f} vs file {e:,.0f}"
            for d, p, e in zip(block.columns[bad], parsed[bad], expected[bad], strict=True)
        ]
        raise DataError(
            f"{path}: the parsed values do not add up to the file's {name} row: "
            f"{format_examples(months, 3)}. The export's layout may have changed."
        )


def pbs_descriptions(path: str | Path | None = None) -> dict[str, str]:
    """ATC2 code -> description, as written in the export."""
    path = Path(path) if path is not None else default_pbs_path()
    scripts, _ = _block(_rows(path), _SCRIPTS, path)
    return {code: desc for _, code, desc in scripts.index}
