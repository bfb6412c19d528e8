"""Has the plan moved since a workbook was exported? The checksum a workbook carries, the
cells that changed since, and the error that refuses a stale workbook.

Pure functions over plan lines; the caller (:func:`sopforecast.planning.workflow.apply_override_file`)
reads the store and decides (``--rebase`` applies the edited cells anyway).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from ..errors import DataError
from .layouts import month_labels

__all__ = ["RTOL", "lines_checksum", "is_stale", "changed_cells", "stale_error"]

RTOL = 1e-6  # relative change that counts as an edit; Excel keeps 15 digits, so no float noise


def lines_checksum(lines: pd.DataFrame) -> str:
    """SHA-256 of the plan's ``unique_id, month, final, consensus`` values, in a fixed order.

    Two line sets with the same checksum show the same plan; numbers count to 10
    significant digits, so a float read back from any store gives the same checksum.

    Parameters
    ----------
    lines : pandas.DataFrame
        Plan lines with ``unique_id, ds, final`` and optionally ``consensus``.

    Returns
    -------
    str
        64 hexadecimal digits.
    """
    consensus = lines["consensus"] if "consensus" in lines else pd.Series(np.nan, lines.index)
    frame = pd.DataFrame(
        {
            "key": lines["unique_id"].astype(str).to_numpy(),
            "month": month_labels(lines["ds"]) if len(lines) else [],
            "final": _figures(lines["final"].to_numpy(float)),
            "consensus": _figures(consensus.to_numpy(float)),
        }
    ).sort_values(["key", "month"], kind="stable")
    # one string for the whole plan (fields split by US, records by RS), hashed once
    text = (
        frame["key"] + "\x1f" + frame["month"] + "\x1f" + frame["final"] + "\x1f" + frame["consensus"]
    ).str.cat(sep="\x1e")
    return hashlib.sha256((text + "\x1e" if len(frame) else "").encode()).hexdigest()


def _figures(values: np.ndarray) -> pd.Series:
    """Numbers to 10 significant digits as text; NaN as empty."""
    return pd.Series([f"{v:.10g}" if v == v else "" for v in values], dtype=object)


def is_stale(meta: dict, lines: pd.DataFrame, *, revision: int | None = None) -> bool:
    """Whether the version moved since the workbook was exported.

    Stale when the workbook has no checksum (exported before checksums; it cannot be
    checked), when its checksum differs from :func:`lines_checksum` of the version's current
    ``lines``, or when ``revision`` is given and differs from the workbook's ``revision``.
    """
    if not meta.get("checksum") or meta["checksum"] != lines_checksum(lines):
        return True
    return revision is not None and str(meta.get("revision")) != str(revision)


def changed_cells(exported: pd.DataFrame, lines: pd.DataFrame, *, rtol: float = RTOL) -> pd.DataFrame:
    """The plan cells that moved between an export and the version's current lines.

    Parameters
    ----------
    exported : pandas.DataFrame
        ``key, month, value`` as :func:`~.workbook.read_workbook` returns it.
    lines : pandas.DataFrame
        The version's current lines (``unique_id, ds, final``).
    rtol : float, default 1e-6
        Relative difference that counts as a change.

    Returns
    -------
    pandas.DataFrame
        ``key, month, exported, current``, sorted by key and month; a series or month on one
        side only shows NaN on the other.
    """
    now = pd.DataFrame(
        {
            "key": lines["unique_id"].astype(str).to_numpy(),
            "month": month_labels(lines["ds"]) if len(lines) else [],
            "current": lines["final"].to_numpy(float),
        }
    )
    was = exported.rename(columns={"value": "exported"}).astype({"key": str, "month": str})
    both = was[["key", "month", "exported"]].merge(now, on=["key", "month"], how="outer")
    a, b = both["exported"].to_numpy(float), both["current"].to_numpy(float)
    same = (np.isnan(a) & np.isnan(b)) | (np.abs(a - b) <= rtol * np.fmax(np.abs(a), np.abs(b)))
    out = both[~same].sort_values(["key", "month"])
    return out[["key", "month", "exported", "current"]].reset_index(drop=True)


def stale_error(
    source: str, meta: dict, changes: pd.DataFrame, *, revision: int | None = None, limit: int = 10
) -> DataError:
    """The error refusing a stale workbook, naming the cells that moved since its export.

    Parameters
    ----------
    source : str
        The workbook's file name.
    meta : dict
        Its meta (:func:`~.workbook.read_workbook`).
    changes : pandas.DataFrame
        :func:`changed_cells` of its export against the version's current lines.
    revision : int, optional
        The version's current revision, shown beside the exported one.
    limit : int, default 10
        Cells listed before counting the rest.

    Returns
    -------
    sopforecast.errors.DataError
        With ``setting="rebase"``: the caller raises it (exit 2) unless told to rebase.
    """
    name = (
        meta.get("name") or " ".join(str(meta[k]) for k in ("plan", "cycle") if meta.get(k)) or "its version"
    )
    was = f" at revision {meta['revision']}" if meta.get("revision") is not None else ""
    now = f" (now at revision {revision})" if revision is not None else ""
    if changes.empty:
        what = "no exported plan cell differs, but the version was written since"
    else:
        listed = [
            f"  {r.key} {r.month}: {_shown(r.exported)} when exported, now {_shown(r.current)}"
            for r in changes.head(limit).itertuples(index=False)
        ]
        more = [f"  ... {len(changes) - limit} more"] if len(changes) > limit else []
        what = f"{len(changes)} plan cell(s) changed since:\n" + "\n".join([*listed, *more]) + "\n"
    return DataError(
        f"{source} was exported from {name}{was}; that version has moved{now}: {what}"
        "Nothing was applied. Export the plan again and redo your edits there, or rebase: apply "
        "the cells you edited over the current version (they replace what changed in them).",
        setting="rebase",
    )


def _shown(value) -> str:
    return "blank" if value is None or value != value else f"{value:,.6g}"
