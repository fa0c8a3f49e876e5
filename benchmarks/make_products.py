"""Write a large synthetic tclean product set (CASA image directories) block by block.

    python benchmarks/make_products.py OUTDIR --size 2048 --nchan 128

Noise correlated like a beam, a few point sources and narrow lines, cleaned into single
model pixels; image, model, residual, psf and pb, float32, never held whole in memory.
Coordinates and beam follow the shipped example. Nothing here is stored in the repository.

With ``--confetti K``: the psf comes from a sampled uv coverage (so it has unmeasured
cells), the noise is shaped by it, and K channels get one confetti each, made as the
shared s01/s02 cases were: a hot model pixel on a pattern with power only in the cells the
psf barely measures (weight max(0, 1 - |FFT psf| / 0.03)), restored to about 10 sigma,
with the residual and image changed by its psf imprint (the psf truncated at its extent).
"""

import argparse
import os
import shutil
import time

import numpy as np
from casacore.images import image
from casacore.tables import table
from scipy import ndimage

import deconfetti
from deconfetti.features import psf_convolve


def create(path, template, shape, unit, beam):
    if os.path.exists(path):
        shutil.rmtree(path)
    coords = template.coordinates()
    im = image(path, shape=shape, coordsys=coords)
    del im
    with table(path, readonly=False, ack=False) as tab:
        tab.putkeyword("units", unit)
        info = dict(tab.getkeyword("imageinfo")) if "imageinfo" in tab.keywordnames() else {}
        info["restoringbeam"] = beam
        info["imagetype"] = "Intensity"
        info["objectname"] = "benchmark"
        tab.putkeyword("imageinfo", info)
    return image(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--nchan", type=int, default=128)
    ap.add_argument("--block", type=int, default=8)
    ap.add_argument("--confetti", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    template = image(deconfetti.example_path() + ".image")
    beam = template.imageinfo()["restoringbeam"]
    n, nchan = a.size, a.nchan
    shape = (nchan, 1, n, n)
    prefix = os.path.join(a.outdir, "bench")
    products = {k: create(f"{prefix}.{k}", template, shape, u, beam) for k, u in
                (("image", "Jy/beam"), ("model", "Jy/pixel"), ("residual", "Jy/beam"),
                 ("psf", ""), ("pb", ""))}
    rng = np.random.default_rng(0)
    sigma = 5.3 / 2.3548  # beam sigma in pixels (example beam ~5.3 px)
    yy, xx = np.mgrid[:n, :n]
    psf_plane = np.exp(-((yy - n // 2) ** 2 + (xx - n // 2) ** 2) / (2 * sigma ** 2))
    psf_plane -= 0.05 * np.exp(-((yy - n // 2) ** 2 + (xx - n // 2) ** 2) / (2 * (6 * sigma) ** 2))
    psf_plane = (psf_plane / psf_plane.max()).astype(np.float32)
    if a.confetti:
        u = np.fft.fftfreq(n)
        uv = np.hypot(u[:, None], u[None, :])
        weights = np.where((uv < 0.25) & (rng.random((n, n)) < 0.35),
                           np.exp(-uv ** 2 * (2 * np.pi * sigma) ** 2 / 2), 0.0)
        weights = weights + weights[(-np.arange(n)) % n][:, (-np.arange(n)) % n]  # real psf
        weights[0, 0] = 0.0  # no zero spacing
        psf_plane = np.fft.fftshift(np.real(np.fft.ifft2(weights)))
        psf_plane = (psf_plane / psf_plane.max()).astype(np.float32)
        hidden = np.real(np.fft.ifft2(np.clip(1 - weights / weights.max() / 0.03, 0, 1)))
        hidden /= hidden[0, 0]  # the hot pixel: 1 Jy/pixel
        unit = ndimage.gaussian_filter(np.roll(hidden, (n // 2, n // 2), (0, 1)), sigma,
                                       mode="wrap")[n // 2, n // 2] * 2 * np.pi * sigma ** 2
        confetti = {int(c): tuple(int(i) for i in rng.integers(n // 8, 7 * n // 8, size=2))
                    for c in np.linspace(1, nchan - 2, a.confetti)}
    pb_plane = np.exp(-4 * np.log(2) * ((yy - n / 2) ** 2 + (xx - n / 2) ** 2) / (0.9 * n) ** 2)
    pb_plane = pb_plane.astype(np.float32)
    sources = rng.integers(n // 8, 7 * n // 8, size=(40, 2))
    t0 = time.time()
    for start in range(0, nchan, a.block):
        stop = min(nchan, start + a.block)
        m = stop - start
        noise = rng.standard_normal((m, n, n)).astype(np.float32)
        for i in range(m):
            # autocorrelation of the noise = the psf (core) (natural weighting)
            if a.confetti:
                noise[i] = np.real(np.fft.ifft2(np.fft.fft2(noise[i]) * np.sqrt(weights)))
            else:
                noise[i] = ndimage.gaussian_filter(noise[i], sigma / np.sqrt(2))
        noise *= 3e-3 / noise.std()
        model = np.zeros((m, n, n), np.float32)
        for k, (y, x) in enumerate(sources):
            if k % 2 == 0:
                model[:, y, x] = 0.02  # continuum
            else:
                c = (k * 7) % nchan - start
                if 0 <= c < m:
                    model[c, y, x] = 0.05  # narrow line
        restored = np.stack([ndimage.gaussian_filter(p, sigma) * 2 * np.pi * sigma ** 2
                             for p in model])
        for c in range(start, stop):
            if a.confetti and c in confetti:
                fake = np.roll(hidden, confetti[c], (0, 1)) * (10 * 3e-3 / unit)
                seen = psf_convolve(fake, psf_plane)  # truncated, like the repair's test
                model[c - start] += fake
                restored[c - start] += (ndimage.gaussian_filter(fake, sigma, mode="wrap")
                                        * 2 * np.pi * sigma ** 2)
                noise[c - start] -= seen  # the residual; image = restored + residual
        blc = [start, 0, 0, 0]
        products["residual"].putdata(noise[:, None], blc)
        products["model"].putdata(model[:, None], blc)
        products["image"].putdata((restored + noise)[:, None], blc)
        products["psf"].putdata(np.broadcast_to(psf_plane, (m, n, n))[:, None].copy(), blc)
        products["pb"].putdata(np.broadcast_to(pb_plane, (m, n, n))[:, None].copy(), blc)
    for im in products.values():
        im.unlock()
    print(f"wrote {prefix}.* ({nchan} x {n} x {n}) in {time.time() - t0:.0f} s")
    if a.confetti:
        print("confetti (channel, y, x):", sorted(confetti.items()))


if __name__ == "__main__":
    main()
