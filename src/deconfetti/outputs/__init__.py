"""Write a scan's outputs into one folder, atomically (temporary name, then rename).

Fixed names: ``candidates.ecsv``, ``summary.json``, ``confetti.reg`` (DS9),
``confetti.crtf`` (CASA/CARTA), ``peak.fits`` (peak intensity, for the report's overview),
``report.html`` and ``figures/<id>_<figure>.png`` (ids zero-padded to 3 digits).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np
from astropy.io import fits
from astropy.table import Table

from ..classify import FLAGGED
from ..errors import InputError
from ..files import LOCK_NAME, atomic_write, check_outputs_apart
from ..io.discover import TAG
from .regions import candidate_regions

if TYPE_CHECKING:
    from ..pipeline import ScanResult

__all__ = ["OUTPUT_NAMES", "REPORT_NAME", "FIGURES_DIR", "CHECKPOINT_DIR", "REPAIR_LOG_NAME",
           "default_output_dir", "check_output_dir", "write_outputs", "write_figures",
           "read_figures", "write_report", "write_repair_log"]

#: role -> file name inside the output folder
OUTPUT_NAMES = {"catalog": "candidates.ecsv", "summary": "summary.json",
                "ds9": "confetti.reg", "crtf": "confetti.crtf", "peak": "peak.fits"}
REPORT_NAME = "report.html"
#: the repair log inside a scan folder
REPAIR_LOG_NAME = "repair.ecsv"
FIGURES_DIR = "figures"
#: finished blocks of an unfinished scan (removed when the scan completes)
CHECKPOINT_DIR = ".deconfetti-checkpoint"


def default_output_dir(products_name: str) -> Path:
    """``<imagename>.deconfetti/`` beside the products."""
    return Path(f"{products_name}.{TAG}")


def check_output_dir(outdir: Path, *, overwrite: bool = False,
                     inputs: Iterable[str | Path] = ()) -> None:
    """Fail before any work if the folder or one of its outputs is an input or lies inside
    one, if outputs exist (without ``overwrite``) or if the folder cannot be written."""
    outdir = Path(outdir)
    names = (*OUTPUT_NAMES.values(), REPORT_NAME, REPAIR_LOG_NAME, FIGURES_DIR,
             CHECKPOINT_DIR, LOCK_NAME)
    check_outputs_apart([outdir, *(outdir / name for name in names)], inputs)
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"{outdir}: output path exists and is not a directory")
    present = [name for name in (*OUTPUT_NAMES.values(), REPORT_NAME) if (outdir / name).exists()]
    if present and not overwrite:
        raise InputError(f"{outdir}: already holds {', '.join(present)}; delete them or "
                         "pass --overwrite")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=outdir, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise InputError(f"{outdir}: output directory is not writable "
                         f"({exc.strerror or exc})") from None


def write_outputs(result: ScanResult, outdir: Path, *, overwrite: bool = False,
                  regions: str = "flagged") -> dict[str, Path]:
    """Write the catalog, summary and region files of ``result`` into ``outdir``; the
    region files hold the candidates of the `FLAGGED` classes, or with
    ``regions="all"`` every candidate."""
    if regions not in ("flagged", "all"):
        raise InputError(f"regions must be 'flagged' or 'all', not {regions!r}")
    outdir = Path(outdir)
    check_output_dir(outdir, overwrite=overwrite)
    catalog = result.candidates
    paths = {role: outdir / name for role, name in OUTPUT_NAMES.items()}

    atomic_write(paths["catalog"], lambda p: catalog.write(p, format="ascii.ecsv",
                                                          overwrite=True))
    atomic_write(paths["summary"], lambda p: p.write_text(
        json.dumps(result.summary, indent=1, allow_nan=False) + "\n", encoding="utf-8"))
    shown = catalog if regions == "all" or not len(catalog) else \
        catalog[np.isin(catalog["classification"], FLAGGED)]
    beam = result.products.beams.major.to_value("arcsec")
    radius = 0.5 * beam[shown["channel"]] if len(shown) else beam[:0]
    shapes = candidate_regions(shown, radius)
    for role, fmt in (("ds9", "ds9"), ("crtf", "crtf")):
        atomic_write(paths[role], lambda p, fmt=fmt: p.write_text(
            shapes.serialize(format=fmt) if len(shapes) else _empty_regions(fmt),
            encoding="utf-8"))
    header = result.products.celestial.to_header()
    header["BUNIT"] = result.products.image.unit
    header["COMMENT"] = "peak intensity over channels of the image (deconfetti)"
    atomic_write(paths["peak"], lambda p: fits.writeto(p, result.peak, header, overwrite=True))
    # a new scan: an old repair and old figures are stale
    (outdir / REPAIR_LOG_NAME).unlink(missing_ok=True)
    for old in (outdir / FIGURES_DIR).glob("*.png"):
        old.unlink()
    return paths


def write_figures(pngs: dict[int, dict[str, bytes]], outdir: Path) -> list[Path]:
    """Write figures made by `evidence_pngs` as ``outdir/figures/<id>_<name>.png`` (those
    of an earlier scan were removed by `write_outputs`)."""
    folder = Path(outdir) / FIGURES_DIR
    written = []
    for ident, figures in pngs.items():
        folder.mkdir(exist_ok=True)
        for name, data in figures.items():
            written.append(atomic_write(folder / f"{ident:03d}_{name}.png",
                                        lambda p, data=data: p.write_bytes(data)))
    return written


def read_figures(outdir: Path) -> dict[int, dict[str, bytes]]:
    """The figures in ``outdir/figures/``, as `write_figures` takes them."""
    pngs: dict[int, dict[str, bytes]] = {}
    for path in sorted((Path(outdir) / FIGURES_DIR).glob("*_*.png")):
        ident, _, name = path.stem.partition("_")
        if ident.isdigit():
            pngs.setdefault(int(ident), {})[name] = path.read_bytes()
    return pngs


def write_report(result: ScanResult, outdir: Path, *, top: int = 25,
                 pngs: dict[int, dict[str, bytes]] | None = None, dpi: int = 72) -> Path:
    """``outdir/report.html`` (self-contained) for ``result``, with the repairs when
    ``outdir`` holds a repair log; figures not in ``pngs`` are drawn at ``dpi``."""
    from ..report import render  # matplotlib: imported where figures are drawn

    log = Path(outdir) / REPAIR_LOG_NAME
    repairs = Table.read(log, format="ascii.ecsv") if log.exists() else None
    html = render(result.candidates, result.summary, result.products, result.peak, result.rms,
                  top=top, pngs=pngs, repairs=repairs, dpi=dpi)
    return atomic_write(Path(outdir) / REPORT_NAME,
                        lambda p: p.write_text(html, encoding="utf-8"))


def write_repair_log(log, outdir: Path) -> Path:
    """``outdir/repair.ecsv``: what `deconfetti.repair.repair` removed and refused."""
    return atomic_write(Path(outdir) / REPAIR_LOG_NAME,
                        lambda p: log.write(p, format="ascii.ecsv", overwrite=True))


def _empty_regions(fmt: str) -> str:
    return ("# Region file format: DS9 astropy/regions\nicrs\n" if fmt == "ds9"
            else "#CRTFv0\n")
