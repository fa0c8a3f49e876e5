import numpy as np
import pytest

from deconfetti.noise import channel_rms, highpass, highpass_fraction, robust_rms
from deconfetti.simulate import uv_weights


def correlated_noise(shape, rng, weights):
    noise = np.real(np.fft.ifft2(np.sqrt(weights) * (rng.standard_normal(shape)
                                                     + 1j * rng.standard_normal(shape))))
    return noise / noise.std()


@pytest.fixture(scope="module")
def field():
    rng = np.random.default_rng(7)
    weights = uv_weights((128, 128), rng)
    psf = np.fft.fftshift(np.real(np.fft.ifft2(weights)))
    psf /= psf.max()
    noise = np.stack([correlated_noise((128, 128), rng, weights) for _ in range(6)])
    return psf, noise


def test_highpass_fraction_matches_simulated_noise(field):
    psf, noise = field
    width = 2.5
    measured = np.mean([np.nanstd(highpass(n, np.ones_like(n, bool), width)) for n in noise])
    assert highpass_fraction(width, psf=psf) == pytest.approx(measured, rel=0.05)


def test_gaussian_beam_fraction_is_between_0_and_1():
    value = highpass_fraction(2.0, beam_sigma=(2.0, 1.5, 30.0))
    assert 0.3 < value < 1.0
    assert highpass_fraction(50.0, beam_sigma=(2.0, 1.5, 30.0)) > 0.99


def test_channel_rms_ignores_under_cleaned_emission(field):
    """Broad positive emission left in the residual fools the plain MAD, not the estimate."""
    psf, noise = field
    rms = 2e-3
    yy, xx = np.mgrid[:128, :128]
    blob = 8 * rms * np.exp(-((yy - 60) ** 2 + (xx - 70) ** 2) / (2 * 25.0 ** 2))
    residual = (noise * rms + blob).astype(np.float32)
    valid = np.ones_like(residual, bool)
    fraction = highpass_fraction(0.5 * 6.0, psf=psf)
    estimate = channel_rms(residual, valid, width=3.0, fraction=fraction)
    np.testing.assert_allclose(estimate, rms, rtol=0.12)
    plain = 1.4826 * np.median(np.abs(residual[0] - np.median(residual[0])))
    assert plain > 1.5 * rms


def test_masked_pixels_and_empty_channels():
    rng = np.random.default_rng(1)
    residual = rng.normal(0, 1.0, (2, 64, 64)).astype(np.float32)
    valid = np.ones_like(residual, bool)
    valid[0, :, :32] = False
    residual[0, :, :32] = np.nan
    valid[1] = False
    out = channel_rms(residual, valid, width=20.0, fraction=1.0)
    assert out[0] == pytest.approx(1.0, rel=0.1)
    assert np.isnan(out[1])


def test_robust_rms_clips_outliers():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0, 1, 10000), np.full(500, 50.0)])
    assert robust_rms(values) == pytest.approx(1.0, rel=0.05)
    assert np.isnan(robust_rms(np.array([1.0, np.nan])))


def test_spike_rms_follows_channel_correlation():
    from deconfetti.noise import spike_rms

    rng = np.random.default_rng(3)
    white = rng.normal(0, 1.0, (8, 128, 128)).astype(np.float32)
    valid = np.ones_like(white, bool)
    independent = spike_rms(white, valid, slice(1, 7))
    np.testing.assert_allclose(independent, np.sqrt(1.5), rtol=0.05)
    # Hanning smoothing along frequency correlates adjacent channels: the spike is quieter
    hanning = (0.25 * white[:-2] + 0.5 * white[1:-1] + 0.25 * white[2:])
    hanning /= hanning.std()
    assert np.all(spike_rms(hanning, valid[:6], slice(1, 5)) < 0.8 * np.sqrt(1.5))
    # a spectrally smooth emission blob cancels in the spike map
    yy, xx = np.mgrid[:128, :128]
    blob = 20 * np.exp(-((yy - 64) ** 2 + (xx - 64) ** 2) / 400.0)
    smooth = white + blob * np.linspace(1, 1.2, 8)[:, None, None]
    np.testing.assert_allclose(spike_rms(smooth, valid, slice(1, 7)), independent, rtol=0.05)
    assert np.isnan(spike_rms(white[:1], valid[:1], slice(0, 1))).all()



@pytest.mark.parametrize("clip", [3.0, 1.0, np.inf])
def test_robust_rms_is_the_clipped_median_statistic(clip):
    """The sorted-once clipping gives exactly what np.median over each clip gives, ties,
    odd and even counts and float32 input included."""
    def reference(values):
        values = values[np.isfinite(values)].astype(np.float64)
        count = -1
        while values.size != count and values.size >= 20:
            count = values.size
            centre = np.median(values)
            rms = 1.4826 * np.median(np.abs(values - centre))
            if rms == 0:
                break
            values = values[np.abs(values - centre) < clip * rms]
        return rms

    rng = np.random.default_rng(3)
    for n in (20, 21, 101, 1000, 5001):
        for values in (rng.normal(size=n), rng.integers(-3, 4, n).astype(float),
                       rng.standard_cauchy(n).astype(np.float32),
                       np.concatenate([rng.normal(size=n), rng.normal(0, 40, n // 4)])):
            assert robust_rms(values, clip=clip) == reference(values)
