"""Score the scan's confetti calls on the labelled shared cases with the shared scorer.

    python benchmarks/score_shared.py [DATA_DIR] [BENCH_DIR]
    python benchmarks/score_shared.py tclean-runs     # the natural runs of make tclean-runs

Defaults: ../shared/data and ../shared/bench beside the repository (developers only:
users and tests do not have them). DATA_DIR is any folder of case folders laid out like
those (products, labels.csv, real_sources.csv, labels_meta.json). Prints per case: labels found, false positives, real
sources flagged, precision, recall, F1 and the naive baselines' F1, plus scan time.
"""

import json
import sys
import time
from pathlib import Path

import deconfetti

ROOT = Path(__file__).resolve().parents[1]


def main():
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data"
    bench = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT.parent / "shared" / "bench"
    sys.path.insert(0, str(bench))
    from score import score_case

    rows = []
    for case in sorted(p for p in data.iterdir() if (p / "labels.csv").exists()):
        image = sorted(case.glob("*.image*"))[0]  # a cube's .image or a continuum .image.tt0
        start = time.perf_counter()
        result = deconfetti.scan(image)
        seconds = time.perf_counter() - start
        table = result.candidates
        calls = [dict(channel=int(r["channel"]), x=int(r["x"]), y=int(r["y"]))
                 for r in table[table["classification"] == "confetti"]]
        score = score_case(str(case), calls)
        baselines = {}
        for name in ("scores.json", "baseline_scores.json"):
            if (case / name).exists():
                baselines = {k: v["F1"] for k, v in json.loads((case / name).read_text()).items()}
        rows.append(dict(case=case.name, labels=score["n_labels"], found=score["labels_found"],
                         FP=score["FP"], FP_real=score["FP_real"], neutral=score["neutral"],
                         real_flagged=score["real_sources_flagged"],
                         precision=score["precision"], recall=score["recall"], F1=score["F1"],
                         F1_spike=baselines.get("spike"), F1_modelpix=baselines.get("modelpix"),
                         counts=result.counts,
                         diverged_channels=result.summary["diverged_channels"],
                         seconds=round(seconds, 2)))
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
