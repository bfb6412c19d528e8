"""Safe files for people: spreadsheet cells that cannot run, file names that cannot escape.

Every table sopforecast writes for a person to open (plan, FVA, finance and exception
exports, CSV or Excel) goes through :func:`neutralise`; every user-given name that becomes
part of a file path (a plan, a cycle, a pipeline) goes through :func:`safe_name`, and the
path is checked with :func:`inside`.

The spreadsheet rule is OWASP's CSV-injection rule: a text cell that begins with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return is prefixed with a single quote, so Excel,
LibreOffice and Google Sheets show it as text instead of evaluating it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from .errors import SopforecastError

__all__ = [
    "FORMULA_PREFIXES",
    "neutralise_text",
    "neutralise",
    "safe_name",
    "inside",
    "write_table",
]

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_UNSAFE = re.compile(r"[^\w.\-]+")


def neutralise_text(value):
    """``value`` prefixed with ``'`` when it is text a spreadsheet would evaluate; else as is."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def neutralise(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells and text column names cannot run as formulas.

    Numbers stay numbers (a negative change is a number, not text); only ``str`` values
    are touched. The input frame is left unchanged.
    """
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or isinstance(out[col].dtype, pd.StringDtype):
            out[col] = out[col].map(neutralise_text)
    out.columns = [neutralise_text(c) for c in out.columns]
    if out.index.dtype == object:
        out.index = out.index.map(neutralise_text)
    return out


def safe_name(text: object, *, limit: int = 120) -> str:
    """``text`` as one file-name component: letters, digits, ``_``, ``-`` and inner dots only.

    Path separators and runs of other characters become ``_`` and leading or trailing dots
    and underscores go (``../../escaped`` becomes ``escaped``), so the name can never climb
    out of its folder or name a hidden file.
    """
    name = _UNSAFE.sub("_", str(text)).strip("._") or "_"
    return name[:limit]


def inside(root: str | Path, path: str | Path) -> Path:
    """``path`` resolved, after checking that it lies inside ``root``.

    Raises
    ------
    SopforecastError
        When the path would be written outside ``root``.
    """
    base = Path(root).resolve()
    resolved = (base / path).resolve() if not Path(path).is_absolute() else Path(path).resolve()
    if resolved != base and base not in resolved.parents:
        raise SopforecastError(
            f"refusing to write {path}: it lies outside {base}; "
            "use a plan, cycle or pipeline name without '/' or '..'."
        )
    return resolved


def write_table(frame: pd.DataFrame, path: str | Path, *, index: bool = False, **kwargs) -> Path:
    """Write ``frame`` for a person: CSV or Excel (by extension) with neutralised text cells,
    Parquet as it is (no spreadsheet evaluates Parquet)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame.to_parquet(path, index=index)
    elif suffix in (".xlsx", ".xlsm"):
        neutralise(frame).to_excel(path, index=index, **kwargs)
    else:
        neutralise(frame).to_csv(path, index=index, **kwargs)
    return path
