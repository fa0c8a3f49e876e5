"""Write a scan's outputs into one folder, atomically (temporary name, then rename).

Fixed names: ``candidates.ecsv``, ``summary.json``, ``confetti.reg`` (DS9) and
``confetti.crtf`` (CASA/CARTA).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable

from .errors import InputError
from .regions import candidate_regions
from .scan import ScanResult

__all__ = ["OUTPUT_NAMES", "default_output_dir", "check_output_dir", "write_outputs",
           "atomic_write"]

#: role -> file name inside the output folder
OUTPUT_NAMES = {"catalog": "candidates.ecsv", "summary": "summary.json",
                "ds9": "confetti.reg", "crtf": "confetti.crtf"}


def default_output_dir(products_name: str) -> Path:
    """``<imagename>.deconfetti/`` beside the products."""
    return Path(f"{products_name}.deconfetti")


def check_output_dir(outdir: Path, *, overwrite: bool = False) -> None:
    """Fail before any work if outputs exist (without ``overwrite``) or cannot be written."""
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"{outdir}: output path exists and is not a directory")
    present = [name for name in OUTPUT_NAMES.values() if (outdir / name).exists()]
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


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary_path)`` then rename it to ``path``; no half file is left."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                         suffix=".part")
    os.close(handle)
    temporary = Path(temporary)
    try:
        write(temporary)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def write_outputs(result: ScanResult, outdir: Path, *, overwrite: bool = False) -> dict[str, Path]:
    """Write the catalog, summary and region files of ``result`` into ``outdir``."""
    outdir = Path(outdir)
    check_output_dir(outdir, overwrite=overwrite)
    catalog = result.candidates
    paths = {role: outdir / name for role, name in OUTPUT_NAMES.items()}

    atomic_write(paths["catalog"], lambda p: catalog.write(p, format="ascii.ecsv",
                                                          overwrite=True))
    atomic_write(paths["summary"], lambda p: p.write_text(
        json.dumps(result.summary, indent=1, allow_nan=False) + "\n", encoding="utf-8"))
    beam = result.products.beams.major.to_value("arcsec")
    radius = 0.5 * beam[catalog["channel"]] if len(catalog) else beam[:0]
    regions = candidate_regions(catalog, radius)
    for role, fmt in (("ds9", "ds9"), ("crtf", "crtf")):
        atomic_write(paths[role], lambda p, fmt=fmt: p.write_text(
            regions.serialize(format=fmt) if len(regions) else _empty_regions(fmt),
            encoding="utf-8"))
    return paths


def _empty_regions(fmt: str) -> str:
    return ("# Region file format: DS9 astropy/regions\nicrs\n" if fmt == "ds9"
            else "#CRTFv0\n")
