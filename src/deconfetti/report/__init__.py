"""A self-contained HTML report of one scan: summary, overview, a sortable and filterable
table of every candidate, and the evidence figures of the top candidates.

Everything is embedded (PNG as data URIs, the catalog as JSON, script and style inline):
the file opens from the file system with no network. Text from the products (object
names, paths, header strings) is escaped by jinja2's autoescaping; the catalog JSON is
embedded with ``<``, ``>`` and ``&`` escaped.
"""

from __future__ import annotations

import base64
import contextlib
import io
import multiprocessing
import threading
from typing import Any

import numpy as np
from astropy.table import Table
from jinja2 import Environment, PackageLoader, select_autoescape
from matplotlib.figure import Figure

from .. import __version__
from ..classify import CLASSES
from ..cutout import make_cutout, spectral_axis
from ..figures import EvidenceFigures, overview
from ..io.products import Products

__all__ = ["render", "render_survey", "evidence_pngs", "figure_rows", "FIGURE_ORDER",
           "TABLE_COLUMNS"]

#: which candidates get figures first: those that call for a repair or a look; the
#: candidates of a diverged channel last (their verdict is the channel's, in the summary)
FIGURE_ORDER = ("confetti", "uncertain", "real", "benign", "noise", "diverged")


def figure_rows(catalog: Table, count: int) -> Table:
    """The ``count`` candidates that get figures (``figures/`` and the report): by class
    in `FIGURE_ORDER`, and in catalog order (by unsupported_snr) within a class."""
    rank = {name: i for i, name in enumerate(FIGURE_ORDER)}
    keys = [rank.get(str(name), len(rank)) for name in catalog["classification"]]
    return catalog[np.argsort(np.array(keys, dtype=int), kind="stable")[:count]]

#: catalog columns shown in the report's table, with their headings
TABLE_COLUMNS = {"id": "id", "classification": "class", "unsupported_snr": "unsupported (rms)",
                 "false_alarm": "false alarms",
                 "spike_snr": "spike S/N", "dirty_snr": "data S/N", "reliability": "reliab.",
                 "channel": "chan", "velocity": "v (km/s)", "frequency": "f (GHz)",
                 "x": "x", "y": "y", "ra": "RA (deg)", "dec": "Dec (deg)",
                 "model_peak_beam": "model x ppb (Jy/beam)"}


def evidence_pngs(products: Products, rows: Table, *, dpi: int = 72,
                  contrast: dict | None = None, diverged: frozenset = frozenset(),
                  workers: int = 1) -> dict[int, dict[str, bytes]]:
    """PNG bytes of every evidence figure of each row, by candidate id and figure name
    (``contrast`` and ``diverged`` as in `deconfetti.cutout.make_cutout`).

    The cutouts are read here. With ``workers`` > 1 and enough rows, the figures are laid
    out and drawn for the first row here, then up to ``workers - 1`` forked copies of this
    process draw their share of the rows (at least `ROWS_PER_PROCESS` each) while this
    one draws its own. A process is forked only where nothing but this thread runs (a
    fork copies no other thread, and a lock one of them held would stay locked);
    elsewhere, and where there is no fork, all are drawn here.
    """
    cutouts = [make_cutout(products, row, contrast=contrast, diverged=diverged)
               for row in rows]
    with _layouts(dpi) as figures:
        return _draw_in_processes(figures, cutouts, rows, workers)


#: the process's evidence layouts by dpi, laid out once for every scan it draws
_LAYOUTS: dict[int, EvidenceFigures] = {}
_LAYOUTS_LOCK = threading.Lock()


@contextlib.contextmanager
def _layouts(dpi: int):
    """The process's evidence layouts at ``dpi``: made and first drawn once (~2 s), then
    kept for the next scan's figures (a survey's cubes, one after another); a new set
    where another thread is drawing on them."""
    if not _LAYOUTS_LOCK.acquire(blocking=False):
        yield EvidenceFigures(dpi)
        return
    try:
        yield _LAYOUTS.setdefault(dpi, EvidenceFigures(dpi))
    finally:
        _LAYOUTS_LOCK.release()


def _draw_in_processes(figures: EvidenceFigures, cutouts: list, rows: Table, workers: int
                       ) -> dict[int, dict[str, bytes]]:
    """`evidence_pngs` of the read ``cutouts``."""
    processes = max(1, min(workers, len(cutouts) // ROWS_PER_PROCESS))
    if (processes == 1 or threading.active_count() > 1
            or "fork" not in multiprocessing.get_all_start_methods()):
        return _draw_pngs(figures, cutouts)
    # the first is drawn before the fork: the layouts and their backgrounds are shared
    out = _draw_pngs(figures, cutouts[:1])
    chunks = [[cutouts[i] for i in chunk]
              for chunk in np.array_split(np.arange(1, len(cutouts)), processes)]
    context = multiprocessing.get_context("fork")
    children = []
    for chunk in chunks[:-1]:
        reader, writer = context.Pipe(duplex=False)
        child = context.Process(target=_send_pngs, daemon=True, args=(writer, figures, chunk))
        child.start()
        writer.close()
        children.append((child, reader, chunk))
    out.update(_draw_pngs(figures, chunks[-1]))  # the smallest share
    for child, reader, chunk in children:
        try:
            drawn = reader.recv()
        except EOFError:  # the process died: its share is drawn here
            drawn = None
        child.join()
        out.update(drawn if isinstance(drawn, dict) else _draw_pngs(figures, chunk))
    return {int(row["id"]): out[int(row["id"])] for row in rows}


#: fewest candidates worth drawing in a process of their own
ROWS_PER_PROCESS = 3


def _draw_pngs(figures: EvidenceFigures, cutouts: list) -> dict[int, dict[str, bytes]]:
    """PNG bytes of every evidence figure of each cutout, by candidate id."""
    return {int(cutout.row["id"]): figures.pngs(cutout) for cutout in cutouts}


def _send_pngs(writer: Any, figures: EvidenceFigures, cutouts: list) -> None:
    """`_draw_pngs` in a forked process, the result down ``writer`` (None on an error:
    the parent draws them instead).

    Fonts opened before the fork share their file offsets with the parent, which reads
    them at the same time: matplotlib empties its font cache in a forked child, and the
    mathtext cache, whose glyphs hold fonts too, is emptied here.
    """
    from matplotlib import mathtext

    drawn = None
    try:
        getattr(mathtext.MathTextParser._parse_cached, "cache_clear", lambda: None)()
        drawn = _draw_pngs(figures, cutouts)
    except Exception:
        pass  # drawn in the parent, which raises what is wrong
    writer.send(drawn)
    writer.close()


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
