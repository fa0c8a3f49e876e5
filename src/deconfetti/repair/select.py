"""What a repair removes at a confetti candidate: the channel's one-channel model excess,
its hot pixel, and the part of a point the data cannot see (`InvisiblePoints`)."""

from __future__ import annotations

from typing import Iterator

import numpy as np
from scipy import fft as sfft

from ..errors import InputError
from ..features import psf_peak

__all__ = ["model_excess", "hot_pixel", "InvisiblePoints", "EMPTY_LEVELS", "REFINE_LEVELS",
           "INVISIBLE_SHARE"]


def model_excess(model: np.ndarray, chan: int) -> np.ndarray:
    """One-channel excess of ``model[chan]`` over the median of channels chan-1..chan+1
    (of the one neighbour at a cube edge), Jy/pixel, shape ``(ny, nx)``.

    A component that the adjacent channels also hold (a real source, extended emission)
    is not in it; a component of this channel only is, with its sign.
    """
    lo, hi = max(0, chan - 1), min(len(model), chan + 2)
    if hi - lo < 2:
        raise InputError("a one-channel model has no adjacent channels to repair against")
    baseline = np.median(model[lo:hi], axis=0) if hi - lo == 3 else model[lo:hi].mean(axis=0)
    return model[chan] - baseline


def hot_pixel(excess: np.ndarray, y: int, x: int, radius: float) -> tuple[int, int]:
    """``(y, x)`` of the largest ``excess`` within ``radius`` pixels of ``(y, x)`` (the
    model pixel under an image peak, which may sit a pixel off it)."""
    reach = int(radius)
    ys = slice(max(0, y - reach), y + reach + 1)
    xs = slice(max(0, x - reach), x + reach + 1)
    yy, xx = np.ogrid[ys, xs]
    near = np.where(np.hypot(yy - y, xx - x) <= radius, excess[ys, xs], -np.inf)
    dy, dx = np.unravel_index(np.argmax(near), near.shape)
    return ys.start + int(dy), xs.start + int(dx)


#: levels L of |FFT psf| (relative to its peak): a uv cell of amplitude A counts as
#: unmeasured with weight max(0, 1 - A / L)
EMPTY_LEVELS = np.geomspace(0.004, 0.06, 14)
#: levels fitted between the two neighbours of the best of `EMPTY_LEVELS` (steps of 7 %:
#: the restored part of a point grows about as L)
REFINE_LEVELS = 5
#: an invisible point is removed only when its restored part makes at least this share
#: of the candidate's one-channel image spike (a real source's invisible part makes ~5 %)
INVISIBLE_SHARE = 0.5


class InvisiblePoints:
    """The part of a point component at each candidate of one channel that the data do
    not see: the point filtered to the uv cells the psf leaves unmeasured (weight
    ``max(0, 1 - |FFT psf| / L)`` for each level ``L`` of `EMPTY_LEVELS`, then
    `REFINE_LEVELS` more around the best), amplitudes fitted jointly to the channel's
    model excess. The soft weight keeps the barely measured cells, where a hard cut leaks
    most, nearly out of the removal.

    A bright model pixel whose bowl has power only in the unmeasured cells is invisible
    in the dirty image however far the bowl reaches, so no local cluster describes it.
    The projection is periodic (FFT over the plane); the data test of a removal uses the
    psf truncated at its extent, as everywhere else (`psf_convolve`).
    """

    def __init__(self, excess: np.ndarray, psf: np.ndarray, sites: list[tuple[int, int]]):
        self.sites = sites
        self.fits: list[tuple[float, float, np.ndarray]] = []  # (explained, level, amplitudes)
        if psf.shape != excess.shape or not np.any(excess):
            return
        py, px = psf_peak(psf)
        amplitude = np.abs(sfft.fft2(np.roll(psf, (-py, -px), axis=(0, 1))))
        self.amplitude = amplitude / amplitude.max()
        # a template's products with the excess and with the other templates are sums over
        # uv cells: the excess's spectrum and each site's phase ramp, per axis
        self._spectrum = sfft.fft2(excess)
        self._power = float(np.sum(excess ** 2))
        self._ramps = [tuple(np.exp(2j * np.pi * np.fft.fftfreq(n) * i)
                             for n, i in zip(excess.shape, site)) for site in sites]
        for level in EMPTY_LEVELS:
            self._fit(level)
        best = int(np.argmax([explained for explained, _, _ in self.fits]))
        lo, hi = EMPTY_LEVELS[max(0, best - 1)], EMPTY_LEVELS[min(len(EMPTY_LEVELS) - 1, best + 1)]
        for level in np.geomspace(lo, hi, REFINE_LEVELS + 2)[1:-1]:
            if not np.any(np.isclose(level, EMPTY_LEVELS)):
                self._fit(level)

    def _weight(self, level: float) -> np.ndarray:
        """How unmeasured each uv cell counts for ``level`` (0..1)."""
        return np.clip(1.0 - self.amplitude / level, 0.0, 1.0)

    def _fit(self, level: float) -> None:
        """Fit the points of ``level`` to the excess jointly, by least squares; keep
        (explained share of its power, level, amplitudes in Jy/pixel)."""
        weight = self._weight(level)
        cells = weight.size
        seen = weight * self._spectrum
        squared = weight ** 2
        along = np.array([np.real(ry @ seen @ rx) for ry, rx in self._ramps]) / cells
        cross = np.array([[np.real((ry * sy.conj()) @ squared @ (rx * sx.conj()))
                           for sy, sx in self._ramps] for ry, rx in self._ramps]) / cells
        amplitudes = np.linalg.lstsq(cross, along, rcond=None)[0]
        residue = self._power - 2 * amplitudes @ along + amplitudes @ cross @ amplitudes
        self.fits.append((1.0 - float(residue) / self._power, float(level), amplitudes))

    def parts(self, k: int) -> Iterator[np.ndarray]:
        """Candidate ``k``'s invisible point (whole plane, Jy/pixel) for each level, the
        level that best describes the excess first; none with a non-positive amplitude."""
        for _, level, amplitudes in sorted(self.fits, reverse=True):
            if amplitudes[k] > 0:
                point = sfft.irfft2(self._weight(level)[:, :self.amplitude.shape[1] // 2 + 1],
                                    self.amplitude.shape)
                yield amplitudes[k] * np.roll(point, self.sites[k], axis=(0, 1))


