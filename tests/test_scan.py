"""The pipeline on synthetic products whose contents are known."""

import numpy as np
import pytest

import deconfetti
from deconfetti import InputError
from deconfetti.catalog import COLUMNS
from deconfetti.classify import CLASSES
from deconfetti.config import Config
from deconfetti.simulate import simulate_cube, write_plane, write_products

from conftest import BENIGN, CONFETTI, LINES, near


def only(table, chan, y, x, **kw):
    rows = near(table, chan, y, x, **kw)
    assert len(rows) == 1, f"expected one candidate at chan {chan} y {y} x {x}, got {len(rows)}"
    return rows[0]


def test_injected_confetti_are_confetti(sim_scan):
    for chan, y, x, strength in CONFETTI:
        row = only(sim_scan.candidates, chan, y, x)
        assert row["classification"] == "confetti", row["reason"]
        # the image spike is the injected fake; the data hold nothing there but noise
        assert row["image_snr"] == pytest.approx(strength, abs=2.5)
        assert abs(row["dirty_snr"]) < 3


def test_real_narrow_lines_are_real(sim_scan):
    for chan, y, x, flux in LINES:
        row = only(sim_scan.candidates, chan, y, x, radius=1.5)
        assert row["classification"] == "real", row["reason"]
        assert row["model_peak"] == pytest.approx(flux, rel=1e-5)
        assert row["spike_snr"] > 5 and abs(row["unsupported_snr"]) < 1.5


def test_bright_model_cluster_without_false_source_is_benign(sim_scan):
    for chan, y, x, flux in BENIGN:
        row = only(sim_scan.candidates, chan, y, x, radius=1.5)
        assert row["classification"] == "benign", row["reason"]
        # model peak 2 x flux, in Jy/beam far above the image, with a negative bowl
        assert row["model_peak"] == pytest.approx(2 * flux, rel=1e-5)
        assert row["model_peak_beam"] > 10 * row["image_peak"]
        assert row["negative_flux"] == pytest.approx(-flux, rel=1e-5)


def test_nothing_else_is_confetti_and_continuum_is_not_a_candidate(sim_scan):
    table = sim_scan.candidates
    assert sim_scan.counts["confetti"] == len(CONFETTI)
    assert len(near(table, 0, 50, 20, chan_tol=99)) == 0  # the steady continuum source


def test_noise_is_measured_per_channel(sim_scan, sim):
    np.testing.assert_allclose(sim_scan.rms, sim.rms, rtol=0.2)
    assert len(sim_scan.summary["channels"]) == 10


def test_catalog_columns_units_and_order(sim_scan):
    table = sim_scan.candidates
    assert table.colnames == list(COLUMNS)
    for name, column in COLUMNS.items():
        assert (table[name].unit is None) == (column.unit is None), name
        assert table[name].description == column.description
    assert str(table["ra"].unit) == "deg" and str(table["model_peak"].unit) == "Jy / pix"
    assert list(table["id"]) == list(range(1, len(table) + 1))
    assert np.all(np.diff(np.nan_to_num(table["unsupported_snr"], nan=-np.inf)) <= 0)
    assert np.all(np.isin(table["classification"], list(CLASSES)))
    # velocity: radio convention against the rest frequency
    row = table[0]
    c = 299792.458
    assert row["velocity"] == pytest.approx(c * (1 - row["frequency"] / 230.538e9))
    sky = sim_scan.products.celestial.pixel_to_world(row["x"], row["y"]).icrs
    assert sky.ra.deg == pytest.approx(row["ra"]) and sky.dec.deg == pytest.approx(row["dec"])


def test_casa_and_fits_products_give_the_same_catalog(sim_scan, sim_casa):
    other = deconfetti.scan(sim_casa).candidates
    for name in ("channel", "x", "y", "classification"):
        assert list(other[name]) == list(sim_scan.candidates[name])
    np.testing.assert_allclose(other["unsupported_snr"], sim_scan.candidates["unsupported_snr"], rtol=1e-6)


@pytest.mark.parametrize("block_channels", [1, 3, 4])
def test_block_size_does_not_change_the_result(sim_fits, sim_scan, block_channels):
    calls = []
    table = deconfetti.scan(sim_fits, block_channels=block_channels,
                            progress=lambda done, total: calls.append((done, total))).candidates
    blocks = -(-10 // block_channels)
    assert calls == [(i, blocks) for i in range(1, blocks + 1)]
    assert len(table) == len(sim_scan.candidates)
    for name in ("channel", "x", "y", "classification", "unsupported_snr"):
        np.testing.assert_array_equal(table[name], sim_scan.candidates[name])


def test_the_figures_data_test_is_the_scans_own(sim_fits, sim_scan):
    """The map kept per candidate does not depend on the blocks, and is what the figures
    would compute from the products (with the diverged channels left out alike)."""
    from deconfetti.cutout import make_cutout

    other = deconfetti.scan(sim_fits, block_channels=1)
    assert sorted(other.contrast) == sorted(sim_scan.contrast)
    assert len(sim_scan.contrast) == len(sim_scan.candidates)
    for key, kept in sim_scan.contrast.items():
        np.testing.assert_array_equal(other.contrast[key], kept)
    diverged = frozenset(sim_scan.summary["diverged_channels"])
    for row in sim_scan.candidates[:5]:
        kept = make_cutout(sim_scan.products, row, contrast=sim_scan.contrast)
        computed = make_cutout(sim_scan.products, row, diverged=diverged)
        np.testing.assert_allclose(kept.dirty_spike, computed.dirty_spike, rtol=1e-5,
                                   atol=1e-6 * float(np.nanmax(np.abs(computed.spike))))


def test_without_psf_the_scan_runs_and_is_cautious(sim, tmp_path):
    prefix = write_products(sim, tmp_path, kinds=("image", "model", "residual", "pb"))
    with pytest.warns(deconfetti.DeconfettiWarning, match="no psf"):
        result = deconfetti.scan(prefix)
    table = result.candidates
    assert result.counts["confetti"] == 0 and result.counts["real"] == 0
    assert np.all(np.isnan(table["unsupported_snr"]))
    for chan, y, x, _ in CONFETTI[:1] + LINES:
        assert only(table, chan, y, x)["classification"] == "uncertain"
    assert result.summary["psf_used"] is False


def test_continuum_product(tmp_path):
    """One plane (.tt0): isolated model pixels without a false source are benign."""
    sim = simulate_cube(nchan=1, ny=96, nx=96, seed=5, continuum=[(30, 30, 0.03)],
                        benign=[(0, 60, 60, 0.02), (0, 70, 25, 0.015)],
                        confetti=[(0, 25, 70, 9.0)])
    prefix = write_products(sim, tmp_path, "cont", fmt="casa", suffix=".tt0")
    result = deconfetti.scan(f"{prefix}.image.tt0")
    table = result.candidates
    assert result.products.paths["model"].endswith("cont.model.tt0")
    assert only(table, 0, 60, 60, radius=1.5)["classification"] == "benign"
    assert only(table, 0, 70, 25, radius=1.5)["classification"] == "benign"
    source = only(table, 0, 30, 30, radius=1.5)  # a real point source: harmless model pixel
    # against the ring, the data hold more than half of it (the psf's pedestal, about half
    # of the peak 1.5 beams out on this psf, is what they miss)
    assert source["classification"] == "benign"
    assert source["dirty_snr"] > 0.5 * source["spike_snr"] > 10
    assert only(table, 0, 25, 70)["classification"] == "confetti"
    assert result.counts["confetti"] == 1


def test_masked_pixels_and_empty_model_channels(tmp_path):
    sim = simulate_cube(nchan=6, ny=96, nx=96, seed=8, pb_fwhm=80,
                        lines=[(3, 48, 48, 0.02)], confetti=[(2, 40, 60, 8.0)])
    assert np.isnan(sim.image[:, 0, 0]).all()
    assert not sim.model[0].any()
    result = deconfetti.scan(write_products(sim, tmp_path))
    table = result.candidates
    assert only(table, 2, 40, 60)["classification"] == "confetti"
    assert only(table, 3, 48, 48, radius=1.5)["classification"] == "real"
    assert np.all(table["pb"] >= 0.2)


def test_all_nan_channel_is_skipped(sim, tmp_path):
    from dataclasses import replace

    image = sim.image.copy()
    image[1] = np.nan
    prefix = write_products(replace(sim, image=image), tmp_path)
    with pytest.warns(deconfetti.DeconfettiWarning, match="1 channel"):
        result = deconfetti.scan(prefix)
    assert np.isnan(result.rms[1]) and np.all(np.isfinite(np.delete(result.rms, 1)))
    assert not np.any(result.candidates["channel"] == 1)


def test_zero_candidates_is_an_empty_table_with_every_column(tmp_path):
    sim = simulate_cube(nchan=3, ny=48, nx=48, seed=4)
    result = deconfetti.scan(write_products(sim, tmp_path), threshold=50,
                             model_threshold=50)
    assert len(result.candidates) == 0
    assert result.candidates.colnames == list(COLUMNS)
    assert result.counts == {name: 0 for name in CLASSES}


def test_parameters_by_name_and_config(sim_fits):
    assert deconfetti.scan(sim_fits, excess_min=50.0).counts["confetti"] == 0
    config = Config().replace({"find": {"threshold": 50.0}})
    result = deconfetti.scan(sim_fits, config=config)
    assert result.summary["parameters"]["find"]["threshold"] == 50.0
    with pytest.raises(InputError, match="unknown parameter 'nonsense'"):
        deconfetti.scan(sim_fits, nonsense=1)


def test_threads_give_the_serial_result(sim_fits, sim_scan):
    table = deconfetti.scan(sim_fits, block_channels=2, workers=2).candidates
    for name in ("channel", "x", "y", "classification", "unsupported_snr", "rms"):
        np.testing.assert_array_equal(table[name], sim_scan.candidates[name])


def test_dask_local_cluster_gives_the_serial_result(sim_casa):
    from distributed import Client, LocalCluster

    serial = deconfetti.scan(sim_casa, block_channels=3, workers=1)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        result = deconfetti.scan(sim_casa, block_channels=3, client=client)
    assert len(result.candidates) == len(serial.candidates) > 0
    for name in ("channel", "x", "y", "classification", "unsupported_snr", "rms", "reliability"):
        np.testing.assert_array_equal(result.candidates[name], serial.candidates[name])
    np.testing.assert_array_equal(result.rms, serial.rms)
    np.testing.assert_array_equal(result.peak, serial.peak)


# -- natural runs: sidelobes of bright emission and diverged channels -------------------------
def test_a_natural_run_with_bright_emission_has_no_confetti():
    """nat7e: 7m mosaic, emission up to ~270 sigma, nothing injected (75 false confetti
    before the data test was measured against its own null distribution)."""
    from conftest import DATA

    result = deconfetti.scan(DATA / "nat7e" / "img")
    table = result.candidates
    assert np.sum(table["classification"] == "confetti") == 0
    # the statistic varies by several rms over these channels, not by a fraction of one
    assert np.nanmedian(table["null_spread"]) > 2
    assert not result.summary["diverged_channels"]


def test_a_diverged_channel_is_one_verdict_and_spoils_no_neighbour(tmp_path):
    sim = simulate_cube(nchan=10, ny=96, nx=96, seed=3, confetti=[(2, 30, 70, 7.0)],
                        lines=[(7, 70, 60, 0.02)], diverged=[(5, 20.0)])
    result = deconfetti.scan(write_products(sim, tmp_path, "d"))
    table = result.candidates
    assert result.summary["diverged_channels"] == [5]
    assert result.summary["channels"][5]["diverged"]
    assert set(table["classification"][table["channel"] == 5]) == {"diverged"}
    confetti = table[table["classification"] == "confetti"]
    assert [(int(r["channel"]), int(r["y"]), int(r["x"])) for r in confetti] == [(2, 30, 70)]
    assert len(near(table[table["classification"] == "real"], 7, 70, 60)) == 1
    # the neighbours' contrasts leave the failed channel out: no verdict borrows from it
    beside = table[np.isin(table["channel"], [4, 6])]
    assert not np.isin(beside["classification"], ["confetti", "real"]).any()


def test_an_unconverged_channel_is_named_and_its_verdicts_are_uncertain(tmp_path):
    """A channel whose clean stalled far above the noise (its residual 30 times the
    others'): named as a channel, and neither a confetti verdict in it nor one beside it
    (whose one-channel contrast takes its mean) stands; channels farther off keep theirs."""
    from scipy import ndimage

    sim = simulate_cube(nchan=10, ny=96, nx=96, seed=3, confetti=[(2, 30, 70, 7.0),
                        (6, 60, 30, 8.0)], lines=[(8, 70, 60, 0.02)])
    stripes = ndimage.gaussian_filter(np.random.default_rng(4).normal(size=(96, 96)), 2.0)
    stripes *= 30 * sim.rms / stripes.std()
    for plane in (sim.residual, sim.image):  # image = beam (*) model + residual still
        plane[5] += stripes.astype(np.float32)
    result = deconfetti.scan(write_products(sim, tmp_path, "u"))
    table = result.candidates
    assert result.summary["unconverged_channels"] == [5]
    assert result.summary["channels"][5]["unconverged"] and not result.summary["diverged_channels"]
    assert not np.isin(table["classification"][table["channel"] == 5], ["confetti", "real"]).any()
    beside = near(table, 6, 60, 30)
    assert list(beside["classification"]) == ["uncertain"]
    assert beside["reason"][0].startswith("adjacent channel 5 is unconverged")
    assert "by the test alone confetti" in beside["reason"][0]
    confetti = table[table["classification"] == "confetti"]
    assert [(int(r["channel"]), int(r["y"]), int(r["x"])) for r in confetti] == [(2, 30, 70)]
    assert len(near(table[table["classification"] == "real"], 8, 70, 60)) == 1


def test_the_false_alarm_of_a_fake_is_small_and_of_noise_large(sim_scan):
    table = sim_scan.candidates
    for chan, y, x, _ in CONFETTI:
        row = near(table, chan, y, x)[0]
        assert row["false_alarm"] < 1e-3 and row["null_spread"] < 1
    noise = table[table["classification"] == "noise"]
    assert np.all((noise["unsupported_snr"] < 3.5) | (noise["false_alarm"] > 0.01))


# -- one-plane (continuum) products --------------------------------------------------------
def test_one_plane_cuts_keep_their_confetti(example_scan, tmp_path):
    """Every confetti of the example, and the pedestal-psf fakes, cut as one plane: still
    confetti (the data test is taken against its ring, as the image is)."""
    from conftest import DATA

    fakes = [(example_scan.products, int(r["channel"]), int(r["y"]), int(r["x"]))
             for r in example_scan.candidates
             if r["classification"] == "confetti"]
    pedestal = deconfetti.open_products(DATA / "pedestal" / "img")
    fakes += [(pedestal, 2, 36, 82), (pedestal, 4, 92, 34), (pedestal, 5, 32, 34)]
    for number, (products, chan, y, x) in enumerate(fakes):
        table = deconfetti.scan(write_plane(products, chan, tmp_path / str(number))).candidates
        assert list(near(table, 0, y, x)["classification"]) == ["confetti"], (chan, y, x)
        assert np.sum(table["classification"] == "confetti") == 1


def test_a_one_plane_product_takes_its_background_on_its_own_ring(example_scan, tmp_path):
    """The ring of a one-plane product (``plane_ring_beams``, one FWHM) is its own: the
    unsupported excess there is image - dirty minus its median on that ring, and a cube's
    catalog does not depend on it."""
    from deconfetti.datatest import Imprints, data_test

    cube = deconfetti.scan(example_scan.products, plane_ring_beams=3.0).candidates
    for name in ("unsupported_snr", "null_spread", "classification"):
        assert np.array_equal(cube[name], example_scan.candidates[name])
    row = example_scan.candidates[example_scan.candidates["classification"] == "confetti"][0]
    chan, y, x = int(row["channel"]), int(row["y"]), int(row["x"])
    plane = deconfetti.open_products(write_plane(example_scan.products, chan, tmp_path))
    found = {rings: near(deconfetti.scan(plane, plane_ring_beams=rings).candidates, 0, y, x)
             for rings in (1.0, 1.5)}
    assert found[1.0]["unsupported_snr"][0] != found[1.5]["unsupported_snr"][0]
    assert deconfetti.scan(plane).summary["parameters"]["classify"]["plane_ring_beams"] == 1.0
    image, model, residual, psf = (plane.read(k, 0, 1).astype(np.float64)
                                   for k in ("image", "model", "residual", "psf"))
    ones = np.ones(1)
    expected = data_test(np.zeros(1, int), np.array([y]), np.array([x]), image=image,
                         residual=residual, imprint=Imprints(np.nan_to_num(model), psf),
                         rms=ones, spike_rms=ones, beam=plane.beam_pixels[:1],
                         ring_beams=1.0, shape=False)["unsupported_snr"][0]
    rms = float(found[1.0]["rms"][0])
    assert found[1.0]["unsupported_snr"][0] * rms == pytest.approx(expected, rel=1e-4)


def test_one_plane_cuts_of_a_natural_bright_run_hold_no_confetti(tmp_path):
    from conftest import DATA

    products = deconfetti.open_products(DATA / "nat7e" / "img")
    for chan in (3, 7, 10, 14):
        table = deconfetti.scan(write_plane(products, chan, tmp_path / str(chan))).candidates
        assert not np.any(table["classification"] == "confetti"), chan


def test_a_scan_result_reads_in_one_line(sim_scan):
    text = repr(sim_scan)
    assert len(text) < 300 and "\n" not in text
    assert f"{sim_scan.counts['confetti']} confetti" in text
