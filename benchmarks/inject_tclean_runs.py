"""Inject fake one-channel "confetti" into natural CASA tclean runs and let CASA recompute.

    .casa-venv/bin/python benchmarks/inject_tclean_runs.py --runs tclean-runs \\
        --out tclean-runs-injected [--case NAME ...]

Runs in the CASA environment of make_tclean_runs.py (casatools + casatasks + casadata,
never python-casacore); it writes the same offline casasiteconfig before importing
casatools.  Reads the natural runs made by ``benchmarks/make_tclean_runs.py`` (DIR/<case>/
img.*, truth.fits, noise.csv, real_sources.csv, params.json, work/data.ms) and writes one
folder per injected case with the same layout, so that score_shared.py / repair_shared.py
read them.  Seeded (numpy default_rng, one seed per case): the same inputs give the same
fakes.

What a fake is
  Confetti = a bright compact positive feature in ONE channel of the restored image that is
  not in the sky, carried by a bright model pixel, whose imprint on the data (the dirty
  image) is small, so that the residual hardly shows it.  A fake is a model-plane pattern C
  added to the model of one channel only (model' = model + C); the sky, the visibilities
  (work/data.ms) and therefore truth.fits, noise.csv and real_sources.csv do not change.
  Two constructions (``method`` in injected.csv):
    null     "null-space point": C = a delta(x0) - F^-1[m(k) FT(a delta(x0))], m = the
             measured-uv-cell mask of that channel: |FT(psf)| / max|FT(psf)| > NULL_FRAC
             (0.02), dilated by one uv cell (the Fourier cells next to sampled ones carry
             the off-grid part of the visibilities).  psf (*) C ~ 0: only the uv cells
             outside the measured ones (the short-spacing hole, beyond the longest
             baseline, the gaps) carry C, so its restored form beam (*) C is a peak of
             1-2 pixels (narrower than the beam: the beam's own measured-cell content
             cancels) with weak ripples, on a model pixel a that is 7-30x the restored peak
             in Jy/beam and a negative pattern (the "uniform-weighted psf" of that channel)
             that spreads over the whole plane (neg_total_Jy).  In a mosaic (gridder
             mosaic) the psf (*) C prediction (~0.01 sigma) misses the pb weighting of the
             pointings: CASA's residual changes by ~1-2 sigma there.
    cluster  "cluster on a pedestal psf" (aggr12m_pedestal: two 12m configurations,
             natural weighting, a psf with a broad positive pedestal, ~2 beam areas within
             2 beams): C = a delta(x0) - N, N >= 0 a sum of concentric Gaussian rings
             (radii 0-2 beams in steps of 0.25 beam, Gaussian width 0.25 beam) around x0;
             a and the ring amplitudes (all >= 0) come from a linear programme (scipy
             linprog, HiGHS) that minimises max |psf (*) C| within 4 beams of x0 while
             pinning the image change at x0.  The answer: one ring at ~1 beam (where the
             pedestal psf exceeds the restoring beam); the residual still loses ~0.85 x
             the image peak at x0 (a negative hole: residual' - residual
             = -psf (*) C), so these fakes are NOT hidden from the residual.  A smooth
             N >= 0 cancels only the low-k (pedestal) response; the long-baseline psf core,
             narrower than the restoring beam, stays.  (Nonnegative least squares of
             ||psf (*) C||^2 with beam (*) C (x0) pinned, the first try, was worse: dirty
             max 0.85 x beam (*) C; pinning beam (*) C rather than the image change also
             left the image peak at only ~55 % of the target, since the image change is
             beam (*) C - psf (*) C.  Rings out to 4 beams gave 0.82 with a second ring
             at ~3.5 beams that left a +6 sigma ring in the residual: not kept.)
  Scale: a is set so that the restored fake peak, i.e. the image change at x0 predicted
  as beam (*) C - psf (*) C (beam = the peak-normalised Gaussian restoring beam of the
  image header, Jy/pixel -> Jy/beam; the residual loses psf (*) C; for a null fake the
  second term is ~0), equals restored_sigma x that channel's noise (noise.csv),
  restored_sigma drawn uniformly in SIGMA_RANGE; restored_sigma_meas is what CASA gave.  Placement:
  N_FAKE fakes per case in distinct channels (at least 2 apart, never a diverged channel,
  never the first or last), each >= 3 beams (major FWHM) from every real compact source
  (real_sources.csv), from every natural label of that channel and from the image edge, at
  pb >= 0.5.  All psf/beam convolutions of the design are FFTs on the image grid (periodic).

How CASA recomputes
  The case's img.* are copied, model' is written into the copied img.model (casatools image
  tool: getchunk / putchunk), and tclean is called with the original run's parameters
  (make_tclean_runs.tclean_kwargs with the case's params.json, the copied data.ms) and
  niter=0, restart=True, calcpsf=False, calcres=True, restoringbeam = the original image's
  beam (explicit): a major cycle predicts the visibilities of model', residual' = dirty -
  (those visibilities imaged), and the image is restored from model' and residual'.  This is
  what CASA 6.7 does with an existing model and restart=True: the residual of a test delta
  was -0.1 x the psf, the model stayed untouched, nothing else changed.  Checks
  (params.json 'checks'): img.model after tclean == model' exactly; image' - (beam (*)
  model' + residual') relative to the image peak; residual' - residual in channels without a
  fake (a pure re-run: ~0); per fake the largest |residual' - residual| within 3 beams
  (max_res_change_sigma) and the restored change at x0.

Products per case folder (same layout as the natural runs): img.* (the recomputed CASA
images; img.psf/pb/sumwt unchanged), truth.fits, noise.csv, real_sources.csv (copied),
labels.csv + labels_meta.json (make_tclean_runs.label_case's rule on the new products;
rows within 1 beam of a fake in its channel get origin=injected, others natural),
injected.csv (one row per fake: channel, x, y, a_Jy = the model pixel at x0 after
injection minus before, neg_total_Jy = sum of C's negative part, restored_sigma (target),
restored_sigma_meas (image' - image at x0), method, max_res_change_sigma, res_change_x0_sigma,
pb, label_cls, label_excess_sigma), channel_stats.csv, tclean_summary.json (the niter=0
call), params.json (the source case's parameters + 'injection' + 'checks' + 'times'),
preview.png (per fake: image change, residual change, C), README.md, work/data.ms (copy).

Labelling: E = image - truth high-passed (FWHM 3 beams), >= 5 sigma regions, classes
confetti / other_artifact / real_source_error exactly as make_tclean_runs.label_case.  A fake
the rule does not call confetti (e.g. a cluster fake whose residual exceeds 0.5 x the excess)
keeps its injected.csv row and its label row (origin=injected, its class), if any.

Optional (c), confetti made by CLEAN itself, is not attempted here (see README.md of a case).
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
from scipy.optimize import linprog

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_tclean_runs as M  # noqa: E402

NULL_FRAC = 0.02        # measured uv cell: |FT(psf)| > NULL_FRAC x max
NULL_DILATE = 1         # grow the measured-cell mask by this many uv cells
SIGMA_RANGE = (7.0, 13.0)
MIN_SEP_BEAMS = 3.0
PB_MIN = 0.5
RING_STEP_BEAMS = 0.25
RING_MAX_BEAMS = 2.0
LP_REGION_BEAMS = 4.0

INJ_CASES = {
    "inj_null12m": dict(source="nat12m_moderate", method="null", n_fake=5, seed=9101),
    "inj_cluster_ped": dict(source="aggr12m_pedestal", method="cluster", n_fake=5, seed=9102),
    "inj_null7m": dict(source="aggr7m_lowcf", method="null", n_fake=4, seed=9103),
}
ORDER = ["inj_null12m", "inj_cluster_ped", "inj_null7m"]

LCOLS = ["case", "channel", "x", "y", "excess_sigma", "model_peak", "cls", "excess_Jy",
         "image_hp_sigma", "truth_hp_sigma", "residual_sigma", "run_lo", "run_hi", "run_len",
         "model_peak_adj", "model_neg_2beam", "model_pos_2beam", "near_real", "origin",
         "diverged_channel"]
ICOLS = ["case", "id", "channel", "x", "y", "method", "a_Jy", "neg_total_Jy", "restored_sigma",
         "restored_sigma_meas", "max_res_change_sigma", "res_change_x0_sigma",
         "res_change_max_plane_sigma", "pb", "dist_real_beams", "label_cls",
         "label_excess_sigma"]


# ----------------------------------------------------------------------------------------
# FFT helpers on the image grid (index 0 = the centre)
# ----------------------------------------------------------------------------------------
def beam_on_grid(ny, nx, beam_pix):
    """Peak-normalised restoring beam sampled with its peak at pixel (0, 0) (periodic)."""
    bmaj, bmin, bpa = beam_pix
    y = np.fft.fftfreq(ny) * ny
    x = np.fft.fftfreq(nx) * nx
    yy, xx = np.meshgrid(y, x, indexing="ij")
    pa = np.radians(bpa)
    ux, uy = -np.sin(pa), np.cos(pa)
    a = xx * ux + yy * uy
    b = -xx * uy + yy * ux
    return np.exp(-0.5 * ((a / (bmaj / 2.3548)) ** 2 + (b / (bmin / 2.3548)) ** 2))


def psf_ft(psf_plane):
    """FT of the psf with its peak moved to pixel (0, 0)."""
    p = np.nan_to_num(psf_plane)
    py, px = np.unravel_index(np.argmax(p), p.shape)
    return np.fft.fft2(np.roll(p, (-py, -px), axis=(0, 1)))


def fconv(H, x):
    return np.real(np.fft.ifft2(H * np.fft.fft2(x)))


def design_null(P, Bhat, shape, x0, y0):
    """Unit null-space point: returns (C with a = 1, restored peak per unit a)."""
    A = np.abs(P) / np.abs(P).max()
    m = A > NULL_FRAC
    if NULL_DILATE:
        # dilation on the periodic uv grid
        m = np.fft.ifftshift(ndimage.binary_dilation(np.fft.fftshift(m), iterations=NULL_DILATE))
    d = np.zeros(shape)
    d[y0, x0] = 1.0
    C = d - np.real(np.fft.ifft2(m * np.fft.fft2(d)))
    rest = fconv(Bhat, C)[y0, x0]
    return C, rest, dict(measured_cell_frac=float(m.mean()))


def design_cluster(P, Bhat, shape, x0, y0, bmaj):
    """C = a delta - sum_j c_j ring_j, a, c_j >= 0, restored peak = 1, min max|psf(*)C|."""
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    r = np.hypot(xx - x0, yy - y0)
    rads = np.arange(0.0, RING_MAX_BEAMS + 1e-9, RING_STEP_BEAMS)
    basis = []
    for rad in rads:
        g = np.exp(-0.5 * ((r - rad * bmaj) / (RING_STEP_BEAMS * bmaj)) ** 2)
        basis.append(g / g.sum())
    d = np.zeros(shape)
    d[y0, x0] = 1.0
    sel = r <= LP_REGION_BEAMS * bmaj
    dd = fconv(P, d)
    d0 = dd[sel]
    Dj = [fconv(P, g) for g in basis]
    A = np.stack([D[sel] for D in Dj], 1)
    # image change at x0 per unit: (beam - psf) (*) .  (restored model minus residual change)
    bj = np.array([fconv(Bhat, g)[y0, x0] - D[y0, x0] for g, D in zip(basis, Dj)])
    b0 = fconv(Bhat, d)[y0, x0] - dd[y0, x0]
    n = len(basis)
    # variables: a, c_1..c_n, t; minimise t subject to |a d0 - A c| <= t, a b0 - bj.c = 1
    cost = np.zeros(n + 2)
    cost[-1] = 1.0
    one = np.ones((len(d0), 1))
    A_ub = np.vstack([np.hstack([d0[:, None], -A, -one]), np.hstack([-d0[:, None], A, -one])])
    A_eq = np.hstack([[b0], -bj, [0.0]])[None]
    res = linprog(cost, A_ub=A_ub, b_ub=np.zeros(2 * len(d0)), A_eq=A_eq, b_eq=[1.0],
                  bounds=[(0, None)] * (n + 2), method="highs")
    if not res.success:
        raise RuntimeError(f"cluster LP failed: {res.message}")
    a, cj = res.x[0], res.x[1:-1]
    Nn = sum(c * g for c, g in zip(cj, basis))
    C = (a * d - Nn) / a                           # per unit model pixel
    rest = fconv(Bhat, C)[y0, x0]
    rings = {f"{rr:.2f}": float(c / a) for rr, c in zip(rads, cj) if c / a > 1e-3}
    return C, rest, dict(dirty_max_over_image_change=float(res.x[-1]), rings_Jy_per_unit_a=rings)


# ----------------------------------------------------------------------------------------
# I/O helpers
# ----------------------------------------------------------------------------------------
def read_rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def put_model(ct, path, model):
    """model[chan, y, x] -> the CASA image at path (axes x, y, stokes, chan)."""
    ia = ct.image()
    ia.open(path)
    arr = ia.getchunk(dropdeg=False)
    new = np.transpose(model, (2, 1, 0))[:, :, None, :].astype(arr.dtype)
    ia.putchunk(new)
    ia.close()
    ia.done()


def source_cubes(p, pb0, kern, nch):
    """Beam-convolved cubes of each real compact source (as make_tclean_runs.stage_label)."""
    out = {}
    n = p["imsize"]
    for s in p["compact"]:
        g = M.gauss2d(n, n, s["x"], s["y"], 0.3 * p["beam_guess_pix"], 0.3 * p["beam_guess_pix"], 0.0)
        g /= g.sum()
        sp = np.exp(-4 * np.log(2) * ((np.arange(nch) - s["vchan"]) / s["fwhm_chan"]) ** 2)
        out[s["id"]] = M.convolve_cube(p["scale_src"] * s["target_sigma"] * g[None]
                                       * sp[:, None, None] * pb0, kern)
    return out


def pick_fakes(rng, n_fake, nch, diverged, pb0, reals, nat_labels, bmaj, ny, nx):
    """Channels (distinct, >= 2 apart) and positions satisfying the placement rules."""
    ok_ch = [c for c in range(1, nch - 1) if c not in diverged]
    chans = []
    for c in rng.permutation(ok_ch):
        if all(abs(int(c) - k) >= 2 for k in chans):
            chans.append(int(c))
        if len(chans) == n_fake:
            break
    yy, xx = np.mgrid[0:ny, 0:nx]
    edge = MIN_SEP_BEAMS * bmaj
    base = ((xx >= edge) & (xx <= nx - 1 - edge) & (yy >= edge) & (yy <= ny - 1 - edge))
    for s in reals:
        base &= np.hypot(xx - float(s["x"]), yy - float(s["y"])) >= MIN_SEP_BEAMS * bmaj
    fakes = []
    for c in sorted(chans):
        ok = base & (pb0[c] >= PB_MIN)
        for r in nat_labels:
            if int(r["channel"]) == c:
                ok &= np.hypot(xx - int(r["x"]), yy - int(r["y"])) >= MIN_SEP_BEAMS * bmaj
        cand = np.argwhere(ok)
        if len(cand) == 0:
            continue
        y0, x0 = cand[rng.integers(len(cand))]
        dreal = min([np.hypot(float(s["x"]) - x0, float(s["y"]) - y0) for s in reals] or [np.inf])
        fakes.append(dict(channel=c, x=int(x0), y=int(y0),
                          restored_sigma=float(rng.uniform(*SIGMA_RANGE)),
                          dist_real_beams=float(dreal / bmaj)))
    return fakes


# ----------------------------------------------------------------------------------------
# one case
# ----------------------------------------------------------------------------------------
def run_case(ct, name, runs, outdir):
    from casatasks import tclean
    from astropy.io import fits
    spec = INJ_CASES[name]
    t0 = time.time()
    times = {}
    srcdir = os.path.join(runs, spec["source"])
    casedir = os.path.join(outdir, name)
    if os.path.exists(casedir):
        shutil.rmtree(casedir)
    os.makedirs(os.path.join(casedir, "work"))
    for f in sorted(os.listdir(srcdir)):
        if f.startswith("img."):
            shutil.copytree(os.path.join(srcdir, f), os.path.join(casedir, f))
    for f in ("truth.fits", "noise.csv", "real_sources.csv"):
        shutil.copy2(os.path.join(srcdir, f), os.path.join(casedir, f))
    shutil.copytree(os.path.join(srcdir, "work", "data.ms"), os.path.join(casedir, "work", "data.ms"))
    times["copy_s"] = time.time() - t0
    p = json.load(open(os.path.join(srcdir, "params.json")))
    rng = np.random.default_rng(spec["seed"])
    img = os.path.join(casedir, "img")
    image0, info = M.read_casa_image(ct, img + ".image")
    model0, _ = M.read_casa_image(ct, img + ".model")
    res0, _ = M.read_casa_image(ct, img + ".residual")
    psf, _ = M.read_casa_image(ct, img + ".psf")
    pb, _ = M.read_casa_image(ct, img + ".pb")
    pb0 = np.nan_to_num(pb)
    model0 = np.nan_to_num(model0)
    noise = np.array([float(r["noise_Jy_beam"]) for r in read_rows(os.path.join(casedir, "noise.csv"))])
    truth = fits.getdata(os.path.join(casedir, "truth.fits")).astype(np.float64)[0]
    reals = read_rows(os.path.join(casedir, "real_sources.csv"))
    for s in reals:
        s["id"] = int(s["id"])
        s["x"], s["y"] = float(s["x"]), float(s["y"])
    nat_labels = read_rows(os.path.join(srcdir, "labels.csv"))
    nat_stats = read_rows(os.path.join(srcdir, "channel_stats.csv"))
    diverged = {int(r["channel"]) for r in nat_stats if r["diverged"] == "True"}
    nch, ny, nx = image0.shape
    bm = info["beam_arcsec"]
    beam_pix = [bm[0] / p["cell_arcsec"], bm[1] / p["cell_arcsec"], bm[2]]
    bmaj = beam_pix[0]
    Bhat = np.fft.fft2(beam_on_grid(ny, nx, beam_pix))
    # ---- design the fakes
    t1 = time.time()
    fakes = pick_fakes(rng, spec["n_fake"], nch, diverged, pb0, reals, nat_labels, bmaj, ny, nx)
    model1 = model0.copy()
    for i, fk in enumerate(fakes):
        c, x0, y0 = fk["channel"], fk["x"], fk["y"]
        P = psf_ft(psf[c])
        if spec["method"] == "null":
            C, rest, extra = design_null(P, Bhat, (ny, nx), x0, y0)
        else:
            C, rest, extra = design_cluster(P, Bhat, (ny, nx), x0, y0, bmaj)
        # the image change at x0 = beam (*) C - psf (*) C (the residual loses psf (*) C)
        dirty_pred = fconv(P, C)
        scale = fk["restored_sigma"] * noise[c] / (rest - dirty_pred[y0, x0])
        C = C * scale
        dirty_pred = dirty_pred * scale
        model1[c] += C
        near = np.hypot(*np.meshgrid(np.arange(nx) - x0, np.arange(ny) - y0)) <= 3 * bmaj
        fk.update(id=i, method=spec["method"], a_Jy=float(C[y0, x0]),
                  neg_total_Jy=float(C[C < 0].sum()), pos_total_Jy=float(C[C > 0].sum()),
                  pb=float(pb0[c, y0, x0]), design=extra,
                  pred_res_change_max_sigma=float(np.abs(dirty_pred[near]).max() / noise[c]))
        fk["_C"] = C
    times["design_s"] = time.time() - t1
    put_model(ct, img + ".model", model1)
    # ---- CASA: one major cycle from data.ms with model', restore
    tc = dict(p["tclean"])
    over = {k: v for k, v in tc.items() if k not in M.TCLEAN_KEYS}
    kw = M.tclean_kwargs(p, tc, os.path.join(casedir, "work", "data.ms"), img,
                         noise_jy=float(np.median(noise)), **over)
    kw.update(niter=0, restart=True, calcpsf=False, calcres=True, restoration=True,
              restoringbeam=[f"{bm[0]}arcsec", f"{bm[1]}arcsec", f"{bm[2]}deg"])
    t2 = time.time()
    ret = tclean(**kw)
    times["tclean_s"] = time.time() - t2
    with open(os.path.join(casedir, "tclean_summary.json"), "w") as f:
        json.dump([dict(step="tclean_recompute", kwargs=kw, summary=M.summarise(ret))], f,
                  indent=1, default=str)
    image1, info1 = M.read_casa_image(ct, img + ".image")
    model_after, _ = M.read_casa_image(ct, img + ".model")
    res1, _ = M.read_casa_image(ct, img + ".residual")
    model_after = np.nan_to_num(model_after)
    # ---- checks
    kern = M.beam_kernel(*beam_pix)
    m3 = (pb0 >= 0.3) & np.isfinite(image1)
    # CASA restores with a periodic (FFT) convolution: compare with the same (a zero-padded
    # convolution differs by a few sigma at the image edge where the model has flux)
    recon1 = np.array([fconv(Bhat, model_after[c]) for c in range(nch)]) + res1
    recon0 = np.array([fconv(Bhat, model0[c]) for c in range(nch)]) + res0
    peak1 = float(np.nanmax(np.abs(image1[m3])))
    fake_ch = {fk["channel"] for fk in fakes}
    other = [c for c in range(nch) if c not in fake_ch]
    dres = res1 - res0
    checks = dict(
        model_after_minus_model_prime_max_Jy=float(np.max(np.abs(model_after - model1.astype(np.float32)))),
        model_prime_peak_Jy=float(np.max(np.abs(model1))),
        image_minus_beam_model_plus_resid_max_over_peak=float(np.max(np.abs((image1 - recon1)[m3])) / peak1),
        image_minus_beam_model_plus_resid_max_sigma=float(np.max(np.abs((image1 - recon1)[m3])) / np.median(noise)),
        original_image_minus_beam_model_plus_resid_max_over_peak=float(
            np.max(np.abs((image0 - recon0)[m3 & np.isfinite(image0)])) / peak1),
        residual_change_channels_without_fake_max_sigma=float(
            max(np.nanmax(np.abs(dres[c])) / noise[c] for c in other)),
        image_change_channels_without_fake_max_sigma=float(
            max(np.nanmax(np.abs(image1[c] - image0[c])) / noise[c] for c in other)),
        beam_after_arcsec=info1.get("beam_arcsec"))
    yy, xx = np.mgrid[0:ny, 0:nx]
    for fk in fakes:
        c, x0, y0 = fk["channel"], fk["x"], fk["y"]
        near = np.hypot(xx - x0, yy - y0) <= 3 * bmaj
        fk["max_res_change_sigma"] = float(np.nanmax(np.abs(dres[c][near])) / noise[c])
        fk["res_change_x0_sigma"] = float(dres[c, y0, x0] / noise[c])
        fk["res_change_max_plane_sigma"] = float(np.nanmax(np.abs(dres[c])) / noise[c])
        fk["restored_sigma_meas"] = float((image1[c, y0, x0] - image0[c, y0, x0]) / noise[c])
    # ---- labels
    t3 = time.time()
    src_cubes = source_cubes(p, pb0, kern, nch)
    rows = M.label_case(name, image1, model_after, res1, truth, pb0, noise, beam_pix, src_cubes, reals)
    st = M.channel_stats(image1, model_after, res1, truth, pb0, noise)
    for r in rows:
        r["diverged_channel"] = bool(st[r["channel"]]["diverged"])
        if r["diverged_channel"] and r["cls"] == "confetti":
            r["cls"] = "other_artifact"
        r["origin"] = "natural"
    for fk in fakes:
        fk["label_cls"], fk["label_excess_sigma"] = "none", 0.0
        best = None
        for r in rows:
            if r["channel"] == fk["channel"] and np.hypot(r["x"] - fk["x"], r["y"] - fk["y"]) <= bmaj:
                r["origin"] = "injected"
                if best is None or r["excess_sigma"] > best["excess_sigma"]:
                    best = r
        if best is not None:
            fk["label_cls"], fk["label_excess_sigma"] = best["cls"], best["excess_sigma"]
    M.write_csv(os.path.join(casedir, "labels.csv"), rows, LCOLS)
    M.write_csv(os.path.join(casedir, "channel_stats.csv"), st)
    M.write_csv(os.path.join(casedir, "injected.csv"),
                [dict(fk, case=name) for fk in fakes], ICOLS)
    counts = {k: sum(r["cls"] == k for r in rows)
              for k in ("confetti", "other_artifact", "real_source_error")}
    by_origin = {o: sum(r["origin"] == o for r in rows) for o in ("natural", "injected")}
    n_conf = sum(fk["label_cls"] == "confetti" for fk in fakes)
    ppb = np.pi * beam_pix[0] * beam_pix[1] / (4 * np.log(2))
    meta = dict(case=name, source_case=spec["source"], beam_pix=beam_pix,
                cell_arcsec=p["cell_arcsec"], beam_arcsec=bm, pixels_per_beam=ppb,
                median_noise=float(np.median(noise)),
                noise_source="copied from the source case (same MS, weights, flags)",
                label_opts=M.LABEL_OPTS, counts=counts, counts_by_origin=by_origin,
                counts_confetti_by_origin={o: sum(r["origin"] == o and r["cls"] == "confetti"
                                                  for r in rows) for o in ("natural", "injected")},
                n_injected=len(fakes), n_injected_labelled_confetti=n_conf,
                n_diverged_channels=int(sum(s["diverged"] for s in st)))
    with open(os.path.join(casedir, "labels_meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    times["label_s"] = time.time() - t3
    preview(casedir, name, fakes, image1 - image0, dres, noise, bmaj)
    times["total_s"] = time.time() - t0
    params = dict(p, name=name, source_case=spec["source"],
                  injection=dict(method=spec["method"], seed=spec["seed"], n_fake=spec["n_fake"],
                                 sigma_range=SIGMA_RANGE, null_frac=NULL_FRAC,
                                 null_dilate=NULL_DILATE, ring_step_beams=RING_STEP_BEAMS,
                                 ring_max_beams=RING_MAX_BEAMS, lp_region_beams=LP_REGION_BEAMS,
                                 min_sep_beams=MIN_SEP_BEAMS, pb_min=PB_MIN,
                                 fakes=[{k: v for k, v in fk.items() if k != "_C"} for fk in fakes]),
                  tclean_recompute=kw, checks_source=p.get("checks"), checks=checks,
                  times_source=p.get("times"), times=times, casa=ct.version_string())
    with open(os.path.join(casedir, "params.json"), "w") as f:
        json.dump(params, f, indent=1, default=float)
    write_readme(casedir, name, spec, p, fakes, meta, checks, times)
    print(f"[{name}] {len(fakes)} fakes ({spec['method']}) from {spec['source']} in "
          f"{times['total_s']:.1f}s (tclean {times['tclean_s']:.1f}s); labelled confetti "
          f"{n_conf}/{len(fakes)}; counts {counts}; model kept "
          f"{checks['model_after_minus_model_prime_max_Jy']:.2g} Jy; image-recon "
          f"{checks['image_minus_beam_model_plus_resid_max_over_peak']:.2g} of peak", flush=True)
    for fk in fakes:
        print(f"   ch {fk['channel']:2d} x {fk['x']:3d} y {fk['y']:3d} target {fk['restored_sigma']:.1f}"
              f" meas {fk['restored_sigma_meas']:.1f} sigma, a {fk['a_Jy']:.3g} Jy, neg "
              f"{fk['neg_total_Jy']:.3g} Jy, res change <=3 beams {fk['max_res_change_sigma']:.2f}"
              f" (pred {fk['pred_res_change_max_sigma']:.2f}), at x0 {fk['res_change_x0_sigma']:.2f}"
              f" sigma, pb {fk['pb']:.2f} -> {fk['label_cls']} {fk['label_excess_sigma']}",
              flush=True)
    return meta


def preview(casedir, name, fakes, dimg, dres, noise, bmaj):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n = max(len(fakes), 1)
    h = int(np.ceil(4 * bmaj))
    fig, ax = plt.subplots(3, n, figsize=(3.2 * n, 9), squeeze=False)
    for j, fk in enumerate(fakes):
        c, x0, y0 = fk["channel"], fk["x"], fk["y"]
        sl = (slice(max(y0 - h, 0), y0 + h + 1), slice(max(x0 - h, 0), x0 + h + 1))
        for i, (t, d) in enumerate([("image' - image [sigma]", dimg[c][sl] / noise[c]),
                                    ("residual' - residual [sigma]", dres[c][sl] / noise[c]),
                                    ("C [Jy/pixel]", fk["_C"][sl])]):
            v = np.nanmax(np.abs(d)) or 1.0
            im = ax[i, j].imshow(d, origin="lower", cmap="RdBu_r", vmin=-v, vmax=v)
            ax[i, j].set_title(f"ch {c} ({x0},{y0}): {t}", fontsize=8)
            plt.colorbar(im, ax=ax[i, j], fraction=0.046)
    fig.suptitle(f"{name}: injected fakes")
    fig.tight_layout()
    fig.savefig(os.path.join(casedir, "preview.png"), dpi=60)
    plt.close(fig)


def write_readme(casedir, name, spec, p, fakes, meta, checks, times):
    lines = [f"# {name}: fake confetti injected into `{spec['source']}`", "",
             "Made by `benchmarks/inject_tclean_runs.py` (see its docstring). The sky, the "
             "visibilities (`work/data.ms`, a copy) and so `truth.fits`, `noise.csv` and "
             "`real_sources.csv` are those of the natural run; only the model of one channel "
             f"per fake changed (model' = model + C, method `{spec['method']}`), and CASA "
             f"{p.get('casa', '')} recomputed residual and image from the visibilities: tclean "
             "with the original parameters and niter=0, restart=True, calcpsf=False, "
             "calcres=True, the original restoring beam.", "",
             f"Fakes ({len(fakes)}, seed {spec['seed']}; injected.csv):", "",
             "| channel | x | y | restored sigma (target / measured) | a [Jy/pixel] | "
             "neg total [Jy] | max residual change within 3 beams [sigma] | pb | label |",
             "|---|---|---|---|---|---|---|---|---|"]
    for fk in fakes:
        lines.append(f"| {fk['channel']} | {fk['x']} | {fk['y']} | {fk['restored_sigma']:.1f} / "
                     f"{fk['restored_sigma_meas']:.1f} | {fk['a_Jy']:.3g} | {fk['neg_total_Jy']:.3g} | "
                     f"{fk['max_res_change_sigma']:.2f} | {fk['pb']:.2f} | {fk['label_cls']} "
                     f"({fk['label_excess_sigma']} sigma) |")
    lines += ["", f"Labelling rule (make_tclean_runs.label_case) counts: {meta['counts']}, "
              f"by origin {meta['counts_by_origin']}; injected fakes labelled confetti: "
              f"{meta['n_injected_labelled_confetti']} of {meta['n_injected']}.", "",
              "Checks: img.model after tclean minus model' max "
              f"{checks['model_after_minus_model_prime_max_Jy']:.3g} Jy (model' peak "
              f"{checks['model_prime_peak_Jy']:.3g} Jy); max |image - (beam (*) model + residual)| = "
              f"{checks['image_minus_beam_model_plus_resid_max_over_peak']:.3g} of the image peak "
              f"(original run: {checks['original_image_minus_beam_model_plus_resid_max_over_peak']:.3g}); "
              "residual / image change in the channels without a fake: "
              f"{checks['residual_change_channels_without_fake_max_sigma']:.3g} / "
              f"{checks['image_change_channels_without_fake_max_sigma']:.3g} sigma.", "",
              f"Run time {times['total_s']:.1f} s (tclean {times['tclean_s']:.1f} s).", "",
              "Not attempted: confetti made by CLEAN itself (option c of the brief); the "
              "natural runs' own attempts are described in make_tclean_runs.py.", ""]
    if spec["method"] == "null":
        lines += ["A null-space fake restores to a peak of 1-2 pixels (narrower than the beam), "
                  "since only uv cells outside the measured ones carry it; its model pixel is "
                  "~30x the restored peak and its negative part spreads over the plane.", ""]
    else:
        lines += ["A cluster fake (point + nonnegative rings, minimax LP) is not hidden from "
                  "the residual: residual' - residual = -psf (*) C reaches ~0.85 x the image "
                  "peak (a negative hole at x0; the labelling rule's residual test, residual < "
                  "0.5 x excess, passes because the residual goes down). A smooth N >= 0 "
                  "cancels only the low-k (pedestal) response, not the long-baseline psf core, "
                  "which is narrower than the restoring beam.", ""]
    with open(os.path.join(casedir, "README.md"), "w") as f:
        f.write("\n".join(lines))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", required=True, help="folder of natural runs (make_tclean_runs.py)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--case", action="append", choices=list(INJ_CASES))
    a = ap.parse_args(argv)
    runs = os.path.abspath(a.runs)
    out = os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    ct = M.casa_env(os.path.join(out, "_casa"))
    os.chdir(os.path.join(out, "_casa"))
    t0 = time.time()
    for name in (a.case or ORDER):
        run_case(ct, name, runs, out)
    print(f"all done in {time.time() - t0:.1f}s", flush=True)


if __name__ == "__main__":
    main()
