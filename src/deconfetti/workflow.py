"""Scans and repairs into folders: what the command line runs, as functions.

`scan_to_folder` scans one product set and writes every output; `read_scan` reads a scan
folder back; `candidate_figures` draws one candidate's evidence; `repair_scan` repairs the
confetti of a scan and logs it beside the scan;
`write_scan_report` renders a folder's report again; `scan_many` scans every product set
under some paths and writes the survey.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
from astropy.io import fits
from astropy.table import Table

from .checkpoint import BlockStore
from .config import Config
from .drawing import drawing_process, evidence_pngs, figure_rows
from .errors import InputError
from .files import check_outputs_apart, lock_output_dir, remove_temporaries
from .io.discover import find_images
from .io.products import Products, open_products
from .outputs import (CHECKPOINT_DIR, FIGURES_DIR, OUTPUT_NAMES, REPAIR_LOG_NAME, REPORT_NAME,
                      check_output_dir, default_output_dir, read_figures, write_figures,
                      write_outputs, write_repair_log, write_report)
from .outputs.survey import survey_row, write_survey
from .pipeline import ScanResult, scan
from .repair import write_repaired

__all__ = ["scan_to_folder", "read_scan", "candidate_figures", "repair_scan", "write_scan_report",
           "scan_many"]


def scan_to_folder(products: "Products | str | Path", outdir: str | Path | None = None, *,
                   config: Config | None = None, overwrite: bool = False,
                   resume: bool = False, figures: int = 10, report: bool = False,
                   top: int = 25, regions: str = "flagged", dpi: int = 72, client: Any = None,
                   progress: Callable[[int, int], None] | None = None
                   ) -> tuple[ScanResult, dict[str, Path]]:
    """Scan one product set and write its outputs into ``outdir``.

    Parameters
    ----------
    products : Products, str or Path
        Anything `open_products` accepts.
    outdir : str or Path, optional
        The scan folder, created if needed (default ``<imagename>.deconfetti/`` beside
        the products).
    config : Config, optional
    overwrite : bool
        Replace the outputs of an earlier scan there.
    resume : bool
        Reuse the blocks an interrupted scan there left (same inputs and parameters).
    figures : int
        Write the evidence figures of ``figures`` candidates into ``figures/``
        (`deconfetti.drawing.figure_rows`: confetti first, a diverged channel's last).
    report : bool
        Write ``report.html`` with the figures of ``top`` candidates (the same order).
    regions : str
        'flagged' (confetti, diverged and uncertain candidates) or 'all': what the region
        files hold.
    dpi : int
        Resolution of the figures (72 keeps the report small; 150 for print).
    client : dask.distributed.Client, optional
        Run the blocks on this cluster.
    progress : callable, optional
        As in `deconfetti.scan`.

    Returns
    -------
    (ScanResult, dict)
        The scan, and the written files by role (``catalog``, ``summary``, ``ds9``,
        ``crtf``, ``peak`` and ``report``).
    """
    products = open_products(products)
    config = config or Config()
    outdir = Path(outdir) if outdir is not None else default_output_dir(products.name)
    created = not outdir.exists()
    try:
        check_output_dir(outdir, overwrite=overwrite, inputs=products.paths.values())
    except InputError:
        if created:
            with contextlib.suppress(OSError):
                outdir.rmdir()  # only if still empty: another run may be starting there
        raise
    with lock_output_dir(outdir):
        try:
            for folder in (outdir, outdir / FIGURES_DIR):
                remove_temporaries(folder)  # left by a killed run
            store = BlockStore(outdir / CHECKPOINT_DIR, products, config.to_dict(),
                               resume=resume)
            count = max(figures, top if report else 0)
            workers = config.stream.workers or os.cpu_count() or 1
            # the figures are laid out by a process forked before the scan, while it runs
            with drawing_process(products, count, dpi=dpi) as drawer:
                result = scan(products, config=config, store=store, client=client,
                              progress=progress)
                paths = write_outputs(result, outdir, overwrite=True, regions=regions)
                if count > 0:
                    pngs = evidence_pngs(result.products,
                                         figure_rows(result.candidates, count), dpi=dpi,
                                         contrast=result.contrast, diverged=_diverged(result),
                                         workers=workers, drawer=drawer)
            if figures > 0:
                write_figures({i: pngs[i] for i in list(pngs)[:figures]}, outdir)
            if report:
                paths["report"] = write_report(result, outdir, top=top, pngs=pngs, dpi=dpi)
            store.remove()
        except InputError:
            if created:  # leave nothing behind where nothing was before (the lock is ours)
                shutil.rmtree(outdir, ignore_errors=True)
            raise
    return result, paths


def read_scan(outdir: str | Path) -> ScanResult:
    """Read a scan folder back (the products are reopened from the recorded paths)."""
    outdir = Path(outdir)
    paths = {role: outdir / name for role, name in OUTPUT_NAMES.items()}
    for role in ("catalog", "summary", "peak"):
        if not paths[role].exists():
            raise InputError(f"{paths[role]}: not found; is {outdir} a deconfetti scan folder?")
    try:
        summary = json.loads(paths["summary"].read_text(encoding="utf-8"))
        catalog = Table.read(paths["catalog"], format="ascii.ecsv")
        peak = fits.getdata(paths["peak"]).astype(np.float32)
        inputs = dict(summary["inputs"])
        rms = np.array([np.nan if c["rms_jy_beam"] is None else c["rms_jy_beam"]
                        for c in summary["channels"]])
        config = Config().replace(summary["parameters"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{outdir}: unreadable scan output ({exc})") from None
    products = open_products(inputs.pop("image"), **inputs)
    return ScanResult(candidates=catalog, summary=summary, products=products, config=config,
                      rms=rms, peak=peak)


def candidate_figures(result: ScanResult, ident: int) -> dict:
    """The evidence figures of candidate ``ident`` of a scan, as matplotlib Figures by
    name (``data_test``, ``image_maps``, ``model_maps``, ``residual_maps``, ``spectra``),
    drawn from the products; for a notebook (``display(fig)``) or ``fig.savefig``."""
    rows = result.candidates[result.candidates["id"] == int(ident)] if len(result.candidates) \
        else result.candidates
    if not len(rows):
        raise InputError(f"{result.products.name}: no candidate with id {ident} in the scan")
    from .cutout import make_cutout
    from .figures import evidence

    return evidence(make_cutout(result.products, rows[0], contrast=result.contrast,
                                diverged=_diverged(result)))


def _diverged(result: ScanResult) -> frozenset:
    """The scan's diverged channels, left out of the figures' data test as of its own."""
    return frozenset(result.summary.get("diverged_channels") or [])


def write_scan_report(scandir: str | Path, *, top: int = 25, overwrite: bool = False,
                      dpi: int = 72) -> Path:
    """Render ``report.html`` of a scan folder again (with its repair log, if any),
    reusing the figures already in its ``figures/``."""
    scandir = Path(scandir)
    if (scandir / REPORT_NAME).exists() and not overwrite:
        raise InputError(f"{scandir / REPORT_NAME}: exists; delete it or pass --overwrite")
    return write_report(read_scan(scandir), scandir, top=top, pngs=read_figures(scandir),
                        dpi=dpi)


def repair_scan(source: str | Path, outdir: str | Path | None = None, *,
                config: Config | None = None, overrides: dict | None = None,
                overwrite: bool = False, startmodel: bool = False
                ) -> tuple[ScanResult, Table, dict[str, Path], Path]:
    """Repair the confetti of a scan and write the repaired products.

    Parameters
    ----------
    source : str or Path
        A scan folder, or products: their default scan folder (beside them) is used when
        it holds a scan of them, else they are scanned first (also with ``overwrite``)
        into ``outdir/<imagename>.deconfetti/`` when ``outdir`` is given, into the
        default scan folder when not (and reused from there next time).
    outdir : str or Path, optional
        Where the repaired products go (default: beside the inputs); created if needed.
        With ``outdir``, nothing new is written beside the inputs.
    config : Config, optional
        Parameters (default: the scan folder's own, or the defaults).
    overrides : dict, optional
        ``{stage: {key: value}}`` applied on top of the scan folder's parameters when
        ``config`` is not given.
    startmodel : bool
        Also write ``NAME.repaired.startmodel`` for ``tclean(startmodel=...)``.

    Returns
    -------
    (ScanResult, Table, dict, Path)
        The scan, the repair log, the written products by kind and the log's path
        (``repair.ecsv`` in the scan folder).
    """
    source = Path(source)
    outdir = Path(outdir) if outdir is not None else None
    overrides = overrides or {}
    scandir = source
    if not (source / OUTPUT_NAMES["summary"]).exists():
        products = open_products(source)
        if outdir is not None:  # refused before any scan
            check_outputs_apart([outdir], products.paths.values())
        scandir = default_output_dir(products.name)
        if outdir is not None and (overwrite or not _scan_of(scandir, products)):
            scandir = outdir / scandir.name
    if scandir is source or (not overwrite and _scan_of(scandir, products)):
        result = read_scan(scandir)  # an earlier scan: used as it is
        config = config or result.config.replace(overrides)
    else:
        config = config or Config().replace(overrides)
        result, _ = scan_to_folder(products, scandir, config=config, overwrite=overwrite,
                                   figures=0)
    check_outputs_apart([p for p in (outdir, scandir / REPAIR_LOG_NAME) if p],
                        result.products.paths.values())
    if outdir is not None:
        try:
            outdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{outdir}: cannot create the output folder "
                             f"({exc.strerror or exc})") from None
    with lock_output_dir(scandir):  # one repair of a scan at a time
        log, paths = write_repaired(result, outdir=outdir, overwrite=overwrite,
                                    startmodel=startmodel, config=config)
        log_path = write_repair_log(log, scandir)
    return result, log, paths, log_path


def _scan_of(scandir: Path, products: Products, config: Config | None = None) -> bool:
    """Whether ``scandir`` holds a finished scan of exactly ``products`` (with the
    parameters of ``config``, when given; how the blocks ran does not count)."""
    try:
        summary = json.loads((scandir / OUTPUT_NAMES["summary"]).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False

    def results(parameters: dict) -> dict:
        return {stage: values for stage, values in parameters.items() if stage != "stream"}

    same = config is None or results(summary.get("parameters", {})) == results(
        json.loads(json.dumps(config.to_dict())))
    return (same and summary.get("inputs") == products.paths
            and (scandir / OUTPUT_NAMES["catalog"]).exists())


def scan_many(sources: list[str | Path], survey: str | Path = ".", *,
              config: Config | None = None,
              done: Callable[[int, int, Path, str], None] | None = None,
              progress: Callable[[str], Any] | None = None,
              **options: Any) -> tuple[list[dict[str, Any]], tuple[Path, Path]]:
    """Scan every product set under ``sources`` into its default scan folder and write the
    survey (``survey.ecsv``, ``survey.json``) into ``survey``.

    ``done(number, total, image, status)`` is called after each cube; ``progress(name)``,
    a context manager, gives each cube's progress callable (as in `scan_to_folder`);
    ``options`` go to `scan_to_folder`. A cube whose scan folder already holds a scan of
    it with the same parameters is kept as it is (said so in its status) unless
    ``overwrite``; a cube that fails is recorded with its error and the others go on.
    Returns the survey rows and the two survey paths.
    """
    config = config or Config()
    images = find_images(sources)
    if not images:
        raise InputError(f"no tclean products (*.image, *.image.fits, .tt0) found in "
                         f"{' '.join(map(str, sources))}")
    rows = []
    for number, image in enumerate(images, start=1):
        try:
            products = open_products(image)
            outdir = default_output_dir(products.name)
            kept = not options.get("overwrite") and _scan_of(outdir, products, config)
            if kept:
                result = read_scan(outdir)
            else:
                with progress(products.name) if progress else contextlib.nullcontext() as update:
                    result, _ = scan_to_folder(products, outdir, config=config,
                                               progress=update, **options)
            rows.append(survey_row(image, result=result, output=outdir))
            status = ", ".join(f"{n} {k}" for k, n in result.counts.items()) + (
                " (scanned before: kept; --overwrite scans it again)" if kept else "")
        except InputError as exc:
            rows.append(survey_row(image, error=str(exc)))
            status = f"error: {exc}"
        if done is not None:
            done(number, len(images), image, status)
    return rows, write_survey(rows, Path(survey), config=config.to_dict())
