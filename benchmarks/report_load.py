"""Load and sort time of the HTML report with many candidates, in headless Chromium.

    python benchmarks/report_load.py [--rows 5000]

The example scan's catalog is repeated (ids renumbered, values jittered) to N rows; the
report (figures for the top 25) is opened in Chromium and timed: navigation until the table
is drawn, a click that re-sorts, and a filter. Printed against the same report with the
example's own rows.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.table import vstack

import deconfetti
from deconfetti.report import render

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from chromium import browser  # noqa: E402


def many(table, n, rng):
    copies = vstack([table] * int(np.ceil(n / len(table))))[:n]
    copies["unsupported_snr"] = copies["unsupported_snr"] + rng.normal(0, 0.5, n)
    copies.sort("unsupported_snr", reverse=True)
    copies["id"] = np.arange(1, n + 1)
    return copies


def timed(driver, path):
    start = time.perf_counter()
    driver.get(path.as_uri())
    load = time.perf_counter() - start
    assert driver.find_element("tag name", "body").get_attribute("data-ready") == "true"
    click = driver.execute_script("""
        const t = performance.now();
        document.querySelector('#candidates th[data-key=channel]').click();
        return performance.now() - t;""")
    filt = driver.execute_script("""
        const t = performance.now();
        const box = document.querySelector('.cls-filter[value=benign]');
        box.click();
        return performance.now() - t;""")
    return load, click / 1e3, filt / 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5000)
    a = ap.parse_args()
    result = deconfetti.scan(deconfetti.example_path())
    out = Path(tempfile.mkdtemp())
    paths = {}
    for label, table in (("reference", result.candidates),
                         ("many", many(result.candidates, a.rows, np.random.default_rng(0)))):
        html = render(table, result.summary, result.products, result.peak, result.rms, top=25)
        paths[label] = out / f"{label}.html"
        paths[label].write_text(html)
    driver = browser()
    try:
        figures = {}
        for label, path in paths.items():
            timed(driver, path)  # warm
            load, click, filt = timed(driver, path)
            figures[label] = dict(rows=len(result.candidates) if label == "reference" else a.rows,
                                  html_mb=round(path.stat().st_size / 1e6, 2),
                                  load_s=round(load, 3), sort_s=round(click, 4),
                                  filter_s=round(filt, 4))
    finally:
        driver.quit()
    figures["ratio_load"] = round(figures["many"]["load_s"] / figures["reference"]["load_s"], 2)
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
