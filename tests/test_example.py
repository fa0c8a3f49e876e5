"""End to end on the real tclean example shipped with the package (labels in tests/data)."""

import numpy as np
import pytest

import deconfetti
from deconfetti.io.products import open_products

from conftest import near, read_rows

LABELS = read_rows("example_labels.csv")
REAL = read_rows("example_real_sources.csv")


def beam_major(result):
    return float(result.products.beam_pixels[0, 0])


def test_every_labelled_confetti_is_found(example_scan):
    table = example_scan.candidates
    confetti = [row for row in LABELS if row["cls"] == "confetti"]
    for label in confetti:
        hits = near(table[table["classification"] == "confetti"], int(label["channel"]),
                    float(label["y"]), float(label["x"]), radius=beam_major(example_scan),
                    chan_tol=1)
        assert len(hits) >= 1, f"labelled confetti at {label} not found"


def test_no_false_confetti_and_no_real_source_flagged(example_scan):
    table = example_scan.candidates
    confetti = table[table["classification"] == "confetti"]
    radius = beam_major(example_scan)
    for row in confetti:
        assert any(abs(int(lab["channel"]) - row["channel"]) <= 1
                   and np.hypot(float(lab["x"]) - row["x"], float(lab["y"]) - row["y"]) <= radius
                   and lab["cls"] == "confetti" for lab in LABELS), f"false confetti {row}"
    for source in REAL:
        lo, hi = int(source["chan_lo"]), int(source["chan_hi"])
        hits = near(confetti, (lo + hi) / 2, float(source["y"]), float(source["x"]),
                    radius=radius, chan_tol=(hi - lo) / 2 + 1)
        assert len(hits) == 0, f"real source {source} called confetti"


def test_real_narrow_line_is_recognised(example_scan):
    """Source 2 (22 sigma, one- to two-channel line) is demanded by the data."""
    source = next(s for s in REAL if s["id"] == "2")
    rows = near(example_scan.candidates, int(source["chan_peak"]), float(source["y"]),
                float(source["x"]), radius=2)
    assert len(rows) == 1 and rows[0]["classification"] == "real"
    assert rows[0]["dirty_snr"] == pytest.approx(rows[0]["spike_snr"], rel=0.1)


def test_noise_matches_the_thermal_noise(example_scan):
    """The example's exact thermal noise is 3.27 mJy/beam (median over channels)."""
    assert np.nanmedian(example_scan.rms) == pytest.approx(3.27e-3, rel=0.15)


def test_fits_export_gives_the_same_result(example_scan, tmp_path):
    from casacore.images import image

    prefix = deconfetti.example_path()
    for kind in ("image", "model", "residual", "psf", "pb"):
        # as exportfits writes them: frequency axis; velocity=True would give VOPT (also read)
        image(f"{prefix}.{kind}").tofits(str(tmp_path / f"example.{kind}.fits"),
                                         velocity=(kind == "image"))
    products = open_products(tmp_path / "example.image.fits")
    assert products.shape == example_scan.products.shape
    assert products.rest_frequency == pytest.approx(example_scan.products.rest_frequency)
    table = deconfetti.scan(products).candidates
    reference = example_scan.candidates
    assert list(table["classification"]) == list(reference["classification"])
    np.testing.assert_array_equal(table["x"], reference["x"])
    np.testing.assert_allclose(table["ra"], reference["ra"], atol=1e-9)
    # CASA writes a velocity axis linearised, off by up to 0.34% of a channel (250 kHz)
    np.testing.assert_allclose(table["frequency"], reference["frequency"], rtol=0, atol=2.5e3)


def test_every_confetti_is_repaired(example_scan):
    """The example's null-space fakes: all removed, each removal taking at least 85 % of
    its candidate's unsupported excess out though the residual carries all of its
    imprint; with the fit to the data weighed equally (``repair.data_weight`` 1) all are
    removed too, keeping a quarter of the excess."""
    from deconfetti.repair import repair

    log = repair(example_scan.products, example_scan.candidates, example_scan.rms,
                 config=example_scan.config.replace({"repair": {"data_weight": 1.0}}))
    assert set(log["status"]) == {"removed"}
    log = repair(example_scan.products, example_scan.candidates, example_scan.rms)
    assert len(log) == sum(row["cls"] == "confetti" for row in LABELS)
    assert set(log["status"]) == {"removed"}
    assert np.all(log["excess_left"] < 0.15)
    assert np.all(log["consistency_sigma"] < 0.1)
