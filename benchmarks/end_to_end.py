"""The command as a user runs it, against reading what it must read, at several sizes.

    python benchmarks/end_to_end.py [--sizes 512 1024 2048] [--nchan 64] [--runs 3]
                                    [--work DIR] [--dask]

For each size, product sets are made on the fly (`make_products.py`: five CASA products,
a dense model, null-space confetti). Then, each in a fresh process and alternating, the
median of ``--runs``:

- the floor: python-casacore reading the image, model, residual and pb in tile-deep
  4-channel blocks, and the psf planes of the channels the scan tests (the candidates'
  and their neighbours'), which is what the scan must read, with ``image.getdata``;
- the same read through the images' tables (``getcolslicenp`` into one reused array),
  about three times faster, which is how deconfetti reads: a second reference, so that
  no ratio is flattered by a slow floor;
- ``deconfetti scan PREFIX --out DIR`` with its defaults (figures included);
- the same with ``--figures 0``;
- ``deconfetti --help``;
- the figures' cost per candidate: the difference of the two scans over the number drawn.

With ``--dask``, the scan from Python on a `LocalCluster` of one and of two single-threaded
worker processes (started, and their imports done, before the clock starts).

Prints one table: seconds, the ratios to the two floors, peak RSS (MB) and how each grows with
the size (the exponent of the time against the number of pixels, from the smallest size).
"""

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

FLOOR = """
import json, resource, sys, time
import numpy as np
from casacore.images import image
from casacore.tables import table
prefix, channels, tables = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "tables"
t = time.perf_counter()

def read(kind, first, last):
    if not tables:
        return np.asarray(images[kind].getdata(*corners(kind, first, last)))
    out = buffer[:last - first + 1].reshape(1, last - first + 1, 1, *shape[2:])
    opened[kind].getcolslicenp("map", out, *corners(kind, first, last), startrow=0, nrow=1)

def corners(kind, first, last):
    return [first, 0, 0, 0], [last, 0, shape[2] - 1, shape[3] - 1]

kinds = ("image", "model", "residual", "pb", "psf")
images = {kind: image(f"{prefix}.{kind}") for kind in kinds}
opened = {kind: table(f"{prefix}.{kind}", ack=False) for kind in kinds} if tables else {}
shape = images["image"].shape()  # CASA order reversed: [chan, stokes, y, x] in numpy
buffer = np.empty((4, shape[2], shape[3]), dtype=np.float32)
for kind in kinds[:4]:
    for start in range(0, shape[0], 4):
        read(kind, start, min(shape[0], start + 4) - 1)
for c in channels:
    read("psf", c, c)
print(json.dumps([time.perf_counter() - t,
                  resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]))
"""

DASK = """
import json, resource, statistics, sys, time
from distributed import Client, LocalCluster
import deconfetti
prefix, workers, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                  dashboard_address=None) as cluster, Client(cluster) as client:
    client.run(lambda: __import__("deconfetti.pipeline"))
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        deconfetti.scan(prefix, client=client)
        times.append(time.perf_counter() - t)
    rss = max(client.run(lambda: __import__("resource").getrusage(
        __import__("resource").RUSAGE_SELF).ru_maxrss / 1024).values())
print(json.dumps([statistics.median(times), rss]))
"""


#: runs a command as a child and prints its wall time and peak RSS (a fresh parent, so
#: that the children's peak is the command's own)
WRAP = """
import json, resource, subprocess, sys, time
t = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(json.dumps([time.perf_counter() - t,
                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024]))
"""


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of ``command`` in a fresh process."""
    return reported([sys.executable, "-c", WRAP, *command])


def reported(command: list[str]) -> tuple[float, float]:
    """What a script prints as ``[seconds, rss_mb]``."""
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return tuple(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--nchan", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--confetti", type=int, default=8)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--dask", action="store_true")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="deconfetti-bench-"))
    exe = Path(sys.executable).with_name("deconfetti")
    rows = []
    for size in args.sizes:
        folder = work / f"p{size}"
        prefix = folder / "bench"
        if not Path(f"{prefix}.image").exists():
            subprocess.run([sys.executable, str(HERE / "make_products.py"), str(folder),
                            "--size", str(size), "--nchan", str(args.nchan),
                            "--confetti", str(args.confetti)], check=True,
                           stdout=subprocess.DEVNULL)
        out = work / f"scan{size}"
        subprocess.run([str(exe), "scan", str(prefix), "--out", str(out), "--overwrite", "-q",
                        "--figures", "0"], check=True)  # warm the page cache; the channels
        channels = _tested_channels(out, args.nchan)
        results = {"floor": [], "floor, table reads": [], "scan": [], "scan --figures 0": [],
                   "--help": []}
        for _ in range(args.runs):
            for name, how in (("floor", "getdata"), ("floor, table reads", "tables")):
                results[name].append(reported([sys.executable, "-c", FLOOR, str(prefix),
                                               json.dumps(channels), how]))
            results["scan"].append(timed([str(exe), "scan", str(prefix), "--out", str(out),
                                          "--overwrite", "-q"]))
            results["scan --figures 0"].append(timed([str(exe), "scan", str(prefix), "--out",
                                                      str(out), "--overwrite", "-q",
                                                      "--figures", "0"]))
            results["--help"].append(timed([str(exe), "--help"]))
        if args.dask:
            for workers in (1, 2):
                results[f"dask {workers} worker(s)"] = [reported(
                    [sys.executable, "-c", DASK, str(prefix), str(workers), str(args.runs)])]
        floor = statistics.median(t for t, _ in results["floor"])
        fast = statistics.median(t for t, _ in results["floor, table reads"])
        for name, values in results.items():
            seconds = statistics.median(t for t, _ in values)
            rss = max(r for _, r in values)
            rows.append((size, name, seconds, seconds / floor, seconds / fast, rss))
        drawn = min(10, _candidates(out))  # the default scan draws the first 10
        if drawn:
            extra = statistics.median(a - b for (a, _), (b, _) in
                                      zip(results["scan"], results["scan --figures 0"]))
            rows.append((size, "figures, per candidate", extra / drawn, extra / drawn / floor,
                         extra / drawn / fast, float("nan")))
    print(f"{'size':>6} {'run':<22} {'seconds':>8} {'x floor':>8} {'x table floor':>14} "
          f"{'peak RSS MB':>12} {'growth':>7}")
    first = {row[1]: (row[0], row[2]) for row in rows if row[0] == args.sizes[0]}
    for size, name, seconds, ratio, fast_ratio, rss in rows:
        base = first.get(name)
        growth = ""
        if base and size != base[0]:
            growth = f"{math.log(seconds / base[1]) / math.log((size / base[0]) ** 2):.2f}"
        print(f"{size:>6} {name:<22} {seconds:8.2f} {ratio:8.2f} {fast_ratio:14.2f} "
              f"{rss:12.0f} {growth:>7}")


def _candidates(scan_folder: Path) -> int:
    return int(json.loads((scan_folder / "summary.json").read_text())["candidates"])


def _tested_channels(scan_folder: Path, nchan: int) -> list[int]:
    """Channels whose psf the scan read: the candidates' and their neighbours'."""
    summary = json.loads((scan_folder / "summary.json").read_text())
    hit = {c["channel"] for c in summary["channels"]
           if sum(c[k] for k in ("confetti", "benign", "real", "noise", "diverged",
                                 "uncertain"))}
    return sorted({n for c in hit for n in (c - 1, c, c + 1) if 0 <= n < nchan})


if __name__ == "__main__":
    main()
