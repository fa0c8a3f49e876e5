"""Repair: synthetic confetti removed back to the clean cube, a real line refused, the
pedestal case end to end against its truth, format round trips, inputs unchanged."""

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

import deconfetti
from deconfetti.cli import main
from deconfetti.io.casa import CasaImage
from deconfetti.io.products import open_products
from deconfetti.features import psf_convolve, restore
from deconfetti.repair import repair, repair_channel, write_repaired
from deconfetti.repair.consistency import imprint_share
from deconfetti.repair.select import EMPTY_LEVELS, InvisiblePoints, model_excess
from deconfetti.simulate import simulate_cube, write_products

from conftest import BENIGN, CONFETTI, CONTINUUM, DATA, LINES, near, read_rows

PEDESTAL = DATA / "pedestal"
KW = dict(nchan=10, ny=96, nx=96, rms=1e-3, seed=3, lines=LINES, continuum=CONTINUUM,
          benign=BENIGN)


def digest(root: Path) -> dict:
    """SHA-256 of every file under ``root`` (a file or a folder)."""
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def clean():
    """The synthetic cube without its confetti: what a perfect repair gives back."""
    return simulate_cube(**KW)


@pytest.fixture(scope="module")
def repaired_sim(sim_fits, tmp_path_factory):
    out = tmp_path_factory.mktemp("repaired")
    result = deconfetti.scan(sim_fits)
    log, paths = write_repaired(result, outdir=out)
    return result, log, paths


def test_model_excess_keeps_what_neighbours_hold():
    model = np.zeros((3, 5, 5))
    model[:, 2, 2] = 1.0          # a source in every channel
    model[1, 0, 0] = 5.0          # a one-channel component
    model[1, 4, 4] = -2.0         # its bowl
    excess = model_excess(model, 1)
    assert excess[2, 2] == 0 and excess[0, 0] == 5.0 and excess[4, 4] == -2.0
    assert model_excess(model, 0)[0, 0] == -2.5  # cube edge: the one neighbour (mean of 2)


def test_imprint_share_is_the_carried_fraction():
    rng = np.random.default_rng(1)
    imprint = rng.normal(size=500)
    assert imprint_share(-0.7 * imprint, imprint) == pytest.approx(0.7)
    assert imprint_share(np.zeros(500), imprint) == 0.0
    assert imprint_share(-3 * imprint, imprint) == 1.0


def sampled_uv(rng: np.random.Generator, n: int, level: float = 0.03):
    """uv weights sampled at random with graded weights, no zero spacing; their psf
    (peak 1); a 0.8 Jy/pixel point at (20, 41) filtered to the cells they barely measure
    (weight max(0, 1 - w / level), as the s01/s02 confetti were made)."""
    u = np.fft.fftfreq(n)
    radius = np.hypot(u[:, None], u[None, :])
    weights = np.where((radius < 0.3) & (rng.random((n, n)) < 0.5), rng.random((n, n)) ** 4, 0.0)
    weights = weights + weights[(-np.arange(n)) % n][:, (-np.arange(n)) % n]  # a real psf
    weights[0, 0] = 0.0
    psf = np.fft.fftshift(np.real(np.fft.ifft2(weights)))
    empty_point = np.real(np.fft.ifft2(np.clip(1 - weights / weights.max() / level, 0, 1)))
    return weights, psf / psf.max(), 0.8 * np.roll(empty_point, (20, 41), axis=(0, 1))


def test_invisible_point_is_recovered_from_a_null_space_pattern():
    """A point projected onto the uv cells a psf barely measures, on top of other model
    noise, is found with its level and amplitude; a point the psf sees is not described."""
    rng = np.random.default_rng(4)
    n = 64
    level = 0.03  # between two of EMPTY_LEVELS
    assert not np.any(np.isclose(level, EMPTY_LEVELS, rtol=0.05))
    weights, psf, fake = sampled_uv(rng, n, level)
    excess = fake + rng.normal(0, 1e-3, (n, n))
    invisible = InvisiblePoints(excess, psf, [(20, 41)])
    explained, found, amplitudes = max(invisible.fits)
    assert explained > 0.95 and found == pytest.approx(level, rel=0.04)
    assert amplitudes[0] == pytest.approx(0.8, rel=0.02)
    part = next(invisible.parts(0))
    np.testing.assert_allclose(part, fake, atol=0.02 * fake.max())
    # the fits, made from spectra, are the least-squares fits of the shifted templates
    sites = [(20, 41), (3, 60), (50, 7)]
    joint = InvisiblePoints(excess, psf, sites)
    for explained, level, amplitudes in joint.fits[::5]:
        point = np.real(np.fft.ifft2(np.clip(1 - weights / weights.max() / level, 0, 1)))
        templates = np.array([np.roll(point, site, (0, 1)).ravel() for site in sites]).T
        direct = np.linalg.lstsq(templates, excess.ravel(), rcond=None)[0]
        np.testing.assert_allclose(amplitudes, direct, rtol=1e-6, atol=1e-9)
        rest = np.sum((excess.ravel() - templates @ direct) ** 2) / np.sum(excess ** 2)
        assert explained == pytest.approx(1 - rest, abs=1e-9)
    seen = InvisiblePoints(0.8 * np.roll(np.eye(1, n * n).reshape(n, n), (20, 41), (0, 1)),
                           psf, [(20, 41)])
    assert max(seen.fits)[0] < 0.9  # a whole point is partly visible
    nothing = InvisiblePoints(np.zeros((n, n)), psf, [(20, 41)])
    assert list(nothing.parts(0)) == []


@pytest.mark.parametrize("site", [(20, 41), (20, 42), (21, 40)])
def test_invisible_point_is_removed_from_the_hot_pixel_under_the_candidate(site):
    """A null-space confetti, its residual carrying the imprint: removed whole from the
    model, also when the image peak (the candidate) is a pixel off the hot model pixel;
    the image comes back to the noise there and the residual gets the imprint back."""
    rng = np.random.default_rng(4)
    n = 64
    _, psf, fake = sampled_uv(rng, n)
    beam = (3.0, 3.0, 0.0)
    model = np.zeros((3, n, n))
    model[1] = fake
    imprint = psf_convolve(fake, psf)
    noise = rng.normal(0, 1e-3, (3, n, n))
    residual = noise.copy()
    residual[1] -= imprint
    image = np.array([restore(plane, *beam) for plane in model]) + residual
    sigma = restore(fake, *beam)[20, 41] / 10  # a 10-sigma fake
    done = repair_channel(model, 1, residual[1], image, psf, beam, sigma, [(7, *site)])
    row = done.rows[0]
    assert (row["status"], row["method"]) == ("removed", "invisible point")
    assert row["consistency_sigma"] <= 1 and row["imprint"] > 0.9
    np.testing.assert_allclose(done.model_delta, -fake, atol=1e-3 * fake.max())
    assert abs(row["image_after"]) < 0.1 * sigma < 0.2 * row["image_before"]
    # the residual comes back to the noise it held before the fake took its imprint
    near = np.hypot(*np.mgrid[-20:-20 + n, -41:-41 + n]) <= 3 * beam[0]
    before = np.std((residual[1] - noise[1])[near])
    after = np.std((residual[1] + done.residual_delta - noise[1])[near])
    assert after < 0.2 * before


def test_invisible_point_needs_a_psf_of_the_image_shape():
    rng = np.random.default_rng(4)
    _, psf, fake = sampled_uv(rng, 64)
    model = np.zeros((3, 64, 64))
    model[1] = fake
    image = np.array([restore(plane, 3.0, 3.0, 0.0) for plane in model])
    done = repair_channel(model, 1, np.zeros((64, 64)), image, psf[8:56, 8:56], (3.0, 3.0, 0.0),
                          0.04, [(7, 20, 41)])
    assert done.rows[0]["status"] == "refused" and done.model_delta is None
    assert "no invisible part was fitted (the psf's shape" in done.rows[0]["reason"]


def test_synthetic_repair_recovers_the_clean_cube(repaired_sim, clean, sim):
    result, log, paths = repaired_sim
    assert sorted(log["status"]) == ["removed"] * len(CONFETTI)
    after = open_products(paths["image"], model=paths["model"], residual=paths["residual"])
    model = after.read("model", 0, 10)
    residual = after.read("residual", 0, 10)
    image = after.read("image", 0, 10)
    # the model and residual come back to the clean ones wherever the cluster was
    assert np.max(np.abs(model - clean.model)) < 1e-6
    assert np.max(np.abs(residual - clean.residual)) < 1e-6
    for chan, y, x, fake in CONFETTI:
        assert image[chan, y, x] - clean.image[chan, y, x] == pytest.approx(0, abs=0.1 * sim.rms)
        assert sim.image[chan, y, x] - clean.image[chan, y, x] > 0.9 * fake * sim.rms
    # elsewhere nothing moves: other channels exactly, the repaired ones outside footprints
    others = [c for c in range(10) if c not in {c for c, *_ in CONFETTI}]
    assert np.array_equal(image[others], sim.image[others])
    yy, xx = np.mgrid[:96, :96]
    for chan, y, x, _ in CONFETTI:
        row = log[log["channel"] == chan][0]
        outside = np.hypot(yy - y, xx - x) > row["footprint"]
        assert np.array_equal(image[chan][outside], sim.image[chan][outside])
        assert row["image_after"] == pytest.approx(float(image[chan, row["y"], row["x"]]), abs=1e-6)


def test_a_real_line_is_refused(sim_fits, tmp_path):
    result = deconfetti.scan(sim_fits)
    catalog = result.candidates.copy()
    chan, y, x, _ = LINES[1]
    line = (catalog["channel"] == chan) & (abs(catalog["x"] - x) <= 1) & (abs(catalog["y"] - y) <= 1)
    assert line.sum() == 1 and catalog["classification"][line][0] == "real"
    catalog["classification"] = np.where(line, "confetti", "benign")  # pretend it were
    calls = []
    log = repair(result.products, catalog, result.rms, apply=lambda *a: calls.append(a))
    assert list(log["status"]) == ["refused"] and not calls
    assert log["imprint"][0] < 0.3
    assert log["consistency_sigma"][0] > 5  # the data hold this line


@pytest.mark.parametrize("fmt", ["casa", "fits"])
def test_round_trip_keeps_headers_and_inputs(sim, fmt, tmp_path):
    prefix = write_products(sim, tmp_path / "in", "cube", fmt=fmt)
    before = digest(tmp_path / "in")
    assert main(["repair", str(prefix), "-q"]) == 0
    assert {k: v for k, v in digest(tmp_path / "in").items() if k in before} == before
    ext = ".fits" if fmt == "fits" else ""
    original = open_products(prefix)
    for kind in ("image", "model", "residual"):
        out = tmp_path / "in" / f"cube.repaired.{kind}{ext}"
        assert out.is_dir() == (fmt == "casa")
        product = getattr(open_products(prefix, **{kind: out}), kind)
        source = getattr(original, kind)
        assert product.unit == source.unit and product.shape == source.shape
        assert product.header == source.header
        if source.beams is not None:
            assert all(a == b for a, b in zip(product.beams, source.beams))
        # provenance: what was removed, by which version
        if fmt == "fits":
            history = " ".join(fits.getheader(out)["HISTORY"])
        else:
            from casacore.tables import table
            with table(str(out / "logtable"), ack=False) as log:
                history = log.getcell("MESSAGE", log.nrows() - 1)
        assert f"deconfetti {deconfetti.__version__} repair: removed 2 of 2 confetti" in history
    assert (tmp_path / "in" / "cube.deconfetti" / "repair.ecsv").exists()
    assert not list((tmp_path / "in").glob(".*part"))


def test_pedestal_case_end_to_end(tmp_path):
    """Real tclean products (pedM1b_inj, channels 4-11) with three injected confetti:
    the repair removes them and brings the image back to the truth there."""
    case = tmp_path / "case"
    shutil.copytree(PEDESTAL, case)
    before = digest(case)
    assert main(["repair", str(case / "img"), "--startmodel", "-q"]) == 0
    after_inputs = {k: v for k, v in digest(case).items() if k in before}
    assert after_inputs == before
    truth = fits.getdata(case / "truth.fits")[0]
    sigma = np.array([float(r["noise_Jy_beam"]) for r in read_rows("pedestal/noise.csv")])
    image = open_products(case / "img").read("image", 0, 8)
    repaired = open_products(case / "img.repaired.image").read("image", 0, 8)
    changed = ~((repaired == image) | (np.isnan(repaired) & np.isnan(image)))
    for label in read_rows("pedestal/labels.csv"):
        c, x, y = int(label["channel"]), int(label["x"]), int(label["y"])
        before_err = image[c, y, x] - truth[c, y, x]
        after_err = repaired[c, y, x] - truth[c, y, x]
        assert before_err > 5 * sigma[c]
        assert abs(after_err) < 0.3 * before_err
        assert changed[c, y, x]
    # nothing outside the three footprints, and no other channel, changed
    log = Table.read(case / "img.deconfetti" / "repair.ecsv")
    assert list(log["status"]) == ["removed"] * 3
    yy, xx = np.mgrid[:128, :128]
    inside = np.zeros_like(changed)
    for row in log:
        inside[row["channel"]] |= np.hypot(yy - row["y"], xx - row["x"]) <= row["footprint"]
    assert not np.any(changed & ~inside)
    # the start model for tclean: the original model, less the confetti's one-channel
    # components, unchanged outside the footprints
    start = CasaImage(case / "img.repaired.startmodel")
    assert start.unit == "Jy/pixel" and start.shape == (8, 128, 128)
    start = start.read(0, 8, slice(0, 128), slice(0, 128))
    model = open_products(case / "img").read("model", 0, 8)
    assert np.array_equal(start[~inside], model[~inside])
    for row in log:
        c, y, x = row["channel"], row["y"], row["x"]
        core = (slice(y - 1, y + 2), slice(x - 1, x + 2))
        excess = lambda cube: cube[c][core] - np.median(cube[c - 1:c + 2][(slice(None),) + core],
                                                        axis=0)
        assert excess(model).max() > 0 and excess(start).max() < 0.2 * excess(model).max()


def test_example_invisible_points_are_removed(tmp_path):
    """The shipped s01 example's confetti sit on an image-wide pattern the data do not
    see: no local cluster may be removed, the invisible part of a point may, and the
    image comes back towards the truth at the labels (truth cropped like the example)."""
    case = tmp_path / "example"
    shutil.copytree(Path(deconfetti.example_path()).parent, case)
    before = digest(case)
    assert main(["repair", str(case / "example"), "-q"]) == 0
    assert {k: v for k, v in digest(case).items() if k in before} == before
    log = Table.read(case / "example.deconfetti" / "repair.ecsv")
    removed = log[log["status"] == "removed"]
    assert len(removed) >= 3 and set(removed["method"]) == {"invisible point"}
    assert all(removed["consistency_sigma"] <= 1)
    truth = fits.getdata(DATA / "example_truth.fits")[0]
    sigma = np.array([float(r["noise_Jy_beam"]) for r in read_rows("example_noise.csv")])
    image = open_products(case / "example").read("image", 0, 15)
    repaired = open_products(case / "example.repaired.image").read("image", 0, 15)
    gains = []
    for label in read_rows("example_labels.csv"):
        if label["cls"] != "confetti":
            continue
        c, x, y = int(label["channel"]), int(label["x"]), int(label["y"])
        before_err = image[c, y, x] - truth[c, y, x]
        after_err = repaired[c, y, x] - truth[c, y, x]
        assert before_err > 5 * sigma[c] and abs(after_err) < before_err
        gains.append(1 - abs(after_err) / before_err)
    assert np.median(gains) > 0.8
    # the real compact sources keep their peaks
    for source in read_rows("example_real_sources.csv"):
        c, x, y = int(float(source["chan_peak"])), int(float(source["x"])), int(float(source["y"]))
        if 0 <= c < 15:
            assert repaired[c, y, x] == image[c, y, x]
    # the report shows the repairs; a new scan makes the old log stale and removes it
    scandir = case / "example.deconfetti"
    assert main(["report", str(scandir), "-q", "--top", "1"]) == 0
    html = (scandir / "report.html").read_text()
    assert "<h2>Repairs</h2>" in html and html.count("invisible point") >= len(removed)
    assert main(["scan", str(case / "example"), "-q", "--overwrite", "--figures", "0"]) == 0
    assert not (scandir / "repair.ecsv").exists()


def test_repair_refuses_to_overwrite(sim, tmp_path, capsys):
    prefix = write_products(sim, tmp_path, "cube", fmt="fits")
    assert main(["repair", str(prefix), "-q"]) == 0
    assert main(["repair", str(tmp_path / "cube.deconfetti"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cube.repaired.model.fits: exists" in err[0]
    assert main(["repair", str(tmp_path / "cube.deconfetti"), "-q", "--overwrite"]) == 0


def test_repair_needs_a_psf(sim, tmp_path, capsys):
    prefix = write_products(sim, tmp_path, "cube", fmt="fits", kinds=("image", "model", "residual"))
    assert main(["repair", str(prefix), "-q"]) == 2
    assert "needs the psf" in capsys.readouterr().err


def test_repair_is_verified_and_the_repaired_set_opens_by_its_prefix(tmp_path):
    """After a repair, the data test is run again on the repaired products (the original
    psf and pb linked beside them), and a scan of them by prefix finds no confetti left."""
    case = tmp_path / "example"
    shutil.copytree(Path(deconfetti.example_path()).parent, case)
    assert main(["repair", str(case / "example"), "-q"]) == 0
    log = Table.read(case / "example.deconfetti" / "repair.ecsv")
    removed = log[log["status"] == "removed"]
    assert len(removed) and np.all(removed["unsupported_before"] >= 3.5)
    assert np.all(removed["unsupported_after"] < 1.0)
    products = open_products(case / "example.repaired")
    assert products.psf.path.is_symlink() and products.pb.path.is_symlink()
    assert products.psf.path.resolve() == (case / "example.psf").resolve()
    rescan = deconfetti.scan(products).candidates
    for row in removed:
        assert not len(near(rescan[rescan["classification"] == "confetti"], row["channel"],
                            row["y"], row["x"], chan_tol=1))
