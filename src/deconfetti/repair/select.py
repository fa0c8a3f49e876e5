"""What a repair may remove at a confetti candidate: the channel's one-channel model
excess near it, less what belongs to real sources."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..features import disk, neighbour_contrast

__all__ = ["model_excess", "removable", "demanded_peaks"]

#: significance (channel sigma) of a dirty-image peak the repair holds the image at
HOLD_SNR = 5.0


def model_excess(model: np.ndarray, chan: int, skip: frozenset = frozenset()) -> np.ndarray:
    """One-channel excess of ``model[chan]``: the channel minus the mean of its adjacent
    channels (`deconfetti.features.neighbour_contrast`, the contrast the unsupported excess
    is measured with), Jy/pixel, shape ``(ny, nx)``. Adjacent channels in ``skip``
    (diverged ones) are left out.

    A component that the adjacent channels also hold (a real source, extended emission)
    is not in it; a component of this channel only is, with its sign.
    """
    sides = [model[k] for k in (chan - 1, chan + 1) if 0 <= k < len(model) and k not in skip]
    if not sides:
        raise InputError("a one-channel model has no adjacent channels to repair against")
    return neighbour_contrast(model[chan], sides)


def removable(excess: np.ndarray, protected: list[tuple[int, int]], keep: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """Bounds ``(lower, upper)`` of the model change ``D`` a repair may make, Jy/pixel,
    shape of ``excess`` (the one-channel model excess, finite): between 0 and the excess, and 0
    within ``keep`` pixels of each ``protected`` ``(y, x)`` (real sources)."""
    ny, nx = excess.shape
    yy, xx = np.ogrid[:ny, :nx]
    allowed = np.ones(excess.shape, dtype=bool)
    for py, px in protected:
        allowed &= np.hypot(yy - py, xx - px) > keep
    part = np.where(allowed, excess, 0.0)
    return np.minimum(part, 0.0), np.maximum(part, 0.0)


def demanded_peaks(dirty: np.ndarray, sigma: float, major: float,
                   sites: list[tuple[int, int]], away: float) -> np.ndarray:
    """Pixels within half a beam of each compact source the data demand: a local maximum
    of the ``dirty`` image (Jy/beam, ``(ny, nx)``) over a beam FWHM (``major``, pixels) of
    at least `HOLD_SNR` ``sigma``, farther than ``away`` pixels from every candidate
    ``(y, x)`` in ``sites``. A repair holds the image unchanged there, whether or not the
    scan classified the source (boolean plane)."""
    finite = np.where(np.isfinite(dirty), dirty, -np.inf)
    peak = ((finite == ndimage.maximum_filter(finite, footprint=disk(0.5 * major),
                                              mode="nearest"))
            & (finite >= HOLD_SNR * sigma))
    ys, xs = np.nonzero(peak)
    far = np.ones(len(ys), dtype=bool)
    for y, x in sites:
        far &= np.hypot(ys - y, xs - x) > away
    hold = np.zeros(dirty.shape, dtype=bool)
    hold[ys[far], xs[far]] = True
    return ndimage.binary_dilation(hold, structure=disk(0.5 * major))
