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
from deconfetti.files import lock_output_dir
from deconfetti.outputs import CHECKPOINT_DIR
from deconfetti.simulate import simulate_cube, write_products


@pytest.fixture(scope="module")
def small():
    return simulate_cube(nchan=5, ny=64, nx=64, seed=6, lines=[(2, 20, 20, 0.02)],
                         confetti=[(3, 12, 40, 8.0)])


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

    scan_module = importlib.import_module("deconfetti.pipeline")

    reference = tmp_path / "reference"
    assert main(["scan", str(fits_prefix), "--out", str(reference), "-q", "--figures", "0",
                 "--set", "stream.block_channels=1"]) == 0
    real_block, calls = scan_module.scan_block, []

    def killed(products, block, *args, **kwargs):
        if block.start == 3:
            raise KeyboardInterrupt
        return real_block(products, block, *args, **kwargs)

    out = tmp_path / "o"
    monkeypatch.setattr(scan_module, "scan_block", killed)
    # 5 one-channel blocks in 3 runs (channels 0-1, 2-3 and 4: twice as many runs as
    # threads), stored a run at a time and in order: the first run only
    assert main(["scan", str(fits_prefix), "--out", str(out), "-q", "--figures", "0",
                 "--set", "stream.block_channels=1", "--workers", "2"]) == 130
    assert not (out / "candidates.ecsv").exists()
    assert sorted(p.name for p in (out / CHECKPOINT_DIR).glob("block_*.npz")) == [
        "block_0.npz", "block_1.npz"]
    assert not [p for p in out.rglob("*") if ".part" in p.name]
    monkeypatch.setattr(scan_module, "scan_block", lambda *a, **k: calls.append(1) or
                        real_block(*a, **k))
    assert main(["scan", str(fits_prefix), "--out", str(out), "-q", "--figures", "0",
                 "--set", "stream.block_channels=1", "--resume"]) == 0
    assert len(calls) == 3  # 5 blocks, 2 reused
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
        try:
            result = deconfetti.scan(folder / "r")
        except deconfetti.InputError as exc:  # too few valid pixels to measure any noise
            assert "in any channel" in str(exc)
            return
    table = result.candidates
    assert np.all((table["channel"] >= 0) & (table["channel"] < nchan))
    assert np.all((table["x"] >= 0) & (table["x"] < nx) & (table["y"] >= 0) & (table["y"] < ny))
    assert set(table["classification"]) <= set(deconfetti.classify.CLASSES)
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


# -- outputs and inputs kept apart -------------------------------------------------------------
def casa_prefix(small, folder):
    return write_products(small, folder, "c", fmt="casa")


def test_out_inside_an_input_product(small, tmp_path, capsys):
    prefix = casa_prefix(small, tmp_path / "in")
    before = checksums(tmp_path / "in")
    bad([prefix], capsys, "c.image/qa", "inside the input product",
        out=Path(f"{prefix}.image") / "qa")
    assert checksums(tmp_path / "in") == before


def test_out_is_an_input_product(small, tmp_path, capsys):
    prefix = casa_prefix(small, tmp_path / "in")
    before = checksums(tmp_path / "in")
    code = main(["scan", str(prefix), "--out", f"{prefix}.image", "--figures", "0"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "is the input product" in err and len(err.splitlines()) == 1
    assert checksums(tmp_path / "in") == before


def test_out_through_a_link_into_an_input(small, tmp_path, capsys):
    prefix = casa_prefix(small, tmp_path / "in")
    (tmp_path / "link").symlink_to(f"{prefix}.model", target_is_directory=True)
    before = checksums(tmp_path / "in")
    bad([prefix], capsys, "inside the input product", out=tmp_path / "link" / "qa")
    assert checksums(tmp_path / "in") == before


def test_an_output_file_that_is_an_input(fits_prefix, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    shutil.copy(f"{fits_prefix}.pb.fits", out / "peak.fits")
    before = checksums(out)
    code = main(["scan", str(fits_prefix), "--pb", str(out / "peak.fits"), "--out", str(out),
                 "--figures", "0", "--overwrite"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "peak.fits: is the input product" in err, err
    assert checksums(out) == before


def test_repair_out_inside_an_input(small, tmp_path, capsys):
    prefix = casa_prefix(small, tmp_path / "in")
    before = checksums(tmp_path / "in")
    code = main(["repair", str(prefix), "--out", f"{prefix}.residual/fixed"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "inside the input product" in err, err
    assert checksums(tmp_path / "in") == before
    assert not Path(f"{prefix}.deconfetti").exists()  # refused before the scan


@pytest.mark.parametrize("role", ["model", "residual", "psf"])
def test_one_file_in_two_roles(fits_prefix, capsys, role):
    bad([fits_prefix, f"--{role}", f"{fits_prefix}.image.fits"], capsys, "p.image.fits",
        "given as both the image and the " + role)


def test_one_file_in_two_roles_through_a_link(fits_prefix, capsys):
    link = Path(f"{fits_prefix}-copy.fits")
    link.symlink_to(f"{fits_prefix}.residual.fits")
    bad([fits_prefix, "--model", link], capsys, "given as both")


# -- the lock: one writer however many try -----------------------------------------------------
def test_a_refused_writer_leaves_the_lock_alone(tmp_path):
    from deconfetti.errors import InputError
    from deconfetti.files import LOCK_NAME

    with lock_output_dir(tmp_path):
        for _ in range(3):
            with pytest.raises(InputError, match="another deconfetti"):
                with lock_output_dir(tmp_path):
                    pass
            assert (tmp_path / LOCK_NAME).exists()
    with lock_output_dir(tmp_path):  # released: the next writer gets it
        pass


def test_concurrent_scans_of_one_folder_have_one_writer(fits_prefix, tmp_path):
    import subprocess
    import sys
    import time

    out = tmp_path / "o"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom deconfetti.files import "
         "lock_output_dir\nwith lock_output_dir(sys.argv[1]):\n    print('held', flush=True)"
         "\n    time.sleep(float(sys.argv[2]))", str(out), "20"], stdout=subprocess.PIPE,
        text=True)
    assert holder.stdout.readline().strip() == "held"
    scans = [subprocess.Popen([sys.executable, "-m", "deconfetti.cli", "scan", str(fits_prefix),
                               "--out", str(out), "--figures", "0", "--overwrite"],
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [(scan.wait(timeout=60), scan.stderr.read()) for scan in scans]
    holder.kill()
    holder.wait()
    assert [code for code, _ in results] == [2] * 4
    assert all("another deconfetti is writing here" in err for _, err in results)
    assert not (out / "candidates.ecsv").exists()
    time.sleep(0.1)
    assert main(["scan", str(fits_prefix), "--out", str(out), "-q", "--figures", "0"]) == 0


# -- products that are bad in new ways ---------------------------------------------------------
def test_image_without_valid_pixels(fits_prefix, capsys):
    path = f"{fits_prefix}.image.fits"
    with fits.open(path) as hdul:
        fits.writeto(path, np.full_like(hdul[0].data, np.nan), hdul[0].header, overwrite=True)
    bad([fits_prefix], capsys, "p.image.fits", "no valid pixel in any channel")


def test_residual_without_valid_pixels(fits_prefix, capsys):
    path = f"{fits_prefix}.residual.fits"
    with fits.open(path) as hdul:
        fits.writeto(path, np.full_like(hdul[0].data, np.nan), hdul[0].header, overwrite=True)
    bad([fits_prefix], capsys, "p.residual.fits", "cannot be measured in any channel")


def test_symlinked_products_are_read(small, fits_prefix, tmp_path):
    casa = casa_prefix(small, tmp_path / "casa")
    links = tmp_path / "links"
    links.mkdir()
    for kind in ("image", "model", "residual", "psf", "pb"):
        (links / f"l.{kind}").symlink_to(f"{casa}.{kind}", target_is_directory=True)
    (links / "f.image.fits").symlink_to(f"{fits_prefix}.image.fits")
    for kind in ("model", "residual", "psf", "pb"):
        (links / f"f.{kind}.fits").symlink_to(f"{fits_prefix}.{kind}.fits")
    reference = deconfetti.scan(fits_prefix).candidates
    for prefix in (links / "l", links / "f"):
        table = deconfetti.scan(prefix).candidates
        assert list(table["classification"]) == list(reference["classification"])


def test_symbolic_link_loop(fits_prefix, capsys):
    path = Path(f"{fits_prefix}.psf.fits")
    path.unlink()
    path.symlink_to(path.name)
    bad([fits_prefix], capsys, "p.psf.fits", "symbolic link loop")


def test_symbolic_link_to_nothing(fits_prefix, capsys):
    path = Path(f"{fits_prefix}.pb.fits")
    path.unlink()
    path.symlink_to("gone.fits")
    bad([fits_prefix], capsys, "p.pb.fits", "symbolic link to a missing file")


def in_mount_namespace(script):
    """Run a shell script as root of a private mount namespace (root or not)."""
    import subprocess
    import sys

    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHON": sys.executable,
           "HOME": str(Path.home())}
    return subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c", script],
                          capture_output=True, text=True, env=env, timeout=300)


def test_read_only_input_folder(fits_prefix, tmp_path):
    folder = Path(fits_prefix).parent
    before = checksums(folder)
    run = in_mount_namespace(
        f"mount --bind '{folder}' '{folder}' && mount -o remount,bind,ro '{folder}' && "
        f"touch '{folder}/x' 2>/dev/null && exit 9; "
        f"$PYTHON -m deconfetti.cli scan '{fits_prefix}' --figures 0; echo rc=$?; "
        f"$PYTHON -m deconfetti.cli scan '{fits_prefix}' --figures 0 -q --out '{tmp_path}/o'; "
        "echo rc=$?")
    assert "rc=2\nrc=0" in run.stdout, run.stdout + run.stderr
    assert "p.deconfetti: output directory is not writable (Read-only file system)" in run.stderr
    assert len([x for x in run.stderr.splitlines() if "error" in x]) == 1
    assert (tmp_path / "o" / "candidates.ecsv").exists()
    assert checksums(folder) == before


def test_spectral_axes_of_the_same_length_that_differ(fits_prefix, capsys):
    with fits.open(f"{fits_prefix}.model.fits") as hdul:
        crval = hdul[0].header["CRVAL3"] + 3 * hdul[0].header["CDELT3"]
    edit(f"{fits_prefix}.model.fits", CRVAL3=crval)
    bad([fits_prefix], capsys, "p.model.fits", "spectral axes differ")


def test_psf_peak_not_one(fits_prefix, capsys):
    path = f"{fits_prefix}.psf.fits"
    with fits.open(path) as hdul:
        fits.writeto(path, hdul[0].data * 0.5, hdul[0].header, overwrite=True)
    bad([fits_prefix], capsys, "p.psf.fits", "expected 1")


def test_psf_peak_off_the_centre(fits_prefix, capsys):
    path = f"{fits_prefix}.psf.fits"
    with fits.open(path) as hdul:
        fits.writeto(path, np.roll(hdul[0].data, 3, axis=-1), hdul[0].header, overwrite=True)
    bad([fits_prefix], capsys, "p.psf.fits", "not at the image centre")


def test_psf_of_a_flagged_channel_is_allowed(small, fits_prefix, tmp_path):
    path = f"{fits_prefix}.psf.fits"
    with fits.open(path) as hdul:
        data = hdul[0].data.copy()
        data[:, 1] = 0.0  # tclean's psf of a channel without data
        fits.writeto(path, data, hdul[0].header, overwrite=True)
    assert main(["scan", str(fits_prefix), "--out", str(tmp_path / "o"), "-q",
                 "--figures", "0"]) == 0


def per_channel_beams(tmp_path, fmt):
    sim = simulate_cube(nchan=5, ny=40, nx=40, seed=6, beam_scale=np.linspace(1, 1.2, 5))
    return write_products(sim, tmp_path / "in", "b", fmt=fmt)


@pytest.mark.parametrize("value", [0.0, np.nan])
def test_per_plane_beam_table_with_a_bad_channel(tmp_path, capsys, value):
    prefix = per_channel_beams(tmp_path, "fits")
    for kind in ("image", "residual"):
        with fits.open(f"{prefix}.{kind}.fits", mode="update") as hdul:
            hdul["BEAMS"].data["BMAJ"][3] = value
    bad([prefix], capsys, "b.image.fits", "channel 3")


@pytest.mark.parametrize("value", [0.0, np.nan])
def test_casa_per_plane_beams_with_a_bad_channel(tmp_path, capsys, value):
    from casacore.tables import table

    prefix = per_channel_beams(tmp_path, "casa")
    for kind in ("image", "residual"):
        with table(f"{prefix}.{kind}", readonly=False, ack=False) as tab:
            info = tab.getkeyword("imageinfo")
            info["perplanebeams"]["*2"]["major"]["value"] = value
            tab.putkeyword("imageinfo", info)
    bad([prefix], capsys, "b.image", "beam")


def test_casa_stokes_iquv(small, tmp_path, capsys):
    path = write_products(small, tmp_path / "f", "s", fmt="fits")
    with fits.open(f"{path}.image.fits") as hdul:
        header, data = hdul[0].header, hdul[0].data
    fits.writeto(f"{path}.image.fits", np.concatenate([data, data * 0.1, data * 0.1, data * 0.01]),
                 header, overwrite=True)
    from casacore.images import image

    image(f"{path}.image.fits").saveas(f"{path}.image")
    Path(f"{path}.image.fits").unlink()
    with pytest.warns(deconfetti.DeconfettiWarning, match="Stokes axis of length 4"):
        products = deconfetti.open_products(f"{path}.image")
    np.testing.assert_array_equal(products.read("image", 0, 5), small.image)


def test_mask_of_another_shape(fits_prefix, small, tmp_path, capsys):
    with fits.open(f"{fits_prefix}.image.fits") as hdul:
        fits.writeto(f"{fits_prefix}.mask.fits", np.ones((1, 5, 30, 40), np.float32),
                     hdul[0].header)
    bad([fits_prefix], capsys, "p.mask.fits", "shape")


def test_tabular_casa_spectral_axis(small, tmp_path):
    from casacore.tables import table

    prefix = casa_prefix(small, tmp_path / "in")
    offsets = np.array([0.0, 1.0, 2.5, 4.5, 7.0])
    for kind in ("image", "model", "residual", "psf", "pb"):
        with table(f"{prefix}.{kind}", readonly=False, ack=False) as tab:
            coords = tab.getkeyword("coords")
            spectral = coords["spectral2"]
            start, step = spectral["wcs"]["crval"], spectral["wcs"]["cdelt"]
            del spectral["wcs"]
            spectral["tabular"] = {"crval": [start], "crpix": [0.0], "cdelt": [step],
                                   "pc": np.eye(1), "pixelvalues": np.arange(5.0),
                                   "worldvalues": start + offsets * step,
                                   "axes": ["Frequency"], "units": ["Hz"]}
            tab.putkeyword("coords", coords)
    result = deconfetti.scan(prefix)
    np.testing.assert_allclose(result.products.frequency, start + offsets * step)
    for row in result.candidates:
        assert row["frequency"] == pytest.approx(start + offsets[row["channel"]] * step)


def test_fits_with_several_images(fits_prefix, capsys):
    path = f"{fits_prefix}.image.fits"
    with fits.open(path) as hdul:
        hdus = fits.HDUList([hdul[0].copy(), fits.ImageHDU(hdul[0].data, hdul[0].header)])
    hdus.writeto(path, overwrite=True)
    bad([fits_prefix], capsys, "p.image.fits", "holds 2 images")


@pytest.mark.parametrize("kind", ["image", "model"])
def test_fits_without_bunit(fits_prefix, capsys, kind):
    edit(f"{fits_prefix}.{kind}.fits", BUNIT=None)
    bad([fits_prefix], capsys, f"p.{kind}.fits", "no brightness unit")


def test_image_smaller_than_the_beam(tmp_path, capsys):
    sim = simulate_cube(nchan=4, ny=12, nx=12, seed=2)
    prefix = write_products(sim, tmp_path, "tiny")
    for kind in ("image", "residual"):
        edit(f"{prefix}.{kind}.fits", BMAJ=8 * sim.cell_arcsec / 3600,
             BMIN=6 * sim.cell_arcsec / 3600)
    bad([prefix], capsys, "tiny.image.fits", "smaller than 2 restoring beams")


def raw_card(path, key, value):
    """Write ``key = value`` (raw text, e.g. NAN, which astropy refuses to write)."""
    path = Path(path)
    raw = bytearray(path.read_bytes())
    at = raw.index(f"{key:8}=".encode())
    raw[at:at + 80] = f"{key:8}= {value:>20}".ljust(80).encode()
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("key, value, words", [("CDELT1", "NAN", "CDELT1"),
                                               ("CDELT3", "NAN", "CDELT3"),
                                               ("CDELT2", "0.0", "CDELT2 = 0"),
                                               ("CRVAL1", "'ten'", "CRVAL1")])
def test_nan_or_zero_increments(fits_prefix, capsys, key, value, words):
    for kind in ("image", "model", "residual", "psf", "pb"):
        raw_card(f"{fits_prefix}.{kind}.fits", key, value)
    bad([fits_prefix], capsys, "p.image.fits", words)


# -- valid but odd ---------------------------------------------------------------------------
def test_descending_frequency_axis(small, tmp_path):
    prefix = write_products(small, tmp_path, "d")
    for kind in ("image", "model", "residual", "psf", "pb"):
        with fits.open(f"{prefix}.{kind}.fits") as hdul:
            top = hdul[0].header["CRVAL3"] + 4 * hdul[0].header["CDELT3"]
        edit(f"{prefix}.{kind}.fits", CRVAL3=top, CDELT3=-5e5)
    result = deconfetti.scan(prefix)
    assert np.all(np.diff(result.products.frequency) < 0)
    reference = deconfetti.scan(write_products(small, tmp_path, "a")).candidates
    assert list(result.candidates["classification"]) == list(reference["classification"])


def test_mixed_casa_and_fits_products(small, tmp_path):
    fits_in = write_products(small, tmp_path / "f", "m", fmt="fits")
    casa_in = write_products(small, tmp_path / "c", "m", fmt="casa")
    mixed = deconfetti.scan(deconfetti.open_products(
        f"{casa_in}.image", model=f"{fits_in}.model.fits", psf=f"{fits_in}.psf.fits")).candidates
    reference = deconfetti.scan(casa_in).candidates
    assert list(mixed["classification"]) == list(reference["classification"])
    np.testing.assert_allclose(mixed["unsupported_snr"], reference["unsupported_snr"], rtol=1e-5)


# -- arguments ---------------------------------------------------------------------------------
@pytest.mark.parametrize("option", [["--figures", "-3"], ["--workers", "0"], ["--top", "x"],
                                    ["--threshold", "five"]])
def test_bad_option_values(fits_prefix, capsys, option):
    with pytest.raises(SystemExit) as stop:
        main(["scan", str(fits_prefix), *option])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and len(err.splitlines()) == 1 and option[0] in err, err


def test_numpy_warnings_do_not_reach_the_user(fits_prefix, tmp_path, capsys):
    path = f"{fits_prefix}.image.fits"
    with fits.open(path) as hdul:
        data = hdul[0].data.copy()
        data[0, 1:3] = np.nan  # two all-NaN channels
        fits.writeto(path, data, hdul[0].header, overwrite=True)
    assert main(["scan", str(fits_prefix), "--out", str(tmp_path / "o"), "--figures", "3",
                 "--workers", "2"]) == 0
    err = capsys.readouterr().err
    assert "RuntimeWarning" not in err and "All-NaN" not in err, err


# -- fuzzed headers ----------------------------------------------------------------------------
_KEYS = ["NAXIS1", "NAXIS3", "CTYPE1", "CTYPE3", "CRVAL1", "CRVAL3", "CDELT1", "CDELT2",
         "CDELT3", "CRPIX1", "CRPIX3", "CUNIT1", "CUNIT3", "BMAJ", "BMIN", "BPA", "BUNIT",
         "RESTFRQ", "SPECSYS", "RADESYS", "CTYPE4", "NAXIS"]
_VALUES = ["NONE", "'junk'", "1E300", "-1E300", "0", "-1", "T", "1E-300", "'Jy/beam'",
           "'FREQ'", "99999999"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["image", "model", "residual", "psf", "pb"]),
       key=st.sampled_from(_KEYS), value=st.sampled_from(_VALUES))
def test_fuzzed_header_values_give_a_clean_answer(small, tmp_path_factory, kind, key, value):
    import contextlib
    import io

    prefix = write_products(small, tmp_path_factory.mktemp("fuzz"), "z")
    path = Path(f"{prefix}.{kind}.fits")
    if value == "NONE":
        with fits.open(path) as hdul:
            header, data = hdul[0].header, hdul[0].data
            header.remove(key, ignore_missing=True)
            fits.writeto(path, data, header, overwrite=True, output_verify="ignore")
    else:
        raw = bytearray(path.read_bytes())
        at = raw.find(f"{key:8}=".encode())
        if at >= 0 and at % 80 == 0:
            raw[at:at + 80] = f"{key:8}= {value:>20}".ljust(80).encode()
            path.write_bytes(bytes(raw))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["scan", str(prefix), "--figures", "1", "-q"])
    text = err.getvalue().strip()
    assert code in (0, 2), text
    assert "internal error" not in text and "Traceback" not in text, text
    if code == 2:
        assert len(text.splitlines()) == 1, text
        assert not Path(f"{prefix}.deconfetti").exists()


# -- killed with SIGKILL during each kind of write, then resumed --------------------------------
_KILLER = """
import os, signal, sys
from pathlib import Path
import deconfetti.checkpoint, deconfetti.files, deconfetti.outputs
real, pattern = deconfetti.files.atomic_write, os.environ["KILL_AT"]
def killing(path, write):
    if pattern not in Path(path).name:
        return real(path, write)
    def half(temporary):
        write(temporary)
        os.truncate(temporary, os.path.getsize(temporary) // 2)
        os.kill(os.getpid(), signal.SIGKILL)
    return real(path, half)
deconfetti.checkpoint.atomic_write = deconfetti.outputs.atomic_write = killing
from deconfetti.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def kill_reference(small, tmp_path_factory):
    """Products, the scan's arguments and the folder of an uninterrupted scan."""
    prefix = write_products(small, tmp_path_factory.mktemp("kill"), "k")
    args = ["scan", str(prefix), "-q", "--figures", "1", "--report", "--top", "1",
            "--set", "stream.block_channels=1"]
    reference = prefix.parent / "reference"
    assert main([*args, "--out", str(reference)]) == 0
    return args, reference


@pytest.mark.parametrize("target", ["block_", "fingerprint", "candidates.ecsv", "summary.json",
                                    "peak.fits", "_spectra.png", "report.html"])
def test_killed_during_a_write_then_resumed(kill_reference, tmp_path, target):
    import os
    import subprocess
    import sys

    args, reference = kill_reference
    out = tmp_path / "o"
    killed = subprocess.run([sys.executable, "-c", _KILLER, *args, "--out", str(out)],
                            env={**os.environ, "KILL_AT": target}, capture_output=True)
    assert killed.returncode == -9, killed.stderr
    names = [p.name for p in out.rglob("*") if p.is_file()]
    assert any(".part" in name for name in names)  # the half-written temporary
    assert target not in " ".join(n for n in names if ".part" not in n)  # never the real name
    assert main([*args, "--out", str(out), "--resume", "--overwrite"]) == 0
    assert not [p for p in out.rglob("*") if ".part" in p.name]
    strip = lambda p: [x for x in p.read_text().splitlines() if "date" not in x]  # noqa: E731
    assert strip(out / "candidates.ecsv") == strip(reference / "candidates.ecsv")
    assert sorted(p.name for p in out.rglob("*")) == sorted(p.name for p in reference.rglob("*"))


# -- a real full disk (a small tmpfs in a private mount namespace) ------------------------------
def on_full_disk(disk, command, size_kb):
    """Run ``command`` (a shell line; $DISK is ``disk``) with a ``size_kb`` tmpfs on
    ``disk``; its stdout ends with ``rc=N`` and then the number of entries ``$DISK/o``
    holds."""
    return in_mount_namespace(
        f"DISK='{disk}'; mount -t tmpfs -o size={size_kb}k tmpfs \"$DISK\" || exit 7; "
        f"{command}; echo rc=$?; ls -A \"$DISK/o\" 2>/dev/null | wc -l")


@pytest.mark.parametrize("size_kb", [8, 24, 40, 64, 128])
def test_full_disk_for_scan_figures_and_report(fits_prefix, tmp_path, size_kb):
    """Whatever the step the disk fills at (checkpoint, catalog, figures, report), exit 2
    with one line naming the file, and nothing left in the output folder."""
    disk = tmp_path / "disk"
    disk.mkdir()
    run = on_full_disk(disk, f"$PYTHON -m deconfetti.cli scan '{fits_prefix}' --out "
                             "\"$DISK/o\" --figures 2 --report --top 2 -q", size_kb)
    code, left = run.stdout.split()[-2:]
    assert code in ("rc=0", "rc=2"), run.stdout + run.stderr
    if size_kb <= 24:
        assert code == "rc=2"
    if code == "rc=2":
        assert left == "0"  # the folder the run created is gone again
        errors = run.stderr.strip().splitlines()
        # the OS's words, or astropy's when it checks the space itself
        assert len(errors) == 1 and ("No space left on device" in errors[0]
                                     or "Not enough space on disk" in errors[0]), run.stderr
        assert str(disk) in errors[0]
    else:
        assert int(left) >= 7  # catalog, summary, two regions, peak, figures/, report


def test_full_disk_for_repair(small, tmp_path):
    prefix = write_products(small, tmp_path / "in", "r", fmt="casa")
    assert main(["scan", str(prefix), "-q", "--figures", "0"]) == 0
    before = checksums(tmp_path / "in")  # the inputs and the scan
    disk = tmp_path / "disk"
    disk.mkdir()
    run = on_full_disk(disk, f"$PYTHON -m deconfetti.cli repair '{prefix}.deconfetti' "
                             "--out \"$DISK/o\" -q", 48)
    assert run.stdout.split()[-2:] == ["rc=2", "0"], run.stdout + run.stderr
    assert "No space left on device" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert checksums(tmp_path / "in") == before


def test_repair_killed_while_patching_then_run_again(small, tmp_path):
    import subprocess
    import sys

    prefix = write_products(small, tmp_path / "in", "r", fmt="casa")
    assert main(["scan", str(prefix), "-q", "--figures", "0"]) == 0
    before = checksums(tmp_path / "in")
    killer = ("import os, signal, sys\nimport deconfetti.repair.write as r\n"
              "r.PatchedCopy.add = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
              "from deconfetti.cli import main\nsys.exit(main(sys.argv[1:]))")
    killed = subprocess.run([sys.executable, "-c", killer, "repair", f"{prefix}.deconfetti",
                             "-q"], capture_output=True)
    assert killed.returncode == -9, killed.stderr
    assert [p for p in (tmp_path / "in").iterdir() if ".part" in p.name]
    assert not list((tmp_path / "in").glob("r.repaired.*"))
    assert main(["repair", f"{prefix}.deconfetti", "-q"]) == 0
    assert not [p for p in (tmp_path / "in").iterdir() if ".part" in p.name]
    assert Path(f"{prefix}.repaired.model").is_dir()
    assert all(checksums(tmp_path / "in")[p] == digest for p, digest in before.items()
               if "r.deconfetti/" not in str(p))
