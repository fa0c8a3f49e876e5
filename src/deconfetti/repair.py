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
  the fit to the data. Above ``repair.threshold`` the removal is refused.

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
from typing import Callable, Iterator

import numpy as np
from astropy.table import Table
from scipy import fft as sfft

from .config import Config
from .errors import InputError
from .features import psf_convolve, psf_peak, restore, spectral_contrast, zero_nan
from .io.products import Products
from .tables import Column, make_table

__all__ = ["REPAIR_COLUMNS", "ChannelRepair", "InvisiblePoints", "model_excess", "hot_pixel",
           "imprint_share", "repair_channel", "repair", "verify"]

log = logging.getLogger(__name__)

#: the repair log's columns
REPAIR_COLUMNS: dict[str, Column] = {
    "id": Column("i8", None, "candidate id in candidates.ecsv"),
    "channel": Column("i8", None, "channel index (0-based)"),
    "x": Column("i8", "pix", "candidate column (0-based)"),
    "y": Column("i8", "pix", "candidate row (0-based)"),
    "status": Column("U", None, "'removed', or 'refused' (the data do not allow the removal)"),
    "method": Column("U", None,
        "what was removed: 'cluster' (the compact component and its bowl) or 'invisible point' "
        "(the part of a point the data do not see)"),
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
    "radius": Column("f8", "pix", "radius of the removed cluster"),
    "footprint": Column("f8", "pix", "radius within which the image changes"),
    "image_before": Column("f8", "Jy/beam", "image at the candidate before repair"),
    "image_after": Column("f8", "Jy/beam", "image at the candidate after repair"),
    "sigma": Column("f8", "Jy/beam", "the channel's thermal noise"),
    "score_before": Column("f8", None,
        "the scan's unsupported excess at the candidate (its score), in sigma"),
    "score_after": Column("f8", None,
        "the same data test on the repaired products, in sigma; NaN when nothing was written"),
}


@dataclass
class ChannelRepair:
    """What the repair changes in one channel: planes to add, ``(ny, nx)``, and the log
    rows of its candidates. ``model`` is in Jy/pixel, ``image`` and ``residual`` in
    Jy/beam; all are None when nothing was removed."""

    model: np.ndarray | None
    image: np.ndarray | None
    residual: np.ndarray | None
    rows: list[dict]


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


def imprint_share(residual: np.ndarray, imprint: np.ndarray) -> float:
    """Least-squares amplitude of ``-imprint`` in ``residual``, clipped to [0, 1]
    (same-shape arrays; NaN pixels ignored)."""
    ok = np.isfinite(residual) & np.isfinite(imprint)
    power = float(np.sum(imprint[ok] ** 2))
    if power == 0:
        return 0.0
    return float(np.clip(-np.sum(residual[ok] * imprint[ok]) / power, 0.0, 1.0))


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


def repair_channel(model: np.ndarray, index: int, residual: np.ndarray, image: np.ndarray,
                   psf: np.ndarray, beam: tuple[float, float, float], sigma: float,
                   sites: list[tuple[int, int, int]], *, chan: int = 0,
                   radius_beams: float = 4.0, threshold: float = 1.0) -> ChannelRepair:
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
        elif np.isfinite(consistency) and consistency <= threshold:
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
                if (1.0 - share) * psf_sigma <= threshold:
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
                                  f"worsen by {consistency:.2f} sigma (threshold {threshold:g}), "
                                  f"and {why}")
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
        removed, e.g. to write the repaired planes (`deconfetti.repaired`).

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
                              threshold=config.repair.threshold)
        rows.extend(done.rows)
        log.info("channel %d: %d of %d removed", chan,
                 sum(r["status"] == "removed" for r in done.rows), len(done.rows))
        if apply is not None and done.model is not None:
            apply(chan, done)
    return _log_table(rows)


def verify(log: Table, catalog: Table, repaired: Products | None, rms: np.ndarray, *,
           config: Config | None = None) -> Table:
    """Fill ``score_before`` (from ``catalog``) and ``score_after``: the scan's data test
    (`deconfetti.datatest.data_test`) at each logged candidate, on the ``repaired``
    products (they need the original psf; None when nothing was written), reading only
    the candidates' channels and their neighbours."""
    from .datatest import data_test

    config = config or Config()
    log = log.copy()
    scores = dict(zip(catalog["id"].tolist(), catalog["score"].tolist())) if len(catalog) else {}
    log["score_before"] = [scores.get(int(i), np.nan) for i in log["id"]]
    after = np.full(len(log), np.nan)
    for chan in sorted({int(c) for c in log["channel"]}) if repaired is not None else []:
        lo, hi = max(0, chan - 1), min(repaired.nchan, chan + 2)
        rows = np.flatnonzero(np.asarray(log["channel"]) == chan)
        psf = {c - lo: zero_nan(repaired.plane("psf", c)) for c in range(lo, hi)}
        test = data_test(np.full(len(rows), chan - lo), np.asarray(log["y"])[rows],
                         np.asarray(log["x"])[rows], image=repaired.read("image", lo, hi),
                         model=zero_nan(repaired.read("model", lo, hi)),
                         residual=repaired.read("residual", lo, hi), psf=psf, rms=rms[lo:hi],
                         spike_rms=rms[lo:hi], beam=repaired.beam_pixels[lo:hi],
                         ring_beams=config.classify.ring_beams)
        after[rows] = test["score"]
    log["score_after"] = after
    for name in ("score_before", "score_after"):
        log[name].description = REPAIR_COLUMNS[name].description
    return log


def _figures(part: np.ndarray, restored: float, sigma: float, psf_sigma: float,
             share: float) -> dict:
    """The repair log's figures of one removal (``part`` in Jy/pixel)."""
    return dict(npix=int(np.count_nonzero(part)), flux_removed=float(part.sum()),
                positive_removed=float(part[part > 0].sum()),
                negative_removed=float(part[part < 0].sum()), peak_component=float(part.max()),
                restored_removed=restored, restored_sigma=restored / sigma,
                psf_peak_sigma=psf_sigma, imprint=share,
                consistency_sigma=(1.0 - share) * psf_sigma)


def _log_table(rows: list[dict]) -> Table:
    return make_table({name: [row.get(name, np.nan) for row in rows]
                       for name in REPAIR_COLUMNS}, REPAIR_COLUMNS)
