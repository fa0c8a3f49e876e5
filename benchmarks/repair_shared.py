"""Repair the shared labelled cases and measure it against their truth.

Usage: python benchmarks/repair_shared.py [../shared/data] [--set repair.consistency_max=99]

For each case: scan, repair (in memory), then, per confetti label (channel, x, y):
the image-minus-truth error at the label before and after, also high-passed as the labels
were found, and the rms of that error within 1 beam FWHM of it; per case, the share of the
labels' error removed (summed over them); the rms of the error around the removals, in
annuli; the largest change of the image outside the repair footprints (all channels), in
sigma; the change of every real compact source's peak.
"""

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy import ndimage

import deconfetti
from deconfetti.config import load_config, parse_overrides
from deconfetti.repair import repair

CASES = {"confetti_s01": "confetti_s01", "confetti_s02": "confetti_s02",
         "pedM1b_inj": "img", "pedC1": "img"}


def rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


#: annuli around a removal, in restoring-beam FWHM
ANNULI = [0, 1, 2, 4, 6, 8]


def high_pass(plane: np.ndarray, major: float) -> np.ndarray:
    """``plane`` minus its Gaussian smoothing of FWHM 3 beams, as the labels are made."""
    return plane - ndimage.gaussian_filter(plane, 3 * major / np.sqrt(8 * np.log(2)))


def run_case(directory: Path, prefix: str, config) -> dict:
    result = deconfetti.scan(directory / f"{prefix}.image", config=config)
    products = result.products
    image = products.read("image", 0, products.nchan).astype(np.float64)
    after = image.copy()
    changed = np.zeros(image.shape, dtype=bool)

    def apply(chan, done):
        after[chan] += done.image_delta
        changed[chan] |= done.image_delta != 0

    log = repair(products, result.candidates, result.rms, config=config, apply=apply)
    truth = fits.getdata(directory / "truth.fits")[0].astype(np.float64)
    sigma = np.array([float(r["noise_Jy_beam"]) for r in rows(directory / "noise.csv")])
    major = products.beam_pixels[:, 0]
    ny, nx = image.shape[1:]
    yy, xx = np.mgrid[:ny, :nx]
    out = {"case": directory.name, "removed": int(np.sum(log["status"] == "removed")),
           "refused": int(np.sum(log["status"] == "refused")), "labels": []}
    labels = [r for r in rows(directory / "labels.csv") if r["cls"] == "confetti"]
    for label in labels:
        c, x, y = int(label["channel"]), int(label["x"]), int(label["y"])
        core = np.hypot(yy - y, xx - x) <= major[c]
        e0, e1 = image[c] - truth[c], after[c] - truth[c]
        h0, h1 = (high_pass(e, major[c]) for e in (e0, e1))
        out["labels"].append(dict(
            channel=c, x=x, y=y, at_before=e0[y, x] / sigma[c], at_after=e1[y, x] / sigma[c],
            rms_before=np.sqrt(np.mean(e0[core] ** 2)) / sigma[c],
            rms_after=np.sqrt(np.mean(e1[core] ** 2)) / sigma[c],
            hp_before=h0[y, x] / sigma[c], hp_after=h1[y, x] / sigma[c],
            repaired=bool(changed[c][core].any())))
    injected = rows(directory / "injected.csv") if (directory / "injected.csv").exists() else []
    for lab in out["labels"]:
        fakes = [float(r.get("restored_sigma") or r["target_excess_sigma"]) for r in injected
                 if int(r["channel"]) == lab["channel"]
                 and abs(int(r["x"]) - lab["x"]) <= 2 and abs(int(r["y"]) - lab["y"]) <= 2]
        lab["fake"] = fakes[0] if fakes else np.nan
    # rms of the error around every removal, in annuli of beams (the last one is beyond
    # every footprint: the floor of noise and other imaging errors)
    squares = np.zeros((2, len(ANNULI) - 1))
    counts = np.zeros(len(ANNULI) - 1)
    for row in log[log["status"] == "removed"]:
        c = row["channel"]
        ring = np.digitize(np.hypot(yy - row["y"], xx - row["x"]) / major[c], ANNULI) - 1
        ok = (ring >= 0) & (ring < len(counts)) & np.isfinite(image[c] - truth[c])
        for when, plane in enumerate((image[c], after[c])):
            error = ((plane[ok] - truth[c][ok]) / sigma[c]) ** 2
            squares[when] += np.bincount(ring[ok], error, len(counts))
        counts += np.bincount(ring[ok], minlength=len(counts))
    out["annuli"] = np.sqrt(squares / np.maximum(counts, 1))
    outside = np.abs(after - image)[~changed] if (~changed).any() else np.zeros(1)
    out["outside_sigma"] = float(np.max(outside / np.median(sigma)))
    real = []
    for source in rows(directory / "real_sources.csv"):
        x, y = int(float(source["x"])), int(float(source["y"]))
        c = int(float(source["chan_peak"]))
        real.append(abs(after[c, y, x] - image[c, y, x]) / abs(image[c, y, x]))
    out["real_max_change"] = max(real) if real else 0.0
    out["log"] = log
    return out


def removed_share(before: list, after: list) -> float:
    """1 - sum |after| / sum |before| over a case's labels."""
    return 1 - np.sum(np.abs(after)) / np.sum(np.abs(before)) if before else np.nan


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(Path(__file__).parents[1] / ".." / "shared" / "data"))
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args(argv)
    config = load_config(None, parse_overrides(args.set))
    print("| case | label (c, x, y) | repaired | error at label before -> after (sigma) | "
          "removed | high-passed error before -> after | removed | injected fake (sigma) | of it removed | "
          "rms within 1 beam before -> after |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    summaries = []
    for name, prefix in CASES.items():
        directory = Path(args.data) / name
        if not directory.exists():
            continue
        res = run_case(directory, prefix, config)
        for lab in res["labels"]:
            frac = 1 - abs(lab["at_after"]) / abs(lab["at_before"])
            print(f"| {name} | {lab['channel']}, {lab['x']}, {lab['y']} | {lab['repaired']} | "
                  f"{lab['at_before']:.2f} -> {lab['at_after']:.2f} | {100 * frac:.0f}% | "
                  f"{lab['hp_before']:.2f} -> {lab['hp_after']:.2f} | "
                  f"{100 * (1 - abs(lab['hp_after']) / abs(lab['hp_before'])):.0f}% | "
                  f"{lab['fake']:.2f} | "
                  f"{100 * (lab['at_before'] - lab['at_after']) / lab['fake']:.0f}% | "
                  f"{lab['rms_before']:.2f} -> {lab['rms_after']:.2f} |")
        summaries.append(res)
    print()
    print("| case | removed | refused | share of the labels' error removed: at the peaks, "
          "high-passed, energy within 1 beam less the noise's | "
          "largest image change outside footprints (sigma) | largest real-source peak change |")
    print("|---|---|---|---|---|---|")
    for res in summaries:
        labels = res["labels"]
        shares = [removed_share([lab[f"{kind}_before"] for lab in labels],
                                [lab[f"{kind}_after"] for lab in labels]) for kind in ("at", "hp")]
        energy = [sum(lab[f"rms_{when}"] ** 2 - 1 for lab in labels) for when in ("before", "after")]
        shares.append(1 - energy[1] / energy[0] if labels else np.nan)
        print(f"| {res['case']} | {res['removed']} | {res['refused']} | "
              f"{', '.join(f'{100 * share:.1f}%' for share in shares)} | {res['outside_sigma']:.3g} | "
              f"{100 * res['real_max_change']:.3f}% |")
    print("\n| case | rms of image - truth around the removals, before -> after (sigma), "
          f"in annuli of {', '.join(f'{a}-{b}' for a, b in zip(ANNULI, ANNULI[1:]))} beams |")
    print("|---|---|")
    for res in summaries:
        if res["removed"]:
            print(f"| {res['case']} | " + ", ".join(
                f"{b:.2f} -> {a:.2f}" for b, a in zip(*res["annuli"])) + " |")
    for res in summaries:
        log = res["log"]
        if len(log):
            print(f"\n{res['case']} repair log:")
            log[["id", "channel", "x", "y", "status", "restored_sigma", "psf_peak_sigma", "imprint",
                 "consistency_sigma"]].pprint(max_width=200, max_lines=-1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
