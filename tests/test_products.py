import shutil

import numpy as np
import pytest
from astropy.io import fits

from deconfetti import InputError, open_products
from deconfetti.io.products import Products


def test_prefix_finds_every_product(sim_casa):
    products = open_products(sim_casa)
    assert set(products.paths) == {"image", "model", "residual", "psf", "pb"}
    assert products.shape == (10, 96, 96)


def test_any_product_finds_its_siblings(sim_casa, sim_fits):
    by_image = open_products(f"{sim_casa}.image")
    by_model = open_products(f"{sim_casa}.model")
    by_fits = open_products(f"{sim_fits}.residual.fits")
    assert by_image.paths == by_model.paths
    assert by_fits.paths["image"].endswith("cube.image.fits")


def test_casa_and_fits_give_the_same_arrays_and_coordinates(sim, sim_casa, sim_fits):
    casa, fits_ = open_products(sim_casa), open_products(sim_fits)
    for kind in ("image", "model", "residual", "psf", "pb"):
        np.testing.assert_array_equal(casa.read(kind, 2, 5), fits_.read(kind, 2, 5))
    np.testing.assert_array_equal(casa.read("image", 0, 10), sim.image)
    np.testing.assert_allclose(casa.frequency, fits_.frequency)
    np.testing.assert_allclose(casa.pixels_per_beam, fits_.pixels_per_beam, rtol=1e-6)
    assert casa.rest_frequency == pytest.approx(230.538e9)
    sky_a = casa.celestial.pixel_to_world(10, 20)
    sky_b = fits_.celestial.pixel_to_world(10, 20)
    assert sky_a.separation(sky_b).arcsec < 1e-6


def test_pixels_per_beam_follows_the_beam(sim, sim_fits):
    products = open_products(sim_fits)
    major, minor, _ = sim.beam
    assert products.pixels_per_beam[0] == pytest.approx(np.pi / (4 * np.log(2)) * major * minor,
                                                        rel=1e-4)
    assert products.beam_pixels[0, 0] == pytest.approx(major, rel=1e-4)


def test_explicit_paths_override_the_prefix(sim_fits, tmp_path):
    other = tmp_path / "elsewhere.fits"
    shutil.copy(f"{sim_fits}.model.fits", other)
    products = open_products(sim_fits, model=other)
    assert products.paths["model"] == str(other)


def test_products_pass_through():
    sentinel = object.__new__(Products)
    assert open_products(sentinel) is sentinel


def test_missing_model_names_the_file(sim_fits, tmp_path):
    for kind in ("image", "residual"):
        shutil.copy(f"{sim_fits}.{kind}.fits", tmp_path / f"x.{kind}.fits")
    with pytest.raises(InputError, match=r"x\.model\.fits: model product not found"):
        open_products(tmp_path / "x")


def test_prefix_that_matches_nothing(tmp_path):
    with pytest.raises(InputError, match="not found"):
        open_products(tmp_path / "nothing")


def test_shape_mismatch_is_refused(sim_fits, tmp_path):
    for kind in ("image", "model", "residual"):
        shutil.copy(f"{sim_fits}.{kind}.fits", tmp_path / f"x.{kind}.fits")
    with fits.open(tmp_path / "x.model.fits", mode="update") as hdul:
        hdul[0].data = hdul[0].data[:, :5]
    with pytest.raises(InputError, match=r"x\.model\.fits: shape 5x96x96"):
        open_products(tmp_path / "x")


def test_model_in_jy_per_beam_warns(sim_fits, tmp_path):
    from deconfetti import DeconfettiWarning

    for kind in ("image", "model", "residual"):
        shutil.copy(f"{sim_fits}.{kind}.fits", tmp_path / f"x.{kind}.fits")
    fits.setval(tmp_path / "x.model.fits", "BUNIT", value="Jy/beam")
    with pytest.warns(DeconfettiWarning, match="expected Jy/pixel"):
        open_products(tmp_path / "x")


def test_not_a_casa_image(tmp_path):
    (tmp_path / "bad.image").mkdir()
    (tmp_path / "bad.model").mkdir()
    (tmp_path / "bad.residual").mkdir()
    with pytest.raises(InputError, match=r"bad\.image: not a readable CASA image"):
        open_products(tmp_path / "bad")


def test_per_channel_beams(tmp_path):
    from deconfetti.simulate import simulate_cube, write_products

    scale = np.linspace(0.95, 1.05, 4)
    sim = simulate_cube(nchan=4, ny=48, nx=48, beam_scale=scale, seed=2)
    for fmt in ("fits", "casa"):
        products = open_products(write_products(sim, tmp_path / fmt, fmt=fmt))
        np.testing.assert_allclose(products.beam_pixels[:, 0], sim.beam[0] * scale, rtol=1e-4)
        assert products.pixels_per_beam[3] > products.pixels_per_beam[0]


def test_stokes_and_axis_order_of_a_fits_cube(sim, tmp_path):
    """A (freq, stokes, y, x) FITS cube reads the same as (stokes, freq, y, x)."""
    from deconfetti.simulate import write_products

    prefix = write_products(sim, tmp_path, "c", fmt="fits")
    path = tmp_path / "c.image.fits"
    with fits.open(path) as hdul:
        header, data = hdul[0].header.copy(), hdul[0].data
    swapped = header.copy()
    for key in ("CTYPE", "CRVAL", "CDELT", "CRPIX", "CUNIT"):
        if f"{key}3" in header:
            swapped[f"{key}4"] = header[f"{key}3"]
        swapped[f"{key}3"] = header.get(f"{key}4", "")
    swapped["CUNIT3"] = ""
    fits.writeto(path, np.swapaxes(data, 0, 1), swapped, overwrite=True)
    np.testing.assert_array_equal(open_products(prefix).read("image", 0, 10), sim.image)


def test_windowed_reads_match_full_reads(sim, sim_casa, sim_fits):
    window = (slice(10, 30), slice(-5 + 50, 80))
    for prefix in (sim_casa, sim_fits):
        part = open_products(prefix).read("image", 2, 6, window)
        np.testing.assert_array_equal(part, sim.image[2:6, 10:30, 45:80])
    clipped = open_products(sim_fits).read("model", 0, 1, (slice(-7, 500), slice(90, 200)))
    assert clipped.shape == (1, 96, 6)


def test_consecutive_blocks_reuse_their_halo(sim, sim_casa, monkeypatch):
    products = open_products(sim_casa)
    product = products.image
    calls = []
    real = product.reader.read
    monkeypatch.setattr(product.reader, "read", lambda start, stop, ys, xs, out=None:
                        calls.append((start, stop)) or real(start, stop, ys, xs, out))
    for start, stop in ((0, 4), (2, 7), (5, 10), (0, 3)):
        np.testing.assert_array_equal(products.read("image", start, stop), sim.image[start:stop])
    assert calls == [(0, 4), (4, 7), (7, 10), (0, 3)]
    block = products.read("image", 1, 3)
    block[:] = 0  # callers may modify what they get: the kept planes are copies
    np.testing.assert_array_equal(products.read("image", 1, 3), sim.image[1:3])


def test_a_product_is_freed_without_the_garbage_collector(sim_casa):
    """No reference cycles: the planes a product keeps go when the last handle does (a
    long-lived dask worker would otherwise hold every finished scan's planes)."""
    import gc
    import weakref

    gc.disable()
    try:
        products = open_products(sim_casa)
        products.read("image", 0, 3)
        handle = weakref.ref(products.image)
        del products
        assert handle() is None
    finally:
        gc.enable()


def _fits_pairs(prefix) -> dict:
    """Each product of a FITS run as an ``(array, header)`` pair in memory."""
    return {kind: (fits.getdata(f"{prefix}.{kind}.fits"), fits.getheader(f"{prefix}.{kind}.fits"))
            for kind in ("image", "model", "residual", "psf", "pb")}


def test_products_in_memory_scan_as_their_files(sim_fits, tmp_path):
    """(array, header) pairs, astropy HDUs and spectral-cube SpectralCube objects enter
    through the same door and give the catalog the files give."""
    import deconfetti
    from spectral_cube import SpectralCube

    prefix = str(sim_fits)
    pairs = _fits_pairs(prefix)
    reference = deconfetti.scan(sim_fits).candidates
    hdus = {k: fits.PrimaryHDU(*v) for k, v in pairs.items()}
    cubes = {k: SpectralCube.read(f"{prefix}.{k}.fits") for k in ("image", "model", "residual")}
    for given in (pairs, hdus, dict(pairs, **cubes)):
        products = open_products(given["image"], model=given["model"],
                                 residual=given["residual"], psf=given["psf"], pb=given["pb"])
        assert str(products.image.path) == "<image in memory>"
        found = deconfetti.scan(products).candidates
        assert list(found["classification"]) == list(reference["classification"])
        np.testing.assert_allclose(found["unsupported_snr"], reference["unsupported_snr"])
    # a WCS and a Quantity carry the coordinates and the unit
    from astropy import units as u
    from astropy.wcs import WCS

    data, header = pairs["model"]
    products = open_products(pairs["image"], model=(data * u.Jy / u.pix, WCS(header)),
                             residual=pairs["residual"])
    assert products.model.unit == "Jy pix-1"


def test_anything_else_is_a_type_error_saying_what_is_accepted():
    import deconfetti

    with pytest.raises(TypeError, match="image: a ndarray is not a product; give a path"):
        deconfetti.scan(np.zeros((3, 8, 8)))
    with pytest.raises(TypeError, match="model: .* an astropy Header or WCS"):
        open_products("x", model=(np.zeros((3, 8, 8)), {"BUNIT": "Jy/pixel"}))


def test_products_in_memory_are_not_repaired(sim_fits):
    import deconfetti
    from deconfetti.repair import write_repaired

    pairs = _fits_pairs(str(sim_fits))
    result = deconfetti.scan(open_products(pairs["image"], model=pairs["model"],
                                           residual=pairs["residual"], psf=pairs["psf"]))
    with pytest.raises(InputError, match="in memory cannot be repaired"):
        write_repaired(result)


def test_casa_images_in_any_axis_order_and_with_a_pixel_mask(sim, tmp_path):
    """A CASA image whose stored order is not ``[chan, y, x]`` (spectral axis first, as a
    FITS conversion may leave it) reads as the FITS it came from, and a default pixel mask
    reads as NaN, into a block's array as into a new one."""
    from casacore.images import image

    from deconfetti.io.casa import CasaImage, save_as_casa
    from deconfetti.simulate import write_products

    prefix = write_products(sim, tmp_path, "c", fmt="fits")
    path = tmp_path / "c.image.fits"
    with fits.open(path) as hdul:
        header, data = hdul[0].header.copy(), hdul[0].data
    spectral = next(n for n in range(1, header["NAXIS"] + 1)
                    if header[f"CTYPE{n}"].startswith("FREQ"))
    order = [spectral] + [n for n in range(1, header["NAXIS"] + 1) if n != spectral]
    moved = fits.Header()
    for new, old in enumerate(order, start=1):
        for key in ("CTYPE", "CRVAL", "CDELT", "CRPIX", "CUNIT"):
            if f"{key}{old}" in header:
                moved[f"{key}{new}"] = header[f"{key}{old}"]
    for key in ("BUNIT", "BMAJ", "BMIN", "BPA", "RESTFRQ", "SPECSYS"):
        if key in header:
            moved[key] = header[key]
    numpy_axes = [header["NAXIS"] - n for n in reversed(order)]  # numpy order of the new axes
    fits.writeto(tmp_path / "moved.fits", np.transpose(data, numpy_axes), moved)
    save_as_casa(tmp_path / "moved.fits", tmp_path / "moved.image")
    reader = CasaImage(tmp_path / "moved.image")
    assert reader.axes[0] > reader.axes[2]  # stored with the channels last in numpy order
    whole = (slice(0, sim.image.shape[1]), slice(0, sim.image.shape[2]))
    np.testing.assert_array_equal(reader.read(0, 10, *whole), sim.image)
    out = np.full((3,) + sim.image.shape[1:], -1.0, dtype=np.float32)
    reader.read(4, 7, *whole, out=out)
    np.testing.assert_array_equal(out, sim.image[4:7])

    casa = tmp_path / "masked.image"
    save_as_casa(prefix.parent / "c.image.fits", casa)
    opened = image(str(casa))
    bad = np.zeros(opened.shape(), dtype=bool)
    chan_axis = CasaImage(casa).axes[0]
    index = [slice(None)] * bad.ndim
    index[chan_axis] = 2
    bad[tuple(index)][..., 5:9, 10:20] = True
    opened.putmask(bad)
    del opened
    expected = sim.image.copy()
    expected[2, 5:9, 10:20] = np.nan
    np.testing.assert_array_equal(CasaImage(casa).read(0, 10, *whole), expected)
    with pytest.raises(ValueError, match="C-contiguous float32"):
        CasaImage(casa).read(0, 2, *whole, out=np.empty((2, 5, 5), dtype=np.float32))


def test_a_virtual_concatenation_reads_as_the_cube(sim, sim_casa, tmp_path):
    """tclean's parallel cubes are ImageConcat directories (``imageconcat.json`` naming
    their parts, no pixels of their own): they read as the cube they put together, through
    casacore's image interface, and are not refused as truncated; one whose part is gone
    is refused with that part named."""
    from conftest import concatenate

    target = tmp_path / "concat.image"
    concatenate([f"{sim_casa}.image"], [target])
    assert (target / "imageconcat.json").exists()
    product = open_products(f"{sim_casa}.image").image
    concat = type(product)("image", target)
    assert concat.reader._pixels is None
    assert concat.shape == product.shape
    for start, stop in ((0, 4), (3, 8), (7, 10)):
        np.testing.assert_array_equal(concat.read(start, stop, pool=[]), sim.image[start:stop])
    del concat
    shutil.rmtree(tmp_path / "concat.n1.image")
    with pytest.raises(InputError, match=r"concat.image: virtual concatenation whose part "
                                         r"\S*concat.n1.image is missing"):
        open_products(target, model=f"{sim_casa}.model", residual=f"{sim_casa}.residual")
