"""The data test: what the model adds to the image beyond what the data demand.

The dirty image, ``residual + psf (*) model``, is what the visibilities demand; the
restored image is ``beam (*) model + residual``. Their difference,
``image - dirty = (beam - psf) (*) model``, holds no residual noise at all: it is what
the model adds to the image beyond the data. Its one-channel contrast at a candidate,
minus the same on a ring around it (so that broad emission and flux-scale differences
cancel), is the candidate's unsupported excess. The catalog (`data_test`), the null
(`NullSample`), the figures and the repair's check all take it from here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .features import Imprint, contrast_at, disk, neighbour_contrast, ring_offsets
from .noise import robust_rms

__all__ = ["Imprints", "unsupported", "unsupported_at", "unsupported_contrast", "data_test",
           "NullSample", "map_window", "map_half", "contrast_map"]


def data_test(chan: np.ndarray, ys: np.ndarray, xs: np.ndarray, *, image: np.ndarray,
              residual: np.ndarray, imprint: Imprints, rms: np.ndarray,
              spike_rms: np.ndarray, beam: np.ndarray, ring_beams: float,
              skip: frozenset = frozenset(), shape: bool = True) -> dict[str, np.ndarray]:
    """Compare the restored image with the dirty image at each candidate.

    Parameters
    ----------
    chan, ys, xs, image, residual
        As in `deconfetti.measure.measure_candidates`.
    imprint : Imprints
        ``psf (*) model`` of the block's channels (at least the candidates' and their
        neighbours').
    rms, spike_rms : ndarray, shape (nread,)
        Channel rms and spike noise, Jy/beam.
    beam : ndarray, shape (nread, 3)
        Restoring beam per channel: major and minor FWHM (pixels), PA (deg).
    ring_beams : float
        Radius of the background ring, beam major FWHM.
    skip : frozenset of int
        Block channels left out of every channel contrast (diverged ones).
    shape : bool
        Measure the feature's shape too (``spike_peak_snr``, ``excess_extent``; NaN
        without: the null needs neither).

    Returns
    -------
    dict of ndarray, shape (n,)
        ``dirty_snr``: one-channel contrast of the dirty image at the candidate, in
        spike_rms;
        ``spike_peak_snr``: the largest image spike within one beam FWHM of the candidate
        (``spike_snr`` there), in spike_rms;
        ``excess_extent``: the fraction of 16 directions in which the excess one beam FWHM
        out is still at least half of the candidate's;
        ``unsupported_snr``: unsupported excess, rms: the contrast of ``image - dirty`` at the
        candidate, or that minus its median on the ring, whichever is smaller.
        In a one-plane product (no adjacent channels), everything is taken against the
        ring instead: ``unsupported_snr`` is ``image - dirty`` minus its ring median, and
        ``spike_snr`` (also returned) and ``dirty_snr`` are the image and the dirty image
        minus theirs.

    Notes
    -----
    Both views must show the excess. At the peak alone, broad unsupported structure
    (flux-scale or mask-change differences of extended emission) would count; above the
    ring alone, a point source cleaned into one pixel would count, since there
    ``image - dirty`` is 0 at its peak but ``-psf`` on the ring, which is negative on a
    psf with a positive pedestal. Confetti shows the excess in both.
    """
    ny, nx = image.shape[1:]
    points = []
    for c, y, x in zip(chan, ys, xs):
        ring = ring_offsets(ring_beams * beam[c, 0]) + (y, x)
        ring = ring[(ring[:, 0] >= 0) & (ring[:, 0] < ny) & (ring[:, 1] >= 0) & (ring[:, 1] < nx)]
        points.append(np.vstack([[y, x], ring]))
    sizes = np.array([len(p) for p in points], dtype=int)
    owner = np.repeat(np.arange(len(chan)), sizes)
    py, px = np.concatenate(points).T if points else (np.empty(0, int), np.empty(0, int))
    pc = np.asarray(chan)[owner]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
    local = unsupported_contrast(pc, py, px, skip, image=image, residual=residual,
                                 imprint=imprint)
    centre = local[starts] if len(starts) else np.empty(0)
    background = np.array([_finite_median(local[s + 1:s + n]) for s, n in zip(starts, sizes)])
    cube = len(image) > 1
    # the excess of a value of the contrast: against the ring too in a cube, against the
    # ring alone in one plane (no adjacent channel takes the steady emission away)
    measured = ((lambda v, b: np.minimum(v, v - b)) if cube else (lambda v, b: v - b))
    excess = measured(centre, background)
    if cube:
        level = np.zeros(len(chan))
        spike = contrast_at(image, chan, ys, xs, skip)
        out = {"dirty_snr": (spike - centre) / spike_rms[chan]}
    else:  # the ring takes the steady emission off the image too
        values = image[pc, py, px]
        level = np.array([_finite_median(values[s + 1:s + n]) for s, n in zip(starts, sizes)])
        spike = values[starts] - level
        out = {"dirty_snr": (spike - excess) / spike_rms[chan],
               "spike_snr": spike / spike_rms[chan]}
    out["unsupported_snr"] = excess / rms[chan]
    unmeasured = np.full(len(chan), np.nan)
    out["spike_peak_snr"] = (_spike_peak(image, chan, ys, xs, beam[chan, 0], skip, level)
                             / spike_rms[chan] if shape else unmeasured)
    out["excess_extent"] = (_extent(chan, ys, xs, beam, skip, measured, excess, background,
                                    image=image, residual=residual, imprint=imprint)
                            if shape else unmeasured)
    return out


def _extent(chan: np.ndarray, ys: np.ndarray, xs: np.ndarray, beam: np.ndarray,
            skip: frozenset, measured: Any, excess: np.ndarray, background: np.ndarray,
            **planes: Any) -> np.ndarray:
    """The fraction of 16 directions in which the unsupported excess one beam FWHM from
    each candidate (``measured`` against its ``background`` as at the candidate) is still
    at least half of its ``excess`` (NaN where it has none)."""
    ny, nx = planes["image"].shape[1:]
    out = np.full(len(chan), np.nan)
    for i, (c, y, x) in enumerate(zip(chan, ys, xs)):
        if not excess[i] > 0:
            continue
        ring = ring_offsets(beam[c, 0]) + (y, x)
        ring = ring[(ring[:, 0] >= 0) & (ring[:, 0] < ny) & (ring[:, 1] >= 0) & (ring[:, 1] < nx)]
        values = unsupported_contrast(np.full(len(ring), c), ring[:, 0], ring[:, 1], skip,
                                      **planes)
        out[i] = float(np.mean(measured(values, background[i]) >= 0.5 * excess[i]))
    return out


def _spike_peak(image: np.ndarray, chan: np.ndarray, ys: np.ndarray, xs: np.ndarray,
                radius: np.ndarray, skip: frozenset, level: np.ndarray) -> np.ndarray:
    """The largest image spike (one-channel contrast, less ``level``) within ``radius``
    pixels of each candidate, Jy/beam (NaN where no pixel there is finite)."""
    ny, nx = image.shape[1:]
    out = np.full(len(chan), np.nan)
    for i, (c, y, x, r) in enumerate(zip(chan, ys, xs, radius)):
        footprint = disk(r)
        half = footprint.shape[0] // 2
        dy, dx = np.nonzero(footprint)
        dy, dx = dy + (y - half), dx + (x - half)
        inside = (dy >= 0) & (dy < ny) & (dx >= 0) & (dx < nx)
        values = contrast_at(image, np.full(np.count_nonzero(inside), c), dy[inside],
                             dx[inside], skip) - level[i]
        values = values[np.isfinite(values)]
        if values.size:
            out[i] = values.max()
    return out


def map_window(y: int, x: int, beam_major: float, shape: tuple[int, int],
               half: int | None = None) -> tuple[slice, slice]:
    """The window of a candidate's maps (the figures' and the kept data test's): ``half``
    pixels each side (default 3 beam FWHM, at least 12), cut at the plane's edges."""
    if half is None:
        half = map_half(beam_major)
    return (slice(max(0, y - half), min(shape[0], y + half + 1)),
            slice(max(0, x - half), min(shape[1], x + half + 1)))


def map_half(beam_major: float) -> int:
    """Half size (pixels) of a candidate's map window: 3 beam FWHM, at least 12."""
    return max(12, int(round(3 * beam_major)))


def contrast_map(chan: int, window: tuple[slice, slice], skip: frozenset,
                 **planes: Any) -> np.ndarray:
    """`unsupported_contrast` at every pixel of ``window`` in block channel ``chan``,
    Jy/beam, as float32 ``(h, w)``: the data test's map around a candidate."""
    gy, gx = np.mgrid[window[0], window[1]]
    values = unsupported_contrast(np.full(gy.size, chan), gy.ravel(), gx.ravel(), skip,
                                  **planes)
    return values.reshape(gy.shape).astype(np.float32)


class Imprints(dict):
    """The `Imprint` (psf (*) model) of each channel of a block, made when first asked
    for and kept, so that the catalog's test and the null share one convolution.

    ``model`` and ``psf`` are indexed by block channel: arrays ``(nread, ny, nx)`` or
    mappings of channel -> whole plane (model in Jy/pixel, NaN as 0; psf peak 1); a psf
    plane is asked for only where no imprint is taken over. ``first`` is the cube channel
    of block channel 0. ``previous`` holds imprints by cube channel (`handover` of the
    block before, in a run): those of this block's channels are taken over, not made
    again. ``demand`` is passed to each `Imprint`.
    """

    def __init__(self, model: Any, psf: Any, *, first: int = 0,
                 previous: dict[int, Imprint] | None = None, demand: int = 4096):
        super().__init__()
        self._model, self._psf, self.first, self._demand = model, psf, first, demand
        for chan, imprint in (previous or {}).items():
            if 0 <= chan - first < len(model):
                self[chan - first] = imprint

    def handover(self, since: int) -> dict[int, Imprint]:
        """The imprints made of cube channels ``since`` and later, by cube channel (they
        hold no view of the block's arrays)."""
        return {self.first + c: imprint for c, imprint in self.items()
                if self.first + c >= since}

    def __missing__(self, chan: int) -> Imprint:
        self[chan] = Imprint(self._model[chan], self._psf[int(chan)], self._demand)
        return self[chan]


def unsupported(image: np.ndarray, residual: np.ndarray, imprint: Imprint,
                ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """``image - dirty = image - residual - psf (*) model`` at the pixels ``(ys, xs)`` of
    one channel, Jy/beam: what the model adds to the image beyond what the data demand.

    ``image`` and ``residual`` are the values at those pixels (any shape that broadcasts
    with ``ys``); ``imprint`` is the channel's ``psf (*) model`` over whole planes, so that
    every component's sidelobes count, in the catalog's data test and the figures alike.
    """
    return image - residual - imprint.at(np.ravel(ys), np.ravel(xs)).reshape(np.shape(ys))


def unsupported_at(chan: int, ys: np.ndarray, xs: np.ndarray, *, image: Any,
                   residual: Any, imprint: Imprints) -> np.ndarray:
    """`unsupported` at the pixels ``(ys, xs)`` of block channel ``chan`` (as in
    `data_test`)."""
    return unsupported(image[chan][ys, xs], residual[chan][ys, xs], imprint[int(chan)], ys, xs)


def unsupported_contrast(chan: np.ndarray, ys: np.ndarray, xs: np.ndarray, skip: frozenset,
                          **planes: Any) -> np.ndarray:
    """One-channel contrast of ``image - dirty`` at ``(chan, y, x)`` points: its value
    minus the mean of the adjacent channels' (left out: a side without a channel, or one
    in ``skip``)."""
    nread = len(planes["image"])
    unsupported = {}
    for step in (-1, 0, 1):
        cc = chan + step
        ok = (cc >= 0) & (cc < nread)
        if step:
            ok &= ~np.isin(cc, list(skip))
        values = np.full(len(chan), np.nan)
        for c in np.unique(cc[ok]):
            sel = ok & (cc == c)
            values[sel] = unsupported_at(int(c), ys[sel], xs[sel], **planes)
        unsupported[step] = values
    sides = [unsupported[-1], unsupported[1]]
    return neighbour_contrast(unsupported[0], sides, [np.isfinite(s) for s in sides])


class NullSample:
    """Pixels drawn at random from each channel's valid pixels, where nothing is singled
    out: the data test's statistic evaluated there is its null distribution.

    The draw is seeded by the cube channel (``first + chan``), so it does not depend on
    how the cube was cut into blocks.

    Parameters
    ----------
    image, residual, imprint
        As in `data_test`; ``imprint`` must reach every channel asked about and its
        neighbours.
    valid : ndarray of bool, shape (nread, ny, nx)
        Pixels that may be drawn.
    samples : int
        Pixels per channel.
    first : int
        Cube channel of the block's first read channel.
    beam : ndarray, shape (nread, 3)
        Restoring beam per channel, as in `data_test`.
    ring_beams : float
        Radius of the data test's ring, beam major FWHM (one-plane products).
    """

    def __init__(self, *, image: np.ndarray, residual: np.ndarray, imprint: Imprints,
                 valid: np.ndarray, samples: int, first: int, beam: np.ndarray,
                 ring_beams: float):
        self._planes = dict(image=image, residual=residual, imprint=imprint)
        self._valid, self._samples, self._first = valid, samples, first
        self._beam, self._ring_beams = beam, ring_beams
        self._pixels: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._values: dict[tuple[int, int], np.ndarray] = {}

    def pixels(self, chan: int) -> tuple[np.ndarray, np.ndarray]:
        """The drawn pixels ``(ys, xs)`` of block channel ``chan``."""
        if chan not in self._pixels:
            self._pixels[chan] = _draw_valid(self._valid[chan], self._samples,
                                             np.random.default_rng(self._first + chan))
        return self._pixels[chan]

    def fraction(self, chan: int) -> float:
        """Robust rms of ``image - dirty`` over that of the dirty image (the data) in
        ``chan``: how much of the channel's image the data do not demand (above 1 where
        the image is mostly the model's own, as after a diverged clean); NaN without
        valid pixels."""
        ys, xs = self.pixels(chan)
        if not len(ys):
            return float("nan")
        values = self._unsupported(chan, chan)
        dirty = _spread(self._planes["image"][chan, ys, xs] - values)
        return _spread(values) / dirty if dirty > 0 else float("nan")

    def spread(self, chan: int, skip: frozenset = frozenset()) -> float:
        """Robust rms (Jy/beam), at the pixels drawn for ``chan``, of what the data test
        measures at a candidate: the one-channel contrast of ``image - dirty`` (the
        neighbours in ``skip`` left out), or in a one-plane product ``image - dirty``
        minus its ring median. How far the test strays by itself there: sidelobes of
        bright emission elsewhere make it large everywhere; a fake source stands out."""
        ys, xs = self.pixels(chan)
        if not len(ys):
            return float("nan")
        nread = len(self._planes["image"])
        if nread == 1:  # the one-plane test itself, against its ring (Jy/beam: rms of 1)
            ones = np.ones(nread)
            return _spread(data_test(np.zeros(len(ys), int), ys, xs, **self._planes,
                                     rms=ones, spike_rms=ones, beam=self._beam,
                                     ring_beams=self._ring_beams, shape=False)["unsupported_snr"])
        sides = [self._unsupported(n, chan) for n in (chan - 1, chan + 1)
                 if 0 <= n < nread and n not in skip]
        return _spread(neighbour_contrast(self._unsupported(chan, chan), sides))

    def _unsupported(self, chan: int, at: int) -> np.ndarray:
        """``image - dirty`` in block channel ``chan`` at the pixels drawn for ``at``.

        Computed once per channel at the pixels of the channel and of its neighbours
        together."""
        if (chan, at) not in self._values:
            near = [n for n in (chan - 1, chan, chan + 1) if 0 <= n < len(self._valid)]
            pixels = [self.pixels(n) for n in near]
            values = unsupported_at(chan, np.concatenate([p[0] for p in pixels]),
                                    np.concatenate([p[1] for p in pixels]), **self._planes)
            ends = np.cumsum([len(p[0]) for p in pixels])[:-1]
            for n, part in zip(near, np.split(values, ends)):
                self._values[chan, n] = part
        return self._values[chan, at]


def _spread(values: np.ndarray) -> float:
    """Robust rms, unclipped: the null's tails are part of what it measures."""
    return robust_rms(values, clip=np.inf)


def _finite_median(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else 0.0


def _draw_valid(valid: np.ndarray, samples: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(ys, xs)`` of ``samples`` pixels drawn without replacement from the True pixels
    of ``valid``, in raster order: the draw of ``rng.choice(np.flatnonzero(valid), ...)``
    (the same indices), placed by the rows' counts, so that no index of every valid
    pixel of the plane is made."""
    counts = np.count_nonzero(valid, axis=1)
    ends = np.cumsum(counts)
    total = int(ends[-1]) if len(ends) else 0
    order = np.sort(rng.choice(total, min(samples, total), replace=False))
    rows = np.searchsorted(ends, order, side="right")
    used, inverse = np.unique(rows, return_inverse=True)
    starts = np.cumsum(counts[used]) - counts[used]
    flat = np.flatnonzero(valid[used])[starts[inverse] + order - (ends[rows] - counts[rows])]
    return rows, flat % valid.shape[1]
