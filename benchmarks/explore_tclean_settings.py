"""Exploratory natural tclean runs: the settings tried while looking for confetti that CLEAN
itself makes (`make_tclean_runs.py` case clean_lowcf12m came out of them).

    .casa-venv/bin/python benchmarks/explore_tclean_settings.py [--out DIR] [--case NAME ...]

Each run is made like a case of `make_tclean_runs.py` (the same sky, simobserve, noise,
label rule and products, nothing injected) with one of the settings below: 12m (alma.cycle5.1)
7-pointing mosaics with 20-50 % of the antennas flagged per pointing, robust -0.5, 7- to
28-minute tracks, compact sources of 15-3000 sigma, hogbom, clark or multiscale, gain 0.3-0.5,
cyclefactor 0.02-1, minpsffraction 0.001-0.01, nmajor 2 in one. Many stall or blow up in the
channels of the brightest sources (CASA stop code 4 or 6, residual 10-160 sigma): the natural
test of the scan's channel verdicts. Default output tclean-runs/explore/ (gitignored); each
run takes 1-5 minutes and keeps only the products (its measurement sets are removed). For
developers only, like make_tclean_runs.py.
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_tclean_runs as M  # noqa: E402

base12 = dict(
    M._ALMA12_MOSAIC, seed=1220, nchan=20, field_flag_frac=0.25, peak_sigma=100.0,
    n_clumps=30, clump_fwhm_beam=(0.6, 2.5), n_filaments=2, fil_width_beam=(1.0, 2.5),
    vel_rms_chan=4.0, linewidth_chan=(0.8, 1.5), n_compact=8, compact_sigma=(30.0, 300.0))
#: 7-minute snapshots (50 % of the antennas flagged per pointing unless set)
snap = dict(base12, seed=1221, field_flag_frac=0.5, totaltime_s=420, integration_s=30,
            peak_sigma=60.0, compact_sigma=(20.0, 200.0))
#: high dynamic range: compact sources of 300-2000 sigma, 30 % of the antennas flagged
hdr = dict(base12, seed=1222, field_flag_frac=0.3, peak_sigma=50.0,
           compact_sigma=(300.0, 2000.0))


def clean(deconvolver: str = "multiscale", **settings) -> dict:
    """The tclean settings of every run (mosaic gridder, robust -0.5, threshold 1 sigma,
    cyclefactor 0.05 unless set), with multiscale scales [0, 5, 15] or another deconvolver."""
    tclean = dict(M._COMMON_TCLEAN, gridder="mosaic", robust=-0.5, cyclefactor=0.05,
                  maxpsffraction=0.3, threshold_sigma=1.0)
    tclean.update(dict(scales=[0, 5, 15]) if deconvolver == "multiscale"
                  else dict(deconvolver=deconvolver))
    tclean.update(settings)
    return tclean


#: the case that came out of these runs (also x_g3_bright below)
LOWCF = M.CASES["clean_lowcf12m"]
V = {
    "x_ms_rm05": dict(base12, tclean=clean(gain=0.5, minpsffraction=0.01)),
    "x_clark_rm05": dict(base12, tclean=clean("clark", gain=0.5, minpsffraction=0.01)),
    "x_ms_nmaj2": dict(base12, tclean=clean(gain=0.5, minpsffraction=0.001, nmajor=2)),
    "x_snap_hog": dict(snap, tclean=clean("hogbom", gain=0.5, minpsffraction=0.01)),
    "x_snap_ms": dict(snap, tclean=clean(scales=[0, 3, 9], gain=0.5, minpsffraction=0.01)),
    "x_snap2_hog": dict(snap, totaltime_s=840,
                        tclean=clean("hogbom", gain=0.5, minpsffraction=0.01)),
    **{f"x_snap{n}_hog": dict(snap, field_flag_frac=flagged,
                              tclean=clean("hogbom", gain=0.5, minpsffraction=0.01))
       for n, flagged in ((3, 0.3), (4, 0.4), (6, 0.45))},
    "x_snap5_hog": dict(snap, peak_sigma=20.0,
                        tclean=clean("hogbom", gain=0.5, minpsffraction=0.01)),
    **{f"x_snap{n}_hog": dict(snap, peak_sigma=40.0, compact_sigma=(15.0, 50.0),
                              tclean=clean("hogbom", gain=0.5, cyclefactor=cyclefactor,
                                           minpsffraction=0.01))
       for n, cyclefactor in ((7, 0.05), (8, 0.3))},
    "x_hdr_hog": dict(hdr, tclean=clean("hogbom", gain=0.5, minpsffraction=0.001)),
    "x_hdr_ms": dict(hdr, tclean=clean(gain=0.5, minpsffraction=0.001)),
    "x_hdr_ms_cf1": dict(hdr, tclean=clean(gain=0.5, cyclefactor=1.0, minpsffraction=0.001)),
    "x_hdr2_ms": dict(base12, seed=1223, field_flag_frac=0.2, peak_sigma=30.0, n_compact=4,
                      compact_sigma=(500.0, 1500.0), tclean=clean(gain=0.3, minpsffraction=0.001)),
    "x_hdr_ms_g3": dict(hdr, tclean=clean(gain=0.3, minpsffraction=0.001)),
    "x_hdr_ms_mp01": dict(hdr, tclean=clean(gain=0.5, minpsffraction=0.01)),
    "x_hdr_g3_s4": dict(hdr, seed=1224, tclean=clean(gain=0.3, minpsffraction=0.001)),
    "x_hdr_g3_cf02": dict(hdr, tclean=clean(gain=0.3, cyclefactor=0.02, minpsffraction=0.001)),
    "x_g3_bright": LOWCF,
    "x_g4": dict(hdr, tclean=clean(gain=0.4, minpsffraction=0.001)),
    "x_g3_bright_cf1": dict(LOWCF, tclean=dict(LOWCF["tclean"], cyclefactor=1.0)),
}

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tclean-runs/explore")
    parser.add_argument("--case", nargs="*", default=list(V), choices=list(V))
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(os.path.join(out, "_casa"), exist_ok=True)
    M.CASES.update(V)
    ct = M.casa_env(os.path.join(out, "_casa"))
    os.chdir(os.path.join(out, "_casa"))
    for name in args.case:
        M.run_case(ct, name, out, keep_ms=False)


if __name__ == "__main__":
    main()
