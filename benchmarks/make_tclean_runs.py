"""Make small labelled *natural* CASA tclean runs (real simobserve + tclean, nothing injected).

    make tclean-runs                      # all cases into tclean-runs/ (a CASA venv of its own)
    .casa-venv/bin/python benchmarks/make_tclean_runs.py --out DIR [--case NAME ...]

Runs only in an environment with casatools + casatasks + casadata (PyPI wheels, offline),
never beside python-casacore (``make tclean-runs`` makes one in .casa-venv/).  The script writes its own casasiteconfig (measures from the
casadata package, no auto-updates, no network) before importing casatools.

Every case is made the same way:
  1. a sky cube (Jy/pixel) on exactly the image grid (imsize, cell, phase centre, channels):
     extended line emission (resolved clumps and curved filaments whose line centre moves
     from channel to channel, on a faint lognormal layer) plus a few compact sources, some
     with 1-2 channel narrow lines; written as a CASA image and observed by simobserve
     (noise-free, obsmode 'int', a pointing file for mosaics);
  2. seeded Gaussian noise N (unit sigma) drawn per visibility; the noise-only MS
     (DATA = N) is imaged with the same weighting, niter=0, which gives the psf beam, the pb
     and the exact per-channel noise of a unit-noise realisation.  The sky is then scaled so
     that its beam-convolved peak (times pb) is the case's ``peak_sigma`` x median noise, and
     DATA = a * V_sky + s * N, with s chosen for the case's noise level (everything is linear,
     so noise.csv = s x the noise-only rms within pb >= 0.5 is exact);
  3. tclean (one or two calls) writes img.image/model/residual/psf/pb/mask;
  4. truth.fits = (sky x pb) convolved with the peak-normalised restoring beam (Jy/beam),
     float32, numpy shape (1, nchan, ny, nx) like the shared cases;
  5. labels (below), real_sources.csv, noise.csv, channel_stats.csv, params.json,
     labels_meta.json, preview.png.

Cases
  nat12m_bright      12m (alma.cycle5.1), 7-pointing hexagonal mosaic, gridder mosaic,
                     multiscale [0,5,15,45], robust 0.5, pb mask, cyclefactor 1.0, threshold
                     2.5 sigma; extended emission up to ~400 sigma per channel + 6 compact
                     sources (3 narrow).  A converged run: expected to hold no confetti.
  nat7m_diverged     7m (aca.cycle5) 7-pointing mosaic with 30 % of the antennas flagged per
                     pointing (sparse, pointing-dependent psf), emission up to ~500 sigma,
                     multiscale [0,6,18,40] with smallscalebias -0.3, gain 0.3, cyclefactor
                     0.05, minpsffraction 0.001, threshold 1 sigma.  CASA stops it with
                     stopcode 6 (peak residual grew > 3x above its minimum; channels 9-11 blew
                     up to ~1000 sigma residual).  A second call continues it, as users do:
                     restart=True, calcres=False, calcpsf=False, cyclefactor 1.5, gain 0.1,
                     scales [0,6,18], threshold 2 sigma, nmajor 50 (a cap to keep it short).
                     The residual comes down to ~12 sigma rms but the model keeps channel-wide
                     positive/negative halves and stripes: std(image - truth) is 190-320 sigma
                     in channels 8-12.  diverged_channels.csv lists them (test below).
                     The rule below labels 6 "confetti" outside them (channels 4-5, 17-18,
                     20); by eye none is a compact positive feature: five sit on the edges
                     of broad regions where the image is far below the truth, or on the
                     +-15 sigma residual stripes of channels 17-18 (the high-pass turns
                     those into a positive excess), and one (channel 20) is a 5 sigma blob.
  nat12m_moderate    12m single pointing (alma.cycle5.3), gridder standard, hogbom, natural
                     weighting (robust 2), emission up to ~40 sigma: a gentle natural control.
  cont_mtmfs         continuum: 8 x 250 MHz channels at 100 GHz, compact sources with spectral
                     indices -1..+2 plus extended dust-like emission (index 2.5), specmode mfs,
                     deconvolver mtmfs, nterms 2, multiscale [0,5,15]; products img.*.tt0
                     (and tt1); truth.fits/labels refer to tt0 at the reference frequency.
  nat7m_cyclefactor  7m mosaic, multiscale with large scales, cyclefactor 0.1, auto-multithresh
                     (a mask that changes per channel), single tclean call: a setting that might
                     make CLEAN itself produce one-channel confetti.  In the run made with
                     seed 705 auto-multithresh left channels 8 and 11-13 (the brightest) with an
                     empty mask (no model, residual = dirty image, 20-40 sigma rms) between
                     cleaned channels; the rule below labels 6 "confetti" in channels 6-9 at two
                     places next to them (to be checked by eye: the raw image is below the
                     truth there; the high-passed excess is positive).
  aggr7m_lowcf       an attempt at confetti made by CLEAN itself, 7m: aca.cycle5 7-pointing
                     mosaic (50" spacing) with 10 % of the antennas flagged per pointing,
                     natural (robust 2), emission up to ~40 sigma, multiscale [0,6,18,40] with
                     smallscalebias 0.6, gain 0.5, cyclefactor 0.1, minpsffraction 0.01,
                     maxpsffraction 0.3, pb mask, threshold 0.5 sigma.  It converges (residual
                     0.2 sigma rms, std(image - truth) 1-5 sigma, the larger values negative:
                     resolved-out flux) and holds no label: a control for aggressive settings.
  aggr12m_pedestal   the same aim, 12m multi-configuration data: alma.cycle5.1 (600 s) and
                     alma.cycle5.4 (1200 s) observed separately and concatenated (no baselines
                     between them: config and totaltime_s are lists), single pointing,
                     natural weighting, so the psf has a broad positive pedestal (psf volume
                     ~2 clean-beam areas within 2 beams), multiscale [0,5,15,45] with
                     smallscalebias 0.6, gain 0.5, cyclefactor 0.1, minpsffraction 0.01, pb
                     mask, threshold 0.5 sigma, emission up to ~50 sigma.  It converges too
                     (std(image - truth) 1.1 sigma in every channel) and holds no label.
                     Settings tried for both (gain 0.2-0.5, cyclefactor 0.1-1, smallscalebias
                     0-0.6, scales up to 30-45 pixels, pb mask or per-channel auto-multithresh,
                     thresholds 0.5-2.5 sigma, 7m / 12m mosaics and single pointings, 12m+12m
                     pedestal psf) either converged with no compact one-channel excess or, with
                     sparse uv coverage (60 % of the antennas flagged, 2-minute snapshot, or 30 %
                     flagged per mosaic pointing), blew up whole channels (null-space blobs of
                     the largest scales, residual 10-60 sigma): never isolated confetti.
                     A later round (12m 7-pointing mosaic, robust -0.5, gain 0.5, cyclefactor
                     0.05-0.3, threshold 1 sigma, narrow-line compact sources up to 200 sigma;
                     hogbom, clark, multiscale [0,5,15] or [0,3,9], nmajor 2) converged with no
                     label up to 45 % of the antennas flagged per pointing (7-minute snapshots);
                     at 50 % it diverged (stopcode 6) in the channels of the brightest compact
                     sources: the model there holds +-200 sigma pixel pairs that cancel in the
                     residual, but the image error is a stripe pattern over the channel (residual
                     rms 10-55 sigma, not caught by the diverged test since the residual shows it
                     too), and the rule's 1-14 "confetti" sit on those stripes (by eye: none
                     isolated); at such dynamic range cyclefactor x maxpsfsidelobe (0.09) x peak
                     is below the threshold, so every minor cycle cleans to the threshold anyway
                     (cyclefactor 0.05 and 0.3 gave identical runs): a low cyclefactor can only
                     matter where peak / threshold > 1 / (cyclefactor x psf sidelobe), as in
                     clean_lowcf12m.
  clean_lowcf12m     confetti made by CLEAN itself: 12m (alma.cycle5.1) 7-pointing mosaic (28"
                     spacing) with 30 % of the antennas flagged per pointing (the one mosaic psf
                     of the minor cycle is wrong for every pointing), robust -0.5, emission up to
                     ~50 sigma plus 8 compact sources of 500-3000 sigma (4 with 1-2 channel
                     lines), multiscale [0,5,15], gain 0.3, cyclefactor 0.05, minpsffraction
                     0.001, pb mask, threshold 1 sigma: at this dynamic range the minor cycles run
                     to ~0.5 % of the peak (cyclefactor x psf sidelobe 0.09) on that psf.  It
                     converges (residual <= 0.5 sigma rms in every channel, none diverged), but
                     in the channels of the brightest sources (6-15) the model is sprinkled with
                     +-100-400 sigma pixel pairs that cancel in the residual (the ALMA-IMF
                     signature) and std(image - truth) is 2-4 sigma (0.9 in the quiet channels).
                     The rule labels 18 confetti (14 in channel 8).  By eye (raw image - truth,
                     adjacent channels, residual): 4 are genuine compact excesses of 6-7 sigma on
                     a hot pixel pair with a flat residual, 1 channel only (channel 8 at (20,91),
                     (47,137), (83,138); (54,140) is also 5.5 sigma in channel 7); 2 (channel 8
                     at (145,88), (132,94)) sit on a +3 sigma plateau at the east edge that is
                     also in channel 7; 12 are high-pass artefacts (raw excess < 5 sigma inside
                     negative, resolved-out bowls).  Even the genuine ones are the tail of a
                     channel-wide +-3-5 sigma speckle, not lone pieces.  The same MS with
                     cyclefactor 1.0 (everything else equal; 31k instead of 147k iterations)
                     gives no confetti label, 1 other_artifact, std(image - truth) <= 2 sigma.

Products per case folder: img.* (CASA images), truth.fits, noise.csv, real_sources.csv,
labels.csv, labels_meta.json, channel_stats.csv, diverged_channels.csv (restart / cyclefactor
cases), tclean_summary.json (tclean return records, per-channel minor-cycle summaries),
params.json, preview.png, work/ (data.ms, noise.ms = the noise alone, sky.im = the true sky in
Jy/pixel, first/ = the products of the stopped first call, state.npz/json).  Stages can be
re-run alone: --stage tclean (same MS) or --stage label (same products).

Per-channel statistics (channel_stats.csv; diverged_channels.csv holds the flagged rows)
  err_std_sigma = std(image - truth) / sigma and resid_rms_sigma = rms(residual) / sigma over
  pb >= 0.3; a channel is `diverged` when err_std_sigma >= 10 and err_std_sigma >= 8 x
  resid_rms_sigma (the image is wrong everywhere by far more than the residual explains) and
  the same holds for the positive error (99.5th percentile of image - truth): flux that the
  array resolves out makes a large but negative error (image < truth) with a quiet residual
  (nat12m_bright channels 10-13: std 15-24 sigma, residual 1.1 sigma), divergence does not.  first_stopcode / first_peakres_* come
  from the first tclean call's per-channel minor-cycle summary (fullsummary=True).

Labelling (labels.csv, one row per connected region)
  E = image - truth per channel, high-passed by subtracting a Gaussian smoothing of E with
  FWHM 3 beams; in units of the channel noise; only pixels with pb >= 0.3.  Every connected
  region (8-connectivity, per channel) with E_hp >= 5 sigma gives a row at its peak.  cls:
    confetti           run_len <= 2 (consecutive channels through c where the 3x3 max of
                       E_hp at the peak is >= 0.3 x the peak excess), a bright model pixel
                       carries it (max model within 0.5 beam x pixels_per_beam > 0.3 x the
                       excess in Jy/beam), not within 1 beam of a real compact source, and
                       residual at the peak < 0.5 x the excess;
    real_source_error  within 1 beam major FWHM of a real compact source whose beam-convolved
                       line is >= 1 sigma within +-1 channel;
    other_artifact     anything else (under-cleaned or mis-cleaned extended emission,
                       JvM/flux-scale errors, diverged channels).
  Rows in a diverged channel are other_artifact (column diverged_channel = True): a failed
  channel, not point sources.
  origin = natural for every row (nothing is injected here).  In the continuum case (one
  plane) a "1-2 channel excess" has no meaning, so no row is confetti there: excesses are
  other_artifact (errors on bright extended emission) or real_source_error.  Note that for
  mtmfs image.tt0 != beam (*) model.tt0 + residual.tt0 exactly (about 1 sigma rms, up to
  ~12 sigma on bright emission; CASA's multi-term restoration), see params.json checks.
"""

import argparse
import csv
import json
import os
import shutil
import sys
import time

import numpy as np
from scipy import ndimage
from scipy.signal import fftconvolve

from casa_site import write_siteconfig

ARCSEC = np.pi / 180.0 / 3600.0
C_KMS = 299792.458
DIRECTION = ("J2000", 271.0, -21.6)   # deg; 18h04m -21d36m (transits near zenith at ALMA)
LABEL_OPTS = dict(k_excess=5.0, hp_fwhm_beams=3.0, pb_min=0.3, run_frac=0.3, max_run=2,
                  model_frac=0.3, resid_frac=0.5, near_beams=1.0)

# ----------------------------------------------------------------------------------------
# case definitions
# ----------------------------------------------------------------------------------------
_COMMON_TCLEAN = dict(
    specmode="cube", outframe="LSRK", weighting="briggs", robust=0.5, niter=1000000, gain=0.1,
    deconvolver="multiscale", scales=[0, 5, 15, 45], smallscalebias=0.0, cyclefactor=1.0,
    minpsffraction=0.05, maxpsffraction=0.8, usemask="pb", pbmask=0.2, pblimit=0.1,
    restoringbeam="common", perchanweightdensity=True, threshold_sigma=2.5)

#: the 7m (ACA) mosaic of 7 pointings the 7m cases share: array, band, grid, time, sky
_ACA_MOSAIC = dict(
    config="aca.cycle5.cfg", freq_GHz=93.17, chanwidth_MHz=0.25, imsize=128, cell_arcsec=3.0,
    pointings="hex7", spacing_arcsec=50.0, totaltime_s=1440, integration_s=60, noise_mJy=4.0,
    clump_fwhm_beam=(0.6, 2.0), n_filaments=3, fil_width_beam=(1.0, 2.5), layer_frac=0.08,
    n_compact=6, beam_guess_pix=5.0)

#: the 12m mosaic of 7 pointings at 3 mm the 12m mosaic cases share: array, band, grid,
#: time, noise
_ALMA12_MOSAIC = dict(
    config="alma.cycle5.1.cfg", freq_GHz=93.17, chanwidth_MHz=0.25, imsize=160,
    cell_arcsec=0.9, pointings="hex7", spacing_arcsec=28.0, totaltime_s=1680, integration_s=60,
    noise_mJy=3.0, layer_frac=0.08, beam_guess_pix=4.0)

CASES = {
    "nat7m_diverged": dict(
        _ACA_MOSAIC, seed=702, nchan=24, field_flag_frac=0.3, peak_sigma=500.0, n_clumps=35,
        vel_rms_chan=5.0, linewidth_chan=(1.0, 2.0), compact_sigma=(8.0, 60.0),
        tclean=dict(_COMMON_TCLEAN, gridder="mosaic", scales=[0, 6, 18, 40], gain=0.3,
                    smallscalebias=-0.3, cyclefactor=0.05, minpsffraction=0.001,
                    maxpsffraction=0.3, threshold_sigma=1.0),
        restart=dict(cyclefactor=1.5, minpsffraction=0.05, maxpsffraction=0.8, gain=0.1,
                     scales=[0, 6, 18], smallscalebias=0.0, threshold_sigma=2.0, nmajor=50)),
    "nat12m_bright": dict(
        _ALMA12_MOSAIC, seed=1201, nchan=24, field_flag_frac=0.0, peak_sigma=400.0,
        n_clumps=40, clump_fwhm_beam=(0.6, 3.0), n_filaments=3, fil_width_beam=(1.0, 3.0),
        vel_rms_chan=5.0, linewidth_chan=(1.0, 2.5), n_compact=6, compact_sigma=(8.0, 80.0),
        tclean=dict(_COMMON_TCLEAN, gridder="mosaic", scales=[0, 5, 15, 45], cyclefactor=1.0,
                    threshold_sigma=2.5)),
    "cont_mtmfs": dict(
        seed=4001, config="alma.cycle5.3.cfg", freq_GHz=100.0, chanwidth_MHz=250.0, nchan=8,
        imsize=128, cell_arcsec=0.3, pointings="single",
        totaltime_s=1200, integration_s=60, field_flag_frac=0.0,
        noise_mJy=0.1, peak_sigma=300.0, n_clumps=20, clump_fwhm_beam=(1.0, 4.0),
        n_filaments=2, fil_width_beam=(1.5, 3.0), layer_frac=0.1, continuum=True,
        n_compact=6, compact_sigma=(10.0, 150.0), beam_guess_pix=4.5,
        tclean=dict(_COMMON_TCLEAN, specmode="mfs", deconvolver="mtmfs", nterms=2,
                    scales=[0, 5, 15], gridder="standard", cyclefactor=1.0,
                    threshold_sigma=2.5, perchanweightdensity=False)),
    "nat12m_moderate": dict(
        seed=1203, config="alma.cycle5.1.cfg", freq_GHz=230.538, chanwidth_MHz=0.5, nchan=24,
        imsize=128, cell_arcsec=0.35, pointings="single",
        totaltime_s=1200, integration_s=60, field_flag_frac=0.0,
        noise_mJy=5.0, peak_sigma=40.0, n_clumps=25, clump_fwhm_beam=(0.6, 2.5),
        n_filaments=2, fil_width_beam=(1.0, 2.5), layer_frac=0.1, vel_rms_chan=4.0,
        linewidth_chan=(1.0, 2.5), n_compact=6, compact_sigma=(6.0, 30.0), beam_guess_pix=4.5,
        tclean=dict(_COMMON_TCLEAN, gridder="standard", deconvolver="hogbom", robust=2.0,
                    cyclefactor=1.0, threshold_sigma=2.5)),
    "nat7m_cyclefactor": dict(
        _ACA_MOSAIC, seed=705, nchan=24, field_flag_frac=0.3, peak_sigma=300.0, n_clumps=35,
        vel_rms_chan=5.0, linewidth_chan=(0.8, 1.5), compact_sigma=(8.0, 60.0),
        tclean=dict(_COMMON_TCLEAN, gridder="mosaic", scales=[0, 6, 18, 40],
                    smallscalebias=0.0, cyclefactor=0.1, minpsffraction=0.01,
                    usemask="auto-multithresh", sidelobethreshold=1.5, noisethreshold=4.0,
                    lownoisethreshold=1.5, minbeamfrac=0.3, growiterations=75,
                    negativethreshold=0.0, threshold_sigma=2.0)),
    "aggr7m_lowcf": dict(
        _ACA_MOSAIC, seed=710, nchan=20, field_flag_frac=0.1, peak_sigma=40.0, n_clumps=30,
        vel_rms_chan=4.0, linewidth_chan=(1.0, 2.0), compact_sigma=(8.0, 40.0),
        tclean=dict(_COMMON_TCLEAN, gridder="mosaic", robust=2.0, scales=[0, 6, 18, 40],
                    smallscalebias=0.6, gain=0.5, cyclefactor=0.1, minpsffraction=0.01,
                    maxpsffraction=0.3, threshold_sigma=0.5)),
    "aggr12m_pedestal": dict(
        seed=1210, config=["alma.cycle5.1.cfg", "alma.cycle5.4.cfg"], freq_GHz=93.17,
        chanwidth_MHz=0.25, nchan=20, imsize=160, cell_arcsec=0.2, pointings="single",
        totaltime_s=[600, 1200], integration_s=60, field_flag_frac=0.0,
        noise_mJy=2.0, peak_sigma=40.0, n_clumps=30, clump_fwhm_beam=(0.6, 4.0),
        n_filaments=3, fil_width_beam=(1.0, 3.0), layer_frac=0.1, vel_rms_chan=4.0,
        linewidth_chan=(1.0, 2.0), n_compact=6, compact_sigma=(6.0, 30.0), beam_guess_pix=5.5,
        tclean=dict(_COMMON_TCLEAN, gridder="standard", robust=2.0, scales=[0, 5, 15, 45],
                    smallscalebias=0.6, gain=0.5, cyclefactor=0.1, minpsffraction=0.01,
                    maxpsffraction=0.3, threshold_sigma=0.5)),
    "clean_lowcf12m": dict(
        _ALMA12_MOSAIC, seed=1222, nchan=20, field_flag_frac=0.3, peak_sigma=50.0,
        n_clumps=30, clump_fwhm_beam=(0.6, 2.5), n_filaments=2, fil_width_beam=(1.0, 2.5),
        vel_rms_chan=4.0, linewidth_chan=(0.8, 1.5), n_compact=8, compact_sigma=(500.0, 3000.0),
        tclean=dict(_COMMON_TCLEAN, gridder="mosaic", robust=-0.5, scales=[0, 5, 15],
                    gain=0.3, cyclefactor=0.05, minpsffraction=0.001, maxpsffraction=0.3,
                    threshold_sigma=1.0)),
}
ORDER = ["nat7m_diverged", "nat12m_bright", "cont_mtmfs", "nat12m_moderate", "nat7m_cyclefactor",
         "aggr7m_lowcf", "aggr12m_pedestal", "clean_lowcf12m"]


# ----------------------------------------------------------------------------------------
# CASA environment
# ----------------------------------------------------------------------------------------
def casa_env(workdir):
    """Write a casasiteconfig that uses the casadata package offline; import casatools."""
    write_siteconfig(workdir)
    import casatools  # noqa: F401
    from casatasks import casalog
    casalog.setlogfile(os.path.join(workdir, "casa.log"))
    return casatools


# ----------------------------------------------------------------------------------------
# sky model
# ----------------------------------------------------------------------------------------
def beam_kernel(bmaj_pix, bmin_pix, bpa_deg, size=None):
    """Peak-normalised elliptical Gaussian (CASA PA: from +y (north) towards -x (east))."""
    if size is None:
        size = int(np.ceil(bmaj_pix * 3.0)) * 2 + 1
    h = size // 2
    y, x = np.mgrid[-h:h + 1, -h:h + 1].astype(float)
    pa = np.radians(bpa_deg)
    ux, uy = -np.sin(pa), np.cos(pa)
    a = x * ux + y * uy
    b = -x * uy + y * ux
    sa, sb = bmaj_pix / 2.3548, bmin_pix / 2.3548
    return np.exp(-0.5 * ((a / sa) ** 2 + (b / sb) ** 2))


def convolve_cube(cube, kern):
    out = np.empty_like(cube, dtype=np.float64)
    for c in range(cube.shape[0]):
        out[c] = fftconvolve(cube[c], kern, mode="same")
    return out


def gauss2d(ny, nx, x0, y0, fwhm_a, fwhm_b, pa):
    y, x = np.mgrid[0:ny, 0:nx].astype(float)
    ca, sa = np.cos(pa), np.sin(pa)
    a = (x - x0) * ca + (y - y0) * sa
    b = -(x - x0) * sa + (y - y0) * ca
    return np.exp(-4 * np.log(2) * ((a / fwhm_a) ** 2 + (b / fwhm_b) ** 2))


def lognormal_layer(rng, n, slope=2.8, lnsig=0.7):
    k = np.fft.fftfreq(n)
    kk = np.sqrt(k[:, None] ** 2 + k[None, :] ** 2)
    kk[0, 0] = 1.0 / n
    f = (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))) * kk ** (-slope / 2)
    f[0, 0] = 0
    g = np.real(np.fft.ifft2(f))
    g = (g - g.mean()) / g.std()
    return np.exp(lnsig * g)


def make_sky(p, rng):
    """Return (sky[chan, y, x] in arbitrary units, compact list, part dict) on the image grid.

    The extended part is normalised to peak 1 (before beam/pb), compact sources carry
    'rel_peak' (relative to the extended peak after beam convolution, scaled later)."""
    n, nch = p["imsize"], p["nchan"]
    bpix = p["beam_guess_pix"]
    yy, xx = np.mgrid[0:n, 0:n].astype(float)
    r = np.hypot(xx - n / 2, yy - n / 2) / (n / 2)
    taper = np.clip((1.0 - r) / 0.3, 0, 1) ** 2          # goes to 0 at the image edge
    chans = np.arange(nch, dtype=float)
    cont = p.get("continuum", False)
    ext = np.zeros((nch, n, n))
    if cont:
        nu = p["freq_GHz"] + (chans - (nch - 1) / 2) * p["chanwidth_MHz"] / 1e3
        spec_ext = (nu / p["freq_GHz"]) ** 2.5
    # lognormal layer with a broad, slowly moving line
    lay = lognormal_layer(rng, n)
    lay = ndimage.gaussian_filter(lay, bpix / 2.3548)
    lay /= lay.max()
    vc0 = rng.uniform(0.3, 0.7) * nch
    grad = rng.normal(size=2) * 0.02 * nch / n
    for c in range(nch):
        if cont:
            ext[c] += p["layer_frac"] * lay * spec_ext[c]
        else:
            vcen = vc0 + grad[0] * (xx - n / 2) + grad[1] * (yy - n / 2)
            ext[c] += p["layer_frac"] * lay * np.exp(-0.5 * ((c - vcen) / (0.2 * nch)) ** 2)
    # clumps: resolved Gaussians with a velocity gradient across them
    for _ in range(p["n_clumps"]):
        rr = 0.75 * np.sqrt(rng.uniform(0, 1))
        th = rng.uniform(0, 2 * np.pi)
        x0, y0 = n / 2 + rr * n / 2 * np.cos(th), n / 2 + rr * n / 2 * np.sin(th)
        fw = rng.uniform(*p["clump_fwhm_beam"]) * bpix
        ax = rng.uniform(0.5, 1.0)
        pa = rng.uniform(0, np.pi)
        amp = 10 ** rng.uniform(-1.0, 0.0)
        g = gauss2d(n, n, x0, y0, fw, fw * ax, pa)
        if cont:
            for c in range(nch):
                ext[c] += amp * g * spec_ext[c]
            continue
        vc = np.clip(nch / 2 + rng.normal() * p["vel_rms_chan"], 2, nch - 3)
        lw = rng.uniform(*p["linewidth_chan"]) * 2.3548 / 2.3548
        vg = rng.normal(size=2) * 1.5 / max(fw, 1.0)    # channels per pixel
        vcen = vc + vg[0] * (xx - x0) + vg[1] * (yy - y0)
        for c in range(nch):
            ext[c] += amp * g * np.exp(-0.5 * ((c - vcen) / (lw * 1.2)) ** 2)
    # filaments: curved paths, line centre changing along them
    for _ in range(p["n_filaments"]):
        npt = 200
        th0 = rng.uniform(0, 2 * np.pi)
        curv = rng.normal() * 2.0
        s = np.linspace(-0.5, 0.5, npt)
        length = rng.uniform(0.5, 0.9) * n
        ang = th0 + curv * s
        px = n / 2 + rng.normal() * 0.1 * n + np.cumsum(np.cos(ang)) * length / npt
        py = n / 2 + rng.normal() * 0.1 * n + np.cumsum(np.sin(ang)) * length / npt
        px -= px.mean() - (n / 2 + rng.normal() * 0.1 * n)
        py -= py.mean() - (n / 2 + rng.normal() * 0.1 * n)
        width = rng.uniform(*p["fil_width_beam"]) * bpix
        amp = 10 ** rng.uniform(-0.7, 0.0)
        # distance map and the curve parameter of the nearest point
        tree_d = np.full((n, n), np.inf)
        tree_s = np.zeros((n, n))
        for k in range(0, npt, 2):
            d = np.hypot(xx - px[k], yy - py[k])
            m = d < tree_d
            tree_d[m] = d[m]
            tree_s[m] = s[k]
        prof = np.exp(-4 * np.log(2) * (tree_d / width) ** 2)
        along = 0.5 + 0.5 * np.cos(np.pi * tree_s / 0.5 * rng.uniform(0.5, 1.5)) ** 2
        prof *= along
        if cont:
            for c in range(nch):
                ext[c] += amp * prof * spec_ext[c]
            continue
        vc = nch / 2 + rng.normal() * p["vel_rms_chan"] * 0.5
        dv = rng.uniform(-1, 1) * 0.6 * nch
        lw = rng.uniform(*p["linewidth_chan"]) * 1.3
        vcen = vc + dv * tree_s
        for c in range(nch):
            ext[c] += amp * prof * np.exp(-0.5 * ((c - vcen) / lw) ** 2)
    ext *= taper[None]
    ext /= ext.max()
    # compact sources (size 0.3 beam), relative peaks in units of the (later) noise
    compact = []
    srcs = np.zeros_like(ext)
    for i in range(p["n_compact"]):
        rr = 0.6 * np.sqrt(rng.uniform(0, 1))
        th = rng.uniform(0, 2 * np.pi)
        x0, y0 = n / 2 + rr * n / 2 * np.cos(th), n / 2 + rr * n / 2 * np.sin(th)
        narrow = i % 2 == 0
        if cont:
            fwc, vc = np.inf, 0.0
            alpha = rng.uniform(-1.0, 2.0)
        else:
            fwc = rng.uniform(1.0, 2.0) if narrow else rng.uniform(3.0, 6.0)
            vc = rng.uniform(2, nch - 3)
            alpha = 0.0
        snr = 10 ** rng.uniform(np.log10(p["compact_sigma"][0]), np.log10(p["compact_sigma"][1]))
        g = gauss2d(n, n, x0, y0, 0.3 * bpix, 0.3 * bpix, 0.0)
        g /= g.sum()
        for c in range(nch):
            if cont:
                nu = p["freq_GHz"] + (c - (nch - 1) / 2) * p["chanwidth_MHz"] / 1e3
                sp = (nu / p["freq_GHz"]) ** alpha
            else:
                sp = np.exp(-4 * np.log(2) * ((c - vc) / fwc) ** 2)
            srcs[c] += g * sp * snr
        compact.append(dict(id=i, x=x0, y=y0, vchan=vc, fwhm_chan=fwc if not cont else -1,
                            target_sigma=snr, narrow=bool(narrow and not cont), alpha=alpha))
    return ext, srcs, compact


# ----------------------------------------------------------------------------------------
# CASA I/O
# ----------------------------------------------------------------------------------------
def freq_axis(p):
    f0 = p["freq_GHz"] * 1e9
    df = p["chanwidth_MHz"] * 1e6
    return f0 + (np.arange(p["nchan"]) - (p["nchan"] - 1) / 2.0) * df


def write_casa_image(ct, path, cube, p, unit="Jy/pixel"):
    """cube[chan, y, x] -> CASA image (RA, Dec, Stokes, Freq) on the image grid."""
    n = p["imsize"]
    cs = ct.coordsys()
    cs = cs.newcoordsys(direction=True, spectral=True, stokes=["I"])
    cell = p["cell_arcsec"] * ARCSEC
    freqs = freq_axis(p)
    cs.setreferencecode("J2000", type="direction", adjust=False)
    cs.setreferencecode("LSRK", type="spectral", adjust=False)
    cs.setunits(["rad", "rad", "", "Hz"])
    cs.setreferencepixel([n // 2, n // 2, 0, 0])
    cs.setreferencevalue([np.radians(DIRECTION[1]), np.radians(DIRECTION[2]), 1, freqs[0]])
    cs.setincrement([-cell, cell, 1, p["chanwidth_MHz"] * 1e6])
    cs.setrestfrequency(f"{p['freq_GHz']}GHz")
    arr = np.transpose(cube, (2, 1, 0))[:, :, None, :].astype(np.float64)
    ia = ct.image()
    if os.path.exists(path):
        shutil.rmtree(path)
    ia.fromarray(outfile=path, pixels=arr, csys=cs.torecord(), overwrite=True)
    ia.setbrightnessunit(unit)
    ia.done()
    cs.done()


def read_casa_image(ct, path):
    """Return (data[chan, y, x] float64 with NaN where masked, info dict)."""
    ia = ct.image()
    ia.open(path)
    d = ia.getchunk(dropdeg=False)
    try:
        m = ia.getchunk(getmask=True, dropdeg=False)
    except Exception:
        m = np.ones(d.shape, bool)
    info = dict(shape=list(d.shape), unit=ia.brightnessunit())
    rb = ia.restoringbeam()
    if rb:
        b = rb if "major" in rb else rb["beams"]["*0"]["*0"]
        info["beam_arcsec"] = [ct.quanta().convert(b["major"], "arcsec")["value"],
                               ct.quanta().convert(b["minor"], "arcsec")["value"],
                               ct.quanta().convert(b["positionangle"], "deg")["value"]]
    csr = ia.coordsys()
    info["refpix"] = list(csr.referencepixel()["numeric"])
    info["refval"] = list(csr.referencevalue()["numeric"])
    info["incr"] = list(csr.increment()["numeric"])
    csr.done()
    ia.done()
    d = np.where(m, d, np.nan)
    d = np.transpose(d[:, :, 0, :], (2, 1, 0))
    return d, info


def write_pointings(path, p):
    ra0, dec0 = DIRECTION[1], DIRECTION[2]
    offs = [(0.0, 0.0)]
    if p["pointings"] == "hex7":
        s = p["spacing_arcsec"] / 3600.0
        for k in range(6):
            a = np.radians(60 * k + 30)
            offs.append((s * np.cos(a), s * np.sin(a)))
    with open(path, "w") as f:
        f.write("#Epoch     RA          DEC      TIME\n")
        for dx, dy in offs:
            ra = ra0 + dx / np.cos(np.radians(dec0))
            f.write(f"J2000 {ra:.7f}deg {dec0 + dy:.7f}deg {p['integration_s']:.1f}\n")
    return len(offs)


# ----------------------------------------------------------------------------------------
# pipeline pieces
# ----------------------------------------------------------------------------------------
def simulate(ct, casedir, p, sky_unit):
    """simobserve the sky; ``config`` may be a list of antenna files (one execution per
    configuration, ``totaltime_s`` a matching list), concatenated into one MS (multi-
    configuration data: no baselines between the configurations)."""
    from casatasks import simobserve
    work = os.path.join(casedir, "work")
    os.makedirs(work, exist_ok=True)
    skyim = os.path.join(work, "sky_unit.im")
    write_casa_image(ct, skyim, sky_unit, p)
    ptg = os.path.join(work, "pointings.txt")
    npt = write_pointings(ptg, p)
    cfgs = p["config"] if isinstance(p["config"], (list, tuple)) else [p["config"]]
    tts = p["totaltime_s"] if isinstance(p["totaltime_s"], (list, tuple)) else [p["totaltime_s"]]
    projects = ["sim"] if len(cfgs) == 1 else [f"sim_cfg{i}" for i in range(len(cfgs))]
    cwd = os.getcwd()
    os.chdir(work)
    try:
        for proj, cfgname, tt in zip(projects, cfgs, tts):
            cfg = ct.ctsys.resolve(f"alma/simmos/{cfgname}")
            simobserve(project=proj, skymodel="sky_unit.im", inbright="", indirection="",
                       incell="", incenter="", inwidth="", setpointings=False, ptgfile=ptg,
                       integration=f"{p['integration_s']}s", obsmode="int", antennalist=cfg,
                       totaltime=f"{tt}s", hourangle="transit", thermalnoise="",
                       outframe="LSRK", graphics="none", overwrite=True, verbose=False)
    finally:
        os.chdir(cwd)

    def _ms(proj):
        ms = [f for f in os.listdir(os.path.join(work, proj)) if f.endswith(".ms")]
        return os.path.join(work, proj, sorted(ms)[0])
    if len(cfgs) == 1:
        return _ms("sim"), npt
    from casatasks import concat
    shutil.rmtree(os.path.join(work, "sim"), ignore_errors=True)
    os.makedirs(os.path.join(work, "sim"))
    out = os.path.join(work, "sim", "concat.ms")
    concat(vis=[_ms(pr) for pr in projects], concatvis=out, freqtol="", dirtol="1arcsec")
    for pr in projects:
        shutil.rmtree(os.path.join(work, pr))
    return out, npt


def ms_columns(ct, ms):
    tb = ct.table()
    tb.open(ms)
    out = dict(data=tb.getcol("DATA"), flag=tb.getcol("FLAG"), field=tb.getcol("FIELD_ID"),
               a1=tb.getcol("ANTENNA1"), a2=tb.getcol("ANTENNA2"))
    tb.close()
    tb.open(os.path.join(ms, "SPECTRAL_WINDOW"))
    out["chan_freq"] = tb.getcol("CHAN_FREQ")[:, 0]
    out["freq_ref"] = int(tb.getcol("MEAS_FREQ_REF")[0])
    tb.close()
    return out


def write_ms(ct, src, dst, data, flag):
    if os.path.exists(dst):
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    tb = ct.table()
    tb.open(dst, nomodify=False)
    # simobserve writes MODEL_DATA and CORRECTED_DATA too; tclean would image CORRECTED_DATA
    extra = [c for c in ("CORRECTED_DATA", "MODEL_DATA") if c in tb.colnames()]
    if extra:
        tb.removecols(extra)
    tb.putcol("DATA", data)
    tb.putcol("FLAG", flag)
    tb.close()


def tclean_kwargs(p, tc, vis, imagename, noise_jy=None, **over):
    kw = dict(vis=vis, imagename=imagename, imsize=[p["imsize"], p["imsize"]],
              cell=f"{p['cell_arcsec']}arcsec",
              phasecenter=f"J2000 {DIRECTION[1]}deg {DIRECTION[2]}deg",
              specmode=tc["specmode"], gridder=tc["gridder"], deconvolver=tc["deconvolver"],
              weighting=tc["weighting"], robust=tc["robust"], niter=tc["niter"],
              gain=tc["gain"], cyclefactor=tc["cyclefactor"],
              minpsffraction=tc["minpsffraction"], maxpsffraction=tc["maxpsffraction"],
              usemask=tc["usemask"], pbmask=tc["pbmask"], pblimit=tc["pblimit"],
              restoringbeam=tc["restoringbeam"], interactive=False, parallel=False,
              stokes="I", pbcor=False, datacolumn="data")
    if tc["deconvolver"] in ("multiscale", "mtmfs"):
        kw.update(scales=tc["scales"], smallscalebias=tc["smallscalebias"])
    if tc["deconvolver"] == "mtmfs":
        kw.update(nterms=tc["nterms"], reffreq=f"{p['freq_GHz']}GHz")
    if tc["specmode"] == "cube":
        freqs = freq_axis(p)
        kw.update(nchan=p["nchan"], start=f"{freqs[0]}Hz", width=f"{p['chanwidth_MHz']}MHz",
                  outframe=tc["outframe"], restfreq=f"{p['freq_GHz']}GHz",
                  interpolation="nearest", perchanweightdensity=tc["perchanweightdensity"])
    if tc["usemask"] == "auto-multithresh":
        for k in ("sidelobethreshold", "noisethreshold", "lownoisethreshold", "minbeamfrac",
                  "growiterations", "negativethreshold"):
            kw[k] = tc[k]
    if tc["gridder"] == "mosaic":
        kw["mosweight"] = True
    if noise_jy is not None:
        kw["threshold"] = f"{tc['threshold_sigma'] * noise_jy * 1e3:.6f}mJy"
    kw.update(over)
    return kw


def summarise(ret):
    """JSON-able digest of a tclean return record (per-channel stop codes when present)."""
    out = {}
    if not isinstance(ret, dict):
        return out
    for k in ("iterdone", "nmajordone", "stopcode", "stopDescription", "maxpsfsidelobe",
              "peakres", "threshold"):
        if k in ret:
            v = ret[k]
            out[k] = v.tolist() if hasattr(v, "tolist") else v
    sm = ret.get("summaryminor")
    if isinstance(sm, dict):
        per = {}
        try:
            for field, fd in sm.items():
                for chan, cd in fd.items():
                    for pol, pdict in cd.items():
                        rec = {}
                        for key in ("iterDone", "peakRes", "modelFlux", "cycleThresh",
                                    "stopCode", "startIterDone", "startPeakRes"):
                            if key in pdict:
                                v = np.asarray(pdict[key]).ravel()
                                rec[key] = [float(x) for x in v]
                        per[int(chan)] = rec
        except Exception as e:  # the layout differs between CASA versions
            per = {"error": repr(e)}
        out["per_channel"] = per
    return out


def rms_in(cube, pb, thr=0.5):
    out = []
    for c in range(cube.shape[0]):
        m = np.isfinite(cube[c]) & (pb[min(c, pb.shape[0] - 1)] >= thr)
        out.append(float(np.sqrt(np.mean(cube[c][m] ** 2))))
    return np.array(out)


# ----------------------------------------------------------------------------------------
# labelling
# ----------------------------------------------------------------------------------------
def label_case(name, img, model, res, truth, pb, noise, beam_pix, compact_truth, reals):
    """Return list of label rows (dicts)."""
    o = LABEL_OPTS
    nch = img.shape[0]
    bmaj, bmin, _ = beam_pix
    ppb = np.pi * bmaj * bmin / (4 * np.log(2))
    hp_sig = o["hp_fwhm_beams"] * bmaj / 2.3548
    valid = (pb >= o["pb_min"]) & np.isfinite(img) & np.isfinite(truth)
    E = np.where(valid, img - truth, 0.0)
    Ehp = np.empty_like(E)
    ihp = np.empty_like(E)
    thp = np.empty_like(E)
    for c in range(nch):
        Ehp[c] = E[c] - ndimage.gaussian_filter(E[c], hp_sig, mode="constant")
        ii = np.where(valid[c], img[c], 0.0)
        tt = np.where(valid[c], truth[c], 0.0)
        ihp[c] = ii - ndimage.gaussian_filter(ii, hp_sig, mode="constant")
        thp[c] = tt - ndimage.gaussian_filter(tt, hp_sig, mode="constant")
    S = Ehp / noise[:, None, None]
    S[~valid] = 0
    ny, nx = img.shape[1:]
    yy, xx = np.mgrid[0:ny, 0:nx]
    rows = []
    S3 = ndimage.maximum_filter(S, size=(1, 3, 3))
    for c in range(nch):
        lab, nlab = ndimage.label(S[c] >= o["k_excess"], structure=np.ones((3, 3)))
        if nlab == 0:
            continue
        pos = ndimage.maximum_position(S[c], lab, range(1, nlab + 1))
        for (y, x) in pos:
            ex_sig = S[c, y, x]
            ex_jy = Ehp[c, y, x]
            # run of channels through c
            lo = c
            while lo - 1 >= 0 and S3[lo - 1, y, x] >= o["run_frac"] * ex_sig:
                lo -= 1
            hi = c
            while hi + 1 < nch and S3[hi + 1, y, x] >= o["run_frac"] * ex_sig:
                hi += 1
            run_len = hi - lo + 1
            d = np.hypot(xx - x, yy - y)
            near = d <= 0.5 * bmaj
            mpk = float(np.nanmax(np.where(near, model[c], -np.inf)))
            adj = [np.nanmax(np.where(near, model[k], -np.inf)) for k in (c - 1, c + 1)
                   if 0 <= k < nch]
            mpk_adj = float(max(adj)) if adj else 0.0
            ring = d <= 2 * bmaj
            mneg = float(np.nansum(np.where(ring & (model[c] < 0), model[c], 0)))
            mpos = float(np.nansum(np.where(ring & (model[c] > 0), model[c], 0)))
            rsig = float(res[c, y, x] / noise[c])
            near_real = -1
            for s in reals:
                if np.hypot(s["x"] - x, s["y"] - y) <= o["near_beams"] * bmaj:
                    k0, k1 = max(c - 1, 0), min(c + 1, nch - 1)
                    if np.nanmax(compact_truth[s["id"]][k0:k1 + 1]) >= 1.0 * noise[c]:
                        near_real = s["id"]
                        break
            if near_real >= 0:
                cls = "real_source_error"
            elif (nch > 1 and run_len <= o["max_run"] and mpk * ppb > o["model_frac"] * ex_jy
                  and res[c, y, x] < o["resid_frac"] * ex_jy):
                cls = "confetti"
            else:
                cls = "other_artifact"
            rows.append(dict(case=name, channel=c, x=int(x), y=int(y),
                             excess_sigma=round(float(ex_sig), 2), model_peak=mpk, cls=cls,
                             excess_Jy=float(ex_jy),
                             image_hp_sigma=round(float(ihp[c, y, x] / noise[c]), 2),
                             truth_hp_sigma=round(float(thp[c, y, x] / noise[c]), 2),
                             residual_sigma=round(rsig, 2), run_lo=lo, run_hi=hi,
                             run_len=run_len, model_peak_adj=mpk_adj, model_neg_2beam=mneg,
                             model_pos_2beam=mpos, near_real=near_real, origin="natural"))
    rows.sort(key=lambda r: -r["excess_sigma"])
    return rows


def channel_stats(img, model, res, truth, pb, noise, pb_min=0.3):
    nch = img.shape[0]
    st = []
    for c in range(nch):
        m = (pb[c] >= pb_min) & np.isfinite(img[c])
        err = (img[c] - truth[c])[m]
        st.append(dict(channel=c, err_std_sigma=float(np.std(err) / noise[c]),
                       err_p995_sigma=float(np.percentile(err, 99.5) / noise[c]),
                       err_p005_sigma=float(np.percentile(err, 0.5) / noise[c]),
                       resid_rms_sigma=float(np.sqrt(np.mean(res[c][m] ** 2)) / noise[c]),
                       truth_peak_sigma=float(np.max(truth[c][m]) / noise[c]),
                       image_peak_sigma=float(np.max(img[c][m]) / noise[c]),
                       model_flux_Jy=float(np.nansum(model[c])),
                       model_abs_Jy=float(np.nansum(np.abs(model[c]))),
                       model_neg_Jy=float(np.nansum(np.where(model[c] < 0, model[c], 0))),
                       model_npix=int(np.sum(model[c] != 0))))
    e = np.array([s["err_std_sigma"] for s in st])
    tp = np.array([s["truth_peak_sigma"] for s in st])
    for c in range(nch):
        nb = [k for k in (c - 2, c - 1, c + 1, c + 2) if 0 <= k < nch]
        ref = float(np.median(e[nb])) if nb else float("nan")
        # expectation from the neighbours, scaled by how bright this channel is
        st[c]["err_neigh_median"] = ref
        st[c]["err_ratio"] = float(e[c] / max(ref, 1e-9))
        st[c]["truth_peak_ratio"] = float(tp[c] / max(np.median(tp[nb]), 1e-9)) if nb else 1.0
        # a diverged channel: the image is wrong everywhere (std of image - truth >= 10
        # sigma), by far more than the residual explains (>= 8 x its rms), and with POSITIVE
        # excess too (99.5th percentile of image - truth >= 10 sigma and >= 8 x the residual
        # rms).  The last condition separates divergence from flux resolved out by the
        # interferometer (a converged 12m mosaic of bright extended emission has std(image -
        # truth) of 20+ sigma with a quiet residual, but its error is negative: image < truth).
        rr = max(st[c]["resid_rms_sigma"], 1e-9)
        st[c]["err_over_resid"] = float(e[c] / rr)
        st[c]["pos_err_over_resid"] = float(st[c]["err_p995_sigma"] / rr)
        st[c]["diverged"] = bool(e[c] >= 10.0 and st[c]["err_over_resid"] >= 8.0
                                 and st[c]["err_p995_sigma"] >= 10.0
                                 and st[c]["pos_err_over_resid"] >= 8.0)
    return st


def write_csv(path, rows, cols=None):
    if cols is None:
        cols = list(rows[0].keys()) if rows else []
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()})


# ----------------------------------------------------------------------------------------
# one case
# ----------------------------------------------------------------------------------------
STAGES = ("sim", "tclean", "label")


def run_case(ct, name, outdir, keep_ms=True, stages=STAGES):
    p = dict(CASES[name])
    casedir = os.path.join(outdir, name)
    if "sim" in stages:
        stage_sim(ct, name, p, casedir)
    if "tclean" in stages:
        stage_tclean(ct, name, p, casedir)
    if "label" in stages:
        meta = stage_label(ct, name, p, casedir)
    if not keep_ms:
        shutil.rmtree(os.path.join(casedir, "work"))
    return meta if "label" in stages else None


def _load_state(casedir):
    z = np.load(os.path.join(casedir, "work", "state.npz"))
    with open(os.path.join(casedir, "work", "state.json")) as f:
        st = json.load(f)
    st.update({k: z[k] for k in z.files})
    return st


def _save_state(casedir, arrays, info):
    np.savez(os.path.join(casedir, "work", "state.npz"), **arrays)
    with open(os.path.join(casedir, "work", "state.json"), "w") as f:
        json.dump(info, f, indent=1, default=float)


def stage_sim(ct, name, p, casedir):
    """Sky, simobserve, flags, noise, the noise-only image; writes work/data.ms + state."""
    from casatasks import tclean
    if os.path.exists(casedir):
        shutil.rmtree(casedir)
    os.makedirs(casedir)
    times = {}
    t0 = time.time()
    rng = np.random.default_rng(p["seed"])
    tc = dict(p["tclean"])
    cont = tc["specmode"] == "mfs"
    ext, srcs, compact = make_sky(p, rng)
    # --- 1. simobserve each part once (visibilities are linear in the sky)
    ms_ext, npt = simulate(ct, casedir, p, ext)
    cols = ms_columns(ct, ms_ext)
    v_ext = cols["data"].copy()
    shutil.move(os.path.dirname(ms_ext), os.path.join(casedir, "work", "sim_ext"))
    ms_src, _ = simulate(ct, casedir, p, srcs)
    v_src = ms_columns(ct, ms_src)["data"].copy()
    template = ms_src
    times["simobserve_s"] = time.time() - t0
    # --- 2. flags and seeded unit noise
    flag = cols["flag"].copy()
    ff = p.get("field_flag_frac", 0.0)
    flagged = {}
    if ff > 0:
        nant = int(max(cols["a1"].max(), cols["a2"].max()) + 1)
        for fld in np.unique(cols["field"]):
            bad = rng.choice(nant, int(round(ff * nant)), replace=False)
            flagged[int(fld)] = sorted(int(a) for a in bad)
            rowsel = (cols["field"] == fld) & (np.isin(cols["a1"], bad) | np.isin(cols["a2"], bad))
            flag[:, :, rowsel] = True
    unit_noise = (rng.normal(size=v_ext.shape) + 1j * rng.normal(size=v_ext.shape)) / np.sqrt(2)
    work = os.path.join(casedir, "work")
    ms_noise = os.path.join(work, "noise.ms")
    write_ms(ct, template, ms_noise, unit_noise, flag)
    t1 = time.time()
    nimg = os.path.join(work, "noise")
    kw = tclean_kwargs(p, tc, ms_noise, nimg, niter=0, usemask="user", mask="",
                       deconvolver="hogbom" if not cont else "mtmfs")
    if cont:
        kw.update(nterms=tc["nterms"], reffreq=f"{p['freq_GHz']}GHz", scales=[0])
    tclean(**kw)
    suf = ".tt0" if cont else ""
    nres, ninfo = read_casa_image(ct, nimg + ".residual" + suf)
    npb, _ = read_casa_image(ct, nimg + ".pb" + suf)
    npb = np.nan_to_num(npb)
    times["noise_tclean_s"] = time.time() - t1
    r_unit = rms_in(nres, npb, 0.5)
    scale_noise = p["noise_mJy"] * 1e-3 / np.median(r_unit)
    noise = r_unit * scale_noise
    _, ninfo = read_casa_image(ct, nimg + ".image" + suf)
    bm = ninfo["beam_arcsec"]
    beam_pix0 = [bm[0] / p["cell_arcsec"], bm[1] / p["cell_arcsec"], bm[2]]
    kern0 = beam_kernel(*beam_pix0)
    # --- scale the sky: extended peak -> peak_sigma, compact -> their target sigma
    nch = p["nchan"]
    pbc = npb if npb.shape[0] == nch else np.repeat(npb, nch, axis=0)
    t_ext = convolve_cube(ext * pbc, kern0)
    a_ext = p["peak_sigma"] * np.median(noise) / t_ext.max()
    a_src = np.median(noise) * 1.0  # srcs carry target sigma per (sum-normalised) Gaussian
    # per-source scaling so that the beam-convolved peak equals target_sigma x noise
    src_parts = []
    for s in compact:
        g = gauss2d(p["imsize"], p["imsize"], s["x"], s["y"], 0.3 * p["beam_guess_pix"],
                    0.3 * p["beam_guess_pix"], 0.0)
        g /= g.sum()
        pk = fftconvolve(g * pbc[0], kern0, mode="same").max()
        s["flux_scale"] = 1.0 / pk       # Jy (integral) per Jy/beam of beam-convolved peak
    # srcs are linear in each source's amplitude but share one simobserve run: rescale the
    # whole compact cube by a single factor computed for the median source, and record the
    # actual peaks afterwards (the pb differs a little between positions).
    fs = float(np.median([s["flux_scale"] for s in compact]))
    a_src = fs * np.median(noise)
    sky = a_ext * ext + a_src * srcs
    data = a_ext * v_ext + a_src * v_src + scale_noise * unit_noise
    ms_main = os.path.join(work, "data.ms")
    write_ms(ct, template, ms_main, data, flag)
    write_ms(ct, template, ms_noise, scale_noise * unit_noise, flag)
    write_casa_image(ct, os.path.join(work, "sky.im"), sky, p)
    for d in ("sim", "sim_ext"):
        shutil.rmtree(os.path.join(work, d), ignore_errors=True)
    times["sim_total_s"] = time.time() - t0
    _save_state(casedir, dict(sky=sky, ext=ext, noise=noise),
                dict(compact=compact, flagged=flagged, npt=npt, freq_ref=cols["freq_ref"],
                     chan_freq=cols["chan_freq"].tolist(), a_ext=float(a_ext),
                     a_src=float(a_src), scale_noise=float(scale_noise),
                     beam_pix0=beam_pix0, times=times))


TCLEAN_KEYS = set(_COMMON_TCLEAN) | {"gridder", "nterms", "sidelobethreshold", "noisethreshold",
                                     "lownoisethreshold", "minbeamfrac", "growiterations",
                                     "negativethreshold"}


def stage_tclean(ct, name, p, casedir):
    """tclean (and, for cases with 'restart', a second call continuing the first)."""
    from casatasks import tclean
    st = _load_state(casedir)
    tc = dict(p["tclean"])
    cont = tc["specmode"] == "mfs"
    work = os.path.join(casedir, "work")
    ms_main = os.path.join(work, "data.ms")
    noise = st["noise"]
    img = os.path.join(casedir, "img")
    for f in os.listdir(casedir):
        if f.startswith("img."):
            shutil.rmtree(os.path.join(casedir, f))
    shutil.rmtree(os.path.join(work, "first"), ignore_errors=True)
    times = {}
    t2 = time.time()
    over = {k: v for k, v in tc.items() if k not in TCLEAN_KEYS}
    kw = tclean_kwargs(p, tc, ms_main, img, noise_jy=float(np.median(noise)), **over)
    ret = tclean(**kw, fullsummary=True) if not cont else tclean(**kw)
    summ = [dict(step="tclean", kwargs=kw, summary=summarise(ret))]
    times["tclean_s"] = time.time() - t2
    if "restart" in p:
        # keep the stopped run's products, as a record of the divergence
        r1 = os.path.join(work, "first")
        os.makedirs(r1, exist_ok=True)
        for ext_ in ("image", "residual", "model"):
            shutil.copytree(f"{img}.{ext_}", os.path.join(r1, f"img.{ext_}"))
        rs = dict(p["restart"])
        tc2 = dict(tc, **{k: v for k, v in rs.items() if k in TCLEAN_KEYS})
        over2 = {k: v for k, v in rs.items() if k not in TCLEAN_KEYS}
        kw2 = tclean_kwargs(p, tc2, ms_main, img, noise_jy=float(np.median(noise)),
                            restart=True, calcres=False, calcpsf=False, **over2)
        t3 = time.time()
        ret2 = tclean(**kw2, fullsummary=True)
        times["tclean_restart_s"] = time.time() - t3
        summ.append(dict(step="tclean_restart", kwargs=kw2, summary=summarise(ret2)))
    with open(os.path.join(casedir, "tclean_summary.json"), "w") as f:
        json.dump(summ, f, indent=1, default=str)
    with open(os.path.join(work, "times_tclean.json"), "w") as f:
        json.dump(times, f)


def stage_label(ct, name, p, casedir, prefix="img"):
    """Read the products, write truth, labels and the per-channel statistics."""
    from astropy.io import fits
    st = _load_state(casedir)
    tc = dict(p["tclean"])
    cont = tc["specmode"] == "mfs"
    suf = ".tt0" if cont else ""
    nch = p["nchan"]
    noise, sky, ext = st["noise"], st["sky"], st["ext"]
    a_ext, a_src, compact = st["a_ext"], st["a_src"], st["compact"]
    times = dict(st["times"])
    tt = os.path.join(casedir, "work", "times_tclean.json")
    if os.path.exists(tt):
        times.update(json.load(open(tt)))
    flagged, npt, beam_pix0 = st["flagged"], st["npt"], st["beam_pix0"]
    scale_noise = st["scale_noise"]
    cols = dict(freq_ref=st["freq_ref"], chan_freq=np.array(st["chan_freq"]))
    img = os.path.join(casedir, prefix)
    t4 = time.time()
    image, info = read_casa_image(ct, img + ".image" + suf)
    model, _ = read_casa_image(ct, img + ".model" + suf)
    resid, _ = read_casa_image(ct, img + ".residual" + suf)
    pb, _ = read_casa_image(ct, img + ".pb" + suf)
    pb0 = np.nan_to_num(pb)
    bm = info["beam_arcsec"]
    beam_pix = [bm[0] / p["cell_arcsec"], bm[1] / p["cell_arcsec"], bm[2]]
    kern = beam_kernel(*beam_pix)
    if cont:
        # tt0 truth: the sky at the reference frequency (mean of the channel models is exact
        # for the linear spectral term only; evaluate at reffreq from the power laws)
        f = freq_axis(p) / (p["freq_GHz"] * 1e9)
        # extended part follows nu^2.5 exactly, sources nu^alpha: value at reffreq
        e0 = ext[np.argmin(np.abs(f - 1.0))] / f[np.argmin(np.abs(f - 1.0))] ** 2.5
        s0 = np.zeros_like(e0)
        for s in compact:
            g = gauss2d(p["imsize"], p["imsize"], s["x"], s["y"], 0.3 * p["beam_guess_pix"],
                        0.3 * p["beam_guess_pix"], 0.0)
            s0 += g / g.sum() * s["target_sigma"]
        sky_ref = (a_ext * e0 + a_src * s0)[None]
        truth = convolve_cube(sky_ref * pb0, kern)
        src_cubes = {}
        for s in compact:
            g = gauss2d(p["imsize"], p["imsize"], s["x"], s["y"], 0.3 * p["beam_guess_pix"],
                        0.3 * p["beam_guess_pix"], 0.0)
            src_cubes[s["id"]] = convolve_cube((a_src * g / g.sum() * s["target_sigma"])[None]
                                               * pb0, kern)[:, ]
        noise_use = np.array([noise[0]])
    else:
        truth = convolve_cube(sky * pb0, kern)
        src_cubes = {}
        for s in compact:
            g = gauss2d(p["imsize"], p["imsize"], s["x"], s["y"], 0.3 * p["beam_guess_pix"],
                        0.3 * p["beam_guess_pix"], 0.0)
            g /= g.sum()
            sp = np.exp(-4 * np.log(2) * ((np.arange(nch) - s["vchan"]) / s["fwhm_chan"]) ** 2)
            src_cubes[s["id"]] = convolve_cube(a_src * s["target_sigma"] * g[None] * sp[:, None, None]
                                               * pb0, kern)
        noise_use = noise
    truth = np.where(pb0 > 0, truth, 0.0)
    # compact source table
    reals = []
    for s in compact:
        cube = src_cubes[s["id"]]
        pk_c = cube.reshape(cube.shape[0], -1).max(axis=1)
        snr = pk_c / noise_use
        cpk = int(np.argmax(snr))
        above = np.where(snr >= 5)[0]
        reals.append(dict(case=name, id=s["id"], x=round(s["x"], 2), y=round(s["y"], 2),
                          chan_peak=cpk, peak_snr=round(float(snr[cpk]), 2),
                          chan_lo=int(above.min()) if above.size else -1,
                          chan_hi=int(above.max()) if above.size else -1,
                          fwhm_chan=round(float(s["fwhm_chan"]), 2), narrow=s["narrow"]))
    # outputs
    fits.PrimaryHDU(truth[None].astype(np.float32)).writeto(
        os.path.join(casedir, "truth.fits"), overwrite=True)
    with open(os.path.join(casedir, "noise.csv"), "w") as f:
        f.write("channel,noise_Jy_beam\n")
        for c, v in enumerate(noise_use):
            f.write(f"{c},{v:.8g}\n")
    write_csv(os.path.join(casedir, "real_sources.csv"), reals,
              ["case", "id", "x", "y", "chan_peak", "peak_snr", "chan_lo", "chan_hi",
               "fwhm_chan", "narrow"])
    rows = label_case(name, image, model, resid, truth, pb0, noise_use, beam_pix, src_cubes, reals)
    lcols = ["case", "channel", "x", "y", "excess_sigma", "model_peak", "cls", "excess_Jy",
             "image_hp_sigma", "truth_hp_sigma", "residual_sigma", "run_lo", "run_hi", "run_len",
             "model_peak_adj", "model_neg_2beam", "model_pos_2beam", "near_real", "origin",
             "diverged_channel"]
    st = channel_stats(image, model, resid, truth, pb0, noise_use)
    # a diverged channel is one failed channel, not many point sources: its rows are
    # other_artifact whatever the per-peak test says
    for r in rows:
        r["diverged_channel"] = bool(st[r["channel"]]["diverged"])
        if r["diverged_channel"] and r["cls"] == "confetti":
            r["cls"] = "other_artifact"
    with open(os.path.join(casedir, "tclean_summary.json")) as f:
        summ = json.load(f)
    pc = {int(k): v for k, v in summ[0]["summary"].get("per_channel", {}).items()
          if k.lstrip("-").isdigit()}
    for s in st:
        rec = pc.get(s["channel"], {}) if isinstance(pc, dict) else {}
        s["first_stopcode"] = rec.get("stopCode", [None])[-1] if rec else None
        s["first_peakres_min"] = min(rec["peakRes"]) if rec.get("peakRes") else None
        s["first_peakres_last"] = rec["peakRes"][-1] if rec.get("peakRes") else None
    write_csv(os.path.join(casedir, "channel_stats.csv"), st)
    if "restart" in p or name in ("nat7m_cyclefactor", "aggr7m_lowcf", "aggr12m_pedestal",
                                  "clean_lowcf12m"):
        write_csv(os.path.join(casedir, "diverged_channels.csv"),
                  [s for s in st if s["diverged"]], list(st[0].keys()))
    write_csv(os.path.join(casedir, "labels.csv"), rows, lcols)
    counts = {k: sum(r["cls"] == k for r in rows)
              for k in ("confetti", "other_artifact", "real_source_error")}
    ppb = np.pi * beam_pix[0] * beam_pix[1] / (4 * np.log(2))
    # consistency: image = beam(*)model*... + residual
    recon = convolve_cube(np.nan_to_num(model), kern) + resid
    m = pb0 >= 0.3
    dif = (image - recon)[m & np.isfinite(image)]
    checks = dict(image_minus_beam_model_plus_resid_rms_sigma=float(np.std(dif) / np.median(noise_use)),
                  image_minus_beam_model_plus_resid_max_sigma=float(np.max(np.abs(dif)) / np.median(noise_use)),
                  residual_rms_over_noise=[round(s["resid_rms_sigma"], 3) for s in st],
                  err_std_sigma=[round(s["err_std_sigma"], 3) for s in st],
                  truth_peak_sigma=float(np.max(truth[m]) / np.median(noise_use)),
                  image_grid=info)
    meta = dict(case=name, beam_pix=beam_pix, cell_arcsec=p["cell_arcsec"], beam_arcsec=bm,
                pixels_per_beam=ppb, median_noise=float(np.median(noise_use)),
                noise_source="noise-only image (same MS, weights, flags; niter=0), rms pb>=0.5",
                label_opts=LABEL_OPTS, counts=counts, counts_by_origin={"natural": len(rows)},
                n_injected=0, n_diverged_channels=int(sum(s["diverged"] for s in st)))
    with open(os.path.join(casedir, "labels_meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    times["label_s"] = time.time() - t4
    times["total_s"] = sum(times.get(k, 0.0) for k in ("sim_total_s", "tclean_s",
                                                       "tclean_restart_s", "label_s"))
    params = dict(name=name, **{k: v for k, v in p.items() if k != "tclean"}, tclean=tc,
                  direction=DIRECTION, n_pointings=npt, field_flagged_antennas=flagged,
                  ms_freq_ref=cols["freq_ref"], ms_chan_freq_Hz=cols["chan_freq"].tolist(),
                  scale_ext=float(a_ext), scale_src=float(a_src),
                  noise_scale_Jy_per_vis_component=float(scale_noise / np.sqrt(2)),
                  compact=compact, noise_meas_Jy=noise_use.tolist(), beam_pix_noise_run=beam_pix0,
                  checks=checks, times=times, casa=ct.version_string())
    with open(os.path.join(casedir, "params.json"), "w") as f:
        json.dump(params, f, indent=1, default=float)
    preview(casedir, name, image, model, resid, truth, noise_use, st, rows)
    print(f"[{name}] done in {times['total_s']:.0f}s: counts {counts}, "
          f"diverged {meta['n_diverged_channels']}, beam_pix {np.round(beam_pix, 2).tolist()}, "
          f"noise {meta['median_noise']:.4g}, checks rms {checks['image_minus_beam_model_plus_resid_rms_sigma']:.3f}",
          flush=True)
    return meta


def preview(casedir, name, image, model, resid, truth, noise, st, rows):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    e = np.array([s["err_std_sigma"] for s in st])
    c = int(np.argmax(e)) if any(s["diverged"] for s in st) else int(
        np.argmax([s["truth_peak_sigma"] for s in st]))
    sg = noise[c]
    fig, ax = plt.subplots(2, 3, figsize=(15, 9.5))
    panels = [("image", image[c] / sg), ("truth", truth[c] / sg),
              ("image - truth", (image[c] - truth[c]) / sg), ("residual", resid[c] / sg),
              ("model (Jy/pix)", model[c])]
    for a, (t, d) in zip(ax.flat, panels):
        v = np.nanpercentile(np.abs(d), 99.5) or 1.0
        im = a.imshow(d, origin="lower", cmap="RdBu_r", vmin=-v, vmax=v)
        a.set_title(f"{name} ch {c}: {t}" + ("" if "model" in t else " [sigma]"))
        plt.colorbar(im, ax=a, fraction=0.046)
    for r in rows:
        if r["channel"] == c:
            ax[0, 2].plot(r["x"], r["y"], "o", mfc="none",
                          mec={"confetti": "lime", "other_artifact": "k"}.get(r["cls"], "m"))
    a = ax[1, 2]
    a.plot([s["err_std_sigma"] for s in st], "o-", label="std(image-truth)/sigma")
    a.plot([s["resid_rms_sigma"] for s in st], "s-", label="residual rms/sigma")
    a.plot(np.array([s["truth_peak_sigma"] for s in st]) / 50, "^-", label="truth peak/50 sigma")
    a.set_xlabel("channel")
    a.legend()
    a.set_title("per-channel stats")
    fig.tight_layout()
    fig.savefig(os.path.join(casedir, "preview.png"), dpi=70)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--case", action="append", choices=list(CASES))
    ap.add_argument("--drop-ms", action="store_true", help="delete the work folder (MS) after")
    ap.add_argument("--stage", action="append", choices=STAGES,
                    help="run only these stages (default all; 'tclean'/'label' reuse work/)")
    a = ap.parse_args(argv)
    out = os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    ct = casa_env(os.path.join(out, "_casa"))
    os.chdir(os.path.join(out, "_casa"))
    for name in (a.case or ORDER):
        run_case(ct, name, out, keep_ms=not a.drop_ms, stages=a.stage or STAGES)


if __name__ == "__main__":
    main()
