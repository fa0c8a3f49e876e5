"""Find candidates in one channel block and link them across channels.

Two kinds of feature start a candidate:
- a one-channel image spike: image minus the mean of the adjacent channels, in units
  of the channel rms, above ``threshold``; each connected group of such pixels is one
  candidate at its peak;
- a bright compact model component that the adjacent channels do not have: the model
  minus the brightest model pixel within 3x3 pixels of the adjacent channels, in rms
  (a single model pixel of flux S Jy restores to a point of S Jy/beam), above
  ``model_threshold``, at local maxima.
Model components within ``radius`` of a spike belong to that spike's candidate.

Negative spikes are found the same way; they are not candidates but a model of the
noise (SoFiA-2's reliability idea): a positive spike is only as reliable as negative
spikes of the same strength are rare.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from .features import model_excess, model_excess_bound

__all__ = ["find_spikes", "find_model_components", "find_candidates", "link_channels",
           "false_alarm",
           "spike_reliability", "near_any"]

_EIGHT = np.ones((3, 3), dtype=bool)


def find_spikes(spike_snr: np.ndarray, valid: np.ndarray, threshold: float, *,
                negative: bool = False) -> np.ndarray:
    """Peaks of connected pixel groups with ``spike_snr >= threshold`` (with
    ``negative``: dips, ``spike_snr <= -threshold``, at their minimum).

    Parameters
    ----------
    spike_snr : ndarray, shape (ny, nx)
        Image spike of one channel, in rms.
    valid : ndarray of bool, shape (ny, nx)
    threshold : float
        In rms.

    Returns
    -------
    ndarray of int, shape (n, 2)
        ``(y, x)`` of each group's peak.
    """
    with np.errstate(invalid="ignore"):  # NaN compares False
        above = valid & ((spike_snr <= -threshold) if negative else (spike_snr >= threshold))
    group, index = _label_sparse(above)
    if not len(index):
        return np.empty((0, 2), dtype=int)
    # the brightest pixel of each group: sort the (few) pixels above threshold
    values = spike_snr.ravel()[index]
    order = np.lexsort((values if negative else -values, group))
    first = order[np.r_[True, group[order][1:] != group[order][:-1]]]
    return np.column_stack(np.unravel_index(index[first], spike_snr.shape)).astype(int)


def _label_sparse(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8-connected groups of a sparse boolean plane: ``(group, index)``, the group number
    (from 1, in raster order of each group's first pixel, as `scipy.ndimage.label`
    numbers them) and the flat index of every True pixel. Only the runs of rows that
    hold a True pixel are labelled (groups cannot cross an empty row)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if not len(rows):
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    breaks = np.flatnonzero(np.diff(rows) > 1)
    groups, indices, count = [], [], 0
    for first, last in zip(np.r_[rows[0], rows[breaks + 1]], np.r_[rows[breaks], rows[-1]]):
        labels, found = ndimage.label(mask[first:last + 1], structure=_EIGHT)
        index = np.flatnonzero(labels)
        groups.append(labels.ravel()[index] + count)
        indices.append(index + first * mask.shape[1])
        count += found
    return np.concatenate(groups), np.concatenate(indices)


def find_model_components(model: np.ndarray, chan: int, valid: np.ndarray, rms: float,
                          threshold: float, radius: float) -> np.ndarray:
    """Local maxima of the model excess (`deconfetti.features.model_excess`) of block
    channel ``chan``, in ``rms``, at or above ``threshold``; at most one within
    ``radius`` pixels.

    Parameters
    ----------
    model : ndarray, shape (nread, ny, nx)
        Model block, Jy/pixel.
    valid : ndarray of bool, shape (ny, nx)
    rms : float
        Noise of the channel, Jy/beam (a model pixel of S Jy restores to S Jy/beam).

    Returns
    -------
    ndarray of int, shape (n, 2)
        ``(y, x)``, brightest first.
    """
    def excess(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        snr = model_excess(model, chan, ys, xs)
        snr /= np.float64(rms)
        return snr

    # the excess is computed only where its bound reaches the threshold, and beside there
    with np.errstate(invalid="ignore"):
        bound = model_excess_bound(model, chan)
        bound /= np.float64(rms)
        # a flat index: np.nonzero of a 2-D plane takes 10x as long
        ys, xs = np.unravel_index(np.flatnonzero(valid & (bound >= threshold)), bound.shape)
        del bound
        centre = excess(ys, xs)
        keep = centre >= threshold
    ys, xs, centre = ys[keep], xs[keep], centre[keep]
    ny, nx = valid.shape
    peak = np.ones(len(ys), dtype=bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:  # a neighbour outside the plane or NaN does not count
                yy, xx = ys + dy, xs + dx
                inside = (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
                beside = np.full(len(ys), -np.inf, dtype=np.float32)
                beside[inside] = excess(yy[inside], xx[inside])
                peak &= ~(centre < beside)  # NaN beside compares False
    order = np.argsort(-centre[peak], kind="stable")
    points = np.column_stack([ys[peak][order], xs[peak][order]])
    return _suppress(points, radius)


def find_candidates(spike_snr: np.ndarray, model: np.ndarray, chan: int, valid: np.ndarray,
                    rms: float, *, threshold: float, model_threshold: float, radius: float,
                    spikes: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Candidates of block channel ``chan``: spikes of ``spike_snr`` (that channel's,
    in spike rms), plus model components (`find_model_components` of the model block,
    in ``rms``) not within ``radius`` of a spike.

    Returns
    -------
    points : ndarray of int, shape (n, 2)
        ``(y, x)``.
    found_by : ndarray of str, shape (n,)
        'spike', 'spike+model' or 'model'.
    """
    peaks = find_spikes(spike_snr, valid, threshold) if spikes else np.empty((0, 2), int)
    components = find_model_components(model, chan, valid, rms, model_threshold, radius)
    found_by = np.full(len(peaks), "spike", dtype=object)
    if len(peaks) and len(components):
        near = cKDTree(peaks).query(components, distance_upper_bound=radius)[0] <= radius
        owner = cKDTree(peaks).query(components[near])[1]
        found_by[np.unique(owner)] = "spike+model"
        components = components[~near]
    points = np.concatenate([peaks, components]).astype(int).reshape(-1, 2)
    found_by = np.concatenate([found_by, np.full(len(components), "model", dtype=object)])
    return points, found_by.astype(str)


def link_channels(channel: np.ndarray, y: np.ndarray, x: np.ndarray, strength: np.ndarray,
                  radius: np.ndarray | float) -> np.ndarray:
    """Keep one candidate per feature spanning adjacent channels.

    A candidate is dropped when a candidate in the channel before or after lies within
    ``radius`` pixels and has a larger ``strength`` (the image spike, rms).

    Returns
    -------
    ndarray of bool, shape (n,)
        True for the candidates kept.
    """
    n = len(channel)
    keep = np.ones(n, dtype=bool)
    if n == 0:
        return keep
    radius = np.broadcast_to(np.asarray(radius, dtype=float), (n,))
    tree = cKDTree(np.column_stack([y, x]).astype(float))
    for i, j in tree.query_pairs(float(np.max(radius))):
        if abs(int(channel[i]) - int(channel[j])) != 1:
            continue
        if np.hypot(y[i] - y[j], x[i] - x[j]) > max(radius[i], radius[j]):
            continue
        weaker = i if strength[i] < strength[j] else j
        keep[weaker] = False
    return keep


def near_any(channel: np.ndarray, y: np.ndarray, x: np.ndarray, other_channel: np.ndarray,
             other_y: np.ndarray, other_x: np.ndarray, radius: float) -> np.ndarray:
    """True where a point of ``other`` lies within ``radius`` pixels and one channel."""
    out = np.zeros(len(channel), dtype=bool)
    if len(channel) == 0 or len(other_channel) == 0:
        return out
    tree = cKDTree(np.column_stack([other_y, other_x]).astype(float))
    for i, hits in enumerate(tree.query_ball_point(np.column_stack([y, x]).astype(float),
                                                   radius)):
        out[i] = any(abs(int(other_channel[j]) - int(channel[i])) <= 1 for j in hits)
    return out


def spike_reliability(strength: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """Fraction of the spikes at least as strong as each one that noise does not explain.

    Parameters
    ----------
    strength : ndarray, shape (n,)
        Positive spikes (rms).
    negative : ndarray, shape (m,)
        Strengths (positive numbers, rms) of the negative spikes of the same cube.

    Returns
    -------
    ndarray, shape (n,)
        ``1 - N(negative >= s) / N(positive >= s)``, clipped to [0, 1].
    """
    strength = np.asarray(strength, dtype=float)
    positives = np.sort(strength)
    negatives = np.sort(np.asarray(negative, dtype=float))
    n_pos = len(positives) - np.searchsorted(positives, strength, side="left")
    n_neg = len(negatives) - np.searchsorted(negatives, strength, side="left")
    return np.clip(1.0 - n_neg / np.maximum(n_pos, 1), 0.0, 1.0)


def false_alarm(unsupported_snr: np.ndarray, null_spread: np.ndarray, beams: float) -> np.ndarray:
    """Expected number of pixels, one per beam of the cube, whose unsupported excess
    reaches ``unsupported_snr`` by chance.

    Parameters
    ----------
    unsupported_snr, null_spread : ndarray, shape (n,)
        The unsupported excess and the robust rms of the same statistic at random pixels
        of the candidate's channel, both in rms.
    beams : float
        Independent beams in the cube (pixels over pixels per beam, all channels).

    Returns
    -------
    ndarray, shape (n,)
        ``beams * Q(unsupported_snr / null_spread)``, Q the Gaussian upper tail; 0 where the
        statistic does not vary at all, NaN where either is NaN.
    """
    from scipy.special import ndtr

    unsupported_snr = np.asarray(unsupported_snr, dtype=float)
    spread = np.asarray(null_spread, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(spread > 0, unsupported_snr / spread,
                     np.where(unsupported_snr > 0, np.inf, -np.inf))
    out = beams * ndtr(-z)
    return np.where(np.isfinite(unsupported_snr) & np.isfinite(spread), out, np.nan)


def _suppress(points: np.ndarray, radius: float) -> np.ndarray:
    """Greedy non-maximum suppression of ``points`` sorted brightest first."""
    if len(points) < 2:
        return points.reshape(-1, 2)
    tree = cKDTree(points)
    kept = np.ones(len(points), dtype=bool)
    for i in range(len(points)):
        if not kept[i]:
            continue
        for j in tree.query_ball_point(points[i], radius):
            if j > i:
                kept[j] = False
    return points[kept]
