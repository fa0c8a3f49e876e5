"""Everything a candidate's figures show, read from the products around it.

Reads small windows (channel maps around the candidate, spectra of the 3x3 pixels around
it). The data test on the map window is the scan's own (kept in `ScanResult.contrast`);
without it, it is computed here from whole planes of the candidate's and the adjacent
channels (`deconfetti.datatest.contrast_map`, the catalog's test).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .features import spectral_contrast, zero_nan
from .datatest import Imprints, contrast_map, map_window
from .io.products import Products

__all__ = ["Cutout", "make_cutout", "sample_cutout", "spectral_axis"]


@dataclass
class Cutout:
    """Arrays around one candidate; maps are ``[chan, y, x]`` on the window.

    Attributes
    ----------
    row : dict
        The candidate's catalog row.
    channels : ndarray of int, shape (k,)
        Channels of the maps (up to 4 each side of the candidate's).
    origin : (y0, x0)
        Cube pixel of the maps' [0, 0].
    image, model, residual : ndarray, shape (k, h, w)
        Jy/beam, Jy/pixel, Jy/beam.
    spike, dirty_spike : ndarray, shape (h, w)
        One-channel contrast of the image and of the dirty image in the candidate's
        channel, Jy/beam (``dirty_spike`` NaN without a psf).
    spectral_channels : ndarray of int, shape (m,)
    spectra : dict of ndarray, shape (m, 3, 3)
        'image', 'residual' (Jy/beam) and 'model' times pixels per beam (Jy/beam) at the
        3x3 pixels around the candidate.
    spectral_axis : ndarray, shape (m,)
        Radio velocity (km/s) or frequency (GHz) of the spectral channels.
    spectral_unit : str
        'km/s' or 'GHz'.
    map_axis : ndarray, shape (k,)
        The same for the map channels.
    rms, spike_rms : float
        Of the candidate's channel, Jy/beam.
    beam : (major, minor, pa)
        FWHM in pixels, PA in degrees, of the candidate's channel.
    pixel_scale : float
        Arcsec per pixel.
    """

    row: dict[str, Any]
    channels: np.ndarray
    origin: tuple[int, int]
    image: np.ndarray
    model: np.ndarray
    residual: np.ndarray
    spike: np.ndarray
    dirty_spike: np.ndarray
    spectral_channels: np.ndarray
    spectra: dict[str, np.ndarray]
    spectral_axis: np.ndarray
    spectral_unit: str
    map_axis: np.ndarray
    rms: float
    spike_rms: float
    beam: tuple[float, float, float]
    pixel_scale: float


def make_cutout(products: Products, row: Any, *, half: int | None = None,
                spectral_half: int = 20, contrast: dict | None = None,
                diverged: frozenset = frozenset()) -> Cutout:
    """Read what the figures of one candidate need.

    Parameters
    ----------
    products : Products
    row : table row or dict
        Needs channel, x, y, rms and spike_rms.
    half : int, optional
        Half-size of the maps in pixels (default: 3 beam FWHM, at least 12).
    spectral_half : int
        Channels each side of the candidate's in the spectra.
    contrast : dict, optional
        The scan's data test maps (`ScanResult.contrast`): the candidate's is used on the
        default window; computed from the products where it is missing or ``half`` is
        given.
    diverged : frozenset of int
        Diverged channels (the scan's ``diverged_channels``): left out of the computed
        data test, as in the scan's.
    """
    row = {name: _plain(row[name]) for name in row.colnames} if hasattr(row, "colnames") \
        else dict(row)
    chan, y, x = int(row["channel"]), int(row["y"]), int(row["x"])
    nchan, ny, nx = products.shape
    beam = tuple(float(v) for v in products.beam_pixels[chan])
    window = map_window(y, x, beam[0], (ny, nx), half)
    c0, c1 = max(0, chan - 4), min(nchan, chan + 5)
    maps = {kind: products.read(kind, c0, c1, window) for kind in ("image", "model", "residual")}
    here = chan - c0
    spike = spectral_contrast(maps["image"], here)
    dirty_spike = np.full_like(spike, np.nan)
    kept = (contrast or {}).get((chan, y, x)) if half is None else None
    if kept is not None:
        dirty_spike = spike - kept
    elif products.psf is not None:
        dirty_spike = spike - _unsupported_contrast(products, chan, window, diverged)
    s0, s1 = max(0, chan - spectral_half), min(nchan, chan + spectral_half + 1)
    around = (slice(max(0, y - 1), y + 2), slice(max(0, x - 1), x + 2))
    spectra = {kind: _pad3(products.read(kind, s0, s1, around), y, x, ny, nx)
               for kind in ("image", "residual", "model")}
    spectra["model"] = spectra["model"] * products.pixels_per_beam[s0:s1, None, None]
    axis, unit = spectral_axis(products, np.arange(nchan))
    return Cutout(row=row, channels=np.arange(c0, c1), origin=(window[0].start, window[1].start),
                  image=maps["image"], model=maps["model"], residual=maps["residual"],
                  spike=spike, dirty_spike=dirty_spike, spectral_channels=np.arange(s0, s1),
                  spectra=spectra, spectral_axis=axis[s0:s1], spectral_unit=unit,
                  map_axis=axis[c0:c1], rms=float(row["rms"]),
                  spike_rms=float(row["spike_rms"]), beam=beam,
                  pixel_scale=products.pixel_scale)


def sample_cutout(products: Products, *, spectral_half: int = 20) -> Cutout:
    """A `Cutout` of noise with the products' geometry (beam, pixel scale, channels and
    spectral axis) at their central pixel and channel, read from no pixel: what laying out
    and first drawing the figures of their candidates needs (`deconfetti.drawing`)."""
    nchan, ny, nx = products.shape
    chan, y, x = nchan // 2, ny // 2, nx // 2
    beam = tuple(float(v) for v in products.beam_pixels[chan])
    window = map_window(y, x, beam[0], (ny, nx))
    c0, c1 = max(0, chan - 4), min(nchan, chan + 5)
    s0, s1 = max(0, chan - spectral_half), min(nchan, chan + spectral_half + 1)
    shape = (c1 - c0, window[0].stop - window[0].start, window[1].stop - window[1].start)
    noise = np.random.default_rng(0).standard_normal
    maps = {kind: noise(shape).astype(np.float32) for kind in ("image", "model", "residual")}
    spike = spectral_contrast(maps["image"], chan - c0)
    axis, unit = spectral_axis(products, np.arange(nchan))
    row = {"id": 0, "channel": chan, "y": y, "x": x, "rms": 1.0, "spike_rms": 1.0,
           "classification": "confetti", "spike_snr": 0.0, "dirty_snr": 0.0,
           "unsupported_snr": 0.0}
    return Cutout(row=row, channels=np.arange(c0, c1), origin=(window[0].start, window[1].start),
                  **maps, spike=spike, dirty_spike=0.5 * spike,
                  spectral_channels=np.arange(s0, s1),
                  spectra={kind: noise((s1 - s0, 3, 3)).astype(np.float32)
                           for kind in ("image", "residual", "model")},
                  spectral_axis=axis[s0:s1], spectral_unit=unit, map_axis=axis[c0:c1],
                  rms=1.0, spike_rms=1.0, beam=beam, pixel_scale=products.pixel_scale)


def _unsupported_contrast(products: Products, chan: int, window: tuple[slice, slice],
                          diverged: frozenset) -> np.ndarray:
    """The data test's one-channel contrast of ``image - dirty`` on the window, Jy/beam
    (whole planes of the channel and its neighbours: every component's sidelobes count)."""
    lo, hi = max(0, chan - 1), min(products.nchan, chan + 2)
    planes = {kind: {c - lo: products.plane(kind, c) for c in range(lo, hi)}
              for kind in ("image", "model", "residual", "psf")}
    for kind in ("model", "psf"):
        for plane in planes[kind].values():
            zero_nan(plane)
    skip = frozenset(c - lo for c in diverged if lo <= c < hi and c != chan)
    return contrast_map(chan - lo, window, skip, image=planes["image"],
                        residual=planes["residual"],
                        imprint=Imprints(planes["model"], planes["psf"]))


def _pad3(block: np.ndarray, y: int, x: int, ny: int, nx: int) -> np.ndarray:
    """Spectra of the 3x3 pixels around (y, x) as ``(m, 3, 3)``, NaN off the image."""
    out = np.full((len(block), 3, 3), np.nan, dtype=np.float32)
    y0, x0 = max(0, y - 1) - (y - 1), max(0, x - 1) - (x - 1)
    out[:, y0:y0 + block.shape[1], x0:x0 + block.shape[2]] = block
    return out


def spectral_axis(products: Products, channels: np.ndarray) -> tuple[np.ndarray, str]:
    """Radio velocity (km/s) of ``channels``, or frequency (GHz) without a rest frequency;
    returns the values and 'km/s' or 'GHz'."""
    if products.rest_frequency:
        return products.velocity[channels], "km/s"
    return products.frequency[channels] / 1e9, "GHz"


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
