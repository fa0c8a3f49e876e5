"""Repair: take confetti clusters out of the model, re-restore the image, and test each
removal against the data (the dirty image).

For each confetti candidate at ``(c, y, x)``:

- ``D``: the model's one-channel excess (channel c minus the median of channels c-1..c+1):
  its positive part within half a beam of the candidate (the compact component) and its
  negative part within ``repair.radius_beams`` restoring-beam FWHM (the bowl), in that
  channel only (Jy/pixel). The adjacent channels' model is left as it is.
- ``p = psf (*) D``: the removed components' imprint on the dirty image (Jy/beam).
  ``psf_peak_sigma`` is its peak near the candidate in units of the channel's sigma.
- ``imprint``: the least-squares amplitude of ``-p`` in the residual near the candidate,
  clipped to [0, 1]. When the minor cycle put ``D`` into the model without the data
  asking for it, the residual carries ``-p`` (imprint 1): taking ``D`` out gives the
  residual back what it lost. When ``D`` fits something in the dirty image, the residual
  is flat there (imprint 0) and taking ``D`` out leaves ``p`` unexplained.
- ``consistency_sigma = (1 - imprint) * psf_peak_sigma``: how much the removal worsens
  the fit to the data. Above ``repair.consistency_max`` the removal is refused.

When the cluster is refused, the part of a point at the candidate's hot model pixel
(`hot_pixel`) that the data do not see (`InvisiblePoints`) is tried: it spans the whole
plane, its ``p`` is small by construction, and it is removed when its restored part makes
at least `INVISIBLE_SHARE` of the candidate's one-channel image spike and the data test
passes. The model changes over the whole plane; the image and the residual change within
the footprint only, tapered like ``p``, and the data test looks within the fit radius:
far from the candidate the psf image cannot tell the imprint of an image-wide pattern.
Near it, the psf truncated at half the image overstates that imprint (on 12 CASA
injections, 1.1-2.5 times the residual change of CASA's own major cycle within a beam),
so the residual gets back ``imprint * p``, the part of ``p`` it carries, rather than all
of ``p``.

For the removals allowed in a channel, with ``B`` the channel's restoring beam:

- ``model' = model - D``
- ``residual' = residual + p`` (what tclean reports for ``model'``)
- ``image' = image - B (*) D + w p``: ``w`` is 1 within the cluster's radius and tapers
  to 0 one beam further, and ``B (*) D`` reaches two beams beyond the radius (the
  footprint). Near the candidate the image is re-restored as tclean would,
  ``B (*) model' + residual'``; outside the footprint it is unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
from astropy.table import Table

from ..config import Config
from ..errors import InputError
from ..features import psf_convolve, psf_peak, restore, spectral_contrast, zero_nan
from ..io.products import Products
from .consistency import imprint_share
from .log import log_table
from .select import INVISIBLE_SHARE, InvisiblePoints, hot_pixel, model_excess

__all__ = ["ChannelRepair", "repair_channel", "repair"]

log = logging.getLogger(__name__)


@dataclass
class ChannelRepair:
    """What the repair changes in one channel: planes to add, ``(ny, nx)``, and the log
    rows of its candidates. ``model_delta`` is in Jy/pixel, ``image_delta`` and
    ``residual_delta`` in Jy/beam; all are None when nothing was removed."""

    model_delta: np.ndarray | None
    image_delta: np.ndarray | None
    residual_delta: np.ndarray | None
    rows: list[dict]


def repair_channel(model: np.ndarray, index: int, residual: np.ndarray, image: np.ndarray,
                   psf: np.ndarray, beam: tuple[float, float, float], sigma: float,
                   sites: list[tuple[int, int, int]], *, chan: int = 0,
                   radius_beams: float = 4.0, consistency_max: float = 1.0) -> ChannelRepair:
    """Repair the confetti of one channel.

    Parameters
    ----------
    model : ndarray, shape (k, ny, nx)
        Model channels around the one repaired (Jy/pixel), ``model[index]`` being it.
    residual : ndarray, shape (ny, nx)
        The channel's residual, Jy/beam.
    image : ndarray, shape (k, ny, nx)
        The image in the same channels as ``model``, Jy/beam.
    psf : ndarray, shape (pny, pnx)
        The channel's dirty beam, peak 1.
    beam : (major, minor, pa)
        Restoring beam, FWHM in pixels and PA in degrees.
    sigma : float
        The channel's thermal noise, Jy/beam.
    sites : list of (id, y, x)
        Confetti candidates in this channel.
    chan : int
        The channel's index in the cube (for the log).

    Returns
    -------
    ChannelRepair
    """
    model = zero_nan(np.array(model, dtype=np.float64))
    psf = zero_nan(np.array(psf, dtype=np.float64))
    excess = model_excess(model, index)
    ny, nx = excess.shape
    major = beam[0]
    radius = radius_beams * major
    fit_radius = radius + major
    footprint = radius + 2 * major + 2  # the clean beam kernel reaches 2 FWHM (rounded up)
    py, px = psf_peak(psf)
    reach = int(np.ceil(2 * fit_radius)) + 1
    psf_cut = psf[max(0, py - reach):py + reach + 1, max(0, px - reach):px + reach + 1]
    yy, xx = np.ogrid[:ny, :nx]

    removed = np.zeros((ny, nx), dtype=bool)
    changed = np.zeros((ny, nx), dtype=bool)
    weight = np.zeros((ny, nx))
    hidden = np.zeros((ny, nx))  # removed invisible points (image-wide, Jy/pixel)
    near = np.zeros((ny, nx))  # where the image takes their change
    given = np.zeros((ny, nx))  # the part of their imprint the residual carries
    spikes = spectral_contrast(image, index)  # the one-channel image spike, Jy/beam
    image = image[index]
    invisible = None
    rows = []
    for ident, y, x in sites:
        half = int(np.ceil(footprint)) + 1
        ys, xs = slice(max(0, y - half), y + half + 1), slice(max(0, x - half), x + half + 1)
        dist = np.hypot(yy[ys] - y, xx[:, xs] - x)
        core = dist <= 0.5 * major
        inside = np.where(excess[ys, xs] > 0, core, dist <= radius)
        part = np.where(inside, excess[ys, xs], 0.0)
        imprint = psf_convolve(part, psf_cut)
        fit = dist <= fit_radius
        share = imprint_share(residual[ys, xs][fit], imprint[fit])
        psf_sigma = float(np.max(np.abs(imprint[fit]))) / sigma
        restored = float(restore(part, *beam)[y - ys.start, x - xs.start])
        row = dict(id=ident, channel=chan, x=x, y=y, method="", radius=radius,
                   footprint=footprint, image_before=float(image[y, x]), sigma=sigma,
                   **_figures(part, restored, sigma, psf_sigma, share))
        consistency = row["consistency_sigma"]
        taper = np.clip((radius + 2 - dist) / major + 1.0, 0.0, 1.0)
        taper = 0.5 - 0.5 * np.cos(np.pi * taper)  # 1 within the cluster, 0 a beam further
        if not np.any(part[core] > 0):
            row.update(status="refused", reason="no one-channel model excess at the candidate")
        elif np.isfinite(consistency) and consistency <= consistency_max:
            row.update(status="removed", method="cluster", reason="not demanded by the data")
            removed[ys, xs] |= inside
            changed[ys, xs] |= dist <= footprint
            weight[ys, xs] = np.maximum(weight[ys, xs], taper)
        else:
            if invisible is None:
                invisible = InvisiblePoints(excess, psf, [hot_pixel(excess, y_, x_, 0.5 * major)
                                                          for _, y_, x_ in sites])
            spike = float(spikes[y, x])
            largest, tested = 0.0, False
            for part in invisible.parts(len(rows)) if spike > 0 else ():
                # the restored part must make the spike (cheap), the data allow it (costly)
                shown = float(restore(part[ys, xs], *beam)[y - ys.start, x - xs.start])
                largest = max(largest, shown)
                if shown < INVISIBLE_SHARE * spike:
                    continue
                tested = True
                imprint = psf_convolve(part, psf, (ys, xs))  # as the residual gets it
                psf_sigma = float(np.max(np.abs(imprint[fit]))) / sigma
                share = imprint_share(residual[ys, xs][fit], imprint[fit])
                if (1.0 - share) * psf_sigma <= consistency_max:
                    row.update(status="removed", method="invisible point",
                               reason="invisible to the data",
                               **_figures(part, shown, sigma, psf_sigma, share))
                    hidden += part
                    given[ys, xs] += share * imprint
                    near[ys, xs] = np.maximum(near[ys, xs], taper)
                    break
            else:
                if not invisible.fits:
                    why = "no invisible part was fitted (the psf's shape is not the image's)"
                elif tested:
                    why = "by more for its invisible part"
                elif spike > 0:
                    why = f"its invisible part makes at most {largest / spike:.0%} of the spike"
                else:
                    why = "the image has no one-channel spike there"
                row.update(status="refused",
                           reason=f"the data do not allow it: the fit to the dirty image would "
                                  f"worsen by {consistency:.2f} sigma (at most "
                                  f"{consistency_max:g}), and {why}")
        rows.append(row)

    if not (removed.any() or hidden.any()):
        for row in rows:
            row["image_after"] = row["image_before"]
        return ChannelRepair(None, None, None, rows)
    cluster = np.where(removed, excess, 0.0)
    imprint = psf_convolve(cluster, psf) if removed.any() else np.zeros((ny, nx))
    image_delta = np.where(changed, weight * imprint - restore(cluster, *beam), 0.0)
    if hidden.any():
        # image-wide components: the image and the residual change near the candidates
        # only, by the share of the imprint the residual carries. Far from them the psf
        # image, truncated or periodic, cannot tell the imprint of an image-wide pattern
        # (the two disagree there by up to ~10 sigma on injected null-space patterns).
        seen = near * given
        image_delta += seen - near * restore(hidden, *beam)
        imprint += seen
        cluster += hidden
    for row in rows:
        row["image_after"] = row["image_before"] + float(image_delta[row["y"], row["x"]])
    return ChannelRepair((-cluster).astype(np.float32), image_delta.astype(np.float32),
                         imprint.astype(np.float32), rows)


def repair(products: Products, catalog: Table, rms: np.ndarray, *, config: Config | None = None,
           apply: Callable[[int, ChannelRepair], None] | None = None) -> Table:
    """Repair every candidate of class 'confetti' in ``catalog``, one channel at a time.

    Parameters
    ----------
    products : Products
        They need a psf (the data test).
    catalog : astropy.table.Table
        A scan's candidates (`deconfetti.scan`).
    rms : ndarray, shape (nchan,)
        Thermal noise per channel, Jy/beam (the scan's).
    apply : callable, optional
        Called as ``apply(chan, ChannelRepair)`` for each channel where something was
        removed, e.g. to write the repaired planes (`deconfetti.repair.write`).

    Returns
    -------
    astropy.table.Table
        The repair log, one row per confetti candidate; columns in `REPAIR_COLUMNS`.
    """
    config = config or Config()
    if products.psf is None:
        raise InputError(f"{products.name}: repair needs the psf (the data test); none found")
    confetti = catalog[catalog["classification"] == "confetti"] if len(catalog) else catalog
    rows = []
    beams = products.beam_pixels
    for chan in sorted({int(c) for c in confetti["channel"]}) if len(confetti) else []:
        here = confetti[confetti["channel"] == chan]
        sites = [(int(r["id"]), int(r["y"]), int(r["x"])) for r in here]
        model = products.read("model", chan - 1, chan + 2)
        done = repair_channel(model, chan - max(0, chan - 1),
                              products.read("residual", chan, chan + 1)[0],
                              products.read("image", chan - 1, chan + 2),
                              products.read("psf", chan, chan + 1)[0], tuple(beams[chan]),
                              float(rms[chan]), sites, chan=chan,
                              radius_beams=config.repair.radius_beams,
                              consistency_max=config.repair.consistency_max)
        rows.extend(done.rows)
        log.info("channel %d: %d of %d removed", chan,
                 sum(r["status"] == "removed" for r in done.rows), len(done.rows))
        if apply is not None and done.model_delta is not None:
            apply(chan, done)
    return log_table(rows)


def _figures(part: np.ndarray, restored: float, sigma: float, psf_sigma: float,
             share: float) -> dict:
    """The repair log's figures of one removal (``part`` in Jy/pixel)."""
    return dict(npix=int(np.count_nonzero(part)), flux_removed=float(part.sum()),
                positive_removed=float(part[part > 0].sum()),
                negative_removed=float(part[part < 0].sum()), peak_component=float(part.max()),
                restored_removed=restored, restored_sigma=restored / sigma,
                psf_peak_sigma=psf_sigma, imprint=share,
                consistency_sigma=(1.0 - share) * psf_sigma)
