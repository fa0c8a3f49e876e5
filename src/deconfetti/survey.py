"""The survey summary of a batch scan: one row per cube (``survey.ecsv`` + ``survey.json``)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Table

from . import __version__
from .classify import CLASSES
from .outputs import atomic_write
from .scan import ScanResult

__all__ = ["SURVEY_COLUMNS", "survey_row", "write_survey"]

#: name -> (dtype, description)
SURVEY_COLUMNS: dict[str, tuple[str, str]] = {
    "cube": ("U", "image product of the tclean run"),
    "status": ("U", "ok, or the error that stopped its scan"),
    "nchan": ("i8", "channels"),
    "candidates": ("i8", "candidates of every class"),
    **{name: ("i8", f"{name} candidates") for name in CLASSES},
    "worst_channel": ("i8", "channel with the most confetti (-1: none)"),
    "worst_channel_confetti": ("i8", "confetti in that channel"),
    "output": ("U", "the cube's scan folder"),
}


def survey_row(image: Path, *, result: ScanResult | None = None, output: Path | None = None,
               error: str | None = None) -> dict[str, Any]:
    """One survey row, from a finished scan or from the error that stopped it."""
    row: dict[str, Any] = {"cube": str(image), "status": "ok" if error is None else error,
                           "nchan": 0, "candidates": 0, **{name: 0 for name in CLASSES},
                           "worst_channel": -1, "worst_channel_confetti": 0,
                           "output": str(output) if output else ""}
    if result is not None:
        row["nchan"] = result.products.nchan
        row["candidates"] = len(result.candidates)
        row.update(result.counts)
        confetti = np.bincount(np.asarray(result.candidates["channel"][
            result.candidates["classification"] == "confetti"], dtype=int),
            minlength=result.products.nchan)
        if confetti.any():
            row["worst_channel"] = int(np.argmax(confetti))
            row["worst_channel_confetti"] = int(confetti.max())
    return row


def write_survey(rows: list[dict[str, Any]], folder: Path, *,
                 config: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``survey.ecsv`` and ``survey.json`` into ``folder``; returns both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    table = Table()
    for name, (dtype, description) in SURVEY_COLUMNS.items():
        values = [row[name] for row in rows]
        table[name] = np.array(values, dtype=str) if dtype == "U" else np.array(values,
                                                                                dtype=dtype)
        table[name].description = description
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    table.meta.update({"software": f"deconfetti {__version__}", "date": date,
                       "parameters": config})
    totals = {name: int(sum(row[name] for row in rows)) for name in ("candidates", *CLASSES)}
    summary = {"software": f"deconfetti {__version__}", "date": date, "cubes": len(rows),
               "failed": sum(row["status"] != "ok" for row in rows), "totals": totals,
               "parameters": config, "rows": rows}
    ecsv = atomic_write(folder / "survey.ecsv",
                        lambda p: table.write(p, format="ascii.ecsv", overwrite=True))
    text = json.dumps(summary, indent=1) + "\n"
    return ecsv, atomic_write(folder / "survey.json", lambda p: p.write_text(text, "utf-8"))
