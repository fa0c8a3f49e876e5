"""Synthetic tclean products with known confetti, real lines and benign model pixels.

For tests, benchmarks and trying the tool without data. The imaging is simulated in the
way an interferometer and tclean make it:

- a uv coverage from two array configurations (dense short baselines + sparse long ones,
  no zero spacing), natural weighting: the psf is a narrow core on a broad positive
  pedestal with a negative bowl, the situation where confetti is harmful;
- thermal noise correlated like the psf (power spectrum = the weights);
- real compact sources (continuum and narrow lines) cleaned exactly into single model
  pixels, so that ``residual = psf (*) (sky - model) + noise`` and
  ``image = beam (*) model + residual``;
- confetti: a model cluster ``C`` (one bright pixel plus a structured background on a
  disk) chosen, like the benchmark's injector, to minimise ``|psf (*) C|`` while its
  restored peak ``beam (*) C`` at the pixel is pinned; the residual becomes
  ``residual - psf (*) C`` so the dirty image (the data) does not change;
- benign model confetti: a continuum source that tclean models, in one channel only, as
  a pixel of twice its flux with minus its flux spread over the 8 neighbours; restored,
  the cluster gives back the source, so the image has no spike there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy import signal

from .features import disk, gaussian_kernel, psf_convolve

__all__ = ["SimulatedCube", "write_plane", "simulate_cube", "write_products", "uv_weights"]

KINDS = ("image", "model", "residual", "psf", "pb")


@dataclass
class SimulatedCube:
    """Arrays ``[chan, y, x]`` of one simulated tclean run and what was put in.

    ``lines``, ``continuum``, ``confetti`` and ``benign`` list ``(chan, y, x, value)``
    (``chan`` is -1 for continuum): flux in Jy for sources, the restored fake peak in
    channel rms for confetti, the model pixel in Jy/pixel for benign ones.
    """

    image: np.ndarray
    model: np.ndarray
    residual: np.ndarray
    psf: np.ndarray
    pb: np.ndarray
    beam: tuple[float, float, float]  # major FWHM px, minor FWHM px, PA deg
    rms: float
    cell_arcsec: float
    lines: list = field(default_factory=list)
    continuum: list = field(default_factory=list)
    confetti: list = field(default_factory=list)
    benign: list = field(default_factory=list)
    beam_scale: np.ndarray | None = None


def uv_weights(shape: tuple[int, int], rng: np.random.Generator, *, u_max: float = 0.18,
               compact: int = 300, extended: int = 400) -> np.ndarray:
    """Natural weights gridded on the FFT grid of ``shape`` (cycles/pixel), Hermitian.

    ``compact`` baselines within ``u_max / 8`` and ``extended`` ones out to ``u_max``,
    each an Earth-rotation arc; the cells within ``u_max / 40`` of the origin stay empty
    (no zero spacing). The compact configuration makes the psf's positive pedestal.
    """
    ny, nx = shape
    radius = np.concatenate([rng.uniform(0.05, 1.0, compact) ** 0.5 * u_max / 8,
                             rng.uniform(0.1, 1.0, extended) ** 0.5 * u_max])
    angle = rng.uniform(0, 2 * np.pi, radius.size)
    weights = np.zeros(shape)
    for r, a in zip(radius, angle):
        # an Earth-rotation arc of 12 cells
        for da in np.linspace(0, 0.5, 12):
            u, v = r * np.cos(a + da), r * np.sin(a + da)
            if np.hypot(u, v) < u_max / 40:
                continue
            iy, ix = int(round(v * ny)) % ny, int(round(u * nx)) % nx
            weights[iy, ix] += 1
            weights[-iy % ny, -ix % nx] += 1
    return weights


def _psf(weights: np.ndarray) -> np.ndarray:
    psf = np.fft.fftshift(np.real(np.fft.ifft2(weights)))
    return psf / psf.max()


def _fit_beam(psf: np.ndarray) -> tuple[float, float, float]:
    """Gaussian fitted to the psf main lobe from its half-power region's moments."""
    from scipy import ndimage

    ny, nx = psf.shape
    labels, _ = ndimage.label(psf >= 0.5)
    lobe = labels == labels[ny // 2, nx // 2]
    ys, xs = np.nonzero(lobe)
    cov = np.cov(np.vstack([xs - nx // 2, ys - ny // 2]).astype(float), bias=True)
    values, vectors = np.linalg.eigh(cov)
    # uniform ellipse of semi-axis a has variance a^2 / 4; the semi-axis is FWHM / 2
    minor, major = 4 * np.sqrt(values + 1 / 12)
    vx, vy = vectors[:, 1]
    pa = np.degrees(np.arctan2(-vx, vy))  # from north (+y) through east (-x)
    pa = (pa + 90) % 180 - 90
    return float(major), float(minor), float(pa)


def _restore(model: np.ndarray, beam: np.ndarray) -> np.ndarray:
    return signal.fftconvolve(model, beam, mode="same")


def _confetti_cluster(psf: np.ndarray, beam: np.ndarray, shape: tuple[int, int], y: int,
                      x: int, radius: float) -> np.ndarray:
    """Cluster ``a delta(y, x) - N`` (a, N >= 0, N on a disk of ``radius`` pixels) that
    minimises ``|psf (*) C|^2`` with ``beam (*) C`` pinned at (y, x) (NNLS), scaled so
    that the image changes by 1 there: ``(beam - psf) (*) C (y, x) = 1``."""
    from scipy.optimize import nnls

    ny, nx = shape
    foot = disk(radius)
    half = foot.shape[0] // 2
    dys, dxs = np.nonzero(foot)
    dys, dxs = dys - half, dxs - half
    inside = (y + dys >= 0) & (y + dys < ny) & (x + dxs >= 0) & (x + dxs < nx)
    dys, dxs = dys[inside], dxs[inside]
    centre = np.flatnonzero((dys == 0) & (dxs == 0))[0]
    win = int(radius + beam.shape[0])
    wy, wx = np.mgrid[-win:win + 1:2, -win:win + 1:2]
    wy, wx = wy.ravel(), wx.ravel()
    py, px = np.unravel_index(np.argmax(psf), psf.shape)
    iy = wy[:, None] - dys[None, :] + py
    ix = wx[:, None] - dxs[None, :] + px
    ok = (iy >= 0) & (iy < psf.shape[0]) & (ix >= 0) & (ix < psf.shape[1])
    operator = np.where(ok, psf[np.clip(iy, 0, psf.shape[0] - 1),
                                np.clip(ix, 0, psf.shape[1] - 1)], 0.0)
    bh = beam.shape[0] // 2
    near = (np.abs(dys) <= bh) & (np.abs(dxs) <= bh)
    b = np.zeros(len(dys))
    b[near] = beam[bh - dys[near], bh - dxs[near]]
    sign = -np.ones(len(dys))
    sign[centre] = 1.0
    pin = 10.0 * np.sqrt(len(wy))
    matrix = np.vstack([operator * sign, pin * b * sign])
    target = np.concatenate([np.zeros(len(wy)), [pin]])
    amplitude, _ = nnls(matrix, target, maxiter=50 * len(dys))
    cluster = np.zeros(shape)
    cluster[y + dys, x + dxs] = amplitude * sign
    net = _restore(cluster, beam)[y, x] - psf_convolve(cluster, psf)[y, x]
    return cluster / net


def simulate_cube(*, nchan: int = 12, ny: int = 96, nx: int = 96, rms: float = 1e-3,
                  seed: int = 1, lines: list | None = None, continuum: list | None = None,
                  confetti: list | None = None, benign: list | None = None,
                  pb_fwhm: float | None = None, beam_scale: np.ndarray | None = None,
                  cell_arcsec: float = 0.1, diverged: list | None = None) -> SimulatedCube:
    """Simulate one tclean run.

    Parameters
    ----------
    lines : list of (chan, y, x, flux_jy)
        Real point sources present in one channel only.
    continuum : list of (y, x, flux_jy)
        Real point sources in every channel.
    confetti : list of (chan, y, x, fake_sigma)
        Confetti clusters, by the fake they add to the image at (y, x), in ``rms``.
    benign : list of (chan, y, x, flux_jy)
        Continuum sources (added to ``continuum``) whose model in ``chan`` is a bright
        pixel (2 x flux) on a negative ring (-flux over the 8 neighbours).
    pb_fwhm : float, optional
        Primary-beam FWHM in pixels (pb = 1 everywhere when None).
    beam_scale : ndarray, shape (nchan,), optional
        Per-channel scale of the psf and restoring beam (per-channel beams).
    diverged : list of (chan, sigma)
        Channels whose model also holds a pattern in the uv cells the array leaves empty
        (structure the data do not demand, as a diverged and continued clean leaves), of
        restored rms over the image ``sigma`` times ``rms``; the residual takes up the
        little the psf sees of it, so the dirty image (the data) is unchanged.
    """
    rng = np.random.default_rng(seed)
    weights = uv_weights((ny, nx), rng)
    base_psf = _psf(weights)
    scales = np.ones(nchan) if beam_scale is None else np.asarray(beam_scale, dtype=float)
    lines, confetti, benign = list(lines or []), list(confetti or []), list(benign or [])
    continuum = list(continuum or []) + [(y, x, flux) for _, y, x, flux in benign]
    cube = {k: np.zeros((nchan, ny, nx)) for k in KINDS}
    beam0 = _fit_beam(base_psf)
    for c in range(nchan):
        psf = _scaled(base_psf, scales[c])
        major, minor, pa = beam0[0] * scales[c], beam0[1] * scales[c], beam0[2]
        beam = gaussian_kernel(major, minor, pa)
        noise = np.real(np.fft.ifft2(np.sqrt(weights) * (rng.standard_normal((ny, nx)) +
                                                          1j * rng.standard_normal((ny, nx)))))
        noise *= rms / noise.std()
        sky = np.zeros((ny, nx))
        for y, x, flux in continuum:
            sky[y, x] += flux
        for ch, y, x, flux in lines:
            if ch == c:
                sky[y, x] += flux
        model = sky.copy()  # the sources are cleaned exactly ...
        for ch, y, x, flux in benign:
            if ch == c:  # ... except where tclean made a cluster of one
                model[y, x] += flux
                model[y - 1:y + 2, x - 1:x + 2] -= flux / 8
                model[y, x] += flux / 8
        residual = psf_convolve(sky - model, psf) + noise
        for ch, sigma in diverged or []:
            if ch == c:
                pattern = _null_pattern(weights, rng)
                pattern *= sigma * rms / np.std(_restore(pattern, beam))
                model += pattern
                residual -= psf_convolve(pattern, psf)  # the dirty image (the data) stays
        for ch, y, x, fake in confetti:
            if ch == c:
                cluster = _confetti_cluster(psf, beam, (ny, nx), y, x, radius=2 * major)
                cluster *= fake * rms
                model += cluster
                residual -= psf_convolve(cluster, psf)
        cube["model"][c] = model
        cube["residual"][c] = residual
        cube["image"][c] = _restore(model, beam) + residual
        cube["psf"][c] = psf
    if pb_fwhm:
        yy, xx = np.mgrid[:ny, :nx]
        r2 = (yy - ny // 2) ** 2 + (xx - nx // 2) ** 2
        pb = np.exp(-4 * np.log(2) * r2 / pb_fwhm ** 2)
        cube["pb"][:] = pb
        outside = pb < 0.2
        for kind in ("image", "residual", "pb"):
            cube[kind][:, outside] = np.nan
    else:
        cube["pb"][:] = 1.0
    return SimulatedCube(**{k: v.astype(np.float32) for k, v in cube.items()}, beam=beam0,
                         rms=rms, cell_arcsec=cell_arcsec, lines=lines, continuum=continuum,
                         confetti=confetti, benign=benign, beam_scale=beam_scale)


def _null_pattern(weights: np.ndarray, rng: np.random.Generator,
                  iterations: int = 50) -> np.ndarray:
    """A random plane within a disk of 0.9 times the image size and, nearly, only in the
    empty uv cells between the shortest and the longest baselines (alternating
    projections), so that even the psf truncated at the image's extent barely sees it."""
    ny, nx = weights.shape
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(ny), np.fft.fftfreq(nx), indexing="ij"))
    cells = (weights == 0) & (radius > 0.02) & (radius < radius[weights > 0].max())
    yy, xx = np.mgrid[:ny, :nx]
    window = np.hypot(yy - ny // 2, xx - nx // 2) < 0.45 * min(ny, nx)
    plane = rng.standard_normal((ny, nx)) * window
    for _ in range(iterations):
        plane = np.real(np.fft.ifft2(np.fft.fft2(plane) * cells)) * window
    return plane


def _scaled(psf: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return psf
    from scipy import ndimage

    ny, nx = psf.shape
    yy, xx = np.mgrid[:ny, :nx].astype(float)
    cy, cx = ny // 2, nx // 2
    out = ndimage.map_coordinates(psf, [cy + (yy - cy) / scale, cx + (xx - cx) / scale],
                                  order=1, mode="constant")
    return out / out.max()


def write_products(sim: SimulatedCube, directory: str | Path, name: str = "sim", *,
                   fmt: str = "fits", kinds: tuple[str, ...] = KINDS, suffix: str = "",
                   rest_frequency: float = 230.538e9) -> Path:
    """Write ``name.<kind><suffix>`` products (``.fits`` files or CASA image directories);
    ``suffix='.tt0'`` names them as tclean's continuum (mtmfs) products.

    Returns the imagename prefix ``directory/name``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    nchan, ny, nx = sim.image.shape
    scales = sim.beam_scale if sim.beam_scale is not None else np.ones(nchan)
    for kind in kinds:
        header = fits.Header()
        header["BUNIT"] = {"image": "Jy/beam", "residual": "Jy/beam", "model": "Jy/pixel"}.get(kind, "")
        for key, value in (("CTYPE1", "RA---SIN"), ("CRVAL1", 83.8), ("CDELT1", -sim.cell_arcsec / 3600),
                           ("CRPIX1", float(nx // 2 + 1)), ("CUNIT1", "deg"),
                           ("CTYPE2", "DEC--SIN"), ("CRVAL2", -5.4), ("CDELT2", sim.cell_arcsec / 3600),
                           ("CRPIX2", float(ny // 2 + 1)), ("CUNIT2", "deg"),
                           ("CTYPE3", "FREQ"), ("CRVAL3", rest_frequency - nchan // 2 * 5e5),
                           ("CDELT3", 5e5), ("CRPIX3", 1.0), ("CUNIT3", "Hz"),
                           ("CTYPE4", "STOKES"), ("CRVAL4", 1.0), ("CDELT4", 1.0), ("CRPIX4", 1.0),
                           ("RESTFRQ", rest_frequency), ("SPECSYS", "LSRK"), ("RADESYS", "ICRS"),
                           ("OBJECT", "simulated")):
            header[key] = value
        major, minor, pa = sim.beam
        extra = []
        if np.allclose(scales, scales[0]):
            header["BMAJ"] = major * scales[0] * sim.cell_arcsec / 3600
            header["BMIN"] = minor * scales[0] * sim.cell_arcsec / 3600
            header["BPA"] = pa
        else:
            header["CASAMBM"] = True
            extra.append(fits.BinTableHDU.from_columns([
                fits.Column("BMAJ", "E", unit="arcsec", array=major * scales * sim.cell_arcsec),
                fits.Column("BMIN", "E", unit="arcsec", array=minor * scales * sim.cell_arcsec),
                fits.Column("BPA", "E", unit="deg", array=np.full(nchan, pa)),
                fits.Column("CHAN", "J", array=np.arange(nchan)),
                fits.Column("POL", "J", array=np.zeros(nchan, int))], name="BEAMS"))
            extra[0].header["NCHAN"] = nchan
            extra[0].header["NPOL"] = 1
        hdus = [fits.PrimaryHDU(getattr(sim, kind)[np.newaxis], header=header)] + extra
        fits_path = directory / f"{name}.{kind}{suffix}.fits"
        fits.HDUList(hdus).writeto(fits_path, overwrite=True)
        if fmt == "casa":
            from casacore.images import image

            image(str(fits_path)).saveas(str(directory / f"{name}.{kind}{suffix}"))
            fits_path.unlink()
    return directory / name


def write_plane(products, chan: int, directory: str | Path, name: str = "plane") -> Path:
    """Channel ``chan`` of every product of ``products`` as one-plane FITS products
    ``name.<kind>.fits`` (an mfs image: tclean's relations hold per plane), for tests and
    benchmarks of the continuum case; returns the prefix ``directory/name``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    header = products.celestial.to_header()
    beam = products.beams[chan]
    header["BMAJ"], header["BMIN"] = beam.major.to_value("deg"), beam.minor.to_value("deg")
    header["BPA"] = beam.pa.to_value("deg")
    for kind in ("image", "model", "residual", "psf", "pb"):
        if getattr(products, kind) is None:
            continue
        header["BUNIT"] = {"image": "Jy/beam", "residual": "Jy/beam",
                           "model": "Jy/pixel"}.get(kind, "")
        fits.writeto(directory / f"{name}.{kind}.fits", products.plane(kind, chan), header,
                     overwrite=True)
    return directory / name
