"""Repair time and peak memory against the time of merely copying the products it writes.

    python benchmarks/make_products.py DIR --size 2048 --nchan 64 --confetti 8
    python benchmarks/repair_speed.py DIR/bench

Runs, each in a fresh process, on a warm page cache: (1) the floor: copying the model,
image and residual (what a repair writes whole) into a temporary folder; (2) the scan
into a temporary folder, as `deconfetti scan` does; (3) the repair of that scan into
another temporary folder, as `deconfetti repair SCANDIR --out DIR` does. Prints wall
time, peak RSS, the repair/copy ratio and the time per repaired channel. The floor runs
twice, the first to warm the cache.
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

COPY = """
import resource, shutil, sys, time
t = time.perf_counter()
for kind in ("model", "image", "residual"):
    shutil.copytree(f"{sys.argv[1]}.{kind}", f"{sys.argv[2]}/{kind}",
                    copy_function=shutil.copyfile)
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""

SCAN = """
import resource, sys, time
from deconfetti.cli import main
t = time.perf_counter()
assert main(["scan", sys.argv[1], "--out", sys.argv[2], "--figures", "0", "-q"]) == 0
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""

REPAIR = """
import resource, sys, time
from astropy.table import Table
from deconfetti.cli import main
t = time.perf_counter()
assert main(["repair", sys.argv[1], "--out", sys.argv[2], "-q"]) == 0
seconds = time.perf_counter() - t
log = Table.read(sys.argv[1] + "/repair.ecsv")
print(seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
      len(set(log["channel"])), int((log["status"] == "removed").sum()), len(log))
"""


def run(code: str, *args: str) -> list[float]:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True,
                         text=True).stdout.split()
    return [float(v) for v in out]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefix", help="imagename prefix of CASA products")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=Path(args.prefix).parent) as tmp:
        copies = []
        for i in range(2):
            Path(tmp, f"copy{i}").mkdir()
            copies.append(run(COPY, args.prefix, f"{tmp}/copy{i}"))
        floor, floor_rss = copies[-1]
        scan, scan_rss = run(SCAN, args.prefix, f"{tmp}/scan")
        Path(tmp, "out").mkdir()
        repair, repair_rss, channels, removed, confetti = run(REPAIR, f"{tmp}/scan",
                                                               f"{tmp}/out")
    print("| what | wall time | vs copy | peak RSS |")
    print("|---|---|---|---|")
    print(f"| copy model, image, residual | {floor:.1f} s | 1 | {floor_rss:.0f} MiB |")
    print(f"| scan | {scan:.1f} s | {scan / floor:.2f}x | {scan_rss:.0f} MiB |")
    print(f"| repair | {repair:.1f} s | {repair / floor:.2f}x | {repair_rss:.0f} MiB |")
    print(f"\n{confetti:.0f} confetti in {channels:.0f} channels, {removed:.0f} removed; "
          f"repair beyond the copy: {(repair - floor) / max(channels, 1):.1f} s per channel")
    return 0


if __name__ == "__main__":
    sys.exit(main())
