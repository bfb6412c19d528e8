"""Exception classes for user errors.

Every error a user can fix (bad file, bad column, bad setting) is a subclass of
:class:`SopforecastError`, itself a ``ValueError``. The CLI prints these without a
traceback and exits with code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import reprlib

__all__ = [
    "SopforecastError",
    "DataError",
    "ConfigError",
    "format_examples",
]


class SopforecastError(ValueError):
    """An error the user can fix; the message says what is wrong and what to do."""

    exit_code = 2


class DataError(SopforecastError):
    """The input data breaks the data contract (missing column, bad dates, ...)."""


class ConfigError(SopforecastError):
    """A setting or option is invalid (unknown model, bad horizon, ...)."""


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
