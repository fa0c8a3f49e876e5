"""Catalog -> region shapes for DS9 and CASA/CARTA (CRTF), via the regions package."""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table
from regions import CircleSkyRegion, RegionMeta, Regions, RegionVisual

from ..catalog import spectral_label
from ..classify import CLASSES

__all__ = ["candidate_regions"]


def candidate_regions(catalog: Table, radius: np.ndarray) -> Regions:
    """One circle per candidate, coloured by classification.

    Parameters
    ----------
    catalog : Table
        Candidates (needs id, ra, dec, channel, frequency, velocity, classification).
    radius : ndarray, shape (n,)
        Circle radius of each candidate, arcsec (half the beam major FWHM is usual).

    Returns
    -------
    regions.Regions
        Each region's text is ``"<id> <class> ch <channel> <velocity> km/s"`` (the
        frequency in GHz without a rest frequency); its spectral ``range`` is the
        candidate's channel frequency (read by CASA and CARTA from CRTF).
    """
    shapes = []
    for row, r in zip(catalog, np.asarray(radius, dtype=float)):
        text = (f"{int(row['id'])} {row['classification']} ch {int(row['channel'])} "
                f"{spectral_label(row)}")
        meta = {"text": text, "label": text}
        if np.isfinite(row["frequency"]):
            meta["range"] = [float(row["frequency"]) * u.Hz] * 2
        shapes.append(CircleSkyRegion(
            center=SkyCoord(float(row["ra"]), float(row["dec"]), unit="deg", frame="icrs"),
            radius=float(r) * u.arcsec, meta=RegionMeta(meta),
            visual=RegionVisual({"color": CLASSES[str(row["classification"])][0]})))
    return Regions(shapes)
