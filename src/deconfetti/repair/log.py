"""The repair log: one row per confetti candidate, its columns documented."""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from ..tables import Column, make_table

__all__ = ["REPAIR_COLUMNS", "log_table"]

#: the repair log's columns
REPAIR_COLUMNS: dict[str, Column] = {
    "id": Column("i8", None, "candidate id in candidates.ecsv"),
    "channel": Column("i8", None, "channel index (0-based)"),
    "x": Column("i8", "pix", "candidate column (0-based)"),
    "y": Column("i8", "pix", "candidate row (0-based)"),
    "status": Column("U", None, "'removed', or 'refused' (the data do not allow the removal)"),
    "reason": Column("U", None, "why, in words"),
    "npix": Column("i8", None, "model pixels changed"),
    "flux_removed": Column("f8", "Jy", "sum of the removed components (positive minus negative)"),
    "positive_removed": Column("f8", "Jy", "sum of the removed positive components"),
    "negative_removed": Column("f8", "Jy",
        "sum of the removed negative components (a negative number)"),
    "peak_component": Column("f8", "Jy/pixel", "brightest removed component"),
    "restored_removed": Column("f8", "Jy/beam",
        "clean beam (*) removed components at the candidate"),
    "restored_sigma": Column("f8", None, "restored_removed in units of the channel's sigma"),
    "psf_peak_sigma": Column("f8", None,
        "peak of psf (*) removed components within the fit radius, in units of the channel's "
        "sigma"),
    "imprint": Column("f8", None, "share of -(psf (*) removed) the residual carries (0..1)"),
    "consistency_sigma": Column("f8", None,
        "the data-consistency figure, (1 - imprint) * psf_peak_sigma: how much the removal "
        "worsens the fit to the dirty image"),
    "excess_left": Column("f8", None,
        "share of the candidate's unsupported excess the removal leaves (0 all taken out, "
        "1 none)"),
    "far_change_sigma": Column("f8", None,
        "largest image change farther than 5 beams from every removal in the channel, in "
        "units of the channel's sigma (the psf sidelobes of what was removed)"),
    "radius": Column("f8", "pix", "radius within which the model may change"),
    "image_before": Column("f8", "Jy/beam", "image at the candidate before repair"),
    "image_after": Column("f8", "Jy/beam", "image at the candidate after repair"),
    "sigma": Column("f8", "Jy/beam", "the channel's thermal noise"),
    "unsupported_before": Column("f8", None,
        "the scan's unsupported excess at the candidate (its unsupported_snr), in sigma"),
    "unsupported_after": Column("f8", None,
        "the same data test on the repaired products, in sigma; NaN when nothing was written"),
}



def log_table(rows: list[dict]) -> Table:
    """The repair log of ``rows`` (dicts by column name; a missing value is NaN)."""
    return make_table({name: [row.get(name, np.nan) for row in rows]
                       for name in REPAIR_COLUMNS}, REPAIR_COLUMNS)
