"""Repair labelled cases and measure it against their truth.

Usage: python benchmarks/repair_shared.py [DIR ...] [--set repair.consistency_max=99]

DIR holds case folders (each with its products, truth.fits, labels.csv, noise.csv and
real_sources.csv), e.g. ../shared/data or the natural runs of make_tclean_runs.py. For
each case: scan, repair (in memory), then, per confetti label (channel, x, y): the
image-minus-truth error at the label before and after, also high-passed as the labels
were found, and the rms of that error within 1 beam FWHM of it; per case, the share of the
labels' error removed (summed over them); the rms of the error from 1 to 5 beams of the
labels and farther than 5 beams from every label, in their channels; the largest change of
the image farther than 5 beams from every label (all channels), in sigma; the change of
every real compact source's peak.

For a case made by ``inject_tclean_runs.py`` (its params.json names the ``source_case``)
whose run without the fakes is in ``--runs`` (default tclean-runs/), also the ideal: that
run's image is the case repaired perfectly, so beyond 5 beams the fakes' own imprint
(injected - source) is the change a perfect repair makes there, and the repaired image is
compared with the source's (largest difference and rms beyond 5 beams, sigma); and, per
fake channel, the model the repair took out against the fakes' own model pattern (the
case's model minus the source's): the share of the pattern taken out and the relative
norm of what differs.
"""

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy import ndimage

import deconfetti
from deconfetti.config import load_config, parse_overrides
from deconfetti.repair import repair

def rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def high_pass(plane: np.ndarray, major: float) -> np.ndarray:
    """``plane`` minus its Gaussian smoothing of FWHM 3 beams, as the labels are made
    (pixels outside the primary beam, NaN in the truth, as 0)."""
    plane = np.nan_to_num(plane)
    return plane - ndimage.gaussian_filter(plane, 3 * major / np.sqrt(8 * np.log(2)))


def run_case(directory: Path, prefix: str, config, runs: Path) -> dict:
    result = deconfetti.scan(directory / f"{prefix}.image", config=config)
    products = result.products
    image = products.read("image", 0, products.nchan).astype(np.float64)
    after = image.copy()
    changed = np.zeros(image.shape, dtype=bool)

    taken = {}  # the model the repair took out, Jy/pixel, by channel

    def apply(chan, done):
        after[chan] += done.image_delta
        changed[chan] |= done.image_delta != 0
        taken[chan] = -done.model_delta

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
    # the error from 1 to 5 beams of the labels, and beyond 5 beams of all of them, in
    # their channels; the largest change beyond 5 beams of every label, in any channel
    near = np.zeros(image.shape, dtype=bool)
    far = np.ones(image.shape, dtype=bool)
    for label in labels:
        c, x, y = int(label["channel"]), int(label["x"]), int(label["y"])
        d = np.hypot(yy - y, xx - x) / major[c]
        near[c] |= (d > 1) & (d <= 5)
        far[c] &= d > 5
    chans = sorted({int(label["channel"]) for label in labels})
    ok = np.isfinite(image - truth)
    scaled = lambda cube: (cube - truth) / sigma[:, None, None]  # noqa: E731
    for name, region in (("ring", near), ("far", far)):
        region = region & ok & np.isin(np.arange(len(image)), chans)[:, None, None]
        out[name] = [float(np.sqrt(np.mean(scaled(cube)[region] ** 2))) if region.any()
                     else np.nan for cube in (image, after)]
    change = np.abs(after - image) / sigma[:, None, None]
    out["far_change"] = float(np.nanmax(np.where(far, change, 0.0)))
    out["ideal"] = out["pattern"] = None
    source = (json.loads((directory / "params.json").read_text()).get("source_case")
              if (directory / "params.json").exists() else None)
    if source and (runs / source / f"{prefix}.image").exists():
        clean = deconfetti.open_products(runs / source / f"{prefix}.image")
        clean = clean.read("image", 0, clean.nchan).astype(np.float64)
        region = far & np.isfinite(clean) & np.isfinite(after)
        own, left = ((np.abs(cube - clean) / sigma[:, None, None])[region]
                     for cube in (image, after))
        out["ideal"] = (float(own.max()), float(left.max()), float(np.sqrt(np.mean(own ** 2))),
                        float(np.sqrt(np.mean(left ** 2))))
        out["pattern"] = pattern_recovery(products, runs / source / f"{prefix}.image",
                                          sorted({int(r["channel"]) for r in injected}), taken)
    real = [(0.0, "")]
    removed = log[log["status"] == "removed"]
    for source in rows(directory / "real_sources.csv"):
        x, y = round(float(source["x"])), round(float(source["y"]))
        c = int(float(source["chan_peak"]))
        if 0 <= c < len(image):
            change = after[c, y, x] - image[c, y, x]
            here = removed[removed["channel"] == c]
            gap = min((np.hypot(r["x"] - x, r["y"] - y) / major[c] for r in here), default=np.inf)
            real.append((abs(change) / abs(image[c, y, x]),
                         f"source {source['id']} (channel {c}, {image[c, y, x] / sigma[c]:.1f} "
                         f"sigma, {gap:.1f} beams from a removal): {change / sigma[c]:+.2f} sigma, "
                         f"error against the truth {(image[c, y, x] - truth[c, y, x]) / sigma[c]:+.2f}"
                         f" -> {(after[c, y, x] - truth[c, y, x]) / sigma[c]:+.2f} sigma"))
    out["real_max_change"], out["real_worst"] = max(real)
    out["log"] = log
    return out


def pattern_recovery(products, source, channels: list[int], taken: dict) -> list[tuple]:
    """Per fake channel of an injected case: the model the repair took out ``D`` against
    the fakes' own model pattern (the case's model minus its source run's): the share of
    the pattern along ``D`` (1: all of it) and ``|pattern - D| / |pattern|`` (0: exact);
    None for a channel where nothing was taken out."""
    clean = deconfetti.open_products(source)
    out = []
    for c in channels:
        if c not in taken:
            out.append((c, None, None))
            continue
        fake = np.nan_to_num(products.read("model", c, c + 1)[0].astype(np.float64)
                             - clean.read("model", c, c + 1)[0])
        d = taken[c]
        out.append((c, float(np.sum(d * fake) / np.sum(fake * fake)),
                    float(np.linalg.norm(fake - d) / np.linalg.norm(fake))))
    return out


def removed_share(before: list, after: list) -> float:
    """1 - sum |after| / sum |before| over a case's labels."""
    return 1 - np.sum(np.abs(after)) / np.sum(np.abs(before)) if before else np.nan


def cases(folders: list[str]):
    """(folder, product prefix) of every labelled case in ``folders``."""
    for folder in folders:
        for case in sorted(Path(folder).iterdir()):
            images = sorted(case.glob("*.image")) if (case / "labels.csv").exists() else []
            if images and (case / "truth.fits").exists():
                yield case, images[0].name[:-len(".image")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="*",
                        default=[str(Path(__file__).parents[1] / ".." / "shared" / "data")])
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--runs", type=Path, default=Path("tclean-runs"),
                        help="the runs the injected cases were made from")
    args = parser.parse_args(argv)
    config = load_config(None, parse_overrides(args.set))
    print("| case | label (c, x, y) | repaired | error at label before -> after (sigma) | "
          "removed | high-passed error before -> after | removed | injected fake (sigma) | "
          "of it removed | rms within 1 beam before -> after |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    summaries = []
    for directory, prefix in cases(args.data):
        name = directory.name
        res = run_case(directory, prefix, config, args.runs)
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
    print("| case | labels | removed | refused | share of the labels' error removed: at the "
          "peaks, high-passed, energy within 1 beam less the noise's | rms error 1-5 beams, "
          "before -> after | rms error beyond 5 beams, before -> after | largest change beyond "
          "5 beams (sigma) | largest real-source peak change |")
    print("|---|---|---|---|---|---|---|---|---|")
    for res in summaries:
        labels = res["labels"]
        shares = [removed_share([lab[f"{kind}_before"] for lab in labels],
                                [lab[f"{kind}_after"] for lab in labels]) for kind in ("at", "hp")]
        energy = [sum(lab[f"rms_{when}"] ** 2 - 1 for lab in labels) for when in ("before", "after")]
        shares.append(1 - energy[1] / energy[0] if labels else np.nan)
        print(f"| {res['case']} | {len(labels)} | {res['removed']} | {res['refused']} | "
              f"{', '.join(f'{100 * share:.1f}%' for share in shares)} | "
              f"{res['ring'][0]:.3f} -> {res['ring'][1]:.3f} | "
              f"{res['far'][0]:.3f} -> {res['far'][1]:.3f} | {res['far_change']:.2f} | "
              f"{100 * res['real_max_change']:.2f}% |")
    print()
    for res in summaries:
        if res["ideal"]:
            own, left, own_rms, left_rms = res["ideal"]
            print(f"{res['case']}: beyond 5 beams, the fakes' own imprint (a perfect repair's "
                  f"change) is up to {own:.2f} sigma (rms {own_rms:.3f}); the repaired image "
                  f"differs from the run without fakes by up to {left:.2f} (rms {left_rms:.3f})")
        if res["pattern"]:
            parts = [f"ch {c} not repaired" if along is None else
                     f"ch {c} {along:.2f} of it taken out, |fakes - D| / |fakes| {miss:.2f}"
                     for c, along, miss in res["pattern"]]
            print(f"{res['case']}: the model taken out (D) against the fakes' own model "
                  f"pattern: " + "; ".join(parts))
    for res in summaries:
        if res["real_worst"]:
            print(f"{res['case']}: largest real-source change, {res['real_worst']}")
    for res in summaries:
        log = res["log"]
        if len(log):
            print(f"\n{res['case']} repair log:")
            log[["id", "channel", "x", "y", "status", "excess_left", "psf_peak_sigma", "imprint",
                 "consistency_sigma", "far_change_sigma", "reason"]].pprint(max_width=250,
                                                                          max_lines=-1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
