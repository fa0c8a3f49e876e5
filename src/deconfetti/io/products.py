"""The one door for tclean products: a name prefix, a CASA image directory, a FITS file,
products in memory (`memory`) or a `Products` come out as `Products`, checked for
consistency.

Every array handed out is numpy ``[chan, y, x]`` (0-based; x = RA/column, y = Dec/row),
float32, with masked pixels (outside ``pblimit``) as NaN. The Stokes axis is dropped
(the first plane, normally I) and the format's axis order converted by its reader
(`casa`, `fits`), once. Data are read lazily, a channel block at a time.
"""

from __future__ import annotations

import functools

import math
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy import constants
from astropy import units as u
from astropy.io import fits
from astropy.wcs import WCS
from radio_beam import Beams

from ..errors import DeconfettiWarning, InputError
from .base import first_line, usable_beam
from .casa import CasaImage
from .discover import (PRODUCT_KINDS, check_link, find_sibling, kind_of, only_image_in,
                       split_name)
from .fits import FitsImage
from .memory import as_hdulist, in_memory

__all__ = ["Products", "Product", "open_products", "REQUIRED"]

REQUIRED = ("image", "model", "residual")
#: planes each product keeps from its last read, for the next block's halo
HALO_CACHE = 2
#: block arrays a run keeps for its next reads (the one being scanned and the one read
#: ahead of it)
BLOCK_POOL = 2
#: most a tclean psf may differ from 1 at the image centre
PSF_PEAK_TOLERANCE = 0.01
#: fewest restoring-beam FWHM across the image
MIN_BEAMS_ACROSS = 2.0


def block_array(pool: list, shape: tuple[int, ...]) -> np.ndarray:
    """A float32 array of ``shape`` for a block read: one of ``pool`` that nothing else
    holds any more (no reference, no view), else a new one, added to ``pool`` (which keeps
    the last `BLOCK_POOL`).

    A block of whole planes is over glibc's mmap threshold from 2048 x 2048 (three
    planes: 48 MB), so a new one is page-faulted in afresh at every block (measured: 18 ms
    against 10 to fill one reused). ``pool`` belongs to one run of blocks (a reader's),
    so that the arrays go with it.
    """
    for array in pool:
        if array.shape == shape and sys.getrefcount(array) <= 3:  # pool, loop, call
            return array
    array = np.empty(shape, dtype=np.float32)
    pool.append(array)
    del pool[:-BLOCK_POOL]
    return array


class Product:
    """One tclean product on disk, read lazily in channel blocks.

    Attributes
    ----------
    kind : str
        'image', 'model', 'residual', 'psf', 'pb' or 'mask'.
    path : Path
    shape : tuple of int
        ``(nchan, ny, nx)``; a continuum product has ``nchan == 1``.
    unit : str
        Brightness unit as written in the product ('Jy/beam', 'Jy/pixel', '').
    header : astropy.io.fits.Header
        Celestial and spectral WCS keywords (FITS convention, 1-based CRPIX).
    wcs : astropy.wcs.WCS
        The same as a WCS (axes x, y[, spectral]).
    beams : list of radio_beam.Beam or None
        Restoring beam per channel, when the product records one.
    tile_depth : int
        Channels per storage tile (1 when the format has no tiles).
    reader : CasaImage or FitsImage
        The format's reader (and the maker of its patchers).
    """

    def __init__(self, kind: str, path: Path, hdul: fits.HDUList | None = None):
        self.kind = kind
        self.path = path
        self._lock = threading.Lock()  # one read at a time per product (casacore, astropy)
        self._tails = threading.local()  # each thread's last planes of its last read
        try:
            if hdul is not None:  # in memory: ``path`` only names it
                self.reader = FitsImage(path, hdul)
            else:
                self.reader = CasaImage(path) if path.is_dir() else FitsImage(path)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # astropy's notes on OBSGEO/MJD fixes
                self.wcs = WCS(self.header)
        except InputError:
            raise
        except (fits.VerifyError, KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise InputError(f"{path}: malformed header ({first_line(exc)})") from None

    shape = property(lambda self: self.reader.shape)
    unit = property(lambda self: self.reader.unit)
    header = property(lambda self: self.reader.header)
    beams = property(lambda self: self.reader.beams)
    tile_depth = property(lambda self: self.reader.tile_depth)
    object_name = property(lambda self: self.reader.object_name)
    #: channel frequencies (Hz) of a tabular, non-linear spectral axis, else None
    tabular = property(lambda self: self.reader.tabular)

    def read(self, start: int, stop: int, window: tuple[slice, slice] | None = None, *,
             pool: list | None = None) -> np.ndarray:
        """Channels ``start:stop`` as float32 ``[chan, y, x]``, masked pixels NaN.

        ``window = (y_slice, x_slice)`` reads only that part of each plane; bounds are
        pixel indices clipped to the plane (negative means before the edge, not from the
        end; steps are not supported). A windowed read neither uses nor fills the cache of
        planes kept for the next block's halo. ``pool`` (a run's list, `block_array`)
        holds arrays a block read may fill again instead of a new one.
        """
        start, stop = max(0, start), min(self.shape[0], stop)
        ny, nx = self.shape[1:]
        ys, xs = window if window is not None else (slice(0, ny), slice(0, nx))
        ys = slice(min(max(0, ys.start or 0), ny), max(0, min(ny, ny if ys.stop is None else ys.stop)))
        xs = slice(min(max(0, xs.start or 0), nx), max(0, min(nx, nx if xs.stop is None else xs.stop)))
        try:
            with self._lock:
                if window is not None:
                    return self.reader.read(start, stop, ys, xs)
                return self._read_planes(start, stop, ys, xs, pool)
        except (RuntimeError, OSError, ValueError) as exc:
            raise InputError(f"{self.path}: cannot read channels {start}-{stop - 1} "
                             f"({first_line(exc)})") from None

    def _read_planes(self, start: int, stop: int, ys: slice, xs: slice,
                     pool: list | None) -> np.ndarray:
        """Whole planes, reusing the last ``HALO_CACHE`` planes of this thread's previous
        read: a channel block's halo is the previous block's last channels (in a run of
        blocks, which one thread reads in order), read only once. The rest is read
        straight into the block's array.

        The planes kept are copies, never handed out (the caller may change what it gets).
        """
        kept: list[np.ndarray] = []
        tail = getattr(self._tails, "planes", None)
        if tail is not None:
            first, planes = tail
            if first <= start < first + len(planes):
                kept = planes[start - first:min(stop - first, len(planes))]
        shape = (stop - start, ys.stop - ys.start, xs.stop - xs.start)
        data = block_array(pool, shape) if pool is not None else np.empty(shape, np.float32)
        for index, plane in enumerate(kept):
            data[index] = plane
        if start + len(kept) < stop:
            self.reader.read(start + len(kept), stop, ys, xs, out=data[len(kept):])
        planes = kept + [plane.copy() for plane in data[max(len(kept), len(data) - HALO_CACHE):]]
        self._tails.planes = (stop - min(HALO_CACHE, len(planes)), planes[-HALO_CACHE:])
        return data

    @property
    def frequency(self) -> np.ndarray:
        """Frequency of every channel, Hz, shape ``(nchan,)``; NaN when unknown.

        A velocity axis is converted with the rest frequency and Doppler convention the
        product records; a tabular (non-linear) CASA axis gives its tabulated values.
        """
        if self.tabular is not None:
            return self.tabular.copy()
        if not self.wcs.has_spectral:
            return np.full(self.shape[0], np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            world = self.wcs.spectral.pixel_to_world(np.arange(self.shape[0], dtype=float))
            try:
                return np.asarray(world.to_value(u.Hz), dtype=float)
            except (u.UnitsError, ValueError, AttributeError):
                return np.full(self.shape[0], np.nan)

    def __repr__(self) -> str:
        return f"Product({self.kind!r}, '{self.path}', shape={self.shape})"

    def __reduce__(self):
        """Pickled as kind and path: a worker process reopens the product."""
        return (Product, (self.kind, self.path))


@dataclass(frozen=True)
class Products:
    """The products of one tclean run, checked for consistency.

    ``image``, ``model`` and ``residual`` are required; ``psf``, ``pb`` and ``mask``
    are `None` when absent. All products share ``shape = (nchan, ny, nx)``.
    """

    name: str
    image: Product
    model: Product
    residual: Product
    psf: Product | None
    pb: Product | None
    mask: Product | None
    beams: Beams

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(nchan, ny, nx)``."""
        return self.image.shape

    @property
    def nchan(self) -> int:
        return self.image.shape[0]

    @property
    def wcs(self) -> WCS:
        """Celestial + spectral WCS of the image (FITS axis order x, y[, spectral])."""
        return self.image.wcs

    @property
    def celestial(self) -> WCS:
        """Celestial WCS of the image (x, y)."""
        return self.wcs.celestial

    @property
    def frequency(self) -> np.ndarray:
        """Frequency of every channel of the image, Hz, shape ``(nchan,)``; NaN when
        unknown (see `Product.frequency`)."""
        return self.image.frequency

    @property
    def rest_frequency(self) -> float | None:
        """Rest frequency in Hz, or None when the products do not record one."""
        value = self.image.header.get("RESTFRQ", 0.0)
        return float(value) if value and value > 0 else None

    @property
    def velocity(self) -> np.ndarray:
        """Radio velocity of every channel, ``c (1 - f / f_rest)``, km/s, shape
        ``(nchan,)``; NaN without a rest frequency."""
        rest = self.rest_frequency
        if not rest:
            return np.full(self.nchan, np.nan)
        return constants.c.to_value(u.km / u.s) * (1 - self.frequency / rest)

    @functools.cached_property
    def pixel_scale(self) -> float:
        """Pixel size in arcsec (geometric mean of the two axes)."""
        scales = [abs(s.to_value(u.arcsec)) for s in self.celestial.proj_plane_pixel_scales()]
        return float(np.sqrt(scales[0] * scales[1]))

    @functools.cached_property
    def pixels_per_beam(self) -> np.ndarray:
        """Restoring-beam area over pixel area, per channel, shape ``(nchan,)``
        (read-only: computed once)."""
        area = self.beams.sr.to_value(u.arcsec ** 2)
        return _read_only(np.asarray(area, dtype=float) / self.pixel_scale ** 2)

    @functools.cached_property
    def beam_pixels(self) -> np.ndarray:
        """Restoring beam per channel: major FWHM (pixels), minor FWHM (pixels), PA (deg),
        shape ``(nchan, 3)`` (read-only: computed once)."""
        scale = self.pixel_scale
        return _read_only(np.column_stack([self.beams.major.to_value(u.arcsec) / scale,
                                           self.beams.minor.to_value(u.arcsec) / scale,
                                           self.beams.pa.to_value(u.deg)]))

    def read(self, kind: str, start: int, stop: int,
             window: tuple[slice, slice] | None = None, *, pool: list | None = None
             ) -> np.ndarray:
        """Channels ``start:stop`` of product ``kind`` as float32 ``[chan, y, x]``,
        optionally only ``window = (y_slice, x_slice)`` of each plane (``pool`` as in
        `Product.read`)."""
        product = getattr(self, kind)
        if product is None:
            raise InputError(f"{self.name}: no {kind} product")
        return product.read(start, stop, window, pool=pool)

    def plane(self, kind: str, chan: int) -> np.ndarray:
        """One whole plane ``(ny, nx)`` of product ``kind``, read past the halo cache (for
        planes wanted at scattered channels: the psf, the mask, a candidate's model)."""
        return self.read(kind, chan, chan + 1, (slice(None), slice(None)))[0]

    @property
    def paths(self) -> dict[str, str]:
        """Absolute path of every product found, by kind."""
        return {k: str(getattr(self, k).path.absolute()) for k in PRODUCT_KINDS
                if getattr(self, k)}



def open_products(source: "str | Path | Products | Any" = None, *, image: Any = None,
                  model: Any = None, residual: Any = None, psf: Any = None, pb: Any = None,
                  mask: Any = None) -> Products:
    """Find, open and check the products of one tclean run.

    Parameters
    ----------
    source : str, Path, Products or a product in memory
        An imagename prefix (``path/NAME`` with ``NAME.image`` beside it), any one
        product (``NAME.image``, ``NAME.model.tt0``, ``NAME.image.fits``, ...), a folder
        that holds one tclean run, `Products` (returned unchanged), or the image in
        memory (as for ``image``).
    image, model, residual, psf, pb, mask : optional
        Explicit paths, which take precedence over what the prefix finds, or products
        in memory: an astropy HDU or HDUList, an ``(array, Header or WCS)`` pair, or a
        spectral-cube ``SpectralCube`` (`deconfetti.io.memory.as_hdulist`). Products in
        memory have no siblings to find: give each one.

    Returns
    -------
    Products

    Raises
    ------
    InputError
        A required product (image, model, residual) is missing or unreadable, or the
        products disagree in shape or coordinates.
    """
    if isinstance(source, Products):
        return source
    explicit = dict(image=image, model=model, residual=residual, psf=psf, pb=pb, mask=mask)
    if in_memory(source):
        if image is not None:
            raise TypeError("give the image either as the source or as image=, not both")
        explicit["image"], source = source, None
    memory = {kind: as_hdulist(given, kind) for kind, given in explicit.items()
              if in_memory(given)}
    source = Path(source) if source is not None else None
    prefix, tt, ext = split_name(source) if source is not None else (None, "", "")
    if prefix is None and source is not None and source.is_dir():
        source = only_image_in(source)  # a folder holding one run (not a prefix)
        prefix, tt, ext = split_name(source)
    if source is not None and prefix is None:
        if source.exists():
            raise InputError(f"{source}: not a tclean product name (NAME.image, .model, "
                             f".residual, .psf, .pb or .mask, with .tt0 or .fits), and no "
                             f"{source.name}.image beside it")
        raise InputError(f"{source}: not found, and no {source}.image beside it")
    if source is not None and explicit["image"] is None and (source.exists() and
                                                             kind_of(source) == "image"):
        explicit["image"] = source
    paths = {}
    for kind in PRODUCT_KINDS:
        given = explicit[kind]
        if kind in memory:
            paths[kind] = Path(f"<{kind} in memory>")
        elif given is not None:
            given = Path(given)
            check_link(given)
            if not given.exists():
                raise InputError(f"{given}: {kind} product not found")
            paths[kind] = given
        elif prefix is not None:
            found = find_sibling(prefix, kind, tt, ext)
            if found is not None:
                paths[kind] = found
    name = str(prefix) if prefix is not None else str(paths.get("image", "products"))
    for kind in REQUIRED:
        if kind not in paths:
            where = f"{prefix}.{kind}{tt}{ext}" if prefix is not None else kind
            raise InputError(f"{where}: {kind} product not found "
                             f"(give it with --{kind} PATH)")
    _check_distinct({k: v for k, v in paths.items() if k not in memory})
    opened = {kind: Product(kind, path, memory.get(kind)) for kind, path in paths.items()}
    _check_consistent(opened)
    products = Products(name=name, beams=_choose_beams(opened),
                        **{k: opened.get(k) for k in PRODUCT_KINDS})
    _check_size(products)
    if products.psf is not None:
        _check_psf(products.psf)
    return products


# -- checks ------------------------------------------------------------------------------
def _check_distinct(paths: dict[str, Path]) -> None:
    """One file, one role: the same product given as two kinds is refused."""
    seen: dict[Path, str] = {}
    for kind, path in paths.items():
        key = path.resolve()
        if key in seen:
            raise InputError(f"{path}: given as both the {seen[key]} and the {kind}; each "
                             "product must be a different file")
        seen[key] = kind


def _per_beam(unit: str) -> bool:
    """Whether a BUNIT is a brightness per beam ('Jy/beam', 'mJy/beam', 'Jy beam-1')."""
    if unit.replace(" ", "").lower().endswith("/beam"):
        return True
    try:
        parsed = u.Unit(unit, parse_strict="silent")
        return u.beam in parsed.bases and parsed.powers[parsed.bases.index(u.beam)] == -1
    except (ValueError, TypeError):
        return False


def _check_consistent(opened: dict[str, Product]) -> None:
    image = opened["image"]
    for kind, product in opened.items():
        if product.shape != image.shape:
            raise InputError(f"{product.path}: shape {_fmt_shape(product.shape)} differs from "
                             f"the image's {_fmt_shape(image.shape)} ({image.path})")
        if kind in ("model", "residual") and not _same_celestial(product.header, image.header):
            raise InputError(f"{product.path}: coordinates differ from the image's "
                             f"({image.path})")
    for kind, expected in (("image", "Jy/beam"), ("model", "Jy/pixel")):
        # tclean writes both units; it leaves the residual's (and the psf's, pb's) empty
        if not opened[kind].unit.strip():
            raise InputError(f"{opened[kind].path}: no brightness unit (BUNIT); expected "
                             f"{expected} for the tclean {kind}")
    for kind in ("image", "residual"):
        if opened[kind].unit.strip() and not _per_beam(opened[kind].unit):
            raise InputError(f"{opened[kind].path}: brightness unit is '{opened[kind].unit}', "
                             "expected Jy/beam (is this the tclean image/residual?)")
    _check_spectral(image)
    frequency = image.frequency
    width = np.min(np.abs(np.diff(frequency))) if len(frequency) > 1 else np.nan
    for kind, product in opened.items():
        other = product.frequency
        if kind == "image" or len(other) < 2 or not np.all(np.isfinite(other)) \
                or not np.all(np.isfinite(frequency)):
            continue
        worst = int(np.argmax(np.abs(other - frequency)))
        if abs(other[worst] - frequency[worst]) > 0.01 * width:
            raise InputError(f"{product.path}: channel {worst} is at "
                             f"{other[worst] / 1e9:.6f} GHz, the image's at "
                             f"{frequency[worst] / 1e9:.6f} GHz (spectral axes differ)")
    model_unit = opened["model"].unit.replace(" ", "").lower()
    if "beam" in model_unit:
        warnings.warn(f"{opened['model'].path}: model unit is '{opened['model'].unit}', "
                      "expected Jy/pixel; model fluxes are taken as Jy/pixel",
                      DeconfettiWarning, stacklevel=3)


def _check_spectral(image: Product) -> None:
    if image.shape[0] < 2 or not (image.wcs.has_spectral or image.tabular is not None):
        return
    values = image.frequency
    if image.tabular is None and not np.all(np.isfinite(values)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = np.asarray(image.wcs.spectral.pixel_to_world_values(
                np.arange(image.shape[0], dtype=float)), dtype=float)
    steps = np.diff(values)
    if not (np.all(steps > 0) or np.all(steps < 0)):
        raise InputError(f"{image.path}: spectral axis is not monotonic "
                         "(channel increment zero or changing sign)")


def _check_size(products: Products) -> None:
    """The pixel grid must be regular and hold at least `MIN_BEAMS_ACROSS` beams."""
    scale = products.pixel_scale
    if not (math.isfinite(scale) and scale > 0):
        raise InputError(f"{products.image.path}: celestial pixel size is {scale} arcsec "
                         "(CDELT zero or not finite)")
    beam = float(np.max(products.beam_pixels[:, 0]))
    ny, nx = products.shape[1:]
    if min(ny, nx) < MIN_BEAMS_ACROSS * beam:
        raise InputError(f"{products.image.path}: image of {nx} x {ny} pixels is smaller than "
                         f"{MIN_BEAMS_ACROSS:g} restoring beams ({beam:.1f} pixels FWHM)")


def _check_psf(psf: Product) -> None:
    """A tclean psf is 1 at the image centre (pixel ny // 2, nx // 2) and peaks there, in
    every channel that has data; anything else is another image or another grid."""
    nchan, ny, nx = psf.shape
    cy, cx = ny // 2, nx // 2
    core = psf.read(0, nchan, (slice(cy - 2, cy + 3), slice(cx - 2, cx + 3)))
    iy, ix = min(cy, 2), min(cx, 2)  # the centre within the (edge-clipped) window
    for chan, plane in enumerate(core):
        if not np.any(np.isfinite(plane) & (plane != 0)):
            continue  # a flagged channel: no psf, no data
        centre = float(plane[iy, ix])
        if np.nanmax(plane) > centre + PSF_PEAK_TOLERANCE:
            raise InputError(f"{psf.path}: psf peak is not at the image centre (x={cx}, "
                             f"y={cy}) in channel {chan}; is this the psf of these products?")
        if not abs(centre - 1.0) <= PSF_PEAK_TOLERANCE:
            raise InputError(f"{psf.path}: psf is {centre:.4g} at the image centre in channel "
                             f"{chan}, expected 1 (a tclean psf peaks at 1)")


def _same_celestial(a: fits.Header, b: fits.Header) -> bool:
    for key in ("CRVAL1", "CRVAL2", "CDELT1", "CDELT2", "CRPIX1", "CRPIX2"):
        va, vb = a.get(key, 0.0), b.get(key, 0.0)
        if not math.isclose(va, vb, rel_tol=1e-6, abs_tol=1e-9):
            return False
    return True


def _choose_beams(opened: dict[str, Product]) -> Beams:
    for kind in ("image", "residual"):
        beams = opened[kind].beams
        if beams:
            majors = np.array([b.major.to_value(u.arcsec) for b in beams])
            minors = np.array([b.minor.to_value(u.arcsec) for b in beams])
            usable = usable_beam(majors, minors)
            if not np.all(usable):
                bad = int(np.flatnonzero(~usable)[0])
                raise InputError(f"{opened[kind].path}: restoring beam of channel {bad} "
                                 "is zero or missing")
            return Beams(major=majors * u.arcsec, minor=minors * u.arcsec,
                         pa=np.array([b.pa.to_value(u.deg) for b in beams]) * u.deg)
    raise InputError(f"{opened['image'].path}: no restoring beam recorded "
                     "(expected BMAJ/BMIN/BPA or CASA restoringbeam)")


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _fmt_shape(shape: tuple) -> str:
    return "x".join(str(n) for n in shape) + " [chan, y, x]"
