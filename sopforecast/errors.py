"""Exception classes for user errors.

Every error a user can fix (bad file, bad column, bad setting) is a subclass of
:class:`SopforecastError`, itself a ``ValueError``. The CLI prints these without a
traceback and exits with code 2; anything else is a bug and keeps its traceback.
The helpers here keep what such a message shows short: a few values
(:func:`format_examples`) or a few offending rows (:func:`format_rows`).
"""

from __future__ import annotations

import reprlib

__all__ = [
    "SopforecastError",
    "DataError",
    "ConfigError",
    "NotFittedError",
    "format_examples",
    "format_rows",
    "format_problems",
    "validation_problems",
]


class SopforecastError(ValueError):
    """An error the user can fix; the message says what is wrong and what to do.

    Parameters
    ----------
    *args
        The message (as for any exception).
    setting : str, optional
        The setting at fault, by its name in the caller's terms (``hierarchy``,
        ``forecast.models``, ``data.drivers``); the CLI turns known ones into its flag.
    """

    exit_code = 2

    def __init__(self, *args: object, setting: str | None = None) -> None:
        super().__init__(*args)
        self.setting = setting


class DataError(SopforecastError):
    """The input data breaks the data contract (missing column, bad dates, ...)."""


class ConfigError(SopforecastError):
    """A setting or option is invalid (unknown model, bad horizon, ...)."""

    @classmethod
    def from_validation(cls, exc, where: str | None = None) -> ConfigError:
        """One ``ConfigError`` from a pydantic ``ValidationError``: ``setting: problem; ...``.

        Parameters
        ----------
        exc : pydantic.ValidationError
            The error of building a config model.
        where : str, optional
            Prefix of the message (a file name); default none.

        Returns
        -------
        ConfigError
            Its ``setting`` is the first problem's setting.
        """
        problems = validation_problems(exc)
        text = "; ".join(f"{name}: {msg}" if name else msg for name, msg in problems)
        return cls(f"{where}: {text}" if where else text, setting=problems[0][0] if problems else None)


def validation_problems(exc) -> list[tuple[str, str]]:
    """``(setting, message)`` for each problem of a pydantic ``ValidationError``.

    The setting is the dotted location (``forecast.models``, ``level.0``), extended by the
    ``setting`` of a :class:`SopforecastError` raised in a model-wide validator (so a
    horizon checked against the frequency is reported as ``forecast.horizon``).
    """
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        cause = (err.get("ctx") or {}).get("error")
        extra = getattr(cause, "setting", None)
        if extra and (not loc or loc[-1] != extra):
            loc.append(extra)
        if err["type"] == "extra_forbidden":
            msg = "unknown setting; check its spelling"
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
        out.append((".".join(loc), msg))
    return out


def format_examples(items, limit: int = 5) -> str:
    """Shorten a long list of offending values for an error message.

    Parameters
    ----------
    items : iterable
        The offending values (ids, rows, dates).
    limit : int, default 5
        How many to show before eliding the rest.

    Returns
    -------
    str
        A short representation such as ``['A', 'B', 'C', ...] (12 in all)``.
    """
    items = list(items)
    r = reprlib.Repr()
    r.maxlist = limit
    r.maxstring = 60
    text = r.repr(items)
    if len(items) > limit:
        text += f" ({len(items)} in all)"
    return text


def format_problems(problems: list[str], limit: int = 30) -> str:
    """Problems one per indented line, the first ``limit`` of them, then ``  ... N more``."""
    listed = [f"  {p}" for p in problems[:limit]]
    if len(problems) > limit:
        listed.append(f"  ... {len(problems) - limit} more")
    return "\n".join(listed)


def format_rows(frame, mask, columns: list[str], limit: int = 5) -> str:
    """A few offending rows of a frame as text, for an error message.

    Parameters
    ----------
    frame : pandas.DataFrame
        The source's rows, indexed from 0 in file order (as read).
    mask : array-like of bool
        Which rows offend, by position.
    columns : list of str
        The columns to show: those that locate the row and the offending value.
    limit : int, default 5
        How many rows to show before counting the rest.

    Returns
    -------
    str
        One line per row, numbered as data rows of the source (1 = first row), such as
        ``  row 3: sku='A', date=2024-01-01``, then ``  ... 7 more`` if rows were left out.
    """
    import numpy as np  # here, not at the top: the CLI imports this module and starts without numpy

    bad = frame.loc[np.asarray(mask), columns].head(limit)
    lines = [
        f"  row {i + 1}: " + ", ".join(f"{c}={_show(v)}" for c, v in row.items())
        for i, row in zip(bad.index, bad.to_dict("records"), strict=True)
    ]
    total = int(np.asarray(mask).sum())
    more = f"\n  ... {total - len(bad)} more" if total > len(bad) else ""
    return "\n".join(lines) + more


def _show(value) -> str:
    """A cell as a message shows it: dates without midnight, whole numbers without ``.0``."""
    import pandas as pd

    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d") if value == value.normalize() else str(value)
    # past 1e15 int() would print float noise as digits; repr gives 1e+300
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class NotFittedError(SopforecastError):
    """A forecaster was asked to predict before it was fitted."""
