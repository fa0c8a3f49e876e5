"""The one door for tclean products: a name prefix, a CASA image directory, a FITS file
or a `Products` come out as `Products`.

Every array handed out is numpy ``[chan, y, x]`` (0-based; x = RA/column, y = Dec/row),
float32, with masked pixels (outside ``pblimit``) as NaN. The Stokes axis is dropped
here (the first plane, normally I) and CASA axis order is converted here, once.
Data are read lazily, a channel block at a time.
"""

from __future__ import annotations

import errno
import math
import os
import re
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.wcs import WCS
from radio_beam import Beam, Beams

from .errors import DeconfettiWarning, InputError

__all__ = ["Products", "Product", "open_products", "find_images", "PRODUCT_KINDS"]

#: the tclean products deconfetti knows, in the order they are looked up
PRODUCT_KINDS = ("image", "model", "residual", "psf", "pb", "mask")
REQUIRED = ("image", "model", "residual")
#: planes each product keeps from its last read, for the next block's halo
HALO_CACHE = 2
_SUFFIX = re.compile(r"^(?P<prefix>.+)\.(?P<kind>image|model|residual|psf|pb|mask)"
                     r"(?P<tt>\.tt0)?(?P<ext>\.fits?)?$", re.IGNORECASE)
#: most a tclean psf may differ from 1 at the image centre
PSF_PEAK_TOLERANCE = 0.01
#: fewest restoring-beam FWHM across the image
MIN_BEAMS_ACROSS = 2.0


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
    """

    def __init__(self, kind: str, path: Path):
        self.kind = kind
        self.path = path
        self.object_name = ""
        self._lock = threading.Lock()  # one read at a time per product (casacore, astropy)
        self._tail: tuple[int, np.ndarray] | None = None  # last planes of the last read
        self._tabular: np.ndarray | None = None  # channel frequencies of a tabular axis, Hz
        try:
            if path.is_dir():
                self._open_casa()
            else:
                self._open_fits()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # astropy's notes on OBSGEO/MJD fixes
                self.wcs = WCS(self.header)
        except InputError:
            raise
        except (fits.VerifyError, KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise InputError(f"{path}: malformed header ({_first_line(exc)})") from None

    # -- CASA image directories (python-casacore) ------------------------------------
    def _open_casa(self) -> None:
        try:
            from casacore.images import image
            self._casa = image(str(self.path))
            shape = [int(n) for n in self._casa.shape()]
            coords = self._casa.coordinates().dict()
            info = self._casa.imageinfo()
            self.unit = self._casa.unit()
        except RuntimeError as exc:
            raise InputError(f"{self.path}: not a readable CASA image "
                             f"({_first_line(exc)})") from None
        axes = {}
        for key, value in coords.items():
            if isinstance(value, dict) and "_image_axes" in value:
                axes[re.sub(r"\d+$", "", key)] = (key, [int(a) for a in value["_image_axes"]])
        if "direction" not in axes:
            raise InputError(f"{self.path}: CASA image has no direction (RA/Dec) coordinate")
        direction_key, direction_axes = axes["direction"]
        y_axis, x_axis = sorted(direction_axes)
        spectral = axes.get("spectral")
        stokes = axes.get("stokes")
        self._axes = (spectral[1][0] if spectral else None,
                      stokes[1][0] if stokes else None, y_axis, x_axis)
        self._ndim = len(shape)
        nchan = shape[self._axes[0]] if spectral else 1
        self.shape = (nchan, shape[y_axis], shape[x_axis])
        self.header = _casa_header(coords[direction_key],
                                   coords[spectral[0]] if spectral else None)
        if spectral:
            self._tabular = _casa_tabular(coords[spectral[0]], nchan, self.path)
        self.beams = _casa_beams(info.get("restoringbeam") or info.get("perplanebeams"),
                                 nchan, self.path)
        self.object_name = str(info.get("objectname", ""))
        self.tile_depth, self._masked = _casa_storage(self.path, self._axes[0], self._ndim)
        _check_stored(self.path, shape, sum(f.stat().st_size for f in self.path.glob("table.f*")))
        if stokes and shape[stokes[1][0]] > 1:
            _warn_stokes(self.path, shape[stokes[1][0]])
        self._format = "casa"

    def _read_casa(self, start: int, stop: int, ys: slice, xs: slice) -> np.ndarray:
        chan_axis, stokes_axis, y_axis, x_axis = self._axes
        blc = [0] * self._ndim
        trc = [n - 1 for n in self._casa.shape()]
        if chan_axis is not None:
            blc[chan_axis], trc[chan_axis] = start, stop - 1
        blc[y_axis], trc[y_axis] = ys.start, ys.stop - 1
        blc[x_axis], trc[x_axis] = xs.start, xs.stop - 1
        if stokes_axis is not None:
            trc[stokes_axis] = 0
        data = np.asarray(self._casa.getdata(blc, trc), dtype=np.float32)
        if self._masked:
            mask = np.asarray(self._casa.getmask(blc, trc))
            data[mask] = np.nan
        return _to_chan_y_x(data, self._axes)

    # -- FITS files (astropy) -----------------------------------------------------------
    def _open_fits(self) -> None:
        try:
            self._hdul = fits.open(self.path, memmap=True, lazy_load_hdus=False)
        except (OSError, ValueError, TypeError) as exc:
            raise InputError(f"{self.path}: not a readable FITS file ({_first_line(exc)})") from None
        hdus = [h for h in self._hdul if h.is_image and h.header.get("NAXIS", 0) >= 2]
        if not hdus:
            raise InputError(f"{self.path}: FITS file holds no image data")
        if len(hdus) > 1:
            where = ", ".join(str(self._hdul.index(h)) for h in hdus)
            raise InputError(f"{self.path}: FITS file holds {len(hdus)} images (HDUs {where}); "
                             "give each product as a file of its own")
        self._hdu = hdus[0]
        header = self._hdu.header
        for i in range(1, header["NAXIS"] + 1):
            for key in (f"CDELT{i}", f"CRVAL{i}", f"CRPIX{i}"):
                value = header.get(key, 1.0)
                if not isinstance(value, (int, float)) or isinstance(value, bool) \
                        or not math.isfinite(value):
                    raise InputError(f"{self.path}: {key} = {value!r} is not a finite number")
            if header.get(f"CDELT{i}", 1.0) == 0 and header.get(f"NAXIS{i}", 1) > 1:
                raise InputError(f"{self.path}: axis {header.get(f'CTYPE{i}', i)} has "
                                 f"CDELT{i} = 0 (the axis is not monotonic)")
        if header.get("BITPIX", -32) > 0 and any(k in header for k in ("BSCALE", "BZERO",
                                                                        "BLANK")):
            # scaled integers cannot be memory-mapped; sections still read lazily
            self._hdul.close()
            self._hdul = fits.open(self.path, memmap=False, lazy_load_hdus=False)
            self._hdu = [h for h in self._hdul if h.is_image
                         and h.header.get("NAXIS", 0) >= 2][0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                wcs = WCS(header)
            except Exception as exc:  # astropy raises many kinds for bad WCS keywords
                raise InputError(f"{self.path}: invalid WCS ({_first_line(exc)})") from None
        if wcs.wcs.lng < 0 or wcs.wcs.lat < 0:
            raise InputError(f"{self.path}: FITS header has no celestial (RA/Dec) WCS")
        ndim = header["NAXIS"]
        ctypes = [c.upper() for c in wcs.wcs.ctype]
        spec = wcs.wcs.spec if wcs.wcs.spec >= 0 else None
        stokes = next((i for i, c in enumerate(ctypes) if c.startswith("STOKES")), None)
        to_numpy = lambda i: None if i is None else ndim - 1 - i  # noqa: E731
        self._axes = (to_numpy(spec), to_numpy(stokes), to_numpy(wcs.wcs.lat),
                      to_numpy(wcs.wcs.lng))
        self._ndim = ndim
        dims = self._hdu.shape
        others = [a for a in range(ndim) if a not in self._axes]
        if any(dims[a] != 1 for a in others):
            raise InputError(f"{self.path}: unexpected extra axis of length > 1 "
                             f"(CTYPE {', '.join(ctypes)})")
        nchan = dims[self._axes[0]] if spec is not None else 1
        self.shape = (nchan, dims[self._axes[2]], dims[self._axes[3]])
        info = self._hdu.fileinfo()
        if info is not None and not header.get("ZIMAGE", False):
            _check_stored(self.path, dims, self.path.stat().st_size - info["datLoc"],
                          abs(header.get("BITPIX", -32)) // 8)
        if stokes is not None and dims[self._axes[1]] > 1:
            _warn_stokes(self.path, dims[self._axes[1]])
        keep = [wcs.wcs.lng + 1, wcs.wcs.lat + 1] + ([spec + 1] if spec is not None else [])
        self.header = wcs.sub(keep).to_header()
        for key in ("RESTFRQ", "RESTFREQ"):
            if key in header and "RESTFRQ" not in self.header:
                self.header["RESTFRQ"] = header[key]
        self.unit = str(header.get("BUNIT", "")).strip()
        self.object_name = str(header.get("OBJECT", ""))
        self.beams = _fits_beams(self._hdul, header, nchan, self.path)
        self.tile_depth = 1
        self._format = "fits"

    def _read_fits(self, start: int, stop: int, ys: slice, xs: slice) -> np.ndarray:
        chan_axis, stokes_axis, y_axis, x_axis = self._axes
        index = [slice(0, 1)] * self._ndim
        index[y_axis], index[x_axis] = ys, xs
        if chan_axis is not None:
            index[chan_axis] = slice(start, stop)
        data = np.asarray(self._hdu.section[tuple(index)], dtype=np.float32)
        kept = [a for a in (chan_axis, y_axis, x_axis) if a is not None]
        data = np.squeeze(data, axis=tuple(a for a in range(self._ndim) if a not in kept))
        order = [sorted(kept).index(a) for a in kept]
        data = np.transpose(data, order)
        return data if chan_axis is not None else data[np.newaxis]

    # -- common ---------------------------------------------------------------------------
    def _read(self, start: int, stop: int, ys: slice, xs: slice) -> np.ndarray:
        # dispatch here, not through a bound method kept on the instance: that would be a
        # reference cycle, and the planes a product holds would wait for the garbage collector
        reader = self._read_casa if self._format == "casa" else self._read_fits
        return reader(start, stop, ys, xs)

    def read(self, start: int, stop: int, window: tuple[slice, slice] | None = None
             ) -> np.ndarray:
        """Channels ``start:stop`` as float32 ``[chan, y, x]``, masked pixels NaN.

        ``window = (y_slice, x_slice)`` reads only that part of each plane; bounds are
        pixel indices clipped to the plane (negative means before the edge, not from the
        end; steps are not supported). A windowed read neither uses nor fills the cache of
        planes kept for the next block's halo.
        """
        start, stop = max(0, start), min(self.shape[0], stop)
        ny, nx = self.shape[1:]
        ys, xs = window if window is not None else (slice(0, ny), slice(0, nx))
        ys = slice(min(max(0, ys.start or 0), ny), max(0, min(ny, ny if ys.stop is None else ys.stop)))
        xs = slice(min(max(0, xs.start or 0), nx), max(0, min(nx, nx if xs.stop is None else xs.stop)))
        try:
            with self._lock:
                if window is not None:
                    return self._read(start, stop, ys, xs)
                return self._read_planes(start, stop, ys, xs)
        except (RuntimeError, OSError, ValueError) as exc:
            raise InputError(f"{self.path}: cannot read channels {start}-{stop - 1} "
                             f"({_first_line(exc)})") from None

    def _read_planes(self, start: int, stop: int, ys: slice, xs: slice) -> np.ndarray:
        """Whole planes, reusing the last ``HALO_CACHE`` planes of the previous read: a
        channel block's halo is the previous block's last channels, read only once."""
        head = np.empty((0,) + self.shape[1:], dtype=np.float32)
        if self._tail is not None:
            first, planes = self._tail
            if first <= start < first + len(planes):
                head = planes[start - first:min(stop - first, len(planes))]
        begin = start + len(head)
        data = (np.concatenate([head, self._read(begin, stop, ys, xs)]) if begin < stop
                else head.copy())
        keep = min(HALO_CACHE, len(data))
        self._tail = (stop - keep, data[len(data) - keep:].copy())
        return data

    @property
    def frequency(self) -> np.ndarray:
        """Frequency of every channel, Hz, shape ``(nchan,)``; NaN when unknown.

        A velocity axis is converted with the rest frequency and Doppler convention the
        product records; a tabular (non-linear) CASA axis gives its tabulated values.
        """
        if self._tabular is not None:
            return self._tabular.copy()
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
    def pixel_scale(self) -> float:
        """Pixel size in arcsec (geometric mean of the two axes)."""
        scales = [abs(s.to_value(u.arcsec)) for s in self.celestial.proj_plane_pixel_scales()]
        return float(np.sqrt(scales[0] * scales[1]))

    @property
    def pixels_per_beam(self) -> np.ndarray:
        """Restoring-beam area over pixel area, per channel, shape ``(nchan,)``."""
        area = self.beams.sr.to_value(u.arcsec ** 2)
        return np.asarray(area, dtype=float) / self.pixel_scale ** 2

    @property
    def beam_pixels(self) -> np.ndarray:
        """Restoring beam per channel: major FWHM (pixels), minor FWHM (pixels), PA (deg),
        shape ``(nchan, 3)``."""
        scale = self.pixel_scale
        return np.column_stack([self.beams.major.to_value(u.arcsec) / scale,
                                self.beams.minor.to_value(u.arcsec) / scale,
                                self.beams.pa.to_value(u.deg)])

    def read(self, kind: str, start: int, stop: int,
             window: tuple[slice, slice] | None = None) -> np.ndarray:
        """Channels ``start:stop`` of product ``kind`` as float32 ``[chan, y, x]``,
        optionally only ``window = (y_slice, x_slice)`` of each plane."""
        product = getattr(self, kind)
        if product is None:
            raise InputError(f"{self.name}: no {kind} product")
        return product.read(start, stop, window)

    def plane(self, kind: str, chan: int) -> np.ndarray:
        """One whole plane ``(ny, nx)`` of product ``kind``, read past the halo cache (for
        planes wanted at scattered channels: the psf, the mask, a candidate's model)."""
        return self.read(kind, chan, chan + 1, (slice(None), slice(None)))[0]

    @property
    def paths(self) -> dict[str, str]:
        """Absolute path of every product found, by kind."""
        return {k: str(getattr(self, k).path.absolute()) for k in PRODUCT_KINDS
                if getattr(self, k)}


def open_products(source: "str | Path | Products", *, image: str | Path | None = None,
                  model: str | Path | None = None, residual: str | Path | None = None,
                  psf: str | Path | None = None, pb: str | Path | None = None,
                  mask: str | Path | None = None) -> Products:
    """Find, open and check the products of one tclean run.

    Parameters
    ----------
    source : str, Path or Products
        An imagename prefix (``path/NAME`` with ``NAME.image`` beside it), any one
        product (``NAME.image``, ``NAME.model.tt0``, ``NAME.image.fits``, ...), or
        `Products` (returned unchanged).
    image, model, residual, psf, pb, mask : str or Path, optional
        Explicit paths; they take precedence over what the prefix finds.

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
    source = Path(source) if source is not None else None
    prefix, tt, ext = _split_name(source) if source is not None else (None, "", "")
    if source is not None and prefix is None:
        raise InputError(f"{source}: not found, and no {source}.image beside it")
    if source is not None and explicit["image"] is None and (source.exists() and
                                                             _kind_of(source) == "image"):
        explicit["image"] = source
    paths = {}
    for kind in PRODUCT_KINDS:
        given = explicit[kind]
        if given is not None:
            given = Path(given)
            _check_link(given)
            if not given.exists():
                raise InputError(f"{given}: {kind} product not found")
            paths[kind] = given
        elif prefix is not None:
            found = _find_sibling(prefix, kind, tt, ext)
            if found is not None:
                paths[kind] = found
    name = str(prefix) if prefix is not None else str(paths.get("image", "products"))
    for kind in REQUIRED:
        if kind not in paths:
            where = f"{prefix}.{kind}{tt}{ext}" if prefix is not None else kind
            raise InputError(f"{where}: {kind} product not found "
                             f"(give it with --{kind} PATH)")
    _check_distinct(paths)
    opened = {kind: Product(kind, path) for kind, path in paths.items()}
    _check_consistent(opened)
    products = Products(name=name, beams=_choose_beams(opened),
                        **{k: opened.get(k) for k in PRODUCT_KINDS})
    _check_size(products)
    if products.psf is not None:
        _check_psf(products.psf)
    return products


def find_images(sources: list[str | Path]) -> list[Path]:
    """The image product of every tclean run under ``sources``.

    Each source is a directory (searched recursively for ``*.image``, ``*.image.tt0``,
    ``*.image.fits`` and ``*.image.tt0.fits``), a glob pattern (``**`` allowed), or a
    product or prefix. One image per imagename prefix (a CASA image is preferred to its
    FITS export), sorted by path. In directories and glob patterns deconfetti's own outputs
    are skipped: repaired products (``NAME.deconfetti.image``) and anything inside a scan
    folder (``NAME.deconfetti/``).
    """
    import glob

    patterns = ("*.image", "*.image.tt0", "*.image.fits", "*.image.tt0.fits")
    found: list[Path] = []
    for source in sources:
        path = Path(source)
        _check_link(path)
        if path.is_dir() and _kind_of(path) is None:
            for pattern in patterns:
                found += [p for p in path.rglob(pattern) if not _is_output(p)]
        elif any(ch in str(source) for ch in "*?["):
            found += [Path(p) for p in glob.glob(str(source), recursive=True)
                      if _kind_of(Path(p)) == "image" and not _is_output(Path(p))]
        else:
            prefix, tt, ext = _split_name(path)
            if prefix is None:
                raise InputError(f"{source}: not found, and no {source}.image beside it")
            found.append(_find_sibling(prefix, "image", tt, ext))
    by_prefix: dict[Path, Path] = {}
    for image in sorted(set(found), key=lambda p: (str(p).endswith(".fits"), str(p))):
        by_prefix.setdefault(_split_name(image)[0], image)
    return sorted(by_prefix.values())


# -- helpers --------------------------------------------------------------------------------
def _is_output(path: Path) -> bool:
    """A repaired product (``NAME.deconfetti.<kind>``) or a path inside a scan folder."""
    return ".deconfetti." in path.name or any(part.endswith(".deconfetti")
                                              for part in path.parts[:-1])


def _kind_of(path: Path) -> str | None:
    match = _SUFFIX.match(path.name)
    return match["kind"].lower() if match else None


def _split_name(source: Path) -> tuple[Path | None, str, str]:
    """``NAME.image.tt0.fits`` -> (NAME, '.tt0', '.fits'); a bare prefix -> (prefix, '', '')."""
    match = _SUFFIX.match(source.name)
    _check_link(source)
    if match and source.exists():
        return source.with_name(match["prefix"]), match["tt"] or "", match["ext"] or ""
    for tt in ("", ".tt0"):
        for ext in ("", ".fits"):
            candidate = source.with_name(f"{source.name}.image{tt}{ext}")
            _check_link(candidate)
            if candidate.exists():
                return source, tt, ext
    return None, "", ""


def _find_sibling(prefix: Path, kind: str, tt: str, ext: str) -> Path | None:
    order = [(tt, ext)] + [(t, e) for t in ("", ".tt0") for e in ("", ".fits") if (t, e) != (tt, ext)]
    for t, e in order:
        candidate = prefix.with_name(f"{prefix.name}.{kind}{t}{e}")
        _check_link(candidate)
        if candidate.exists():
            return candidate
    return None


def _check_link(path: Path) -> None:
    """Refuse a symbolic link that leads nowhere (missing target or a loop); a link to a
    product is read like the product."""
    if not path.is_symlink():
        return
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{path}: symbolic link loop") from None
        raise InputError(f"{path}: symbolic link to a missing file "
                         f"({os.readlink(path)})") from None


def _check_distinct(paths: dict[str, Path]) -> None:
    """One file, one role: the same product given as two kinds is refused."""
    seen: dict[Path, str] = {}
    for kind, path in paths.items():
        key = path.resolve()
        if key in seen:
            raise InputError(f"{path}: given as both the {seen[key]} and the {kind}; each "
                             "product must be a different file")
        seen[key] = kind


def _check_stored(path: Path, shape: list[int] | tuple[int, ...], stored: int,
                  itemsize: int = 4) -> None:
    """Refuse a header that claims more pixels than the file can hold (nothing is
    allocated from a shape the data do not back)."""
    claimed = int(np.prod([int(n) for n in shape], dtype=np.float64)) * itemsize
    if claimed > stored:
        raise InputError(f"{path}: header claims {_fmt_bytes(claimed)} of data but the file "
                         f"holds {_fmt_bytes(stored)} (truncated or corrupt)")


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}"
        n /= 1000
    return f"{n} B"


def _warn_stokes(path: Path, count: int) -> None:
    warnings.warn(f"{path}: Stokes axis of length {count}; only the first plane "
                  "(normally I) is scanned", DeconfettiWarning, stacklevel=4)


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
        unit = opened[kind].unit.replace(" ", "").lower()
        if unit and not unit.endswith("/beam"):
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
    if image.shape[0] < 2 or not (image.wcs.has_spectral or image._tabular is not None):
        return
    values = image.frequency
    if image._tabular is None and not np.all(np.isfinite(values)):
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
            usable = _usable_beam(majors, minors)
            if not np.all(usable):
                bad = int(np.flatnonzero(~usable)[0])
                raise InputError(f"{opened[kind].path}: restoring beam of channel {bad} "
                                 "is zero or missing")
            return Beams(major=majors * u.arcsec, minor=minors * u.arcsec,
                         pa=np.array([b.pa.to_value(u.deg) for b in beams]) * u.deg)
    raise InputError(f"{opened['image'].path}: no restoring beam recorded "
                     "(expected BMAJ/BMIN/BPA or CASA restoringbeam)")


def _casa_header(direction: dict, spectral: dict | None) -> fits.Header:
    header = fits.Header()
    projection = str(direction.get("projection", "SIN")).strip() or "SIN"
    system = str(direction.get("system", "J2000")).upper()
    crval = np.asarray(direction["crval"], dtype=float)
    cdelt = np.asarray(direction["cdelt"], dtype=float)
    crpix = np.asarray(direction["crpix"], dtype=float)
    units = [str(x) for x in direction.get("units", ["rad", "rad"])]
    scale = [u.Unit(x).to(u.deg) for x in units]
    lon, lat = ("GLON-", "GLAT-") if system == "GALACTIC" else ("RA---", "DEC--")
    header["CTYPE1"], header["CTYPE2"] = lon + projection, lat + projection
    header["CRVAL1"], header["CRVAL2"] = crval[0] * scale[0], crval[1] * scale[1]
    header["CDELT1"], header["CDELT2"] = cdelt[0] * scale[0], cdelt[1] * scale[1]
    header["CRPIX1"], header["CRPIX2"] = crpix[0] + 1.0, crpix[1] + 1.0
    header["CUNIT1"] = header["CUNIT2"] = "deg"
    pc = np.asarray(direction.get("pc", np.eye(2)), dtype=float)
    if pc.shape == (2, 2) and not np.allclose(pc, np.eye(2)):
        for i in range(2):
            for j in range(2):
                header[f"PC{i + 1}_{j + 1}"] = pc[i, j]
    params = np.asarray(direction.get("projection_parameters", []), dtype=float)
    for m, value in enumerate(params[:2], start=1):
        if value:
            header[f"PV2_{m}"] = value
    if system in ("J2000", "FK5"):
        header["RADESYS"], header["EQUINOX"] = "FK5", 2000.0
    elif system == "ICRS":
        header["RADESYS"] = "ICRS"
    elif system == "B1950":
        header["RADESYS"], header["EQUINOX"] = "FK4", 1950.0
    if spectral is not None:
        wcs = spectral.get("wcs") or {  # a tabular axis: its linear approximation
            key: float(np.ravel(spectral.get("tabular", {}).get(key, [default]))[0])
            for key, default in (("crval", 0.0), ("cdelt", 1.0), ("crpix", 0.0))}
        header["CTYPE3"] = "FREQ"
        header["CRVAL3"] = float(wcs.get("crval", 0.0))
        header["CDELT3"] = float(wcs.get("cdelt", 1.0))
        header["CRPIX3"] = float(wcs.get("crpix", 0.0)) + 1.0
        header["CUNIT3"] = "Hz"
        frame = str(spectral.get("system", "LSRK")).upper()
        header["SPECSYS"] = {"LSRK": "LSRK", "BARY": "BARYCENT", "TOPO": "TOPOCENT",
                             "LSRD": "LSRD", "GEO": "GEOCENTR"}.get(frame, frame)
        rest = float(spectral.get("restfreq", 0.0) or 0.0)
        if rest > 0:
            header["RESTFRQ"] = rest
    return header


def _casa_tabular(spectral: dict, nchan: int, path: Path) -> np.ndarray | None:
    """Channel frequencies (Hz) of a tabular CASA spectral axis that is not linear, else
    None (the linear WCS describes the axis)."""
    table = spectral.get("tabular")
    if not isinstance(table, dict):
        return None
    pixels = np.asarray(table.get("pixelvalues", []), dtype=float)
    world = np.asarray(table.get("worldvalues", []), dtype=float)
    if len(pixels) < 2 or len(pixels) != len(world) or nchan < 3:
        return None
    try:
        world = world * u.Unit(str(spectral.get("unit", "Hz"))).to(u.Hz)
    except ValueError:
        raise InputError(f"{path}: spectral axis unit '{spectral.get('unit')}' is not a "
                         "frequency") from None
    frequency = np.interp(np.arange(nchan, dtype=float), pixels, world)
    linear = np.linspace(frequency[0], frequency[-1], nchan)
    step = abs(frequency[-1] - frequency[0]) / (nchan - 1)
    return None if np.allclose(frequency, linear, rtol=0, atol=1e-3 * step) else frequency


def _casa_beams(record: dict | None, nchan: int, path: Path) -> list[Beam] | None:
    if not record:
        return None
    if "major" in record:
        return [_casa_beam(record, path)] * nchan
    beams = []
    for chan in range(nchan):
        entry = record.get(f"*{chan}")
        if entry is None:
            raise InputError(f"{path}: per-channel beam of channel {chan} is missing")
        beams.append(_casa_beam(entry, path))
    return beams


def _casa_beam(entry: dict, path: Path) -> Beam:
    try:
        values = [float(entry[k]["value"]) * u.Unit(str(entry[k]["unit"]))
                  for k in ("major", "minor", "positionangle")]
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{path}: malformed restoring beam record") from None
    return _beam(*values, path)


def _usable_beam(major: np.ndarray | float, minor: np.ndarray | float) -> np.ndarray | bool:
    """Finite, positive axes with the minor not above the major (same unit)."""
    major, minor = np.asarray(major, dtype=float), np.asarray(minor, dtype=float)
    with np.errstate(invalid="ignore"):
        return (np.isfinite(major) & np.isfinite(minor) & (major > 0) & (minor > 0)
                & (minor <= major * (1 + 1e-6)))


def _beam(major: u.Quantity, minor: u.Quantity, pa: u.Quantity, path: Path) -> Beam:
    if not _usable_beam(major.value, minor.to_value(major.unit)):
        if np.isfinite(major.value) and np.isfinite(minor.value) and 0 < major < minor:
            raise InputError(f"{path}: restoring beam minor axis {minor} exceeds major {major}")
        raise InputError(f"{path}: restoring beam is zero or missing "
                         f"(major {major}, minor {minor})")
    return Beam(major=major, minor=minor, pa=pa)


def _fits_beams(hdul: fits.HDUList, header: fits.Header, nchan: int,
                path: Path) -> list[Beam] | None:
    table = next((h for h in hdul if isinstance(h, fits.BinTableHDU)
                  and str(h.header.get("EXTNAME", "")).upper() == "BEAMS"), None)
    if table is not None:
        _check_beam_table(table, path)
        try:
            beams = Beams.from_fits_bintable(table)
        except Exception as exc:  # radio-beam raises several kinds for malformed tables
            raise InputError(f"{path}: unreadable BEAMS table ({_first_line(exc)})") from None
        if len(beams) < nchan:
            raise InputError(f"{path}: BEAMS table has {len(beams)} rows for {nchan} channels")
        return [beams[i] for i in range(nchan)]
    if "BMAJ" in header and "BMIN" in header:
        beam = _beam(float(header["BMAJ"]) * u.deg, float(header["BMIN"]) * u.deg,
                     float(header.get("BPA", 0.0)) * u.deg, path)
        return [beam] * nchan
    return None


def _check_beam_table(table: fits.BinTableHDU, path: Path) -> None:
    """Name the first channel of a BEAMS table whose beam is zero, not finite or has its
    minor axis above its major."""
    names = [n.upper() for n in table.columns.names]
    if not {"BMAJ", "BMIN"} <= set(names):
        raise InputError(f"{path}: BEAMS table lacks the BMAJ and BMIN columns")
    major = np.asarray(table.data["BMAJ"], dtype=float)
    minor = np.asarray(table.data["BMIN"], dtype=float)
    chans = (np.asarray(table.data["CHAN"]) if "CHAN" in names else np.arange(len(major)))
    bad = ~_usable_beam(major, minor)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(f"{path}: restoring beam of channel {int(chans[row])} in the BEAMS "
                         f"table is not usable (major {major[row]}, minor {minor[row]})")


def _casa_storage(path: Path, chan_axis: int | None, ndim: int) -> tuple[int, bool]:
    """Channels per storage tile, and whether the image has a default pixel mask."""
    from casacore.tables import table

    depth, masked = 1, True
    try:
        with table(str(path), ack=False) as tab:
            masked = bool(tab.getkeywords().get("Image_defaultmask", ""))
            info = tab.getdminfo()
        for manager in info.values():
            for cube in manager.get("SPEC", {}).get("HYPERCUBES", {}).values():
                if chan_axis is not None:
                    depth = max(1, int(list(cube["TileShape"])[ndim - 1 - chan_axis]))
                break
    except (RuntimeError, KeyError, IndexError, TypeError):
        pass
    return depth, masked


def _to_chan_y_x(data: np.ndarray, axes: tuple) -> np.ndarray:
    chan_axis, stokes_axis, y_axis, x_axis = axes
    if stokes_axis is not None:
        data = data[(slice(None),) * stokes_axis + (0,)]  # a view, not a copy
        shift = lambda a: a - 1 if a is not None and a > stokes_axis else a  # noqa: E731
        chan_axis, y_axis, x_axis = shift(chan_axis), shift(y_axis), shift(x_axis)
    if chan_axis is None:
        return np.transpose(data, (y_axis, x_axis))[np.newaxis]
    return np.transpose(data, (chan_axis, y_axis, x_axis))


def _fmt_shape(shape: tuple) -> str:
    return "x".join(str(n) for n in shape) + " [chan, y, x]"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
