"""Tables with documented columns (the catalog, the repair log, the survey) and the stamp
of software and date that every output carries."""

from __future__ import annotations

import datetime
import platform
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.table import Table

from . import __version__

__all__ = ["Column", "make_table", "utc_now", "stamp", "versions"]


@dataclass(frozen=True)
class Column:
    """One documented column: numpy dtype ('U' for text of any length), unit (None for a
    plain number) and what it holds."""

    dtype: str
    unit: str | None
    description: str


def make_table(columns: dict[str, Any], spec: dict[str, Column]) -> Table:
    """A Table of ``spec``'s columns in its order, each cast to its dtype, with its unit
    and description; ``columns`` maps each name to its values (any sequence)."""
    table = Table()
    for name, column in spec.items():
        values = np.asarray(columns[name])
        table[name] = values.astype(str) if column.dtype == "U" else values.astype(column.dtype)
        table[name].unit = column.unit
        table[name].description = column.description
    return table


def utc_now() -> str:
    """The time now, UTC, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def stamp() -> dict[str, str]:
    """``software`` (deconfetti and its version) and ``date`` for an output's metadata."""
    return {"software": f"deconfetti {__version__}", "date": utc_now()}


def versions() -> dict[str, str]:
    """Versions of deconfetti, Python and the libraries a result depends on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"deconfetti": __version__, "python": platform.python_version()}
    for name in ("numpy", "scipy", "astropy", "radio-beam", "python-casacore", "regions"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out
