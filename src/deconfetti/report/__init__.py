"""A self-contained HTML report of one scan: summary, overview, a sortable and filterable
table of every candidate, and the evidence figures of the top candidates.

Everything is embedded (PNG as data URIs, the catalog as JSON, script and style inline):
the file opens from the file system with no network. Text from the products (object
names, paths, header strings) is escaped by jinja2's autoescaping; the catalog JSON is
embedded with ``<``, ``>`` and ``&`` escaped.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
from astropy.table import Table
from jinja2 import Environment, PackageLoader, select_autoescape
from matplotlib.figure import Figure

from .. import __version__
from ..classify import CLASSES
from ..cutout import spectral_axis
from ..drawing import FIGURE_ORDER, evidence_pngs, figure_rows
from ..figures import overview
from ..io.products import Products

__all__ = ["render", "render_survey", "evidence_pngs", "figure_rows", "FIGURE_ORDER",
           "TABLE_COLUMNS"]

#: catalog columns shown in the report's table, with their headings
TABLE_COLUMNS = {"id": "id", "classification": "class", "unsupported_snr": "unsupported (rms)",
                 "false_alarm": "false alarms",
                 "spike_snr": "spike S/N", "dirty_snr": "data S/N", "reliability": "reliab.",
                 "channel": "chan", "velocity": "v (km/s)", "frequency": "f (GHz)",
                 "x": "x", "y": "y", "ra": "RA (deg)", "dec": "Dec (deg)",
                 "model_peak_beam": "model x ppb (Jy/beam)"}


def render(catalog: Table, summary: dict[str, Any], products: Products, peak: np.ndarray,
           rms: np.ndarray, *, top: int = 25, dpi: int = 72,
           pngs: dict[int, dict[str, bytes]] | None = None,
           repairs: Table | None = None) -> str:
    """The report as one HTML string.

    Parameters
    ----------
    catalog : Table
        The scan's candidates (sorted by unsupported_snr).
    summary : dict
        The scan's summary (``summary.json``).
    products : Products
        Read for the figures of the ``top`` candidates.
    peak : ndarray, shape (ny, nx)
        Peak intensity map, Jy/beam.
    rms : ndarray, shape (nchan,)
        Noise per channel, Jy/beam.
    top : int
        Candidates with figures (`figure_rows`).
    pngs : dict, optional
        Figures already made by `evidence_pngs` (the missing ones are made here).
    repairs : Table, optional
        A repair log (`deconfetti.repair.repair`, ``repair.ecsv``), shown as its own section.
    """
    axis, unit = spectral_axis(products, np.arange(products.nchan))
    label = "radio velocity (km/s)" if unit == "km/s" else "frequency (GHz)"
    pngs = dict(pngs or {})
    chosen = figure_rows(catalog, top)
    missing = [i for i, row in enumerate(chosen) if int(row["id"]) not in pngs]
    pngs.update(evidence_pngs(products, chosen[missing], dpi=dpi,
                              diverged=frozenset(summary.get("diverged_channels") or [])))
    sections = []
    for row in chosen:
        sections.append({"id": int(row["id"]), "classification": str(row["classification"]),
                         "reason": str(row["reason"]), "channel": int(row["channel"]),
                         "x": int(row["x"]), "y": int(row["y"]),
                         "figures": {name: _data_uri(data) for name, data
                                     in pngs[int(row["id"])].items()}})
    rows = [{name: _json_value(row[name]) for name in TABLE_COLUMNS} for row in catalog]
    for item in rows:
        item["frequency"] = None if item["frequency"] is None else item["frequency"] / 1e9
    repaired = [{**{name: _json_value(row[name]) for name in row.colnames},
                 "before": float(row["image_before"] / row["sigma"]),
                 "after": float(row["image_after"] / row["sigma"])}
                for row in (repairs if repairs is not None else [])]
    template = _environment().get_template("template.html.j2")
    return template.render(
        summary=summary, name=products.name, object_name=products.image.object_name,
        shape=products.shape, classes=CLASSES, figure_order=FIGURE_ORDER,
        columns=TABLE_COLUMNS, rows=rows, with_figures=[s["id"] for s in sections],
        sections=sections, top=top, repairs=repaired,
        overview=_data_uri(_png_bytes(overview(peak, catalog, rms, axis, label), dpi)),
        version=__version__)


def render_survey(summary: dict[str, Any]) -> str:
    """The survey page as one HTML string, from ``survey.json``'s content; a row's
    ``link`` (relative URL) and ``link_text`` point to its report or scan folder."""
    return _environment().get_template("survey.html.j2").render(
        **summary, classes=list(CLASSES), version=__version__)


def _environment() -> Environment:
    return Environment(loader=PackageLoader("deconfetti", "report"),
                       autoescape=select_autoescape(default=True))


def _png_bytes(figure: Figure, dpi: int) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _json_value(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
