"""Products already in memory: astropy HDUs, ``(array, header or WCS)`` pairs and
spectral-cube ``SpectralCube`` objects enter as in-memory FITS, read by the FITS reader."""

from __future__ import annotations

import os

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.wcs import WCS

__all__ = ["ACCEPTED", "in_memory", "as_hdulist"]

#: what the input door takes, in words
ACCEPTED = ("a path (str or os.PathLike), an astropy HDU or HDUList, an (array, Header or "
            "WCS) pair, or a spectral_cube.SpectralCube")


def in_memory(source: object) -> bool:
    """Whether ``source`` is a product in memory rather than a path."""
    return not isinstance(source, (str, os.PathLike)) and source is not None


def as_hdulist(source: object, kind: str) -> fits.HDUList:
    """``source`` as an in-memory FITS ``HDUList`` (the data not copied where avoidable).

    - ``fits.HDUList``, ``fits.PrimaryHDU`` or ``fits.ImageHDU``: as they are;
    - a ``SpectralCube`` (or anything with its ``hdulist``, a BEAMS table included for
      a varying-resolution cube): its ``hdulist``, which computes its data;
    - ``(data, header)`` or ``(data, wcs)``: ``data`` a numpy array (or an astropy
      Quantity, whose unit becomes BUNIT) in FITS axis order, numpy ``[..., y, x]``;
      the header should give BUNIT and, for the image, the restoring beam (BMAJ, BMIN,
      BPA in degrees).

    Raises TypeError, naming ``kind`` and what is accepted, for anything else.
    """
    if isinstance(source, fits.HDUList):
        return source
    if isinstance(source, (fits.PrimaryHDU, fits.ImageHDU)):
        return fits.HDUList([fits.PrimaryHDU(source.data, source.header)])
    if hasattr(source, "hdulist") and hasattr(source, "spectral_axis"):
        return source.hdulist
    if isinstance(source, tuple) and len(source) == 2:
        data, meta = source
        if isinstance(meta, WCS):
            header = meta.to_header()
        elif isinstance(meta, fits.Header):
            header = meta.copy()
        else:
            raise TypeError(f"{kind}: the second item of the pair is a "
                            f"{type(meta).__name__}; give an astropy Header or WCS")
        if isinstance(data, u.Quantity):
            header["BUNIT"] = data.unit.to_string("fits")
            data = data.value
        return fits.HDUList([fits.PrimaryHDU(np.asarray(data), header)])
    raise TypeError(f"{kind}: a {type(source).__name__} is not a product; give {ACCEPTED}")
