"""CASA image directories through python-casacore: a reader and a patcher."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from astropy import units as u
from astropy.io import fits
from radio_beam import Beam

from ..errors import InputError
from .base import check_stored, first_line, make_beam, to_chan_y_x, warn_stokes

__all__ = ["CasaImage", "CasaPatcher", "save_as_casa"]


class CasaImage:
    """One CASA image, opened for reading.

    Attributes
    ----------
    shape : (nchan, ny, nx)
    unit, object_name : str
    header : astropy.io.fits.Header
        Celestial and spectral WCS keywords in the FITS convention (1-based CRPIX).
    tabular : ndarray or None
        Channel frequencies (Hz) of a spectral axis that is tabular and not linear.
    beams : list of radio_beam.Beam or None
    tile_depth : int
        Channels per storage tile.
    axes : (spectral, stokes, y, x)
        Numpy axes of the stored array (None where absent); ``ndim`` its dimensions.
    """

    def __init__(self, path: Path):
        self.path = path
        try:
            from casacore.images import image
            self._image = image(str(path))
            shape = [int(n) for n in self._image.shape()]
            coords = self._image.coordinates().dict()
            info = self._image.imageinfo()
            self.unit = self._image.unit()
        except RuntimeError as exc:
            missing = _missing_part(path)
            if missing:
                raise InputError(f"{path}: virtual concatenation whose part {missing} is "
                                 "missing (imageconcat.json)") from None
            raise InputError(f"{path}: not a readable CASA image ({first_line(exc)})") from None
        axes = {}
        for key, value in coords.items():
            if isinstance(value, dict) and "_image_axes" in value:
                axes[re.sub(r"\d+$", "", key)] = (key, [int(a) for a in value["_image_axes"]])
        if "direction" not in axes:
            raise InputError(f"{path}: CASA image has no direction (RA/Dec) coordinate")
        direction_key, direction_axes = axes["direction"]
        y_axis, x_axis = sorted(direction_axes)
        spectral = axes.get("spectral")
        stokes = axes.get("stokes")
        self.axes = (spectral[1][0] if spectral else None,
                     stokes[1][0] if stokes else None, y_axis, x_axis)
        self.ndim = len(shape)
        nchan = shape[self.axes[0]] if spectral else 1
        self.shape = (nchan, shape[y_axis], shape[x_axis])
        self.header = _header(coords[direction_key], coords[spectral[0]] if spectral else None)
        self.tabular = _tabular(coords[spectral[0]], nchan, path) if spectral else None
        self.beams = _beams(info.get("restoringbeam") or info.get("perplanebeams"), nchan, path)
        self.object_name = str(info.get("objectname", ""))
        self.tile_depth, self._masked, self._pixels = _storage(path, self.axes[0], self.ndim)
        if not self.virtual:  # a virtual concatenation stores no pixels of its own
            check_stored(path, shape, sum(f.stat().st_size for f in path.glob("table.f*")))
        if stokes and shape[stokes[1][0]] > 1:
            warn_stokes(path, shape[stokes[1][0]])

    def read(self, start: int, stop: int, ys: slice, xs: slice,
             out: np.ndarray | None = None) -> np.ndarray:
        """Channels ``start:stop`` of the window ``(ys, xs)``, float32 ``[chan, y, x]``,
        masked pixels NaN: into ``out`` (a C-contiguous float32 array of that shape) when
        given, else a new array.

        The pixels are read through the image's table (``getcolslicenp`` on its one-row
        ``map`` column) straight into ``out``, about three times faster than
        ``image.getdata``, which builds a casacore array and converts it; an image that is
        not a plain paged table (a virtual concatenation, for one) is read through
        ``getdata``.
        """
        blc, trc = _corners(self._image.shape(), self.axes, start, stop - 1, ys, xs)
        shape = (stop - start, ys.stop - ys.start, xs.stop - xs.start)
        if out is None:
            out = np.empty(shape, dtype=np.float32)
        elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f"out must be C-contiguous float32 {shape}, not {out.dtype} "
                             f"{out.shape}")
        if self.virtual:
            out[...] = to_chan_y_x(np.asarray(self._image.getdata(blc, trc)), self.axes)
        else:
            native = [1] + [t - b + 1 for b, t in zip(blc, trc)]
            # stored as [chan, y, x] already: read into out itself (a view of its memory)
            data = out.reshape(native) if self._in_order else np.empty(native, np.float32)
            self._pixels.getcolslicenp("map", data, blc, trc, startrow=0, nrow=1)
            if not self._in_order:
                out[...] = to_chan_y_x(data[0], self.axes)
        if self._masked:
            out[to_chan_y_x(np.asarray(self._image.getmask(blc, trc)), self.axes)] = np.nan
        return out

    @property
    def _in_order(self) -> bool:
        """Whether a block's stored pixels are already ``[chan, y, x]`` in memory (the
        first Stokes plane alone is one plane thick wherever its axis lies)."""
        chan, _, y, x = self.axes
        present = [a for a in (chan, y, x) if a is not None]
        return present == sorted(present)

    @property
    def virtual(self) -> bool:
        """Whether the image keeps no pixels of its own (a virtual concatenation of
        images, ``imageconcat.json``, as tclean's parallel cube imaging may leave)."""
        return self._pixels is None

    def copy_to(self, target: Path) -> None:
        """Copy the image directory whole (headers, beams, masks as they are). A virtual
        image is written out as one paged image instead: a copy of its directory would
        name the original parts (or none, from elsewhere), and a patch would go there."""
        if self.virtual:
            self._image.saveas(str(target))
            return
        shutil.copytree(self.path, target, copy_function=shutil.copyfile)

    def patcher(self, copy: Path) -> "CasaPatcher":
        """A patcher of ``copy``, a copy of this image made by `copy_to`."""
        return CasaPatcher(copy, self.axes)


class CasaPatcher:
    """Adds planes to channels of a CASA image, in place."""

    def __init__(self, path: Path, axes: tuple):
        from casacore.images import image

        self._image = image(str(path))
        self._path = Path(path)
        self._axes = axes

    def add(self, chan: int, delta: np.ndarray) -> None:
        """Add ``delta`` (``(ny, nx)``, the image's unit) to channel ``chan``."""
        shape = self._image.shape()
        blc, trc = _corners(shape, self._axes, chan, chan, slice(0, shape[self._axes[2]]),
                            slice(0, shape[self._axes[3]]))
        native = np.asarray(self._image.getdata(blc, trc))
        to_chan_y_x(native, self._axes)[0] += delta.astype(native.dtype)
        self._image.putdata(native, blc)

    def note(self, text: str) -> None:
        """Add ``text`` to the image's history (its logtable, as CASA tasks do)."""
        from astropy.time import Time
        from casacore.tables import table

        with table(str(self._path / "logtable"), readonly=False, ack=False) as log:
            row = log.nrows()
            log.addrows(1)
            log.putcell("TIME", row, float(Time.now().mjd) * 86400.0)
            log.putcell("PRIORITY", row, "INFO")
            log.putcell("MESSAGE", row, text)
            log.putcell("LOCATION", row, "deconfetti")
            log.putcell("OBJECT_ID", row, "")

    def close(self) -> None:
        self._image.unlock()
        del self._image


def save_as_casa(source: Path, target: Path) -> None:
    """Write the image at ``source`` (CASA or FITS) as a CASA image directory ``target``."""
    if Path(source).is_dir():
        shutil.copytree(source, target, copy_function=shutil.copyfile)
        return
    from casacore.images import image

    opened = image(str(source))
    opened.saveas(str(target))
    del opened


def _corners(shape: list[int], axes: tuple, first: int, last: int, ys: slice,
             xs: slice) -> tuple[list[int], list[int]]:
    """casacore's bottom-left and top-right corners for channels ``first..last`` of a
    window, on the first Stokes plane."""
    chan_axis, stokes_axis, y_axis, x_axis = axes
    blc = [0] * len(shape)
    trc = [n - 1 for n in shape]
    if chan_axis is not None:
        blc[chan_axis], trc[chan_axis] = first, last
    blc[y_axis], trc[y_axis] = ys.start, ys.stop - 1
    blc[x_axis], trc[x_axis] = xs.start, xs.stop - 1
    if stokes_axis is not None:
        trc[stokes_axis] = 0
    return blc, trc


def _header(direction: dict, spectral: dict | None) -> fits.Header:
    """FITS WCS keywords of a CASA direction (and spectral) coordinate."""
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


def _tabular(spectral: dict, nchan: int, path: Path) -> np.ndarray | None:
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


def _beams(record: dict | None, nchan: int, path: Path) -> list[Beam] | None:
    if not record:
        return None
    if "major" in record:
        return [_beam(record, path)] * nchan
    beams = []
    for chan in range(nchan):
        entry = record.get(f"*{chan}")
        if entry is None:
            raise InputError(f"{path}: per-channel beam of channel {chan} is missing")
        beams.append(_beam(entry, path))
    return beams


def _beam(entry: dict, path: Path) -> Beam:
    try:
        values = [float(entry[k]["value"]) * u.Unit(str(entry[k]["unit"]))
                  for k in ("major", "minor", "positionangle")]
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{path}: malformed restoring beam record") from None
    return make_beam(*values, path)


def _missing_part(path: Path) -> str | None:
    """The first part named by a virtual concatenation's ``imageconcat.json`` that is
    neither inside ``path`` nor beside it, or None."""
    try:
        parts = json.loads((path / "imageconcat.json").read_text())["Images"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for part in parts:
        if not ((path / part).exists() or (path.parent / part).exists()):
            return str(part)
    return None


def _storage(path: Path, chan_axis: int | None, ndim: int) -> tuple[int, bool, Any]:
    """Channels per storage tile, whether the image has a default pixel mask, and its
    table opened for reading the pixels (None when the pixels are not one table cell)."""
    from casacore.tables import table

    depth, masked, pixels = 1, True, None
    try:
        tab = table(str(path), ack=False)
    except RuntimeError:
        return depth, masked, pixels
    try:
        masked = bool(tab.getkeywords().get("Image_defaultmask", ""))
        if "map" in tab.colnames() and tab.nrows() == 1:
            pixels = tab
        for manager in tab.getdminfo().values():
            for cube in manager.get("SPEC", {}).get("HYPERCUBES", {}).values():
                if chan_axis is not None:
                    depth = max(1, int(list(cube["TileShape"])[ndim - 1 - chan_axis]))
                break
    except (RuntimeError, KeyError, IndexError, TypeError):
        pass
    if pixels is None:
        tab.close()
    return depth, masked, pixels
