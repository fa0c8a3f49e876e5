"""Bad input, faults and untrusted files: each row of the README's Reliability matrix.

Bad input: exit code 2, one line on stderr naming the file and the problem, no output.
"""

import errno
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deconfetti
from deconfetti.cli import main
from deconfetti.outputs import CHECKPOINT_DIR, lock_output_dir
from deconfetti.simulate import simulate_cube, write_products


@pytest.fixture(scope="module")
def small():
    return simulate_cube(nchan=5, ny=40, nx=40, seed=6, lines=[(2, 20, 20, 0.02)],
                         confetti=[(3, 12, 26, 8.0)])


@pytest.fixture
def fits_prefix(small, tmp_path):
    return write_products(small, tmp_path / "in", "p")


def bad(args, capsys, *words, out=None):
    """Run, expect exit 2 with one line naming the words, and no output written."""
    out = out or Path(str(args[0]) + ".deconfetti")
    code = main(["scan", *map(str, args), "--out", str(out), "--figures", "0"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    for word in words:
        assert word in err, err
    assert not out.exists()
    return err


def edit(path, **cards):
    with fits.open(path, mode="update") as hdul:
        for key, value in cards.items():
            if value is None:
                del hdul[0].header[key]
            else:
                hdul[0].header[key] = value


# -- bad input -------------------------------------------------------------------------------
def test_missing_product(fits_prefix, capsys):
    Path(f"{fits_prefix}.model.fits").unlink()
    bad([fits_prefix], capsys, "p.model.fits", "not found")


def test_prefix_that_matches_nothing(tmp_path, capsys):
    bad([tmp_path / "nothing"], capsys, "nothing", "not found")


def test_image_and_model_of_different_shapes(fits_prefix, capsys):
    path = f"{fits_prefix}.model.fits"
    with fits.open(path) as hdul:
        fits.writeto(path, hdul[0].data[:, :, :20], hdul[0].header, overwrite=True)
    bad([fits_prefix], capsys, "p.model.fits", "shape")


def test_image_and_model_of_different_wcs(fits_prefix, capsys):
    edit(f"{fits_prefix}.model.fits", CRVAL1=84.0)
    bad([fits_prefix], capsys, "p.model.fits", "coordinates differ")


def test_model_in_jy_per_beam_warns_and_runs(fits_prefix, tmp_path, capsys):
    edit(f"{fits_prefix}.model.fits", BUNIT="Jy/beam")
    assert main(["scan", str(fits_prefix), "--out", str(tmp_path / "o"), "--figures", "0"]) == 0
    assert "expected Jy/pixel" in capsys.readouterr().err


def test_truncated_casa_table(small, tmp_path, capsys):
    prefix = write_products(small, tmp_path, "c", fmt="casa")
    data = Path(f"{prefix}.image") / "table.f0_TSM0"
    data.write_bytes(data.read_bytes()[:1000])
    bad([prefix], capsys, "c.image", "truncated or corrupt")


def test_garbage_casa_table(small, tmp_path, capsys):
    prefix = write_products(small, tmp_path, "c", fmt="casa")
    (Path(f"{prefix}.residual") / "table.dat").write_bytes(bytes(range(256)) * 8)
    bad([prefix], capsys, "c.residual", "not a readable CASA image")


def test_empty_directory_named_image(tmp_path, capsys):
    for kind in ("image", "model", "residual"):
        (tmp_path / f"e.{kind}").mkdir()
    bad([tmp_path / "e"], capsys, "e.image", "not a readable CASA image")


def test_fits_without_wcs(fits_prefix, capsys):
    edit(f"{fits_prefix}.image.fits", CTYPE1=None, CTYPE2=None)
    bad([fits_prefix], capsys, "p.image.fits", "no celestial")


def test_two_d_image_with_a_cube_model(fits_prefix, capsys):
    path = f"{fits_prefix}.image.fits"
    with fits.open(path) as hdul:
        header = hdul[0].header
        plane = hdul[0].data[0, 0]
    for key in ("CTYPE3", "CRVAL3", "CDELT3", "CRPIX3", "CUNIT3", "CTYPE4", "CRVAL4", "CDELT4",
                "CRPIX4"):
        header.remove(key, ignore_missing=True)
    fits.writeto(path, plane, header, overwrite=True)
    bad([fits_prefix], capsys, "shape")


def test_wrong_brightness_unit(fits_prefix, capsys):
    edit(f"{fits_prefix}.image.fits", BUNIT="K")
    bad([fits_prefix], capsys, "p.image.fits", "expected Jy/beam")


def test_integer_data(small, fits_prefix, tmp_path):
    path = f"{fits_prefix}.image.fits"
    with fits.open(path) as hdul:
        hdu = fits.PrimaryHDU(hdul[0].data, hdul[0].header)
    hdu.scale("int32", bscale=1e-7, bzero=0.0)  # scaled integers, as some archives write
    hdu.writeto(path, overwrite=True)
    products = deconfetti.open_products(fits_prefix)
    np.testing.assert_allclose(products.read("image", 0, 5), small.image, atol=1e-5)
    assert main(["scan", str(fits_prefix), "--out", str(tmp_path / "o"), "-q",
                 "--figures", "0"]) == 0


def test_psf_of_another_size(fits_prefix, capsys):
    path = f"{fits_prefix}.psf.fits"
    with fits.open(path) as hdul:
        fits.writeto(path, hdul[0].data[:, :, 4:36, 4:36], hdul[0].header, overwrite=True)
    bad([fits_prefix], capsys, "p.psf.fits", "shape")


@pytest.mark.parametrize("cards, words", [({"BMAJ": 0.0}, "zero or missing"),
                                          ({"BMAJ": None, "BMIN": None}, "no restoring beam")])
def test_beam_zero_or_missing(fits_prefix, capsys, cards, words):
    for kind in ("image", "residual"):
        edit(f"{fits_prefix}.{kind}.fits", **cards)
    bad([fits_prefix], capsys, words)


def test_non_monotonic_spectral_axis(fits_prefix, capsys):
    edit(f"{fits_prefix}.image.fits", CDELT3=0.0)
    bad([fits_prefix], capsys, "p.image.fits", "not monotonic")


def test_cube_with_one_channel(tmp_path):
    sim = simulate_cube(nchan=1, ny=40, nx=40, seed=1, benign=[(0, 20, 20, 0.02)])
    prefix = write_products(sim, tmp_path, "one")
    result = deconfetti.scan(prefix)
    assert result.products.nchan == 1 and result.counts["benign"] >= 1


def test_stokes_axis_of_length_four(small, fits_prefix, tmp_path, capsys):
    path = f"{fits_prefix}.image.fits"
    with fits.open(path) as hdul:
        header, data = hdul[0].header, hdul[0].data
    four = np.concatenate([data, data * 0.1, data * 0.1, data * 0.01])
    fits.writeto(path, four, header, overwrite=True)
    with pytest.warns(deconfetti.DeconfettiWarning, match="Stokes axis of length 4"):
        products = deconfetti.open_products(fits_prefix)
    np.testing.assert_array_equal(products.read("image", 0, 5), small.image)
    assert main(["scan", str(fits_prefix), "--out", str(tmp_path / "o"), "--figures", "0"]) == 0
    assert "Stokes axis of length 4" in capsys.readouterr().err


def test_unreadable_file(fits_prefix, capsys, monkeypatch):
    real_open = fits.open

    def refuse(path, *args, **kwargs):
        if str(path).endswith("residual.fits"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(fits, "open", refuse)
    bad([fits_prefix], capsys, "p.residual.fits", "Permission denied")


def test_header_claiming_a_huge_shape(fits_prefix, capsys):
    path = Path(f"{fits_prefix}.image.fits")
    raw = bytearray(path.read_bytes())
    at = raw.index(b"NAXIS1  =")
    raw[at:at + 80] = f"{'NAXIS1':8}= {1_000_000:20d}".ljust(80).encode()
    path.write_bytes(bytes(raw))
    bad([fits_prefix], capsys, "p.image.fits", "header claims")


def test_output_folder_not_writable(fits_prefix, tmp_path, capsys, monkeypatch):
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)
    bad([fits_prefix], capsys, "not writable", out=tmp_path / "ro")


def test_full_disk_leaves_no_half_file(fits_prefix, tmp_path, capsys, monkeypatch):
    import os

    real_replace = os.replace

    def full(source, target):
        if str(target).endswith(".ecsv"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", full)
    bad([fits_prefix], capsys, "candidates.ecsv", "No space left", out=tmp_path / "full")


# -- faults ----------------------------------------------------------------------------------
def test_killed_scan_leaves_no_catalog_and_resume_completes(fits_prefix, tmp_path, monkeypatch):
    import importlib

    scan_module = importlib.import_module("deconfetti.scan")

    reference = tmp_path / "reference"
    assert main(["scan", str(fits_prefix), "--out", str(reference), "-q", "--figures", "0",
                 "--set", "stream.block_channels=1"]) == 0
    real_block, calls = scan_module.scan_block, []

    def killed(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_block(*args, **kwargs)

    out = tmp_path / "o"
    monkeypatch.setattr(scan_module, "scan_block", killed)
    # 5 one-channel blocks in 2 runs (channels 0-2 and 3-4), stored a run at a time
    assert main(["scan", str(fits_prefix), "--out", str(out), "-q", "--figures", "0",
                 "--set", "stream.block_channels=1", "--workers", "2"]) == 130
    assert not (out / "candidates.ecsv").exists()
    assert len(list((out / CHECKPOINT_DIR).glob("block_*.npz"))) == 3
    assert not [p for p in out.rglob("*") if ".part" in p.name]
    calls.clear()
    monkeypatch.setattr(scan_module, "scan_block", lambda *a, **k: calls.append(1) or
                        real_block(*a, **k))
    assert main(["scan", str(fits_prefix), "--out", str(out), "-q", "--figures", "0",
                 "--set", "stream.block_channels=1", "--resume"]) == 0
    assert len(calls) == 2  # 5 blocks, 3 reused
    assert not (out / CHECKPOINT_DIR).exists()
    done, expected = (out / "candidates.ecsv").read_text(), (reference / "candidates.ecsv").read_text()
    strip = lambda text: [line for line in text.splitlines() if "date:" not in line]  # noqa: E731
    assert strip(done) == strip(expected)


def test_resume_ignores_checkpoints_of_other_parameters_and_pickles(fits_prefix, tmp_path):
    out = tmp_path / "o"
    folder = out / CHECKPOINT_DIR
    folder.mkdir(parents=True)
    (folder / "fingerprint.json").write_text('{"inputs": {}, "parameters": {}}')
    np.save(folder / "evil.npy", np.array([object()], dtype=object), allow_pickle=True)
    shutil.copy(folder / "evil.npy", folder / "block_0.npz")
    assert main(["scan", str(fits_prefix), "--out", str(out), "-q", "--figures", "0",
                 "--resume"]) == 0
    assert (out / "candidates.ecsv").exists() and not folder.exists()


def test_two_scans_into_one_folder(fits_prefix, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    with lock_output_dir(out):
        assert main(["scan", str(fits_prefix), "--out", str(out), "--figures", "0"]) == 2
    assert "another deconfetti is writing here" in capsys.readouterr().err
    assert not (out / "candidates.ecsv").exists()
    assert main(["scan", str(fits_prefix), "--out", str(out), "-q", "--figures", "0"]) == 0


def checksums(folder):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def test_inputs_are_never_modified(small, tmp_path):
    prefix = write_products(small, tmp_path / "casa", "c", fmt="casa")
    write_products(small, tmp_path / "casa", "f", fmt="fits")
    before = checksums(tmp_path / "casa")
    assert main(["scan", str(prefix), "--out", str(tmp_path / "o1"), "-q", "--report",
                 "--figures", "1", "--top", "1"]) == 0
    assert main(["scan", str(tmp_path / "casa" / "f"), "--out", str(tmp_path / "o2"), "-q",
                 "--figures", "1"]) == 0
    assert main(["report", str(tmp_path / "o1"), "--overwrite", "-q", "--top", "1"]) == 0
    assert checksums(tmp_path / "casa") == before


# -- property-based ------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nchan=st.integers(1, 5), ny=st.integers(8, 28), nx=st.integers(8, 28),
       nan_fraction=st.sampled_from([0.0, 0.1, 0.6]), beam=st.floats(1.5, 4.0),
       spikes=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 27), st.integers(0, 27),
                                 st.floats(-1.0, 1.0)), max_size=4),
       seed=st.integers(0, 2 ** 16), with_psf=st.booleans())
def test_random_products_keep_the_invariants(tmp_path_factory, nchan, ny, nx, nan_fraction,
                                             beam, spikes, seed, with_psf):
    rng = np.random.default_rng(seed)
    cube = {k: rng.normal(0, 1e-3, (nchan, ny, nx)).astype(np.float32)
            for k in ("image", "residual")}
    model = np.zeros((nchan, ny, nx), np.float32)
    for chan, y, x, flux in spikes:
        if chan < nchan and y < ny and x < nx:
            model[chan, y, x] += flux
            cube["image"][chan, y, x] += flux
    cube["model"] = model
    yy, xx = np.mgrid[:ny, :nx]
    psf = np.exp(-((yy - ny // 2) ** 2 + (xx - nx // 2) ** 2) / (2 * beam ** 2 / 5.5))
    cube["psf"] = np.broadcast_to(psf, (nchan, ny, nx)).astype(np.float32)
    holes = rng.random((nchan, ny, nx)) < nan_fraction
    cube["image"][holes] = np.nan
    folder = tmp_path_factory.mktemp("random")
    for kind, data in cube.items():
        if kind == "psf" and not with_psf:
            continue
        header = fits.Header({"CTYPE1": "RA---SIN", "CRVAL1": 10.0, "CDELT1": -1e-4,
                              "CRPIX1": nx / 2, "CTYPE2": "DEC--SIN", "CRVAL2": -30.0,
                              "CDELT2": 1e-4, "CRPIX2": ny / 2, "CTYPE3": "FREQ",
                              "CRVAL3": 1e11, "CDELT3": 1e6, "CRPIX3": 1.0,
                              "BMAJ": beam * 1e-4, "BMIN": beam * 0.8e-4, "BPA": 30.0,
                              "BUNIT": "Jy/pixel" if kind == "model" else "Jy/beam"})
        fits.writeto(folder / f"r.{kind}.fits", data, header)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", deconfetti.DeconfettiWarning)
        result = deconfetti.scan(folder / "r")
    table = result.candidates
    assert np.all((table["channel"] >= 0) & (table["channel"] < nchan))
    assert np.all((table["x"] >= 0) & (table["x"] < nx) & (table["y"] >= 0) & (table["y"] < ny))
    assert set(table["classification"]) <= {"confetti", "benign", "real", "uncertain"}
    if not with_psf:
        assert not np.isin(table["classification"], ["confetti", "real"]).any()
    path = folder / "c.ecsv"
    table.write(path, format="ascii.ecsv")
    again = type(table).read(path, format="ascii.ecsv")
    assert again.colnames == table.colnames and len(again) == len(table)
    for name in ("x", "y", "channel", "classification"):
        assert list(again[name]) == list(table[name])


def test_a_plain_array_posing_as_a_checkpoint_is_ignored(fits_prefix, tmp_path):
    out = tmp_path / "o"
    assert main(["scan", str(fits_prefix), "--out", str(out), "-q", "--figures", "0"]) == 0
    folder = out / CHECKPOINT_DIR
    folder.mkdir()
    np.save(folder / "plain.npy", np.zeros(3))
    shutil.copy(folder / "plain.npy", folder / "block_0.npz")
    reference = (out / "candidates.ecsv").read_text().splitlines()
    assert main(["scan", str(fits_prefix), "--out", str(out), "-q", "--figures", "0",
                 "--resume", "--overwrite"]) == 0
    again = (out / "candidates.ecsv").read_text().splitlines()
    assert [x for x in again if "date:" not in x] == [x for x in reference if "date:" not in x]
