"""FITS files through astropy: a reader (memory-mapped, lazy sections) and a patcher."""

from __future__ import annotations

import math
import shutil
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import wcs_to_celestial_frame
from radio_beam import Beam, Beams

from ..errors import InputError
from .base import check_stored, first_line, make_beam, to_chan_y_x, usable_beam, warn_stokes

__all__ = ["FitsImage", "FitsPatcher"]


class FitsImage:
    """One FITS image product, opened for reading; attributes as `CasaImage`'s
    (``tabular`` is always None, ``tile_depth`` 1)."""

    tabular = None
    tile_depth = 1
    virtual = False

    def __init__(self, path: Path, hdul: fits.HDUList | None = None):
        self.path = path
        self.in_memory = hdul is not None  # ``path`` then only names it in messages
        try:
            self._hdul = hdul if hdul is not None else fits.open(path, memmap=True,
                                                                 lazy_load_hdus=False)
        except (OSError, ValueError, TypeError) as exc:
            raise InputError(f"{path}: not a readable FITS file ({first_line(exc)})") from None
        hdus = _image_hdus(self._hdul)
        if not hdus:
            raise InputError(f"{path}: FITS file holds no image data")
        if len(hdus) > 1:
            where = ", ".join(str(self._hdul.index(h)) for h in hdus)
            raise InputError(f"{path}: FITS file holds {len(hdus)} images (HDUs {where}); "
                             "give each product as a file of its own")
        self._hdu = hdus[0]
        header = self._hdu.header
        _check_numbers(header, path)
        self.integer = header.get("BITPIX", -32) > 0
        if (self.integer and not self.in_memory
                and any(k in header for k in ("BSCALE", "BZERO", "BLANK"))):
            # scaled integers cannot be memory-mapped; sections still read lazily
            self._hdul.close()
            self._hdul = fits.open(path, memmap=False, lazy_load_hdus=False)
            self._hdu = _image_hdus(self._hdul)[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                wcs = WCS(header)
            except Exception as exc:  # astropy raises many kinds for bad WCS keywords
                raise InputError(f"{path}: invalid WCS ({first_line(exc)})") from None
        if wcs.wcs.lng < 0 or wcs.wcs.lat < 0:
            raise InputError(f"{path}: FITS header has no celestial (RA/Dec) WCS")
        try:
            wcs_to_celestial_frame(wcs)
        except ValueError:
            raise InputError(f"{path}: celestial frame not understood (RADESYS = "
                             f"{header.get('RADESYS')!r}, EQUINOX = "
                             f"{header.get('EQUINOX')!r})") from None
        ndim = header["NAXIS"]
        ctypes = [c.upper() for c in wcs.wcs.ctype]
        spec = wcs.wcs.spec if wcs.wcs.spec >= 0 else None
        stokes = next((i for i, c in enumerate(ctypes) if c.startswith("STOKES")), None)
        to_numpy = lambda i: None if i is None else ndim - 1 - i  # noqa: E731
        self.axes = (to_numpy(spec), to_numpy(stokes), to_numpy(wcs.wcs.lat),
                     to_numpy(wcs.wcs.lng))
        self.ndim = ndim
        dims = self._hdu.shape
        others = [a for a in range(ndim) if a not in self.axes]
        if any(dims[a] != 1 for a in others):
            raise InputError(f"{path}: unexpected extra axis of length > 1 "
                             f"(CTYPE {', '.join(ctypes)})")
        nchan = dims[self.axes[0]] if spec is not None else 1
        self.shape = (nchan, dims[self.axes[2]], dims[self.axes[3]])
        info = self._hdu.fileinfo()
        if info is not None and not header.get("ZIMAGE", False):
            check_stored(path, dims, path.stat().st_size - info["datLoc"],
                         abs(header.get("BITPIX", -32)) // 8)
        if stokes is not None and dims[self.axes[1]] > 1:
            warn_stokes(path, dims[self.axes[1]])
        keep = [wcs.wcs.lng + 1, wcs.wcs.lat + 1] + ([spec + 1] if spec is not None else [])
        self.header = wcs.sub(keep).to_header()
        for key in ("RESTFRQ", "RESTFREQ"):
            if key in header and "RESTFRQ" not in self.header:
                self.header["RESTFRQ"] = header[key]
        self.unit = str(header.get("BUNIT", "")).strip()
        self.object_name = str(header.get("OBJECT", ""))
        self.beams = _beams(self._hdul, header, nchan, path)

    def read(self, start: int, stop: int, ys: slice, xs: slice,
             out: np.ndarray | None = None) -> np.ndarray:
        """Channels ``start:stop`` of the window ``(ys, xs)``, float32 ``[chan, y, x]``: a
        new array, never a view of the product's own data, or copied into ``out`` (an
        array of that shape) when given."""
        chan_axis, stokes_axis, y_axis, x_axis = self.axes
        index = [slice(0, 1)] * self.ndim
        index[y_axis], index[x_axis] = ys, xs
        if chan_axis is not None:
            index[chan_axis] = slice(start, stop)
        source = self._hdu.data if self.in_memory else self._hdu.section  # lazy on disk
        data = source[tuple(index)]
        data = np.array(data, dtype=np.float32) if self.in_memory else np.asarray(
            data, dtype=np.float32)
        kept = [a for a in (chan_axis, y_axis, x_axis) if a is not None]
        data = np.squeeze(data, axis=tuple(a for a in range(self.ndim) if a not in kept))
        order = [sorted(kept).index(a) for a in kept]
        data = np.transpose(data, order)
        data = data if chan_axis is not None else data[np.newaxis]
        if out is None:
            return data
        out[...] = data
        return out

    def copy_to(self, target: Path) -> None:
        """Copy the file as it is; integer data cannot take a repair."""
        if self.in_memory:
            raise InputError(f"{self.path}: a product in memory cannot be repaired; write it "
                             "to a FITS file (or use the CASA image) first")
        if self.integer:
            raise InputError(f"{self.path}: integer FITS data cannot be repaired; "
                             "convert it to floating point first")
        shutil.copyfile(self.path, target)

    def patcher(self, copy: Path) -> "FitsPatcher":
        """A patcher of ``copy``, a copy of this file made by `copy_to`."""
        return FitsPatcher(copy, self.axes, self.ndim)


class FitsPatcher:
    """Adds planes to channels of a FITS image, in place through a memory map."""

    def __init__(self, path: Path, axes: tuple, ndim: int):
        self._hdul = fits.open(path, mode="update", memmap=True)
        self._hdu = _image_hdus(self._hdul)[0]
        self._axes, self._ndim = axes, ndim

    def add(self, chan: int, delta: np.ndarray) -> None:
        """Add ``delta`` (``(ny, nx)``, the image's unit) to channel ``chan``."""
        index = [slice(0, 1)] * self._ndim
        index[self._axes[2]] = index[self._axes[3]] = slice(None)
        if self._axes[0] is not None:
            index[self._axes[0]] = slice(chan, chan + 1)
        native = self._hdu.data[tuple(index)]
        to_chan_y_x(native, self._axes)[0] += delta.astype(native.dtype)

    def note(self, text: str) -> None:
        """Add ``text`` to the header as HISTORY cards."""
        self._hdu.header.add_history(text)

    def close(self) -> None:
        self._hdul.close()


def _image_hdus(hdul: fits.HDUList) -> list:
    return [h for h in hdul if h.is_image and h.header.get("NAXIS", 0) >= 2]


def _check_numbers(header: fits.Header, path: Path) -> None:
    """The WCS numbers of every axis, and the rest frequency, must be finite numbers; an
    axis of more than one pixel needs a non-zero increment."""
    for i in range(1, header["NAXIS"] + 1):
        for key in (f"CDELT{i}", f"CRVAL{i}", f"CRPIX{i}"):
            _check_number(header, key, path)
        if header.get(f"CDELT{i}", 1.0) == 0 and header.get(f"NAXIS{i}", 1) > 1:
            raise InputError(f"{path}: axis {header.get(f'CTYPE{i}', i)} has "
                             f"CDELT{i} = 0 (the axis is not monotonic)")
    for key in ("RESTFRQ", "RESTFREQ"):
        _check_number(header, key, path)


def _check_number(header: fits.Header, key: str, path: Path) -> None:
    value = header.get(key, 1.0)
    if not isinstance(value, (int, float)) or isinstance(value, bool) \
            or not math.isfinite(value):
        raise InputError(f"{path}: {key} = {value!r} is not a finite number")


def _beams(hdul: fits.HDUList, header: fits.Header, nchan: int,
           path: Path) -> list[Beam] | None:
    """Restoring beams from a BEAMS table, else from BMAJ/BMIN/BPA, else None."""
    table = next((h for h in hdul if isinstance(h, fits.BinTableHDU)
                  and str(h.header.get("EXTNAME", "")).upper() == "BEAMS"), None)
    if table is not None:
        _check_beam_table(table, path)
        try:
            beams = Beams.from_fits_bintable(table)
        except Exception as exc:  # radio-beam raises several kinds for malformed tables
            raise InputError(f"{path}: unreadable BEAMS table ({first_line(exc)})") from None
        if len(beams) < nchan:
            raise InputError(f"{path}: BEAMS table has {len(beams)} rows for {nchan} channels")
        return [beams[i] for i in range(nchan)]
    if "BMAJ" in header and "BMIN" in header:
        beam = make_beam(float(header["BMAJ"]) * u.deg, float(header["BMIN"]) * u.deg,
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
    bad = ~usable_beam(major, minor)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(f"{path}: restoring beam of channel {int(chans[row])} in the BEAMS "
                         f"table is not usable (major {major[row]}, minor {minor[row]})")
