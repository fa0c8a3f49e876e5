"""What a repair may remove at a confetti candidate: the channel's one-channel model
excess near it, less what belongs to real sources."""

from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["model_excess", "removable"]


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
