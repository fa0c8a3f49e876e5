import numpy as np

from deconfetti.candidates import (find_candidates, find_model_components, find_spikes,
                                   link_channels, near_any, spike_reliability)


def _alone(plane):
    """A model block of one channel: its excess is the plane itself."""
    return np.asarray(plane, dtype=np.float32)[np.newaxis]


def test_a_feature_spanning_pixels_is_one_candidate():
    snr = np.zeros((30, 30))
    snr[10:14, 10:15] = 6.0
    snr[12, 13] = 9.0
    snr[25, 25] = 7.0
    peaks = find_spikes(snr, np.ones_like(snr, bool), 5.0)
    assert sorted(map(tuple, peaks)) == [(12, 13), (25, 25)]


def test_negative_spikes_are_found_at_their_minimum():
    snr = np.zeros((20, 20))
    snr[4:7, 4:7] = -6.0
    snr[5, 6] = -9.0
    snr[15, 15] = 8.0
    valid = np.ones_like(snr, bool)
    assert [tuple(p) for p in find_spikes(snr, valid, 5.0, negative=True)] == [(5, 6)]
    assert [tuple(p) for p in find_spikes(snr, valid, 5.0)] == [(15, 15)]


def test_invalid_pixels_are_not_candidates():
    snr = np.zeros((10, 10))
    snr[5, 5] = 9.0
    valid = np.ones_like(snr, bool)
    valid[5, 5] = False
    assert len(find_spikes(snr, valid, 5.0)) == 0
    assert len(find_model_components(_alone(snr), 0, valid, 1.0, 3.0, 2.0)) == 0


def test_model_components_one_per_beam_brightest_kept():
    snr = np.zeros((20, 20))
    snr[5, 5], snr[5, 8], snr[15, 15] = 10.0, 6.0, 4.0
    points = find_model_components(_alone(snr), 0, np.ones_like(snr, bool), 1.0, 3.0, radius=4.0)
    assert [tuple(p) for p in points] == [(5, 5), (15, 15)]


def test_model_component_joins_a_nearby_spike():
    spike = np.zeros((20, 20))
    spike[5, 5] = 8.0
    model = np.zeros((20, 20))
    model[6, 5] = 20.0
    model[15, 15] = 5.0
    points, how = find_candidates(spike, _alone(model), 0, np.ones_like(spike, bool), 1.0,
                                  threshold=5.0, model_threshold=3.0, radius=3.0)
    assert [tuple(p) for p in points] == [(5, 5), (15, 15)]
    assert list(how) == ["spike+model", "model"]


def test_link_keeps_the_stronger_of_adjacent_channels():
    channel = np.array([3, 4, 4, 6])
    y = np.array([10, 11, 30, 10])
    x = np.array([10, 10, 30, 10])
    strength = np.array([5.0, 9.0, 6.0, 8.0])
    keep = link_channels(channel, y, x, strength, 4.0)
    assert list(keep) == [False, True, True, True]
    assert link_channels(channel[:0], y[:0], x[:0], strength[:0], 4.0).shape == (0,)


def test_reliability_from_negative_spikes():
    strength = np.array([5.0, 5.5, 6.0, 20.0])
    negative = np.array([5.2, 5.8])
    np.testing.assert_allclose(spike_reliability(strength, negative),
                               [1 - 2 / 4, 1 - 1 / 3, 1.0, 1.0])
    assert spike_reliability(strength, np.zeros(0)).tolist() == [1.0] * 4


def test_near_any_needs_space_and_adjacent_channel():
    hit = near_any(np.array([5, 5, 9]), np.array([10, 40, 10]), np.array([10, 40, 10]),
                   np.array([4]), np.array([11]), np.array([10]), 3.0)
    assert hit.tolist() == [True, False, False]


def test_spikes_are_the_peaks_of_scipys_groups_in_its_order():
    """Labelling only the rows that hold pixels above threshold finds the groups, and
    numbers them, as `scipy.ndimage.label` does on the whole plane."""
    from scipy import ndimage

    rng = np.random.default_rng(7)
    snr = rng.normal(0, 1.6, (300, 200))
    snr[40:43, 10:190] = 6.0  # a long group over three rows
    snr[299, 0], snr[0, 199] = 9.0, 8.0  # at the plane's corners
    valid = rng.random(snr.shape) > 0.01
    for negative in (False, True):
        above = valid & ((snr <= -5) if negative else (snr >= 5))
        labels, count = ndimage.label(above, structure=np.ones((3, 3), bool))
        expected = [ndimage.minimum_position(snr, labels, k) if negative
                    else ndimage.maximum_position(snr, labels, k) for k in range(1, count + 1)]
        found = [tuple(p) for p in find_spikes(snr, valid, 5.0, negative=negative)]
        assert count > 10 and found == expected


def test_a_model_component_at_the_edge_or_beside_nan_is_a_local_maximum():
    snr = np.zeros((12, 12))
    snr[0, 0], snr[11, 6], snr[6, 6] = 9.0, 8.0, 7.0
    snr[6, 7] = np.nan
    snr[11, 5] = 8.5  # brighter neighbour: (11, 6) is not a maximum
    points = find_model_components(_alone(snr), 0, np.ones_like(snr, bool), 1.0, 3.0,
                                   radius=1.0)
    assert [tuple(p) for p in points] == [(0, 0), (11, 5), (6, 6)]


def test_model_components_are_those_of_the_whole_plane_excess():
    """Computing the excess only where the model minus its adjacent channels reaches the
    threshold finds what thresholding the whole excess plane finds, in its order."""
    from scipy import ndimage

    rng = np.random.default_rng(11)
    model = rng.normal(0, 1.0, (3, 60, 50)).astype(np.float32)
    model[:, 20:23, 30:33] += 4.0  # a component in every channel: no excess
    model[1, 40, 10] += 9.0
    model[1, 0, 49] += 6.0  # at a corner: beyond the plane counts as 0
    valid = rng.random((60, 50)) > 0.05
    rms = np.float64(0.45)
    beside = np.maximum(*(ndimage.maximum_filter(model[n], 3, mode="constant") for n in (0, 2)))
    snr = np.subtract(model[1], beside, dtype=np.float32)
    snr /= rms
    ys, xs = np.nonzero(valid & (snr >= 3.0))
    peak = [all(not snr[y, x] < snr[v, u] for v in range(max(0, y - 1), min(60, y + 2))
                for u in range(max(0, x - 1), min(50, x + 2))) for y, x in zip(ys, xs)]
    ys, xs = ys[peak], xs[peak]
    order = np.argsort(-snr[ys, xs], kind="stable")
    expected = [(int(y), int(x)) for y, x in zip(ys[order], xs[order])]
    found = find_model_components(model, 1, valid, rms, 3.0, radius=0.5)
    assert len(expected) > 5 and [tuple(p) for p in found] == expected
