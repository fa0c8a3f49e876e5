import numpy as np
import pytest

from deconfetti.features import (Imprint, contrast_at, model_excess,
                                 model_excess_bound, psf_convolve,
                                 ring_offsets, spectral_contrast)


def test_psf_convolve_is_scipys_convolution_about_the_psf_peak():
    """Against scipy (independent of the code the simulator and the repair share)."""
    from scipy import signal

    rng = np.random.default_rng(5)
    model = rng.normal(size=(40, 52))
    psf = rng.uniform(-0.2, 0.5, size=(31, 41))
    psf[15, 20] = 1.0
    np.testing.assert_allclose(psf_convolve(model, psf),
                               signal.convolve(model, psf, mode="same", method="direct"),
                               atol=1e-9)


def test_imprint_at_points_matches_full_convolution():
    rng = np.random.default_rng(0)
    model = np.zeros((40, 50))
    model[rng.integers(0, 40, 30), rng.integers(0, 50, 30)] = rng.normal(size=30)
    psf = rng.normal(size=(40, 50))
    psf[20, 25] = 10.0
    ys, xs = rng.integers(0, 40, 25), rng.integers(0, 50, 25)
    full = psf_convolve(model, psf)
    np.testing.assert_allclose(Imprint(model, psf).at(ys, xs), full[ys, xs], atol=1e-9)
    # a single point source gives the psf itself, centred on the source
    point = np.zeros((40, 50))
    point[10, 12] = 2.0
    assert psf_convolve(point, psf)[10, 12] == pytest.approx(20.0)
    assert psf_convolve(point, psf)[11, 12] == pytest.approx(2.0 * psf[21, 25])


@pytest.mark.parametrize("psf_shape", [(40, 50), (27, 64), (64, 90)])
def test_psf_convolve_in_a_window_matches_the_whole_plane(psf_shape):
    """Any psf size and peak, windows at the edges and inside: the same pixels."""
    rng = np.random.default_rng(2)
    model = rng.normal(size=(40, 50))
    psf = rng.normal(size=psf_shape)
    psf[psf_shape[0] // 3, psf_shape[1] // 2] = 10.0
    full = psf_convolve(model, psf)
    for window in [(slice(0, 7), slice(43, 50)), (slice(12, 30), slice(5, 21)),
                   (slice(0, 40), slice(0, 50)), (slice(39, 40), slice(0, 1)),
                   (slice(30, 60), slice(None, 9))]:
        np.testing.assert_allclose(psf_convolve(model, psf, window), full[window], atol=1e-9)


def test_dense_model_at_few_points_is_summed_in_chunks():
    """More model pixels than one chunk of the direct sum: the same values."""
    rng = np.random.default_rng(3)
    model = rng.normal(size=(1020, 1000))  # more pixels than a chunk, still float64
    psf = rng.normal(size=(300, 280))
    psf[150, 140] = 10
    ys, xs = np.array([0, 500, 1019]), np.array([999, 3, 600])
    np.testing.assert_allclose(Imprint(model, psf).at(ys, xs),
                               psf_convolve(model, psf)[ys, xs], atol=1e-8)


def test_dense_model_takes_the_fft_path_with_the_same_result():
    rng = np.random.default_rng(1)
    model = rng.normal(size=(32, 32))
    psf = rng.normal(size=(32, 32))
    psf[16, 16] = 10
    ys, xs = np.mgrid[:32, :32]
    np.testing.assert_allclose(Imprint(model, psf).at(ys.ravel(), xs.ravel()),
                               psf_convolve(model, psf).ravel(), atol=1e-9)


def test_spectral_contrast_and_edges():
    block = np.zeros((4, 3, 3), np.float32)
    block[1, 1, 1] = 10.0
    block[2, 1, 1] = 4.0
    assert spectral_contrast(block, 1)[1, 1] == pytest.approx(10.0 - 2.0)
    assert spectral_contrast(block, 0)[1, 1] == pytest.approx(-10.0)  # one neighbour only
    assert spectral_contrast(block[1:2], 0)[1, 1] == 10.0  # one plane: the value itself
    points = contrast_at(block, np.array([1, 0]), np.array([1, 1]), np.array([1, 1]))
    np.testing.assert_allclose(points, [8.0, -10.0])


def test_model_excess_takes_off_the_brightest_3x3_pixel_of_adjacent_channels():
    block = np.zeros((3, 5, 5), np.float32)
    block[1] = 3.0
    block[0, 2, 3] = 1.0
    block[2, 0, 0] = 2.0
    out = model_excess(block, 1, np.array([1, 1, 4, 2]), np.array([2, 1, 4, 2]))
    assert out.tolist() == [2.0, 1.0, 3.0, 2.0] and out.dtype == np.float32
    # at the cube's edge one side counts; a plane alone keeps its values
    assert model_excess(block[:2], 1, np.array([1]), np.array([2])).tolist() == [2.0]
    assert model_excess(block[1:2], 0, np.array([0]), np.array([0])).tolist() == [3.0]


def test_ring_offsets_lie_on_the_circle():
    offsets = ring_offsets(7.5)
    radius = np.hypot(*offsets.T)
    assert len(offsets) >= 12
    assert np.all(np.abs(radius - 7.5) < 0.75)


def test_model_excess_equals_a_zero_padded_maximum_filter_of_the_sides():
    from scipy import ndimage

    rng = np.random.default_rng(4)
    for shape in ((3, 1, 1), (3, 2, 5), (2, 17, 23)):
        block = rng.normal(size=shape).astype(np.float32) - 0.5
        sides = [ndimage.maximum_filter(block[n], 3, mode="constant") for n in (0, 2)
                 if n < shape[0]]
        ys, xs = np.indices(shape[1:]).reshape(2, -1)
        excess = model_excess(block, 1, ys, xs)
        np.testing.assert_array_equal(excess,
                                      (block[1] - np.maximum(sides[0], sides[-1])).ravel())
        assert np.all(model_excess_bound(block, 1).ravel() >= excess)


def test_large_ffts_use_the_threads_they_are_given():
    import os

    from scipy import fft as sfft

    from deconfetti.features import LARGE_FFT_CELLS, _one_large_fft, fft_threads

    with _one_large_fft(LARGE_FFT_CELLS + 1):
        assert sfft.get_workers() == (os.cpu_count() or 1)
    with fft_threads(1):
        with _one_large_fft(LARGE_FFT_CELLS + 1):
            assert sfft.get_workers() == 1
    with _one_large_fft(LARGE_FFT_CELLS + 1):
        assert sfft.get_workers() == (os.cpu_count() or 1)


def test_zero_nan_sets_only_the_nan_pixels_to_zero_in_place():
    from deconfetti.features import zero_nan

    plane = np.arange(12, dtype=np.float32).reshape(3, 4)
    plane[1, 2] = plane[0, 0] = np.nan
    out = zero_nan(plane)
    assert out is plane
    expected = np.arange(12, dtype=np.float32).reshape(3, 4)
    expected[1, 2] = expected[0, 0] = 0
    assert np.array_equal(plane, expected)
    clean = np.ones((2, 2))
    assert zero_nan(clean) is clean and np.all(clean == 1)
