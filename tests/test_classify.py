import numpy as np
import pytest

from deconfetti.candidates import false_alarm
from deconfetti.classify import classify
from deconfetti.config import ClassifyConfig

CASES = [
    # spike, image, dirty, excess, false alarms, reliability, found_by, diverged -> class
    (9.0, 9.5, 0.5, 8.5, 1e-6, 0.2, "spike+model", False, "confetti"),  # image only
    (4.4, 5.0, -2.0, 4.4, 1e-4, np.nan, "model", False, "confetti"),  # faint, none in the data
    (9.0, 9.5, 0.5, 8.5, 3.0, 0.2, "spike+model", False, "uncertain"),  # the channel's own
    (9.0, 9.5, 0.5, 8.5, 1e-6, 0.2, "spike+model", True, "diverged"),  # a failed channel
    (20.0, -6.0, -10.0, 18.0, 1e-9, np.nan, "model", False, "benign"),  # image negative there
    (2.0, 1.0, -10.0, 18.0, 1e-9, np.nan, "model", False, "benign"),  # no image spike
    (12.0, 12.5, 11.8, 0.2, 1.0, 1.0, "spike+model", False, "real"),  # the data demand it
    (6.0, 6.0, 5.9, 0.1, 1.0, 0.95, "spike", False, "real"),
    (6.0, 6.0, 5.9, 0.1, 1.0, 0.3, "spike", False, "noise"),  # as many negative spikes
    (1.0, 3.0, 0.9, 0.3, 1.0, np.nan, "model", False, "benign"),  # no false source
    (30.0, 30.0, 29.8, 0.1, 1.0, np.nan, "model", False, "benign"),  # continuum point source
    (25.5, 25.5, 15.3, 9.7, 1e-9, np.nan, "model", False, "benign"),  # the data hold 60 %
    (5.4, 5.0, 3.9, 1.5, 1.0, 1.0, "spike", False, "noise"),  # too faint to tell
    (7.0, 7.0, 4.0, 3.0, 1.0, 1.0, "spike", False, "noise"),
    (7.0, 7.0, np.nan, np.nan, np.nan, 1.0, "spike", False, "uncertain"),  # no psf
    (1.0, 1.0, np.nan, np.nan, np.nan, np.nan, "model", False, "benign"),  # no psf
]


def one(spike, image, dirty, excess, alarms, reliability, how, diverged,
        rules=ClassifyConfig(), component=50.0, peak=np.nan, extent=0.0):
    labels, reasons = classify(np.array([spike]), np.array([1.0]), np.array([image]),
                               np.array([dirty]), np.array([excess]), np.array([alarms]),
                               np.array([reliability]), np.array([how]), np.array([diverged]),
                               np.array([component]), np.array([peak]), np.array([extent]),
                               rules=rules)
    return labels[0], reasons[0]


@pytest.mark.parametrize("spike, image, dirty, excess, alarms, reliability, how, diverged, "
                         "expected", CASES)
def test_rules(spike, image, dirty, excess, alarms, reliability, how, diverged, expected):
    label, reason = one(spike, image, dirty, excess, alarms, reliability, how, diverged)
    assert label == expected, reason


def test_an_excess_no_component_here_makes_is_not_confetti():
    """An unsupported image feature with an empty model under it (at an image edge, the
    periodic restoration of components at the opposite edge) is not confetti."""
    assert one(9.4, 8.5, -3.8, 11.7, 0.008, np.nan, "spike", False)[0] == "confetti"
    label, reason = one(9.4, 8.5, -3.8, 11.7, 0.008, np.nan, "spike", False, component=0.7)
    assert label == "uncertain" and "no model component here makes it" in reason
    # a component that makes less than half of the excess: most of it comes from elsewhere
    assert one(14.9, 12.3, 2.2, 11.3, 0.002, np.nan, "spike", False, component=4.4)[0] \
        == "uncertain"


def test_the_flank_of_a_brighter_feature_is_not_confetti():
    """A model component within a beam of a much brighter image feature (a bright real
    source, whose psf and restoring beam differ near the main lobe by ~10 % of its peak) is
    not a compact source of its own: the one-plane run's 267-sigma flank of a 2182-sigma
    source, 189 rms unsupported, was called confetti."""
    case = (271.7, 267.5, 82.6, 189.1, 1e-60, np.nan, "model", False)
    assert one(*case, peak=300.0, component=191.5)[0] == "confetti"  # on the feature
    label, reason = one(*case, peak=1900.0, component=191.5)
    assert label == "benign" and "on the flank of a brighter image feature" in reason
    # an image spike that is not at the feature's peak cannot be judged as a point either
    assert one(9.0, 9.5, 0.5, 8.5, 1e-6, 0.2, "spike+model", False, peak=20.0)[0] \
        == "uncertain"
    # exactly half of the peak is still on the feature (within its half maximum)
    assert one(9.0, 9.5, 0.5, 8.5, 1e-6, 0.2, "spike+model", False, peak=18.0)[0] \
        == "confetti"


def test_an_extended_excess_is_not_confetti():
    """An unsupported excess that stays high one beam out in many directions (the ridge of
    resolved-out flux on a 7m mosaic's one-plane cut, 36 rms, 7 of 16 directions) is not
    a compact fake source."""
    case = (58.9, 76.4, 22.9, 36.0, 0.002, np.nan, "model", False)
    assert one(*case, component=74.2, extent=0.06)[0] == "confetti"
    label, reason = one(*case, component=74.2, extent=0.44)
    assert label == "benign" and "extended" in reason


def test_a_reason_states_what_the_data_hold():
    label, reason = one(25.5, 25.5, 15.3, 9.7, 1e-9, np.nan, "model", False)
    assert "the data hold 60% of the image spike" in reason


def test_thresholds_are_parameters():
    case = (9.0, 9.5, 0.5, 8.5, 1e-3, 1.0, "spike", False)
    assert one(*case)[0] == "confetti"
    assert one(*case, rules=ClassifyConfig(excess_min=9.0))[0] != "confetti"
    assert one(*case, rules=ClassifyConfig(false_alarm_max=1e-4))[0] == "uncertain"
    assert one(6.0, 6.0, 5.9, 0.1, 1.0, 0.5, "spike", False,
               ClassifyConfig(reliability_min=0.4))[0] == "real"


def test_false_alarm_is_the_gaussian_tail_times_the_beams():
    # 5 sigma: one-sided tail 2.87e-7
    np.testing.assert_allclose(false_alarm(np.array([10.0]), np.array([2.0]), 1e4), 2.87e-3,
                               rtol=1e-2)
    assert false_alarm(np.array([3.0]), np.array([0.0]), 1e6)[0] == 0.0  # no variation at all
    assert np.isnan(false_alarm(np.array([np.nan]), np.array([1.0]), 10.0)[0])


@pytest.mark.parametrize("nchan", [1, 3])
def test_the_spike_peak_is_the_brightest_spike_within_a_beam(nchan):
    """``spike_peak_snr`` is the candidate's own spike at a compact feature's peak, and
    that of the peak when the candidate sits on the feature's flank (one plane: the image
    against the ring; a cube: the one-channel contrast)."""
    from deconfetti.datatest import Imprints, data_test
    from deconfetti.features import gaussian_beam

    yy, xx = np.mgrid[:64, :64]
    feature = 100.0 * gaussian_beam(yy - 32, xx - 32, 5.0, 5.0, 0.0)
    image = np.zeros((nchan, 64, 64))
    image[nchan // 2] = feature + 7.0  # a level that the ring or the channels take off
    if nchan > 1:
        image[[0, 2]] = 7.0
    psf = np.zeros((nchan, 33, 33))
    psf[:, 16, 16] = 1.0
    model = np.zeros((nchan, 64, 64))
    chan = np.full(2, nchan // 2)
    ys, xs = np.array([32, 32]), np.array([32, 36])
    out = data_test(chan, ys, xs, image=image, residual=np.zeros_like(image),
                    imprint=Imprints(model, psf), rms=np.ones(nchan), spike_rms=np.ones(nchan),
                    beam=np.tile([5.0, 5.0, 0.0], (nchan, 1)), ring_beams=1.5)
    peak = out["spike_peak_snr"]
    assert peak[0] == pytest.approx(100.0, rel=0.02)  # the peak: its own spike
    assert peak[1] == pytest.approx(peak[0], rel=0.02)  # the flank: the peak's
    flank = feature[32, 36]  # 100 * 2 ** -(4 * 16 / 25) = 17
    assert flank < 0.5 * peak[1]


def test_the_extent_of_an_excess_tells_a_point_from_a_ridge():
    """``excess_extent`` is 0 for a beam-sized excess and large along a ridge (one
    plane: image - dirty is the model's restoration where the psf is a point)."""
    from deconfetti.datatest import Imprints, data_test
    from deconfetti.features import gaussian_beam

    yy, xx = np.mgrid[:64, :64]
    point = gaussian_beam(yy - 32, xx - 32, 5.0, 5.0, 0.0)
    ridge = np.exp(-4 * np.log(2) * (yy - 32) ** 2 / 25.0)  # along x, 5 px wide
    psf = np.zeros((1, 33, 33))
    psf[0, 16, 16] = 1.0
    extents = []
    for restored in (point, ridge):
        image = 10.0 * restored[None]  # image - dirty: the model's restoration
        out = data_test(np.zeros(1, int), np.array([32]), np.array([32]), image=image,
                        residual=np.zeros_like(image), imprint=Imprints(np.zeros_like(image), psf),
                        rms=np.ones(1), spike_rms=np.ones(1), beam=np.array([[5.0, 5.0, 0.0]]),
                        ring_beams=1.5)
        extents.append(out["excess_extent"][0])
    assert extents[0] == 0.0
    assert extents[1] >= 0.25  # the two directions along the ridge and their neighbours


def test_the_null_draws_its_pixels_as_a_choice_among_the_valid_ones():
    """The null's pixels are `rng.choice` of the valid pixels' flat indices, drawn without
    making that index (the same pixels, so the catalogs' nulls do not move)."""
    from deconfetti.datatest import _draw_valid

    rng = np.random.default_rng(4)
    for seed in range(200):
        valid = rng.random(tuple(rng.integers(1, 50, 2))) < rng.random()
        samples = (512, 5, 0)[seed % 3]
        flat = np.flatnonzero(valid)
        pick = np.sort(np.random.default_rng(seed).choice(
            flat, min(samples, flat.size), replace=False))
        ys, xs = _draw_valid(valid, samples, np.random.default_rng(seed))
        assert np.array_equal(ys * valid.shape[1] + xs, pick)
