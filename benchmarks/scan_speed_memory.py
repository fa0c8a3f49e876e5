"""Scan time and peak memory against the time and memory of merely reading the products.

    python benchmarks/scan_speed_memory.py PREFIX [--memory-mb 512] [--naive]

Runs, each in a fresh process: (1) the floor: reading every product the scan reads
(image, model, residual, pb, psf) in the scan's own channel blocks; (2) the scan with
``--workers`` threads; (3) the scan with one worker; (4, 5) the scan on a dask
``LocalCluster`` of one and of two single-threaded worker processes (``--memory-mb``
each; workers started and their imports done before the clock starts; the median of three
scans, as timings on a shared machine vary by 10 %). Prints wall time,
peak RSS (of the process; of the largest worker for dask), the scan/read ratio and the
parallel speed-ups (warm page cache: the floor runs twice first).
With ``--naive``: (4) the basic features (per-channel MAD, one-channel spike, model local
maxima) computed the naive way on whole cubes in memory, for comparison.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

READ = """
import os, resource, sys, time
import deconfetti
from deconfetti.stream import plan_blocks, choose_block_channels
p = deconfetti.open_products(sys.argv[1])
workers = int(sys.argv[3]) or os.cpu_count()
size = choose_block_channels(p.shape, memory_mb=float(sys.argv[2]) / workers,
                             tile_depth=p.image.tile_depth)  # the scan's own blocks
t = time.perf_counter()
for b in plan_blocks(p.nchan, size):
    for kind in ("image", "model", "residual", "pb", "psf"):
        if getattr(p, kind) is not None:
            p.read(kind, b.read_start, b.read_stop)
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""

SCAN = """
import resource, sys, time
import deconfetti
t = time.perf_counter()
r = deconfetti.scan(sys.argv[1], memory_mb=float(sys.argv[2]), workers=int(sys.argv[3]))
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, len(r.candidates))
"""

DASK = """
import resource, sys, time
import deconfetti
from distributed import Client, LocalCluster

def rss():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

if __name__ == "__main__":
    with LocalCluster(n_workers=int(sys.argv[3]), threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(lambda: __import__("deconfetti.pipeline"))
        times = []
        for _ in range(3):
            t = time.perf_counter()
            r = deconfetti.scan(sys.argv[1], memory_mb=float(sys.argv[2]), client=client)
            times.append(time.perf_counter() - t)
        print(sorted(times)[1], max(client.run(rss).values()), len(r.candidates))
"""

NAIVE = """
import resource, sys, time
import numpy as np
from scipy import ndimage
from casacore.images import image
t = time.perf_counter()
cubes = {k: np.asarray(image(sys.argv[1] + "." + k).getdata())[:, 0]
         for k in ("image", "model", "residual")}            # whole cubes in memory
res = cubes["residual"]
rms = 1.4826 * np.median(np.abs(res - np.median(res, axis=(1, 2), keepdims=True)), axis=(1, 2))
im = cubes["image"]
spike = (im[1:-1] - 0.5 * (im[:-2] + im[2:])) / rms[1:-1, None, None]
model = cubes["model"]
peaks = (model == ndimage.maximum_filter(model, size=(1, 3, 3))) & (model > 3 * rms[:, None, None])
n = int((spike > 5).sum() + peaks.sum())
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, n)
"""


def run(code, prefix, memory, workers):
    with tempfile.TemporaryDirectory() as folder:  # a file, so that dask can spawn workers
        script = Path(folder) / "bench_step.py"
        script.write_text(code)
        out = subprocess.run([sys.executable, str(script), prefix, str(memory), str(workers)],
                             check=True, capture_output=True, text=True).stdout.split()
    return [float(v) for v in out]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("prefix")
    ap.add_argument("--memory-mb", type=float, default=512)
    ap.add_argument("--workers", type=int, default=0, help="0: one per core")
    ap.add_argument("--naive", action="store_true",
                    help="also time the naive whole-cube computation of the basic features "
                         "(needs memory for three whole cubes)")
    a = ap.parse_args()
    run(READ, a.prefix, a.memory_mb, a.workers)  # warm the page cache
    read_s, read_mb = run(READ, a.prefix, a.memory_mb, a.workers)
    scan_s, scan_mb, count = run(SCAN, a.prefix, a.memory_mb, a.workers)
    serial_s, _, _ = run(SCAN, a.prefix, a.memory_mb, 1)
    dask1_s, dask1_mb, _ = run(DASK, a.prefix, a.memory_mb, 1)
    dask2_s, dask2_mb, _ = run(DASK, a.prefix, a.memory_mb, 2)
    result = {"read_s": round(read_s, 2), "read_peak_rss_mb": round(read_mb),
              "scan_s": round(scan_s, 2), "scan_peak_rss_mb": round(scan_mb),
              "scan_over_read": round(scan_s / read_s, 2), "candidates": int(count),
              "one_worker_s": round(serial_s, 2),
              "speedup_workers": round(serial_s / scan_s, 2),
              "dask_1_worker_s": round(dask1_s, 2), "dask_1_worker_peak_rss_mb": round(dask1_mb),
              "dask_2_workers_s": round(dask2_s, 2),
              "dask_2_workers_peak_rss_mb_each": round(dask2_mb),
              "speedup_dask_2_over_1": round(dask1_s / dask2_s, 2),
              "dask_2_over_read": round(dask2_s / read_s, 2),
              "memory_mb": a.memory_mb, "workers": a.workers or "all cores"}
    if a.naive:
        naive_s, naive_mb, _ = run(NAIVE, a.prefix, a.memory_mb, a.workers)
        result.update({"naive_whole_cube_s": round(naive_s, 2),
                       "naive_peak_rss_mb": round(naive_mb),
                       "naive_over_read": round(naive_s / read_s, 2)})
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
