"""Whether the data allow a removal: the share of its imprint the residual carries, and
the data test on the repaired products."""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from ..config import Config
from ..datatest import Imprints, data_test
from ..features import zero_nan
from ..io.products import Products
from .log import REPAIR_COLUMNS

__all__ = ["imprint_share", "verify"]


def imprint_share(residual: np.ndarray, imprint: np.ndarray) -> float:
    """Least-squares amplitude of ``-imprint`` in ``residual``, clipped to [0, 1]
    (same-shape arrays; NaN pixels ignored)."""
    ok = np.isfinite(residual) & np.isfinite(imprint)
    power = float(np.sum(imprint[ok] ** 2))
    if power == 0:
        return 0.0
    return float(np.clip(-np.sum(residual[ok] * imprint[ok]) / power, 0.0, 1.0))


def verify(log: Table, catalog: Table, repaired: Products | None, rms: np.ndarray, *,
           config: Config | None = None) -> Table:
    """Fill ``unsupported_before`` (from ``catalog``) and ``unsupported_after``: the data test
    (`deconfetti.datatest.data_test`) at each logged candidate, on the ``repaired``
    products (they need the original psf; None when nothing was written), reading only
    the candidates' channels and their neighbours."""
    config = config or Config()
    log = log.copy()
    scores = (dict(zip(catalog["id"].tolist(), catalog["unsupported_snr"].tolist()))
              if len(catalog) else {})
    log["unsupported_before"] = [scores.get(int(i), np.nan) for i in log["id"]]
    after = np.full(len(log), np.nan)
    for chan in sorted({int(c) for c in log["channel"]}) if repaired is not None else []:
        lo, hi = max(0, chan - 1), min(repaired.nchan, chan + 2)
        rows = np.flatnonzero(np.asarray(log["channel"]) == chan)
        psf = {c - lo: zero_nan(repaired.plane("psf", c)) for c in range(lo, hi)}
        imprint = Imprints(zero_nan(repaired.read("model", lo, hi)), psf)
        test = data_test(np.full(len(rows), chan - lo), np.asarray(log["y"])[rows],
                         np.asarray(log["x"])[rows], image=repaired.read("image", lo, hi),
                         residual=repaired.read("residual", lo, hi), imprint=imprint,
                         rms=rms[lo:hi], spike_rms=rms[lo:hi],
                         beam=repaired.beam_pixels[lo:hi], ring_beams=config.classify.ring_beams)
        after[rows] = test["unsupported_snr"]
    log["unsupported_after"] = after
    for name in ("unsupported_before", "unsupported_after"):
        log[name].description = REPAIR_COLUMNS[name].description
    return log
