"""What the format readers share: the conversion to ``[chan, y, x]``, the checks of the
stored size and of restoring beams, and one-line error text."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from radio_beam import Beam

from ..errors import DeconfettiWarning, InputError

__all__ = ["to_chan_y_x", "check_stored", "usable_beam", "make_beam", "warn_stokes",
           "first_line"]


def to_chan_y_x(data: np.ndarray, axes: tuple) -> np.ndarray:
    """A view of ``data`` as ``[chan, y, x]``; ``axes`` are the numpy axes of (spectral or
    None, Stokes or None, y, x); the first Stokes plane is taken."""
    chan_axis, stokes_axis, y_axis, x_axis = axes
    if stokes_axis is not None:
        data = data[(slice(None),) * stokes_axis + (0,)]  # a view, not a copy
        shift = lambda a: a - 1 if a is not None and a > stokes_axis else a  # noqa: E731
        chan_axis, y_axis, x_axis = shift(chan_axis), shift(y_axis), shift(x_axis)
    if chan_axis is None:
        return np.transpose(data, (y_axis, x_axis))[np.newaxis]
    return np.transpose(data, (chan_axis, y_axis, x_axis))


def check_stored(path: Path, shape: list[int] | tuple[int, ...], stored: int,
                 itemsize: int = 4) -> None:
    """Refuse a header that claims more pixels than the file can hold (nothing is
    allocated from a shape the data do not back)."""
    claimed = int(np.prod([int(n) for n in shape], dtype=np.float64)) * itemsize
    if claimed > stored:
        raise InputError(f"{path}: header claims {_fmt_bytes(claimed)} of data but the file "
                         f"holds {_fmt_bytes(stored)} (truncated or corrupt)")


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}"
        n /= 1000
    return f"{n:.0f} TB"


def usable_beam(major: np.ndarray | float, minor: np.ndarray | float) -> np.ndarray | bool:
    """Finite, positive axes with the minor not above the major (same unit)."""
    major, minor = np.asarray(major, dtype=float), np.asarray(minor, dtype=float)
    with np.errstate(invalid="ignore"):
        return (np.isfinite(major) & np.isfinite(minor) & (major > 0) & (minor > 0)
                & (minor <= major * (1 + 1e-6)))


def make_beam(major: u.Quantity, minor: u.Quantity, pa: u.Quantity, path: Path) -> Beam:
    """A restoring beam, or an `InputError` naming ``path`` if it is not usable."""
    if not usable_beam(major.value, minor.to_value(major.unit)):
        if np.isfinite(major.value) and np.isfinite(minor.value) and 0 < major < minor:
            raise InputError(f"{path}: restoring beam minor axis {minor} exceeds major {major}")
        raise InputError(f"{path}: restoring beam is zero or missing "
                         f"(major {major}, minor {minor})")
    return Beam(major=major, minor=minor, pa=pa)


def warn_stokes(path: Path, count: int) -> None:
    warnings.warn(f"{path}: Stokes axis of length {count}; only the first plane "
                  "(normally I) is scanned", DeconfettiWarning, stacklevel=5)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type's name)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
