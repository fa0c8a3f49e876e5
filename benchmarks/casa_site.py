"""The casasiteconfig that points casatools at the casadata package, offline: no
auto-updates, no network check. Write it before casatools is imported."""

import importlib.util
import os
import sys


def write_siteconfig(workdir: str) -> str:
    """Write ``workdir/casasiteconfig.py``, set CASASITECONFIG to it and return it."""
    spec = importlib.util.find_spec("casadata")
    if spec is None:
        sys.exit("casadata is not installed (pip install casadata)")
    data = os.path.join(os.path.dirname(spec.origin), "__data__")
    os.makedirs(workdir, exist_ok=True)
    cfg = os.path.join(workdir, "casasiteconfig.py")
    with open(cfg, "w") as f:
        f.write(f"measurespath = {data!r}\ndatapath = [{data!r}]\n"
                "measures_auto_update = False\ndata_auto_update = False\n"
                f"skipnetworkcheck = True\ncachedir = {workdir!r}\n")
    os.environ["CASASITECONFIG"] = cfg
    return cfg
