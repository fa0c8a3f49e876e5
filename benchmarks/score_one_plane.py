"""Score the scan on one-plane (continuum-like) products cut from labelled cubes.

    python benchmarks/score_one_plane.py CASE_DIR [CASE_DIR ...] [--out DIR]

Each CASE_DIR holds tclean products (``*.image`` etc.), ``labels.csv`` (rows with
``cls = confetti`` are the fakes) and ``real_sources.csv``, as the project's labelled cases
do. tclean's relations hold per plane, so every channel with a confetti label, and up to
eight evenly spaced channels of a case without any, is written as one-plane FITS products
(image, model, residual, psf, pb) and scanned like an mfs image. Prints per case: labels,
found, false confetti calls, real compact sources called confetti. Developers only.
"""

import argparse
import csv
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import deconfetti
from deconfetti.simulate import write_plane


def rows(path: Path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("cases", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=None,
                        help="where the one-plane products go (default: a temporary folder)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as scratch:
        score(args.cases, args.out or Path(scratch))


def score(cases: list[Path], out: Path) -> None:
    """Cut, scan and score the one-plane products of ``cases`` under ``out``."""
    for case in cases:
        products = deconfetti.open_products(sorted(case.glob("*.image*"))[0])
        labels = [r for r in rows(case / "labels.csv") if r["cls"] == "confetti"]
        real = rows(case / "real_sources.csv") if (case / "real_sources.csv").exists() else []
        beam = float(np.max(products.beam_pixels[:, 0]))
        chans = sorted({int(r["channel"]) for r in labels}) or list(
            np.linspace(1, products.nchan - 2, min(8, products.nchan), dtype=int))
        found = false = on_real = 0
        for chan in chans:
            result = deconfetti.scan(write_plane(products, chan, out / case.name / str(chan)))
            calls = result.candidates[result.candidates["classification"] == "confetti"]
            here = [r for r in labels if int(r["channel"]) == chan]
            hit = [any(np.hypot(c["x"] - float(r["x"]), c["y"] - float(r["y"])) <= beam
                       for r in here) for c in calls]
            found += sum(any(np.hypot(c["x"] - float(r["x"]), c["y"] - float(r["y"])) <= beam
                             for c in calls) for r in here)
            near_real = [any(np.hypot(c["x"] - float(s["x"]), c["y"] - float(s["y"])) <= beam
                             and int(s["chan_lo"]) <= chan <= int(s["chan_hi"]) for s in real)
                         for c in calls]
            false += sum(1 for h, n in zip(hit, near_real) if not h and not n)
            on_real += sum(near_real)
        print(json.dumps(dict(case=case.name, planes=len(chans), labels=len(labels),
                              found=found, false_confetti=false, real_called_confetti=on_real)))


if __name__ == "__main__":
    main()
