"""Write repaired products: each input product copied under a temporary name, patched
one channel plane at a time, then renamed to ``NAME.repaired.<kind>``.

The format follows the input: a CASA image directory is copied whole (headers, beams,
units, coordinates and masks stay as they are) and patched with python-casacore; a FITS
file is copied and patched through a memory map. Inputs are only read. If anything
fails, the temporary copies are removed and no output appears.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from .. import __version__
from ..errors import InputError
from ..files import check_outputs_apart, install, remove_path
from ..io.casa import save_as_casa
from ..io.discover import REPAIRED, repaired_path
from ..io.products import Product, open_products
from .consistency import verify
from .solve import repair

__all__ = ["PatchedCopy", "patched_copies", "link_unchanged", "write_startmodel",
           "write_repaired"]

class PatchedCopy:
    """A copy of ``source`` at a temporary name beside ``target``, patched with `add`,
    renamed to ``target`` by `commit`."""

    def __init__(self, source: Product, target: Path):
        self.source = source
        self.target = Path(target)
        try:
            self.temporary = Path(tempfile.mkdtemp(dir=self.target.parent,
                                                   prefix=f".{self.target.name}.", suffix=".part"))
        except OSError as exc:
            raise InputError(f"{self.target}: cannot write ({exc.strerror or exc})") from None
        self._patcher = None
        try:
            self.temporary.rmdir()  # mkdtemp only reserved the unique name
            source.reader.copy_to(self.temporary)
        except OSError as exc:
            self.discard()
            raise InputError(f"{self.target}: cannot write ({exc.strerror or exc})") from None
        except BaseException:
            self.discard()
            raise

    def add(self, chan: int, delta: np.ndarray) -> None:
        """Add ``delta`` (``(ny, nx)``, the product's unit) to channel ``chan``."""
        self._patch().add(chan, delta)

    def note(self, text: str) -> None:
        """Record ``text`` in the copy's history (FITS HISTORY, CASA logtable)."""
        self._patch().note(text)

    def _patch(self):
        """The format's patcher of the copy, opened on first use."""
        if self._patcher is None:
            self._patcher = self.source.reader.patcher(self.temporary)
        return self._patcher

    def close(self) -> None:
        patcher, self._patcher = self._patcher, None
        if patcher is not None:
            patcher.close()

    def commit(self, overwrite: bool = False) -> Path:
        """Rename the patched copy to its target (replacing it with ``overwrite``)."""
        self.close()
        return install(self.temporary, self.target, overwrite=overwrite)

    def discard(self) -> None:
        self.close()
        remove_path(self.temporary)


@contextlib.contextmanager
def patched_copies(products, kinds: tuple[str, ...], outdir: Path | None = None, *,
                   overwrite: bool = False) -> Iterator[dict[str, PatchedCopy]]:
    """Patched copies of the ``kinds`` of ``products``; all are renamed to their targets
    when the block ends without error, none otherwise."""
    targets = {kind: repaired_path(getattr(products, kind).path, outdir) for kind in kinds}
    check_outputs_apart(targets.values(), products.paths.values())
    for kind, target in targets.items():
        if target.exists() and not overwrite:
            raise InputError(f"{target}: exists; use --overwrite to replace it")
        for leftover in target.parent.glob(f".{target.name}.*.part"):
            remove_path(leftover)  # a temporary copy of a killed repair
    copies: dict[str, PatchedCopy] = {}
    try:
        for kind, target in targets.items():
            copies[kind] = PatchedCopy(getattr(products, kind), target)
        yield copies
        for copy in copies.values():
            copy.close()
    except BaseException:
        for copy in copies.values():
            copy.discard()
        raise
    for copy in copies.values():
        copy.commit(overwrite)


def link_unchanged(products, kinds: tuple[str, ...], outdir: Path | None = None, *,
                   overwrite: bool = False) -> dict[str, Path]:
    """Relative symbolic links ``NAME.deconfetti.<kind>`` to the products a repair leaves
    as they are (the psf and pb), so that the repaired set opens by its prefix; returns
    them by kind. A virtual image (its parts named relative to where it is opened) is
    copied instead, as one paged image."""
    links = {}
    for kind in kinds:
        source = getattr(products, kind)
        if source is None:
            continue
        link = repaired_path(source.path, outdir)
        try:
            if link.is_symlink() or link.exists():
                if not overwrite:
                    raise InputError(f"{link}: exists; use --overwrite to replace it")
                remove_path(link)
            if source.reader.virtual:
                PatchedCopy(source, link).commit()
            else:
                link.symlink_to(os.path.relpath(source.path.resolve(), link.parent.resolve()),
                                target_is_directory=source.path.is_dir())
        except OSError as exc:
            raise InputError(f"{link}: cannot link the {kind} ({exc.strerror or exc})") from None
        links[kind] = link
    return links


def write_startmodel(model_path: Path, target: Path, *, overwrite: bool = False) -> Path:
    """The repaired model as a CASA image directory for ``tclean(startmodel=...)``."""
    target = Path(target)
    if target.exists() and not overwrite:
        raise InputError(f"{target}: exists; use --overwrite to replace it")
    temporary = target.with_name(f".{target.name}.{os.getpid()}.part")
    remove_path(temporary)
    try:
        save_as_casa(Path(model_path), temporary)
        install(temporary, target, overwrite=True)
    except (OSError, RuntimeError) as exc:
        remove_path(temporary)
        raise InputError(f"{target}: cannot write the start model ({exc})") from None
    return target


def write_repaired(result, *, outdir: Path | None = None, overwrite: bool = False,
                   startmodel: bool = False, config=None):
    """Repair the confetti of a scan and write the repaired products.

    Parameters
    ----------
    result : deconfetti.ScanResult
        A scan (`deconfetti.scan` or `deconfetti.read_scan`).
    outdir : Path, optional
        Where the repaired products go (default: beside the inputs).
    startmodel : bool
        Also write ``NAME.repaired.startmodel``, a CASA image for ``tclean(startmodel=)``.

    Returns
    -------
    (astropy.table.Table, dict)
        The repair log (`deconfetti.repair.log.REPAIR_COLUMNS`) and the written paths by kind
        (empty when nothing was removed).
    """
    products = result.products
    config = config or result.config
    kinds = ("model", "image", "residual")
    catalog = result.candidates
    if not len(catalog) or not np.any(catalog["classification"] == "confetti"):
        return verify(repair(products, catalog, result.rms, config=config), catalog, None,
                      result.rms), {}
    try:
        with patched_copies(products, kinds, outdir, overwrite=overwrite) as copies:
            def apply(chan, done):
                for kind in kinds:
                    copies[kind].add(chan, getattr(done, f"{kind}_delta"))

            log = repair(products, catalog, result.rms, config=config, apply=apply)
            removed = log[log["status"] == "removed"]
            if not len(removed):
                raise _NothingRemoved(log)
            text = _history(removed, len(log))
            for copy in copies.values():
                copy.note(text)
    except _NothingRemoved as nothing:  # every removal refused: no products to write
        return verify(nothing.log, catalog, None, result.rms), {}
    paths = {kind: copy.target for kind, copy in copies.items()}
    paths.update(link_unchanged(products, ("psf", "pb"), outdir, overwrite=overwrite))
    log = verify(log, catalog, open_products(paths["image"]), result.rms, config=config)
    if startmodel:
        paths["startmodel"] = write_startmodel(
            paths["model"], paths["model"].with_name(
                paths["model"].name.split(f".{REPAIRED}.")[0] + f".{REPAIRED}.startmodel"),
            overwrite=overwrite)
    return log, paths


def _history(removed, confetti: int) -> str:
    """What a repair did, for the repaired products' history."""
    where = ", ".join(f"#{r['id']} (channel {r['channel']}, x={r['x']} y={r['y']}, "
                      f"{r['npix']} model pixels)" for r in removed)
    return (f"deconfetti {__version__} repair: removed {len(removed)} of {confetti} confetti "
            f"from the model (bounded least squares against the data): {where}; "
            "residual += psf (*) removed, image += (psf - beam) (*) removed "
            "(see repair.ecsv in the scan folder)")


class _NothingRemoved(Exception):
    """Raised inside `patched_copies` so that the unneeded copies are discarded."""

    def __init__(self, log):
        super().__init__("nothing removed")
        self.log = log
