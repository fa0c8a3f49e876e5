"""Per-channel thermal noise (rms) of the residual.

The residual holds under-cleaned extended emission in many channels, so its plain MAD
overestimates the noise (by up to 5x on the shared cases). The thermal noise is
correlated on the scale of the dirty beam while the emission left behind is broader, so
the estimate is a sigma-clipped MAD of the residual *high-passed* at a fraction of the
beam, divided by the fraction of noise power that survives the high-pass. That fraction
is computed from the psf (the noise autocorrelation for natural weighting) or, without
a psf, from the restoring beam.

The one-channel spike (a channel minus the mean of its neighbours) has a noise of its own:
sqrt(1.5) rms for independent channels, less where channels are correlated (Hanning
smoothing). It is measured directly, as the robust rms of the residual's spike map, in
which emission that varies slowly with frequency cancels.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

from .features import neighbour_contrast

__all__ = ["highpass_fraction", "highpass", "robust_rms", "channel_rms", "spike_rms"]


def highpass(plane: np.ndarray, valid: np.ndarray, width: float) -> np.ndarray:
    """``plane`` minus its Gaussian smoothing of sigma ``width`` pixels.

    Invalid pixels are left out of the smoothing (normalised convolution) and come out NaN.
    """
    filled = np.where(valid, plane, 0.0).astype(np.float32)
    weight = (_full_weight(valid.shape, width) if valid.all() else
              ndimage.gaussian_filter(valid.astype(np.float32), width, mode="constant"))
    smooth = ndimage.gaussian_filter(filled, width, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = plane - smooth / weight
    out[~valid | (weight < 0.5)] = np.nan
    return out


@functools.lru_cache(maxsize=16)
def _full_weight(shape: tuple[int, int], width: float) -> np.ndarray:
    """`highpass`' weight where every pixel is valid (the same for every tile of a
    shape: the smoothing's fall-off at the edges); read-only."""
    weight = ndimage.gaussian_filter(np.ones(shape, dtype=np.float32), width, mode="constant")
    weight.flags.writeable = False
    return weight


def highpass_fraction(width: float, *, psf: np.ndarray | None = None,
                      beam_sigma: tuple[float, float, float] | None = None,
                      shape: tuple[int, int] = (256, 256)) -> float:
    """Ratio rms(highpass(noise)) / rms(noise) for noise correlated like the psf.

    Parameters
    ----------
    width : float
        Sigma of the high-pass Gaussian, pixels.
    psf : ndarray, shape (ny, nx), optional
        One psf plane (peak 1); its Fourier transform is taken as the noise power spectrum.
    beam_sigma : (sigma_major, sigma_minor, pa_deg), optional
        Used instead of the psf when none is given: a Gaussian autocorrelation, pixels.
    shape : (ny, nx)
        Grid used with ``beam_sigma``.
    """
    if psf is not None:
        plane = np.nan_to_num(np.asarray(psf, dtype=np.float64))
        peak = np.unravel_index(np.argmax(plane), plane.shape)
        plane = np.roll(plane, (-peak[0], -peak[1]), axis=(0, 1))
        power = np.clip(np.fft.rfft2(plane).real, 0.0, None)
        ny, nx = plane.shape
        fy, fx = np.fft.fftfreq(ny)[:, None], np.fft.rfftfreq(nx)[None, :]
    else:
        ny, nx = shape
        fy, fx = np.fft.fftfreq(ny)[:, None], np.fft.rfftfreq(nx)[None, :]
        smaj, smin, pa = beam_sigma
        theta = np.radians(pa)
        # along the major axis (PA from north through east: -x, +y in pixel terms)
        f_major = -fx * np.sin(theta) + fy * np.cos(theta)
        f_minor = fx * np.cos(theta) + fy * np.sin(theta)
        power = np.exp(-2 * np.pi ** 2 * (smaj ** 2 * f_major ** 2 + smin ** 2 * f_minor ** 2))
    keep = 1.0 - np.exp(-2 * np.pi ** 2 * width ** 2 * (fx ** 2 + fy ** 2))
    # rfft halves: count the non-edge columns twice
    counts = np.full(power.shape[1], 2.0)
    counts[0] = 1.0
    if nx % 2 == 0:
        counts[-1] = 1.0
    total = np.sum(power * counts)
    if total <= 0:
        return 1.0
    return float(np.sqrt(np.sum(power * keep ** 2 * counts) / total))


def robust_rms(values: np.ndarray, *, clip: float = 3.0, max_samples: int = 250_000) -> float:
    """Sigma-clipped MAD x 1.4826 of the finite ``values`` (NaN when fewer than 20).

    The values are sorted once: each clip keeps a contiguous run of them, whose median is
    its middle and whose MAD is the middle of two sorted runs (those below and those from
    the median), so no pass partitions the values again (the same numbers as
    ``np.median`` over the clipped values, in a fraction of the time).
    """
    values = np.ravel(values)
    values = values[np.isfinite(values)]
    if values.size > max_samples:
        values = values[:: int(np.ceil(values.size / max_samples))]
    if values.size < 20:
        return float("nan")
    # sorted in the values' own precision (float32 sorts in half the time), then widened:
    # a monotone conversion, so the same sorted float64 values
    values = np.sort(values).astype(np.float64, copy=False)  # subsampled: not a whole plane
    lo, hi, count = 0, values.size, -1
    while hi - lo != count and hi - lo >= 20:
        count = hi - lo
        kept = values[lo:hi]
        offsets = kept - _sorted_median(kept, kept[:0])  # ascending
        below = int(np.searchsorted(offsets, 0.0))
        rms = 1.4826 * _sorted_median(-offsets[:below][::-1], offsets[below:])
        if rms == 0:
            break
        lo, hi = (lo + int(np.searchsorted(offsets, -clip * rms, "right")),
                  lo + int(np.searchsorted(offsets, clip * rms, "left")))
    return float(rms)


def _sorted_median(a: np.ndarray, b: np.ndarray) -> float:
    """``np.median`` of the union of the ascending arrays ``a`` and ``b``."""
    n = len(a) + len(b)
    middle = [_kth_smallest(a, b, k) for k in ((n // 2,) if n % 2 else (n // 2 - 1, n // 2))]
    return float(np.mean(middle))


def _kth_smallest(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """The ``k``-th (0-based) smallest of the union of the ascending arrays ``a`` and ``b``:
    a bisection for how many of the ``k + 1`` smallest come from ``a``."""
    lo, hi = max(0, k + 1 - len(b)), min(k + 1, len(a))
    while lo < hi:
        i = (lo + hi) // 2
        if a[i] < b[k - i]:
            lo = i + 1
        else:
            hi = i
    return max(([a[lo - 1]] if lo > 0 else []) + ([b[k - lo]] if k - lo >= 0 else []))


def channel_rms(residual: np.ndarray, valid: np.ndarray, *, width: float, fraction: float,
                clip: float = 3.0, max_samples: int = 250_000) -> np.ndarray:
    """Thermal noise of each channel of a residual block.

    Parameters
    ----------
    residual : ndarray, shape (nchan, ny, nx)
        Residual, Jy/beam.
    valid : ndarray of bool, shape (nchan, ny, nx)
        Pixels to use (finite, inside the primary-beam limit).
    width : float
        High-pass sigma, pixels.
    fraction : float
        `highpass_fraction` for this cube.

    Returns
    -------
    rms : ndarray, shape (nchan,)
        Jy/beam; NaN for channels with too few valid pixels.

    Notes
    -----
    Planes larger than ``4 * max_samples`` pixels are high-passed on a regular grid of
    square tiles (each with a margin of 4 ``width``) that together hold about
    ``max_samples`` pixels, spread over the whole plane, instead of the whole plane.
    """
    out = np.full(residual.shape[0], np.nan)
    tiles = _tiles(residual.shape[1:], width, max_samples)
    for i, (plane, ok) in enumerate(zip(residual, valid)):
        if np.count_nonzero(ok) < 20:
            continue
        values = [highpass(plane[outer], ok[outer], width)[inner] for outer, inner in tiles]
        out[i] = robust_rms(np.concatenate([v.ravel() for v in values]), clip=clip,
                            max_samples=max_samples) / fraction
    return out


def _tiles(shape: tuple[int, int], width: float, max_samples: int
           ) -> list[tuple[tuple[slice, slice], tuple[slice, slice]]]:
    """(outer window, inner window relative to it) pairs covering the plane sparsely."""
    ny, nx = shape
    if ny * nx <= 4 * max_samples:
        return [((slice(0, ny), slice(0, nx)), (slice(None), slice(None)))]
    side = 128
    count = max(1, int(np.ceil(np.sqrt(max_samples / side ** 2))))
    margin = int(np.ceil(4 * width))
    pairs = []
    for cy in np.linspace(0, ny - side, count + 2)[1:-1].astype(int):
        for cx in np.linspace(0, nx - side, count + 2)[1:-1].astype(int):
            y0, x0 = max(0, cy - margin), max(0, cx - margin)
            y1, x1 = min(ny, cy + side + margin), min(nx, cx + side + margin)
            pairs.append(((slice(y0, y1), slice(x0, x1)),
                          (slice(cy - y0, cy - y0 + side), slice(cx - x0, cx - x0 + side))))
    return pairs


def spike_rms(residual: np.ndarray, valid: np.ndarray, core: slice, *, clip: float = 3.0,
              max_samples: int = 250_000) -> np.ndarray:
    """Noise of the one-channel spike of each core channel.

    Parameters
    ----------
    residual : ndarray, shape (nread, ny, nx)
        Residual block with its halo, Jy/beam.
    valid : ndarray of bool, shape (nread, ny, nx)
    core : slice
        The core channels within the block.

    Returns
    -------
    ndarray, shape (ncore,)
        Jy/beam; NaN for channels with too few valid pixels, or without neighbours
        (a one-plane product has no spike; use `channel_rms` there).

    Notes
    -----
    Planes larger than ``max_samples`` pixels are measured on a regular grid, every
    ``ceil(sqrt(npix / max_samples))``-th row and column, which reads a fraction of the
    plane instead of all of it.
    """
    out = np.full(core.stop - core.start, np.nan)
    if len(residual) < 2:
        return out
    ny, nx = residual.shape[1:]
    step = max(1, int(np.ceil(np.sqrt(ny * nx / max_samples))))
    grid = (slice(None, None, step),) * 2
    for i, c in enumerate(range(core.start, core.stop)):
        sides = [n for n in (c - 1, c + 1) if 0 <= n < len(residual)]
        ok = valid[c][grid].copy()
        for n in sides:
            ok &= valid[n][grid]
        if np.count_nonzero(ok) >= 20:
            spike = neighbour_contrast(residual[c][grid], [residual[n][grid] for n in sides])
            out[i] = robust_rms(spike[ok], clip=clip, max_samples=max_samples)
    return out
