#!/usr/bin/env python
"""Check that deconfetti (python-casacore) and CASA (casatools/casatasks) work in one process.

Run with a Python that has casatools, casatasks, casadata and deconfetti installed::

    python scripts/casa_in_process.py            # both import orders
    python scripts/casa_in_process.py --order A  # just one

Each import order runs in a fresh subprocess, because a symbol clash between the two
casacore builds shows up as a crash (undefined symbol, "free(): invalid pointer",
SIGSEGV/SIGABRT) that would take the checking process down with it:

  A  import casatools, casatasks; then import deconfetti; scan, scan_to_folder and
     repair_scan of the shipped example; then casatools.image() open/shape and
     casatasks.imstat on it.
  B  import deconfetti; scan, scan_to_folder and repair_scan; then import casatools,
     casatasks and do the same CASA calls.

casatools is pointed at the casadata package offline (no auto-updates, no network
check) through a casasiteconfig written before it is imported (benchmarks/casa_site.py, as
for benchmarks/make_tclean_runs.py).  Exits non-zero if any order fails.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

# The code each child runs; ORDER is "A" or "B", WORKDIR a scratch folder.
CHILD = r'''
import importlib.metadata as md
import os
import sys

ORDER, WORKDIR, BENCHMARKS = sys.argv[1], sys.argv[2], sys.argv[3]


def say(msg):
    print(f"[{ORDER}] {msg}", flush=True)


def casa_env():
    """casasiteconfig using the casadata package offline (benchmarks/casa_site.py)."""
    sys.path.insert(0, BENCHMARKS)
    from casa_site import write_siteconfig
    write_siteconfig(WORKDIR)


def import_casa():
    say("import casatools, casatasks")
    import casatools  # noqa: F401
    import casatasks  # noqa: F401
    casatasks.casalog.setlogfile(os.path.join(WORKDIR, "casa.log"))
    return casatools, casatasks


def import_deconfetti():
    say("import deconfetti")
    import deconfetti
    return deconfetti


def run_deconfetti(deconfetti):
    prefix = deconfetti.example_path()
    say(f"deconfetti.scan({prefix!r})")
    res = deconfetti.scan(prefix)
    say(f"  -> {res!r}")
    out = os.path.join(WORKDIR, "scan")
    say(f"deconfetti.scan_to_folder(..., {out!r})")
    res2, paths = deconfetti.scan_to_folder(prefix, out)
    say(f"  -> wrote {len(paths)} outputs: {sorted(paths)}")
    say("deconfetti.repair_scan(...)")
    _, log, written, _ = deconfetti.repair_scan(out, os.path.join(WORKDIR, "repaired"))
    say(f"  -> {int(sum(log['status'] == 'removed'))} of {len(log)} removed, "
        f"wrote {sorted(written)}")
    return prefix + ".image"


def run_casa(casatools, casatasks, image):
    say(f"casatools.image().open({image!r})")
    ia = casatools.image()
    ia.open(image)
    shape = [int(n) for n in ia.shape()]
    ia.close()
    ia.done()
    say(f"  -> shape {shape}")
    say("casatasks.imstat")
    st = casatasks.imstat(imagename=image)
    if not st or "max" not in st:
        raise RuntimeError(f"imstat returned {st!r}")
    say(f"  -> npts {st['npts'][0]:.0f}, max {st['max'][0]:.4g}, rms {st['rms'][0]:.4g}")


def versions():
    import casacore
    import numpy
    v = {"python": sys.version.split()[0], "numpy": numpy.__version__,
         "python-casacore": getattr(casacore, "__version__", "?")}
    for dist in ("casatools", "casatasks", "casadata", "deconfetti"):
        try:
            v[dist] = md.version(dist)
        except md.PackageNotFoundError:
            v[dist] = "missing"
    return v


casa_env()
if ORDER == "A":
    casatools, casatasks = import_casa()
    deconfetti = import_deconfetti()
    image = run_deconfetti(deconfetti)
else:
    deconfetti = import_deconfetti()
    image = run_deconfetti(deconfetti)
    casatools, casatasks = import_casa()
run_casa(casatools, casatasks, image)
say("versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()))
say("done")
'''

BENCHMARKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks")
ORDERS = {"A": "casatools/casatasks first, then deconfetti",
          "B": "deconfetti (and scan) first, then casatools/casatasks"}


def describe(rc: int) -> str:
    if rc < 0:
        try:
            return f"signal {signal.Signals(-rc).name}"
        except ValueError:
            return f"signal {-rc}"
    return f"exit code {rc}"


def run_order(order: str, python: str, timeout: float, verbose: bool) -> bool:
    with tempfile.TemporaryDirectory(prefix=f"casa_in_process_{order}_") as work:
        t0 = time.perf_counter()
        try:
            p = subprocess.run([python, "-c", CHILD, order, work, BENCHMARKS], cwd=work,
                               capture_output=True, text=True, timeout=timeout)
            rc, out, err = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired as e:
            rc, out, err = None, e.stdout or "", e.stderr or ""
            if isinstance(out, bytes):
                out, err = out.decode(errors="replace"), err.decode(errors="replace")
        dt = time.perf_counter() - t0
    ok = rc == 0 and f"[{order}] done" in out.splitlines()
    status = "timed out" if rc is None else describe(rc)
    print(f"=== order {order} ({ORDERS[order]}): {'OK' if ok else 'FAIL'} "
          f"[{status}, {dt:.1f} s]")
    lines = out.splitlines()
    show = lines if (verbose or not ok) else [ln for ln in lines if "versions:" in ln]
    for ln in show:
        print("   " + ln)
    if err.strip() and (verbose or not ok):
        print("   --- stderr (last 40 lines) ---")
        for ln in err.strip().splitlines()[-40:]:
            print("   " + ln)
    return ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--order", choices=sorted(ORDERS), action="append",
                    help="run only this order (repeatable; default: all)")
    ap.add_argument("--python", default=sys.executable,
                    help="interpreter for the subprocesses (default: this one)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per order")
    ap.add_argument("-v", "--verbose", action="store_true", help="show each step")
    args = ap.parse_args(argv)
    orders = args.order or sorted(ORDERS)
    t0 = time.perf_counter()
    results = {o: run_order(o, args.python, args.timeout, args.verbose) for o in orders}
    bad = [o for o, ok in results.items() if not ok]
    print(f"{len(orders) - len(bad)}/{len(orders)} orders OK in "
          f"{time.perf_counter() - t0:.1f} s" + (f"; failed: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
