"""Measure each candidate in the image, model and residual (the data test is
`deconfetti.datatest`)."""

from __future__ import annotations

import numpy as np

from .features import contrast_at, disk, gaussian_beam

__all__ = ["measure_candidates"]


def measure_candidates(chan: np.ndarray, ys: np.ndarray, xs: np.ndarray, *,
                       image: np.ndarray, model: np.ndarray, residual: np.ndarray,
                       rms: np.ndarray, spike_rms: np.ndarray, pixels_per_beam: np.ndarray,
                       beam: np.ndarray, bowl_beams: float,
                       skip: frozenset = frozenset()) -> dict[str, np.ndarray]:
    """Image, model and residual measurements of candidates in one block.

    Parameters
    ----------
    chan, ys, xs : ndarray of int, shape (n,)
        Candidate channel (index into the block read, halo included) and pixel.
    image, residual : ndarray, shape (nread, ny, nx)
        Jy/beam.
    model : ndarray, shape (nread, ny, nx)
        Jy/pixel.
    rms, spike_rms, pixels_per_beam : ndarray, shape (nread,)
        Channel rms and spike noise (Jy/beam), beam area in pixels.
    beam : ndarray, shape (nread, 3)
        Restoring beam per channel: major and minor FWHM (pixels), PA (deg).
    bowl_beams : float
        Radius within which negative model flux is summed, beam FWHM.
    skip : frozenset of int
        Block channels left out of every channel contrast (diverged ones).

    Returns
    -------
    dict of ndarray, shape (n,)
        ``rms``, ``spike_rms`` (Jy/beam), ``image_peak`` (Jy/beam), ``image_snr``,
        ``spike_snr`` (in spike_rms), ``residual_snr``, ``model_peak`` (Jy/pixel), ``model_peak_beam`` (Jy/beam),
        ``negative_flux`` (Jy), ``component_snr`` (the clean beam (*) the model within one
        beam FWHM of the candidate, at it, in rms: what a compact component there restores).
    """
    sigma = rms[chan]
    out = {
        "rms": sigma,
        "spike_rms": spike_rms[chan],
        "image_peak": image[chan, ys, xs].astype(np.float64),
        "spike_snr": contrast_at(image, chan, ys, xs, skip) / spike_rms[chan],
        "residual_snr": residual[chan, ys, xs] / sigma,
    }
    out["image_snr"] = out["image_peak"] / sigma
    peak = np.zeros(len(chan))
    bowl = np.zeros(len(chan))
    component = np.zeros(len(chan))
    for i, (c, y, x) in enumerate(zip(chan, ys, xs)):
        major = beam[c, 0]
        peak[i] = _window_reduce(model[c], y, x, 0.5 * major, np.nanmax)
        bowl[i] = _window_reduce(np.minimum(model[c], 0.0), y, x, bowl_beams * major,
                                 np.nansum)
        reach = int(np.ceil(major))
        wy, wx = np.mgrid[max(0, y - reach):y + reach + 1, max(0, x - reach):x + reach + 1]
        inside = ((wy < model.shape[1]) & (wx < model.shape[2])
                  & (np.hypot(wy - y, wx - x) <= major))
        wy, wx = wy[inside], wx[inside]
        values = np.nan_to_num(model[c, wy, wx].astype(np.float64))
        component[i] = float(gaussian_beam(wy - y, wx - x, *beam[c]) @ values)
    out["model_peak"] = peak
    out["model_peak_beam"] = peak * pixels_per_beam[chan]
    out["negative_flux"] = bowl
    out["component_snr"] = component / sigma
    return out


def _window_reduce(plane: np.ndarray, y: int, x: int, radius: float, reduce) -> float:
    footprint = disk(radius)
    half = footprint.shape[0] // 2
    y0, y1 = max(0, y - half), min(plane.shape[0], y + half + 1)
    x0, x1 = max(0, x - half), min(plane.shape[1], x + half + 1)
    window = plane[y0:y1, x0:x1]
    mask = footprint[y0 - (y - half):y1 - (y - half), x0 - (x - half):x1 - (x - half)]
    values = window[mask]
    values = values[np.isfinite(values)]
    return float(reduce(values)) if values.size else float("nan")
