"""deconfetti in the same Python process as CASA's casatools and casatasks, as pipelines
run it right after tclean: both import orders, each in a fresh process (a clash of the
two casacore builds is a crash), by scripts/casa_in_process.py."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "scripts" / "casa_in_process.py"


def test_scan_and_repair_with_casatasks_imported_first_and_last():
    run = subprocess.run([sys.executable, str(SCRIPT), "-v"], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    for order in ("A", "B"):
        assert f"=== order {order}" in run.stdout and f"[{order}] done" in run.stdout
        assert f"[{order}] deconfetti.repair_scan(...)" in run.stdout
        assert f"[{order}]   -> npts" in run.stdout  # imstat ran after deconfetti
