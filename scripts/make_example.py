#!/usr/bin/env python
"""Crop a tclean case into the small example shipped with the package (and used by tests).

    python scripts/make_example.py CASEDIR PREFIX OUTDIR --x 64 128 --y 40 112 --chan 20 41 \
        [--name example]

Writes OUTDIR/NAME.{image,model,residual,psf,pb} (CASA images, python-casacore) and,
when CASEDIR has labels.csv / real_sources.csv, OUTDIR/labels.csv and
OUTDIR/real_sources.csv with positions shifted into the crop; truth.fits and noise.csv
are cropped the same way when present. The psf is cropped to the same size around its
peak.

The shipped example: confetti_s01 confetti_s01 --x 0 128 --y 0 128 --chan 22 37.
The repair test case (tests/data/pedestal): pedM1b_inj img --x 0 128 --y 0 128
--chan 4 12 --name img.
"""
import argparse
import csv
import os
import shutil

import numpy as np
from casacore.images import image


def crop(src, dst, blc, trc):
    if os.path.exists(dst):
        shutil.rmtree(dst)
    im = image(src)
    sub = im.subimage(blc, trc, dropdegenerate=False)
    sub.saveas(dst)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("casedir")
    ap.add_argument("prefix")
    ap.add_argument("outdir")
    ap.add_argument("--x", nargs=2, type=int, required=True)
    ap.add_argument("--y", nargs=2, type=int, required=True)
    ap.add_argument("--chan", nargs=2, type=int, required=True)
    ap.add_argument("--name", default="example")
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    (x0, x1), (y0, y1), (c0, c1) = a.x, a.y, a.chan
    src = os.path.join(a.casedir, a.prefix)
    # numpy order [chan, stokes, y, x]
    for kind in ("image", "model", "residual", "pb"):
        crop(f"{src}.{kind}", os.path.join(a.outdir, f"{a.name}.{kind}"),
             [c0, 0, y0, x0], [c1 - 1, 0, y1 - 1, x1 - 1])
    psf = image(f"{src}.psf")
    plane = np.asarray(psf.getdata([c0, 0, 0, 0], [c0, 0, psf.shape()[2] - 1, psf.shape()[3] - 1]))[0, 0]
    py, px = np.unravel_index(np.argmax(plane), plane.shape)
    ny, nx = y1 - y0, x1 - x0
    crop(f"{src}.psf", os.path.join(a.outdir, f"{a.name}.psf"),
         [c0, 0, py - ny // 2, px - nx // 2], [c1 - 1, 0, py - ny // 2 + ny - 1, px - nx // 2 + nx - 1])
    truth = os.path.join(a.casedir, "truth.fits")
    if os.path.exists(truth):
        from astropy.io import fits

        with fits.open(truth) as hdul:
            fits.writeto(os.path.join(a.outdir, "truth.fits"),
                         hdul[0].data[:, c0:c1, y0:y1, x0:x1], overwrite=True)
    noise = os.path.join(a.casedir, "noise.csv")
    if os.path.exists(noise):
        rows = list(csv.DictReader(open(noise)))[c0:c1]
        with open(os.path.join(a.outdir, "noise.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
            w.writeheader()
            w.writerows([dict(r, channel=str(int(r["channel"]) - c0)) for r in rows])
    for name, chan_key, extra in (("labels.csv", "channel", ()),
                                  ("real_sources.csv", "chan_peak", ("chan_lo", "chan_hi"))):
        path = os.path.join(a.casedir, name)
        if not os.path.exists(path):
            continue
        rows = list(csv.DictReader(open(path)))
        out = []
        for r in rows:
            x, y, c = float(r["x"]) - x0, float(r["y"]) - y0, int(r[chan_key]) - c0
            if 0 <= x < nx and 0 <= y < ny and 0 <= c < c1 - c0:
                r = dict(r, x=f"{x:g}", y=f"{y:g}", **{chan_key: str(c)})
                for key in extra:
                    if int(r[key]) >= 0:
                        r[key] = str(int(r[key]) - c0)
                out.append(r)
        with open(os.path.join(a.outdir, name), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
            w.writeheader()
            w.writerows(out)


if __name__ == "__main__":
    main()
