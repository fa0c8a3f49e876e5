"""Repair: the smallest change of a channel's model that takes a confetti candidate's
unsupported excess out of the image while the model still fits the data.

The dirty image, ``residual + psf (*) model``, is what the visibilities demand; the image
is ``B (*) model + residual`` (``B`` the restoring beam). Taking ``D`` (Jy/pixel) out of
a channel's model, the products tclean would write are

- ``model' = model - D``
- ``residual' = residual + psf (*) D``
- ``image' = image - B (*) D + psf (*) D``

over the whole plane, so that the dirty image is unchanged and model, residual and image
keep tclean's relations everywhere. ``image - dirty = (B - psf) (*) model`` is what the
model adds to the image beyond the data; its one-channel contrast ``U`` (the channel
minus the mean of its neighbours, as in the scan's data test) is the unsupported excess.

For the confetti candidates of a channel, ``D`` solves, over the whole plane,

    minimise ||W ((B - psf) (*) D - U)||^2 + w ||psf (*) D + N R||^2 + damping ||D||^2

with ``W`` the disks of ``repair.radius_beams`` restoring-beam FWHM plus two beams around
the candidates, ``N`` those of ``repair.residual_beams`` and ``R`` the residual, each
pixel of ``D`` between 0 and the channel's one-channel model excess there
(`model_excess`: what the adjacent channels do not hold) and 0 within a beam of every
candidate classified real. The first term takes the unsupported excess out near the
candidates; the second, weighted by ``w`` (``repair.data_weight``), is the fit to the
data: a component the data demand is kept (removing it would leave its imprint in the
residual), one they do not is removed (the residual around it already carries its
negative imprint, or it has none). Beyond ``N``
any imprint of ``D`` counts against it, so that ``D`` cannot buy a better fit by fitting
the residual's noise. ``D`` may reach beyond ``W``: a pattern the data cannot see is
image-wide. Nothing is shaped or scaled to a kind of fake. The convolutions are periodic
on the image grid, as tclean restores (`ChannelOperator`). The solve starts from the
candidates' own one-channel components within half a beam: a null-space fake needs a
model pixel tens of times its restored peak, which steps from 0 build slowly; one the
data demand, the fit term takes back quickly. The psf's uv weights are read
from its image with its outer half rolled off (`deconfetti.features.psf_spectrum`), so
that a pattern in uv cells the data do not measure has no imprint. The steps go on until
one is at most ``tolerance`` of the way D has come from its start (not of D itself,
which from a null-space start is tens of sigma in one pixel while the rest of the
removal is still to build).

The image is held where the data demand a compact source: within half a beam of every
local maximum of the dirty image of at least `~.select.HOLD_SNR` sigma farther than
`HOLD_BEAMS` from every candidate, ``W`` holds those pixels too, with a target of no
change. A null-space removal is image-wide and would otherwise move such a source by its
sidelobes, whether or not the scan classified it.

A removal is refused, with its reason, when there is no unsupported excess or no
one-channel model excess at the candidate, when its component lies within a beam of a
real source, when the solve leaves more than ``repair.left_max`` of the excess (the data
hold the rest), when it worsens the fit to the data by more than
``repair.consistency_max`` sigma, or when it changes the image at a real source by more
than ``repair.real_change_max`` of its value; the channel is then solved again without
it. A removal that worsens the fit over the wide window ``W`` is first solved again
with ``W`` the candidate's feature alone (`FEATURE_BEAMS`): beside bright emission the
wide window holds the emission's one-channel contrast too, and the data demand what the
solve took of it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
from astropy.table import Table
from scipy import fft as sfft

from ..config import Config, RepairConfig
from ..errors import InputError
from ..features import (beam_spectrum, convolve_periodic, neighbour_contrast, psf_spectrum,
                        zero_nan)
from ..io.products import Products
from .consistency import imprint_share
from .log import log_table
from .select import demanded_peaks, model_excess, removable

__all__ = ["ChannelRepair", "ChannelOperator", "solve_removal", "repair_channel", "repair"]

log = logging.getLogger(__name__)

#: damping of ``||D||`` relative to a pixel's response: the smallest D among near-equals
#: (at 0.03 it kept a third of the model pixel, 30 times its restored peak, that a
#: null-space fake needs)
DAMPING = 0.001
#: radius of a compact feature, restoring-beam FWHM: the window of a candidate whose
#: removal over the wide window the data refuse (the scan's ``excess_extent`` is measured
#: this far out)
FEATURE_BEAMS = 1.0
#: distance from the candidates, restoring-beam FWHM, beyond which the image is held at
#: the dirty image's compact sources (`demanded_peaks`): within it lie the candidate's
#: feature and the first ring of its removal's imprint, which the repair must change
HOLD_BEAMS = 2.0


@dataclass
class ChannelRepair:
    """What the repair changes in one channel: planes to add, ``(ny, nx)``, and the log
    rows of its candidates. ``model_delta`` is in Jy/pixel, ``image_delta`` and
    ``residual_delta`` in Jy/beam; all are None when nothing was removed."""

    model_delta: np.ndarray | None
    image_delta: np.ndarray | None
    residual_delta: np.ndarray | None
    rows: list[dict]


class ChannelOperator:
    """The restoring beam ``B`` and the psf of one channel as periodic convolutions on
    the image grid (their ``rfft2`` spectra, `beam` and `psf`): both are diagonal in the
    Fourier domain, which the solve uses."""

    def __init__(self, psf: np.ndarray, beam: tuple[float, float, float],
                 shape: tuple[int, int]):
        self.shape = shape
        self.beam = beam_spectrum(beam, shape)
        self.psf = psf_spectrum(psf, shape)

    def convolve(self, plane: np.ndarray, spectrum: np.ndarray | None = None) -> np.ndarray:
        """``kernel (*) plane`` for the kernel's ``spectrum`` (default the psf's)."""
        return convolve_periodic(plane, self.psf if spectrum is None else spectrum)


def solve_removal(operator: ChannelOperator, unsupported: np.ndarray, residual: np.ndarray,
                  lower: np.ndarray, upper: np.ndarray, windows: np.ndarray, carried: np.ndarray,
                  *, data_weight: float = RepairConfig.data_weight, iterations: int = 1000,
                  tolerance: float = 1e-4, start: np.ndarray | None = None) -> np.ndarray:
    """The bounded least-squares ``D`` of the module docstring, whole plane.

    Minimises ``||W ((B - psf) (*) D - U)||^2 + w ||psf (*) D + N R||^2 + damping ||D||^2``
    (``w`` = ``data_weight``)
    for ``lower <= D <= upper`` by accelerated projected gradient (FISTA with adaptive
    restart) with the step of the exact Lipschitz bound (the convolutions are diagonal in
    the Fourier domain), until a step is at most ``tolerance`` of the largest change of D
    since ``start`` (or ``iterations`` steps).
    ``W`` is the boolean ``windows`` around the candidates: the excess U is taken out
    there. ``N`` (boolean ``carried``, within the windows) is where the residual R counts,
    around the candidates; elsewhere any imprint of D counts against it, so D cannot
    fit the residual's noise. All planes are in units of the channel's sigma (D in
    sigma per pixel). ``start`` is where the steps begin (default 0).
    """
    difference = (operator.beam - operator.psf).astype(np.complex64)
    data = data_weight * np.abs(operator.psf) ** 2
    data += DAMPING ** 2 * float(np.mean(np.abs(difference) ** 2 + data))
    step = 1.0 / float(np.max(np.abs(difference) ** 2 + data))
    data = data.astype(np.float32)
    fixed = (data_weight * np.conj(operator.psf).astype(np.complex64)
             * sfft.rfft2(np.where(carried, residual, 0.0).astype(np.float32)))
    conjugate = np.conj(difference)
    inside = windows.astype(np.float32)
    excess = inside * unsupported.astype(np.float32)
    lower, upper = lower.astype(np.float32), upper.astype(np.float32)
    shape = operator.shape
    rate = np.float32(-step)
    now = (np.zeros(shape, dtype=np.float32) if start is None
           else np.clip(start.astype(np.float32), lower, upper))
    origin = now
    ahead = now.copy()
    travelled = np.empty_like(now)
    momentum = 1.0
    # in place where it can be: on a 2048^2 plane the array arithmetic cost as much as
    # the four FFTs of a step
    with sfft.set_workers(os.cpu_count() or 1):  # float32 transforms on every core
        for count in range(1, iterations + 1):
            spectrum = sfft.rfft2(ahead)
            misfit = sfft.irfft2(difference * spectrum, shape, overwrite_x=True)
            misfit -= excess
            misfit *= inside
            back = sfft.rfft2(misfit, overwrite_x=True)
            back *= conjugate
            spectrum *= data
            back += spectrum
            back += fixed
            new = sfft.irfft2(back, shape, overwrite_x=True)
            new *= rate
            new += ahead
            np.clip(new, lower, upper, out=new)
            moved = new - now
            # adaptive restart (O'Donoghue & Candes 2015, gradient scheme): the momentum
            # is dropped where it carried the step uphill, the gradient step from the
            # point ahead opposing the step taken; without it every solve of the labelled
            # cases rippled on to the step cap
            ahead -= new
            if float(np.vdot(ahead.ravel(), moved.ravel())) > 0:
                momentum = 1.0
            change = max(float(moved.max()), -float(moved.min()))
            following = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * momentum ** 2))
            ahead = moved
            ahead *= np.float32((momentum - 1.0) / following)
            ahead += new
            now, momentum = new, following
            # the step against the way come from the start (not against D, which a
            # null-space start makes tens of sigma in one pixel: there a plain first
            # step, before the momentum builds, read as converged)
            np.subtract(now, origin, out=travelled)
            if change <= tolerance * max(float(travelled.max()), -float(travelled.min()), 1e-12):
                break
    log.debug("removal solved in %d iterations", count)
    return now.astype(np.float64)


def repair_channel(model: np.ndarray, index: int, image: np.ndarray, residual: np.ndarray,
                   psf: dict[int, np.ndarray], beam: tuple[float, float, float], sigma: float,
                   sites: list[tuple[int, int, int]], *, protected: list[tuple[int, int]] = (),
                   sources: list[tuple[int, int]] = (), skip: frozenset = frozenset(),
                   chan: int = 0, radius_beams: float = RepairConfig.radius_beams,
                   residual_beams: float = RepairConfig.residual_beams,
                   data_weight: float = RepairConfig.data_weight,
                   consistency_max: float = RepairConfig.consistency_max,
                   left_max: float = RepairConfig.left_max,
                   real_change_max: float = RepairConfig.real_change_max) -> ChannelRepair:
    """Repair the confetti of one channel.

    Parameters
    ----------
    model, image, residual : ndarray, shape (k, ny, nx)
        The channels around the one repaired, ``[index]`` being it (model Jy/pixel,
        image and residual Jy/beam).
    psf : dict of int -> ndarray
        Dirty beam (peak 1) of each of those channels, by index.
    beam : (major, minor, pa)
        The channel's restoring beam, FWHM in pixels and PA in degrees.
    sigma : float
        The channel's thermal noise, Jy/beam.
    sites : list of (id, y, x)
        Confetti candidates in this channel.
    protected : list of (y, x)
        Real sources (candidates classified real in these channels): their model is
        never touched.
    sources : list of (y, x)
        The real sources of this channel: a removal may change the image there by at
        most ``real_change_max`` of its value.
    skip : frozenset of int
        Indices of diverged channels, left out of the excess's neighbours.
    chan : int
        The channel's index in the cube (for the log).

    Returns
    -------
    ChannelRepair
    """
    model = zero_nan(np.array(model, dtype=np.float64))
    image = np.asarray(image, dtype=np.float64)
    here = zero_nan(np.asarray(residual[index], dtype=np.float64))
    psf = {k: zero_nan(np.asarray(p, dtype=np.float64)) for k, p in psf.items()}
    excess = model_excess(model, index, skip)
    ny, nx = excess.shape
    major = beam[0]
    radius = radius_beams * major
    feature = FEATURE_BEAMS * major
    yy, xx = np.ogrid[:ny, :nx]
    where = {ident: (y, x) for ident, y, x in sites}

    def within(ident: int, reach: float) -> np.ndarray:
        """Pixels within ``reach`` pixels of candidate ``ident`` (a plane of bools)."""
        y, x = where[ident]
        return (yy - y) ** 2 + (xx - x) ** 2 <= reach ** 2

    # the unsupported excess: the one-channel contrast of image - dirty, with the same
    # periodic psf as the solve
    operator = ChannelOperator(psf[index], beam, (ny, nx))
    spectra = {k: operator.psf if k == index else psf_spectrum(psf[k], (ny, nx)) for k in psf}
    imprints = {k: convolve_periodic(model[k], spectra[k]) for k in psf}
    unsupported = {k: zero_nan(image[k] - residual[k]) - imprints[k] for k in psf}
    # the compact sources the data demand, away from the candidates: the image is held there
    hold = demanded_peaks(here + imprints[index], sigma, major, list(where.values()),
                          HOLD_BEAMS * major)
    sides = [k for k in (index - 1, index + 1) if k in unsupported and k not in skip]
    contrast = neighbour_contrast(unsupported[index], [unsupported[k] for k in sides])
    target = np.where(hold, 0.0, contrast) / sigma  # no change of the image where held
    rows = {ident: dict(id=ident, channel=chan, x=x, y=y, sigma=sigma, radius=radius,
                        image_before=float(image[index, y, x])) for ident, y, x in sites}
    lower, upper = removable(excess, protected, major)
    active = []
    for ident, y, x in sites:
        core = within(ident, 0.5 * major)
        if contrast[y, x] <= 0:
            rows[ident].update(status="refused", npix=0,
                               reason="no unsupported excess at the candidate")
        elif not np.any(excess[core] > 0):
            rows[ident].update(status="refused", npix=0,
                               reason="no one-channel model excess at the candidate")
        elif not np.any(upper[core] > 0):
            rows[ident].update(status="refused", npix=0,
                               reason="its model component is within a beam of a real source")
        else:
            active.append((ident, y, x))
    removed = np.zeros((ny, nx))
    # the excess is taken out over the wide window first; where the data refuse that,
    # over the candidate's own feature alone
    reach = {ident: radius + 2 * major for ident, _, _ in active}
    while active:
        windows = hold.copy()
        carried = np.zeros((ny, nx), dtype=bool)
        cores = np.zeros((ny, nx), dtype=bool)
        for ident, _, _ in active:
            windows |= within(ident, reach[ident])
            carried |= within(ident, residual_beams * major)
            cores |= within(ident, 0.5 * major)
        removed = sigma * solve_removal(operator, target, here / sigma, lower / sigma,
                                        upper / sigma, windows, carried,
                                        data_weight=data_weight,
                                        start=np.where(cores, excess, 0.0) / sigma)
        imprint = operator.convolve(removed)
        image_delta = imprint - operator.convolve(removed, operator.beam)
        real = _real_change(image_delta, image[index], sources)
        refused, retry = [], False
        for ident, y, x in active:
            row = rows[ident]
            near = within(ident, radius)
            part = np.where(near, removed, 0.0)
            fit = within(ident, radius + major)
            share = imprint_share(here[fit], imprint[fit])
            psf_sigma = float(np.max(np.abs(imprint[fit]))) / sigma
            left = (contrast[y, x] + image_delta[y, x]) / contrast[y, x]
            row.update(_figures(part, -float(image_delta[y, x]), sigma, psf_sigma, share),
                       excess_left=left)
            if left > left_max:
                row.update(status="refused",
                           reason=f"the data hold most of it: the removal they allow takes "
                                  f"{max(0.0, 1 - left):.0%} of the unsupported excess (at least "
                                  f"{1 - left_max:.0%} needed)")
            elif row["consistency_sigma"] > consistency_max and reach[ident] > feature:
                reach[ident] = feature  # solved again over the feature alone
                retry = True
                continue
            elif row["consistency_sigma"] > consistency_max:
                row.update(status="refused",
                           reason=f"the data demand it: removing it worsens the fit to the "
                                  f"dirty image by {row['consistency_sigma']:.2f} sigma (at "
                                  f"most {consistency_max:g})")
            elif real > real_change_max:
                row.update(status="refused",
                           reason=f"it would change a real source's peak by {real:.1%} (at "
                                  f"most {real_change_max:.0%})")
            else:
                row.update(status="removed", reason="not demanded by the data" + (
                    "" if reach[ident] > feature else "; taken over its feature alone, as "
                    "over the wide window it took emission the data demand"))
                continue
            refused.append(ident)
        if not refused and not retry:
            break
        active = [site for site in active if site[0] not in refused]
        removed = np.zeros((ny, nx))

    if not removed.any():
        for row in rows.values():
            row.update(image_after=row["image_before"], far_change_sigma=0.0)
        return ChannelRepair(None, None, None, list(rows.values()))
    far = np.ones((ny, nx), dtype=bool)
    for ident, _, _ in active:
        far &= ~within(ident, 5 * major)
    far_change = float(np.max(np.abs(image_delta[far]))) / sigma if far.any() else 0.0
    for row in rows.values():
        row.update(image_after=row["image_before"] + float(image_delta[row["y"], row["x"]]),
                   far_change_sigma=far_change)
    return ChannelRepair((-removed).astype(np.float32), image_delta.astype(np.float32),
                         imprint.astype(np.float32), list(rows.values()))


def _real_change(image_delta: np.ndarray, image: np.ndarray,
                 protected: list[tuple[int, int]]) -> float:
    """Largest |image change| / |image| at the ``protected`` ``(y, x)`` pixels."""
    if not protected:
        return 0.0
    ys, xs = (np.array(v) for v in zip(*protected))
    return float(np.max(np.abs(image_delta[ys, xs]) / np.maximum(np.abs(image[ys, xs]), 1e-30)))


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
    if products.nchan < 2:
        raise InputError(f"{products.name}: one plane (continuum): a repair takes out what the "
                         f"adjacent channels do not hold, and this product has none; re-clean "
                         f"it instead (README, Re-clean)")
    classes = np.asarray(catalog["classification"], dtype=str)
    confetti, real = catalog[classes == "confetti"], catalog[classes == "real"]
    diverged = {int(c) for c in catalog["channel"][classes == "diverged"]}
    rows = []
    beams = products.beam_pixels
    for chan in sorted({int(c) for c in confetti["channel"]}):
        here = confetti[confetti["channel"] == chan]
        sites = [(int(r["id"]), int(r["y"]), int(r["x"])) for r in here]
        lo, hi = max(0, chan - 1), min(products.nchan, chan + 2)
        near = real[(real["channel"] >= lo) & (real["channel"] < hi)]
        done = repair_channel(
            products.read("model", lo, hi), chan - lo, products.read("image", lo, hi),
            products.read("residual", lo, hi),
            {c - lo: products.plane("psf", c) for c in range(lo, hi)}, tuple(beams[chan]),
            float(rms[chan]), sites, protected=[(int(r["y"]), int(r["x"])) for r in near],
            sources=[(int(r["y"]), int(r["x"])) for r in near if r["channel"] == chan],
            skip=frozenset(c - lo for c in diverged if lo <= c < hi and c != chan), chan=chan,
            radius_beams=config.repair.radius_beams,
            residual_beams=config.repair.residual_beams,
            data_weight=config.repair.data_weight,
            consistency_max=config.repair.consistency_max, left_max=config.repair.left_max,
            real_change_max=config.repair.real_change_max)
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
                negative_removed=float(part[part < 0].sum()),
                peak_component=float(part.max()), restored_removed=restored,
                restored_sigma=restored / sigma, psf_peak_sigma=psf_sigma, imprint=share,
                consistency_sigma=(1.0 - share) * psf_sigma)
