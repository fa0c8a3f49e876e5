"""The survey summary of a batch scan: one row per cube (``survey.ecsv``, ``survey.json``
and the page ``survey.html``, linking each cube's report)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..classify import CLASSES
from ..files import atomic_write
from ..tables import Column, make_table, stamp

if TYPE_CHECKING:
    from ..pipeline import ScanResult

__all__ = ["SURVEY_COLUMNS", "survey_row", "write_survey"]

#: the survey table's columns
SURVEY_COLUMNS: dict[str, Column] = {
    "cube": Column("U", None, "image product of the tclean run"),
    "status": Column("U", None, "ok, or the error that stopped its scan"),
    "nchan": Column("i8", None, "channels"),
    "candidates": Column("i8", None, "candidates of every class"),
    **{name: Column("i8", None, f"{name} candidates") for name in CLASSES},
    "worst_channel": Column("i8", None, "channel with the most confetti (-1: none)"),
    "worst_channel_confetti": Column("i8", None, "confetti in that channel"),
    "output": Column("U", None, "the cube's scan folder"),
}


def survey_row(image: Path, *, result: "ScanResult | None" = None, output: Path | None = None,
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
    """Write ``survey.ecsv``, ``survey.json`` and ``survey.html`` into ``folder``;
    returns the first two paths (the page lies beside them)."""
    folder.mkdir(parents=True, exist_ok=True)
    table = make_table({name: [row[name] for row in rows] for name in SURVEY_COLUMNS},
                       SURVEY_COLUMNS)
    stamped = stamp()
    table.meta.update({**stamped, "parameters": config})
    totals = {name: int(sum(row[name] for row in rows)) for name in ("candidates", *CLASSES)}
    summary = {**stamped, "cubes": len(rows),
               "failed": sum(row["status"] != "ok" for row in rows), "totals": totals,
               "parameters": config, "rows": rows}
    ecsv = atomic_write(folder / "survey.ecsv",
                        lambda p: table.write(p, format="ascii.ecsv", overwrite=True))
    text = json.dumps(summary, indent=1) + "\n"
    written = atomic_write(folder / "survey.json", lambda p: p.write_text(text, "utf-8"))
    from ..report import render_survey  # matplotlib: imported where pages are made

    page = render_survey({**summary, "rows": [dict(row, **_link(row, folder)) for row in rows]})
    atomic_write(folder / "survey.html", lambda p: p.write_text(page, "utf-8"))
    return ecsv, written


def _link(row: dict[str, Any], folder: Path) -> dict[str, str]:
    """A row's link from the survey page: its report, else its scan folder (relative)."""
    if not row["output"]:
        return {"link": "", "link_text": ""}
    output = Path(row["output"])
    target = output / "report.html" if (output / "report.html").exists() else output
    return {"link": Path(os.path.relpath(target.absolute(), Path(folder).absolute())).as_posix(),
            "link_text": "report" if target.name == "report.html" else "scan folder"}
