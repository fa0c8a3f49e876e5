"""The candidate catalog: its columns (name, type, unit, description) in one place.

Pixel positions are 0-based numpy ``[chan, y, x]`` (x = RA/column, y = Dec/row).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from astropy.table import Table

from .io.products import Products
from .tables import Column, make_table, stamp

__all__ = ["COLUMNS", "empty_catalog", "make_catalog", "spectral_label"]

#: the catalog's columns
COLUMNS: dict[str, Column] = {
    "id": Column("i8", None, "candidate number, from 1, in order of decreasing unsupported_snr"),
    "x": Column("i8", "pix", "column of the peak pixel, 0-based (numpy [chan, y, x])"),
    "y": Column("i8", "pix", "row of the peak pixel, 0-based"),
    "channel": Column("i8", None, "spectral channel, 0-based"),
    "ra": Column("f8", "deg", "right ascension of the peak pixel (ICRS)"),
    "dec": Column("f8", "deg", "declination of the peak pixel (ICRS)"),
    "frequency": Column("f8", "Hz", "frequency of the channel"),
    "velocity": Column("f8", "km / s",
        "radio velocity c (1 - f / f_rest); NaN without a rest frequency"),
    "rms": Column("f8", "Jy / beam",
        "thermal noise of the channel (high-passed residual, robust)"),
    "spike_rms": Column("f8", "Jy / beam",
        "noise of the one-channel spike: robust rms of the residual's channel contrast (= rms in "
        "one-plane products)"),
    "image_peak": Column("f8", "Jy / beam", "restored image at the peak pixel"),
    "image_snr": Column("f8", None, "image_peak / rms"),
    "spike_snr": Column("f8", None,
        "one-channel image spike: image minus the mean of the adjacent channels, in spike_rms "
        "(in one-plane products: the image minus its median on the ring of the data test)"),
    "spike_peak_snr": Column("f8", None,
        "the largest spike_snr within one beam FWHM of the peak pixel, in spike_rms: a "
        "compact feature peaks at its candidate, the flank of a brighter one does not; NaN "
        "without a psf and beside an unconverged channel (whose mean the spike takes)"),
    "excess_extent": Column("f8", None,
        "fraction of 16 directions in which the unsupported excess one beam FWHM from the peak "
        "pixel is still at least half of its own: about 0 for a compact source (a beam is at "
        "1/16 there), large on a ridge or plateau of extended emission; NaN without a psf or "
        "an excess"),
    "model_peak": Column("f8", "Jy / pix", "brightest model pixel within half a beam FWHM"),
    "model_peak_beam": Column("f8", "Jy / beam", "model_peak times pixels per beam"),
    "negative_flux": Column("f8", "Jy",
        "sum of the negative model components within bowl_beams beam FWHM (the negative bowl)"),
    "component_snr": Column("f8", None,
        "clean beam (*) the model within one beam FWHM, at the peak pixel, in rms: what a "
        "compact model component there restores"),
    "residual_snr": Column("f8", None, "residual at the peak pixel, in rms"),
    "dirty_snr": Column("f8", None,
        "the same one-channel spike in the dirty image (residual + psf (*) model), i.e. in the "
        "data, in spike_rms; NaN without a psf"),
    "reliability": Column("f8", None,
        "fraction of image spikes at least this strong that noise does not explain: 1 - "
        "N(negative spikes >= spike_snr) / N(positive spikes >= spike_snr) over the cube; NaN "
        "for model components"),
    "unsupported_snr": Column("f8", None,
        "unsupported excess: one-channel contrast of image - dirty at the peak, or that minus "
        "its median on a ring if smaller (one-plane products: image - dirty minus its ring "
        "median), in rms; NaN without a psf"),
    "null_spread": Column("f8", None,
        "robust rms of the same contrast of image - dirty at null_samples random pixels of the "
        "channel, in rms: how much sidelobes of emission elsewhere and broken neighbouring "
        "channels move the statistic; NaN without a psf"),
    "false_alarm": Column("f8", None,
        "expected number of pixels in the cube, one per beam, whose unsupported excess reaches "
        "unsupported_snr by chance: beams in the cube times the Gaussian tail beyond "
        "unsupported_snr / null_spread (below ~0.1, the probability of a false alarm); NaN "
        "without a psf"),
    "classification": Column("U", None, "confetti, benign, real, noise, diverged or uncertain"),
    "reason": Column("U", None, "why the candidate got its class"),
    "found_by": Column("U", None, "spike (image spike), model (model component) or spike+model"),
    "pb": Column("f8", None, "primary-beam response at the peak pixel; NaN without a pb"),
    "mask": Column("f8", None,
        "1 if the peak pixel is inside the clean mask in its channel, else 0; NaN without a mask "
        "product"),
    "mask_adjacent": Column("f8", None,
        "adjacent channels (0-2) whose clean mask holds the peak pixel; NaN without a mask "
        "product"),
}


def empty_catalog() -> Table:
    """A catalog with every column and no rows."""
    return _table({name: np.zeros(0, dtype=column.dtype) for name, column in COLUMNS.items()})


def make_catalog(columns: dict[str, np.ndarray], products: Products, *,
                 meta: dict[str, Any] | None = None) -> Table:
    """Add sky coordinates, frequency and velocity; sort by unsupported_snr; number from 1.

    Parameters
    ----------
    columns : dict of ndarray
        Every column of `COLUMNS` except id, ra, dec, frequency and velocity.
    products : Products
        Supplies the WCS and the spectral axis.
    """
    columns = dict(columns)
    n = len(columns["channel"])
    if n:
        sky = products.celestial.pixel_to_world(columns["x"], columns["y"]).icrs
        columns["ra"], columns["dec"] = sky.ra.deg, sky.dec.deg
    else:
        columns["ra"] = columns["dec"] = np.zeros(0)
    columns["frequency"] = products.frequency[columns["channel"]] if n else np.zeros(0)
    columns["velocity"] = products.velocity[columns["channel"]] if n else np.zeros(0)
    order = np.lexsort((columns["x"], columns["y"], columns["channel"],
                        -np.nan_to_num(columns["unsupported_snr"], nan=-np.inf)))
    columns = {k: np.asarray(v)[order] for k, v in columns.items()}
    columns["id"] = np.arange(1, n + 1)
    table = _table(columns)
    table.meta.update(meta or {})
    return table


def _table(columns: dict[str, np.ndarray]) -> Table:
    table = make_table(columns, COLUMNS)
    table.meta.update(stamp())
    table.meta["axes"] = "pixel positions are 0-based numpy [chan, y, x]"
    return table


def spectral_label(row: Any) -> str:
    """A catalog row's radio velocity (``-0.80 km/s``), or its frequency (``93.169875 GHz``)
    without a rest frequency."""
    if np.isfinite(row["velocity"]):
        return f"{float(row['velocity']):.2f} km/s"
    return f"{float(row['frequency']) / 1e9:.6f} GHz"
