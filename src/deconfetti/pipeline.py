"""The scan pipeline, its stages in order, streamed over channel blocks:

1. products (`deconfetti.io.products`): open and check one tclean run;
2. noise (`noise`): the thermal noise of each channel and of its one-channel spike;
3. find (`candidates`): image spikes and one-channel model components;
4. measure (`measure`): the image, model and residual at each candidate;
5. data test (`datatest`): image - dirty at each candidate, against its channel's null;
6. link (`candidates.link_channels`): one candidate per feature across channels;
7. reliability and false alarms (`candidates`): against negative spikes and the null;
8. classify (`classify`): confetti, benign, real, noise, diverged or uncertain;
9. catalog (`catalog`) and summary.

`scan` runs every stage; `scan_block` is stages 2-5 on one channel block (what a parallel
or distributed run maps over), a pure function of the products and the block, whose planes
and thermal noise `read_block` reads and measures (one block ahead of the scan, in a
reader thread).
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from astropy.table import Table

from .candidates import (false_alarm, find_candidates, find_spikes, link_channels, near_any,
                         spike_reliability)
from .catalog import COLUMNS, empty_catalog, make_catalog
from .classify import CLASSES, classify, diverged, mark_unconverged, unconverged
from .config import Config
from .errors import DeconfettiWarning, InputError
from .features import fft_threads, spectral_contrast, zero_nan
from .datatest import Imprints, NullSample, contrast_map, data_test, map_half, map_window
from .measure import measure_candidates
from .noise import channel_rms, highpass_fraction, spike_rms
from .io.products import HALO_CACHE, Products, open_products
from .tables import utc_now, versions
from .stream import (Block, BlockResult, choose_block_channels, choose_workers, plan_blocks,
                     run_blocks, tune_malloc)

__all__ = ["scan", "scan_block", "read_block", "ScanResult"]

log = logging.getLogger(__name__)

_MEASURED = [name for name in COLUMNS if name not in
             ("id", "ra", "dec", "frequency", "velocity", "classification", "reason",
              "reliability", "false_alarm")]
_NEGATIVE = ("channel", "y", "x", "strength")


@dataclass
class ScanResult:
    """What a scan found.

    Attributes
    ----------
    candidates : astropy.table.Table
        One row per candidate; columns documented in `deconfetti.catalog.COLUMNS`.
    summary : dict
        Counts per class and per channel, noise per channel, parameters, software
        versions and input paths (JSON-ready).
    products : Products
    config : Config
    rms : ndarray, shape (nchan,)
        Thermal noise per channel, Jy/beam.
    peak : ndarray, shape (ny, nx)
        Peak intensity over channels (moment 8) of the image, Jy/beam.
    contrast : dict
        The data test's map around each candidate, by ``(channel, y, x)``: the one-channel
        contrast of image - dirty (Jy/beam) on its figures' window
        (`deconfetti.datatest.map_window`); empty without a psf, or read back from a
        folder.
    """

    candidates: Table
    summary: dict[str, Any]
    products: Products
    config: Config
    rms: np.ndarray = field(repr=False)
    peak: np.ndarray = field(repr=False)
    contrast: dict[tuple[int, int, int], np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def counts(self) -> dict[str, int]:
        """Number of candidates per classification."""
        return dict(self.summary["counts"])

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {name}" for name, n in self.counts.items() if n) or "none"
        diverged = self.summary.get("diverged_channels") or []
        stalled = self.summary.get("unconverged_channels") or []
        return (f"<ScanResult {self.products.name}: {self.products.nchan} channel(s), "
                f"{len(self.candidates)} candidate(s): {counts}"
                + (f"; diverged channels {diverged}" if diverged else "")
                + (f"; unconverged channels {stalled}" if stalled else "") + ">")

    def _repr_html_(self) -> str:
        """A short summary for notebooks: counts by class with their meaning, the
        channels that diverged and the first confetti."""
        from html import escape

        nchan, ny, nx = self.products.shape
        rows = "".join(f"<tr><td>{name}</td><td>{self.counts[name]}</td>"
                       f"<td>{escape(meaning)}</td></tr>"
                       for name, (_, meaning) in CLASSES.items())
        diverged = self.summary.get("diverged_channels") or []
        stalled = self.summary.get("unconverged_channels") or []
        confetti = self.candidates[self.candidates["classification"] == "confetti"][:5]
        first = "".join(f"<li>#{r['id']}: channel {r['channel']}, x={r['x']} y={r['y']}, "
                        f"{r['unsupported_snr']:.1f} rms unsupported</li>" for r in confetti)
        return (f"<p><b>{escape(str(self.products.name))}</b>: {nchan} channel(s) of "
                f"{nx} x {ny} pixels, {len(self.candidates)} candidate(s)"
                + ("" if self.products.psf else " (no psf: data test skipped)") + "</p>"
                f"<table><tr><th>class</th><th>n</th><th>meaning</th></tr>{rows}</table>"
                + (f"<p>diverged channels: {', '.join(map(str, diverged))}</p>"
                   if diverged else "")
                + (f"<p>unconverged channels: {', '.join(map(str, stalled))}</p>"
                   if stalled else "")
                + (f"<p>first confetti:</p><ul>{first}</ul>" if first else ""))


def scan(products: "Products | str", *, config: Config | None = None,
         progress: Callable[[int, int], None] | None = None, store: Any = None,
         client: Any = None, **params: Any) -> ScanResult:
    """Scan the products of one tclean run for confetti.

    Parameters
    ----------
    products : Products or str or Path
        Anything `open_products` accepts (an imagename prefix, a product path, Products).
    config : Config, optional
        Parameters; defaults from `deconfetti.config`.
    progress : callable, optional
        Called as ``progress(blocks_done, blocks_total)`` after each channel block.
    store : optional
        Keeps finished blocks (``load(block)``, ``save(block, result)``), e.g. a
        `deconfetti.checkpoint.BlockStore`, so that an interrupted scan resumes.
    client : dask.distributed.Client, optional
        Run the blocks on this cluster (the workers reopen the products from their
        paths, which they must see); otherwise ``stream.workers`` threads run them here.
        The result does not depend on how the blocks were run.
    **params
        Single parameters by key name, e.g. ``threshold=6`` (``find.threshold``).

    Returns
    -------
    ScanResult
    """
    tune_malloc()
    products = open_products(products)
    config = _apply_params(config or Config(), params)
    nchan = products.nchan
    log.info("Products: %s, %d channels of %d x %d pixels%s", products.name, nchan,
             products.shape[2], products.shape[1], "" if products.psf else " (no psf)")
    if products.psf is None:
        warnings.warn(f"{products.name}: no psf; the data test is skipped, nothing is called "
                      "confetti or real", DeconfettiWarning, stacklevel=2)

    log.info("Measuring noise: high-pass fraction")
    fraction = _highpass_fraction(products, config)
    workers = config.stream.workers or choose_workers(
        products.shape, memory_mb=config.stream.memory_mb, cores=os.cpu_count() or 1)
    size = config.stream.block_channels or choose_block_channels(
        products.shape, memory_mb=config.stream.memory_mb / (1 if client else workers),
        tile_depth=products.image.tile_depth)
    blocks = plan_blocks(nchan, size)
    log.info("Streaming %d block(s) of up to %d channel(s) with %s", len(blocks), size,
             f"dask client {client}" if client else f"{workers} worker thread(s)")

    rms = np.full(nchan, np.nan)
    unsupported = np.full(nchan, np.nan)
    peak = np.full(products.shape[1:], np.nan, dtype=np.float32)
    parts, negative_parts, maps = [], [], []
    work = functools.partial(scan_block, products, config=config, fraction=fraction)
    if client is not None:
        work = functools.partial(_on_dask_worker, work)
    read = functools.partial(read_block, products, config=config, fraction=fraction)
    for done, (block, result) in enumerate(
            run_blocks(work, blocks, store=store, workers=workers, client=client,
                       tile_depth=products.image.tile_depth, read=read), start=1):
        rms[block.start:block.stop] = result.rms
        unsupported[block.start:block.stop] = result.unsupported
        parts.append(result.columns)
        negative_parts.append(result.negatives)
        maps += result.maps
        if result.peak is not None:
            peak = np.fmax(peak, result.peak)
        if progress is not None:
            progress(done, len(blocks))
    columns = {name: np.concatenate([p[name] for p in parts]) for name in _MEASURED}
    negatives = {name: np.concatenate([p[name] for p in negative_parts]) for name in _NEGATIVE}
    bad = np.flatnonzero(~np.isfinite(rms))
    if bad.size == nchan:
        if not np.isfinite(peak).any():
            raise InputError(f"{products.image.path}: no valid pixel in any channel "
                             "(all NaN or masked)")
        where = (f" or {products.pb.path} below find.pb_min = {config.find.pb_min}"
                 if products.pb is not None else "")
        raise InputError(f"{products.residual.path}: the noise cannot be measured in any "
                         f"channel (too few valid pixels: NaN, masked{where})")
    if bad.size:
        warnings.warn(f"{products.name}: {bad.size} channel(s) have no valid pixels and were "
                      f"skipped (first: {bad[0]})", DeconfettiWarning, stacklevel=2)

    log.info("Linking candidates across channels")
    keep = link_channels(columns["channel"], columns["y"], columns["x"],
                         np.nan_to_num(columns["spike_snr"], nan=-np.inf),
                         products.beam_pixels[columns["channel"], 0])
    columns = {name: values[keep] for name, values in columns.items()}
    contrast = ({(int(c), int(y), int(x)): maps[i] for i, c, y, x in
                 zip(np.flatnonzero(keep), columns["channel"], columns["y"], columns["x"])}
                if maps else {})

    log.info("Reliability of image spikes against %d negative spike(s)",
             len(negatives["channel"]))
    columns["reliability"] = _reliability(columns, negatives, products)

    log.info("False alarms of the data test, diverged channels")
    beams = float(np.sum(np.prod(products.shape[1:]) / products.pixels_per_beam))
    columns["false_alarm"] = false_alarm(columns["unsupported_snr"], columns["null_spread"],
                                         beams)
    failed = diverged(unsupported, config.classify)
    stalled = unconverged(rms, config.classify)
    # beside an unconverged channel the spike map takes its mean: no peak to compare with
    chans = columns["channel"]
    beside = (np.isin(chans - 1, np.flatnonzero(stalled))
              | np.isin(chans + 1, np.flatnonzero(stalled)))
    columns["spike_peak_snr"] = np.where(beside, np.nan, columns["spike_peak_snr"])

    log.info("Classifying %d candidate(s)", len(columns["channel"]))
    columns["classification"], columns["reason"] = classify(
        columns["spike_snr"], columns["spike_rms"] / columns["rms"], columns["image_snr"],
        columns["dirty_snr"], columns["unsupported_snr"],
        columns["false_alarm"], columns["reliability"], columns["found_by"],
        failed[columns["channel"]], columns["component_snr"], columns["spike_peak_snr"],
        columns["excess_extent"], rules=config.classify)
    columns["classification"], columns["reason"] = mark_unconverged(
        columns["classification"], columns["reason"], columns["channel"], stalled, rms)
    meta = {"products": products.name, "inputs": products.paths,
            "parameters": config.to_dict()}
    catalog = (make_catalog(columns, products, meta=meta) if len(columns["channel"])
               else _empty_with_meta(meta))
    summary = summarise(catalog, products, config, rms, unsupported, failed, stalled)
    log.info("Found %s", ", ".join(f"{n} {k}" for k, n in summary["counts"].items()))
    return ScanResult(candidates=catalog, summary=summary, products=products, config=config,
                      rms=rms, peak=peak, contrast=contrast)


def read_block(products: Products, block: Block, kept: dict | None = None, *,
               config: Config, fraction: float) -> dict[str, Any]:
    """The planes a block's scan needs, read from the products (stage 1's reading), and
    their thermal noise (stage 2's `channel_rms`, here so that the reader thread measures
    it while the block before is scanned: that balances the two threads' work):
    ``image``, ``residual`` (Jy/beam) and ``model`` (Jy/pixel, NaN set to 0) over the
    block's read channels, ``valid`` (finite image and residual, pb >= ``find.pb_min``),
    ``pb`` of the core channels (None without a pb), and ``rms`` (Jy/beam) of the core
    channels (NaN in the halo). ``fraction`` is the cube's
    `deconfetti.noise.highpass_fraction`.

    ``kept`` (one dict for a run of consecutive blocks, `deconfetti.stream.run_in_order`)
    holds, from the block before, the valid plane of each channel and whether its model
    held NaN, so that the halo's are not worked out again, and the run's block arrays
    (`deconfetti.io.products.block_array`)."""
    start, stop = block.read_start, block.read_stop
    pools = {} if kept is None else kept.setdefault("arrays", {})
    image, model, residual, pb = (
        products.read(kind, start, stop, pool=pools.setdefault(kind, []))
        if kind != "pb" or products.pb is not None else None
        for kind in ("image", "model", "residual", "pb"))
    before = {} if kept is None else kept.pop("planes", {})
    valid = np.empty(image.shape, dtype=bool)
    planes = {}
    for i, c in enumerate(range(start, stop)):
        if c in before:
            had_nan, valid[i] = planes[c] = before[c]
        else:
            had_nan = bool(np.isnan(model[i]).any())
            np.isfinite(image[i], out=valid[i])
            valid[i] &= np.isfinite(residual[i])
            if pb is not None:
                with np.errstate(invalid="ignore"):
                    valid[i] &= pb[i] >= config.find.pb_min  # NaN compares False
            planes[c] = had_nan, valid[i].copy()  # the scan may change what it is handed
        if had_nan:
            zero_nan(model[i])
    if kept is not None:  # the next block's halo: this block's last channels
        kept["planes"] = {c: planes[c] for c in range(max(start, stop - HALO_CACHE), stop)}
    if pb is not None:
        pb = pb[block.core].copy()  # the halo's pb is not needed again
    core, noise = block.core, config.noise
    rms = np.full(stop - start, np.nan)
    width = noise.highpass_beams * float(np.mean(products.beam_pixels[block.start:block.stop, 0]))
    rms[core] = channel_rms(residual[core], valid[core], width=width, fraction=fraction,
                            clip=noise.clip, max_samples=noise.max_samples)
    return {"image": image, "model": model, "residual": residual, "valid": valid, "pb": pb,
            "rms": rms}


def scan_block(products: Products, block: Block, carry: dict | None = None,
               planes: dict[str, Any] | None = None, *, config: Config,
               fraction: float) -> BlockResult:
    """Noise, candidates and their measurements for one channel block.

    ``carry`` is shared by consecutive blocks of a run (`deconfetti.stream.run_in_order`):
    a block leaves there the imprints (psf (*) model) of its last channels, and the next
    block takes over those of the channels they share instead of computing them again.
    ``planes`` are the block's planes from `read_block` (read here when not given).
    """
    carry = {} if carry is None else carry
    start, stop = block.read_start, block.read_stop
    core = block.core
    if planes is None:
        planes = read_block(products, block, config=config, fraction=fraction)
    image, model, residual = planes["image"], planes["model"], planes["residual"]
    valid, pb = planes["valid"], planes["pb"]
    rms = planes["rms"]
    spike_noise = rms.copy()  # a one-plane product: the "spike" is the image itself
    if products.nchan > 1:
        spike_noise[core] = spike_rms(residual, valid, core, clip=config.noise.clip,
                                      max_samples=config.noise.max_samples)
    beam = products.beam_pixels[start:stop]
    ppb = products.pixels_per_beam[start:stop]
    unsupported = np.full(stop - start, np.nan)
    chan, ys, xs, found_by = [], [], [], []
    negatives = {name: [] for name in _NEGATIVE}
    for c in range(core.start, core.stop):
        if not (np.isfinite(rms[c]) and np.isfinite(spike_noise[c])):
            continue
        with np.errstate(invalid="ignore"):
            spike_snr = spectral_contrast(image, c)
            spike_snr /= spike_noise[c]
        points, how = find_candidates(
            spike_snr, model, c, valid[c], rms[c], threshold=config.find.threshold,
            model_threshold=config.find.model_threshold, radius=float(beam[c, 0]),
            spikes=products.nchan > 1)
        chan.append(np.full(len(points), c))
        ys.append(points[:, 0])
        xs.append(points[:, 1])
        found_by.append(how)
        if products.nchan > 1:
            dips = find_spikes(spike_snr, valid[c], config.find.threshold, negative=True)
            negatives["channel"].append(np.full(len(dips), c + start))
            negatives["y"].append(dips[:, 0])
            negatives["x"].append(dips[:, 1])
            negatives["strength"].append(-spike_snr[dips[:, 0], dips[:, 1]])
    chan, ys, xs = (np.concatenate(a).astype(int) if a else np.zeros(0, int)
                    for a in (chan, ys, xs))
    found_by = np.concatenate(found_by) if found_by else np.zeros(0, str)

    columns = {"channel": chan + start, "x": xs, "y": ys, "found_by": found_by,
               "pb": (pb[chan - core.start, ys, xs].astype(float) if pb is not None
                      else np.full(len(chan), np.nan))}
    skip: frozenset = frozenset()
    ring = (config.classify.plane_ring_beams if products.nchan == 1
            else config.classify.ring_beams)
    if products.psf is not None and len(chan):
        # only the channels the data test needs: the candidates' and their neighbours'
        lo, hi = max(0, int(chan.min()) - 1), min(stop - start, int(chan.max()) + 2)
        # one whole plane at a time, past the halo cache, and only where no imprint is
        # taken over: the psf is read at scattered channels, and a read within one tile
        # depth keeps python-casacore's cache to one row
        psf = _Planes(lambda c: zero_nan(products.plane("psf", start + c)))
        # psf (*) model, shared by the null and the test, and with the next block
        # each is asked about at the null's pixels of its channel and both neighbours,
        # and about the candidates' map windows (of the cube's, not the block's, beam:
        # the choice of sums or FFT must not depend on the blocks)
        demand = (3 * config.classify.null_samples
                  + (2 * map_half(float(np.max(products.beam_pixels[:, 0]))) + 1) ** 2)
        imprint = Imprints(model, psf, first=start, previous=carry.get("imprints"),
                           demand=demand)
        null = NullSample(image=image, residual=residual, imprint=imprint, valid=valid,
                          samples=config.classify.null_samples, first=start, beam=beam,
                          ring_beams=ring)
        needed = sorted({int(n) for c in np.unique(chan) for n in (c - 1, c, c + 1)
                         if lo <= n < hi})
        for n in needed:
            unsupported[n] = null.fraction(n)
        # a diverged neighbour would lend its pattern to every contrast: leave it out
        skip = frozenset(n for n in needed if diverged(unsupported[n], config.classify))
    columns.update(_in_mask(products, chan + start, ys, xs))
    columns.update(measure_candidates(chan, ys, xs, image=image, model=model,
                                      residual=residual, rms=rms, spike_rms=spike_noise,
                                      pixels_per_beam=ppb, beam=beam,
                                      bowl_beams=config.classify.bowl_beams, skip=skip))
    if products.psf is not None and len(chan):
        columns.update(data_test(chan, ys, xs, image=image, residual=residual,
                                 imprint=imprint, rms=rms, spike_rms=spike_noise, beam=beam,
                                 ring_beams=ring, skip=skip))
        spread = {int(c): null.spread(int(c), skip) for c in np.unique(chan)}
        columns["null_spread"] = np.array([spread[int(c)] for c in chan]) / rms[chan]
        maps = [contrast_map(int(c), map_window(int(y), int(x), float(beam[c, 0]),
                                                image.shape[1:]), skip, image=image,
                             residual=residual, imprint=imprint)
                for c, y, x in zip(chan, ys, xs)]
        carry["imprints"] = imprint.handover(block.stop - 1)  # the next block's halo
    else:
        columns["dirty_snr"] = columns["unsupported_snr"] = np.full(len(chan), np.nan)
        columns["spike_peak_snr"] = np.full(len(chan), np.nan)
        columns["excess_extent"] = np.full(len(chan), np.nan)
        columns["null_spread"] = np.full(len(chan), np.nan)
        maps = []
        carry.pop("imprints", None)
    negatives = {name: np.concatenate(values) if values else np.zeros(0)
                 for name, values in negatives.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels
        peak = np.nanmax(image[core], axis=0)
    return BlockResult(rms=rms[core], unsupported=unsupported[core], columns=columns,
                       negatives=negatives, peak=peak, maps=maps)


def _on_dask_worker(work: Callable, block: Block, carry: dict, planes: dict) -> BlockResult:
    """``work(block, carry, planes)`` as a dask task: its large FFTs on as many threads as
    the worker has, not on every core of a node that several workers share."""
    from distributed import get_worker

    with fft_threads(get_worker().state.nthreads):
        return work(block, carry, planes)


class _Planes(dict):
    """Planes by block channel, each read by ``read(chan)`` when first asked for."""

    def __init__(self, read: Callable[[int], np.ndarray]):
        super().__init__()
        self._read = read

    def __missing__(self, chan: int) -> np.ndarray:
        self[chan] = self._read(chan)
        return self[chan]


def _in_mask(products: Products, chan: np.ndarray, ys: np.ndarray,
             xs: np.ndarray) -> dict[str, np.ndarray]:
    """Whether each candidate's pixel is in the clean mask in its channel (``mask``, 1 or 0)
    and in how many adjacent channels (``mask_adjacent``); NaN without a mask product.
    Only the mask planes of the candidates' and adjacent channels are read."""
    if products.mask is None or not len(chan):
        return {"mask": np.full(len(chan), np.nan), "mask_adjacent": np.full(len(chan), np.nan)}
    planes: dict[int, np.ndarray] = {}

    def inside(c: int) -> np.ndarray:
        if c not in planes:
            planes[c] = np.nan_to_num(products.plane("mask", c)) > 0.5
        return planes[c]

    here = np.array([inside(int(c))[y, x] for c, y, x in zip(chan, ys, xs)], dtype=float)
    beside = np.array([sum(inside(n)[y, x] for n in (int(c) - 1, int(c) + 1)
                           if 0 <= n < products.nchan) for c, y, x in zip(chan, ys, xs)],
                      dtype=float)
    return {"mask": here, "mask_adjacent": beside}


def _reliability(columns: dict[str, np.ndarray], negatives: dict[str, np.ndarray],
                 products: Products) -> np.ndarray:
    """Reliability of each image spike; negative spikes next to a positive feature (the
    dip a line leaves in the contrast of its adjacent channels) do not count as noise."""
    spiky = np.char.startswith(columns["found_by"].astype(str), "spike")
    radius = float(np.max(products.beam_pixels[:, 0]))
    noise = ~near_any(negatives["channel"], negatives["y"], negatives["x"],
                      columns["channel"][spiky], columns["y"][spiky], columns["x"][spiky],
                      radius)
    out = np.full(len(spiky), np.nan)
    out[spiky] = spike_reliability(columns["spike_snr"][spiky], negatives["strength"][noise])
    return out


def summarise(catalog: Table, products: Products, config: Config, rms: np.ndarray,
              unsupported: np.ndarray, failed: np.ndarray, stalled: np.ndarray
              ) -> dict[str, Any]:
    """JSON-ready summary of a scan (NaN written as null).

    Per channel: frequency, rms, ``unsupported`` (robust rms of image - dirty over that of
    the dirty image; null where not measured), ``diverged`` (from ``failed``),
    ``unconverged`` (from ``stalled``) and counts per class.
    """
    counts = {name: int(np.sum(catalog["classification"] == name)) for name in CLASSES}
    channels = np.asarray(catalog["channel"], dtype=int)
    by_channel = {name: np.bincount(channels[catalog["classification"] == name],
                                    minlength=products.nchan) for name in CLASSES}
    freq = products.frequency
    per_channel = [{"channel": c, "frequency_hz": _finite(freq[c]),
                    "rms_jy_beam": _finite(rms[c]),
                    "unsupported": _finite(unsupported[c]), "diverged": bool(failed[c]),
                    "unconverged": bool(stalled[c]),
                    **{name: int(by_channel[name][c]) for name in CLASSES}}
                   for c in range(products.nchan)]
    return {
        "software": versions(),
        "date": utc_now(),
        "inputs": products.paths,
        "shape": dict(zip(("nchan", "ny", "nx"), products.shape)),
        "psf_used": products.psf is not None,
        "pb_used": products.pb is not None,
        "counts": counts,
        "diverged_channels": [int(c) for c in np.flatnonzero(failed)],
        "unconverged_channels": [int(c) for c in np.flatnonzero(stalled)],
        "candidates": len(catalog),
        "classes": {name: meaning for name, (_, meaning) in CLASSES.items()},
        "parameters": config.to_dict(),
        "channels": per_channel,
    }


def _highpass_fraction(products: Products, config: Config) -> float:
    mid = products.nchan // 2
    width = config.noise.highpass_beams * float(products.beam_pixels[mid, 0])
    if products.psf is not None:
        return highpass_fraction(width, psf=products.read("psf", mid, mid + 1)[0])
    major, minor, pa = products.beam_pixels[mid]
    return highpass_fraction(width, beam_sigma=(major / 2.3548, minor / 2.3548, pa))


def _apply_params(config: Config, params: dict[str, Any]) -> Config:
    """``config`` with single parameters given by key name (each key names one stage's)."""
    if not params:
        return config
    stages = config.to_dict()
    overrides: dict[str, dict[str, Any]] = {}
    for key, value in params.items():
        owners = [stage for stage, values in stages.items() if key in values]
        if not owners:
            raise InputError(f"unknown parameter '{key}'")
        if len(owners) > 1:
            raise InputError(f"parameter '{key}' belongs to several stages "
                             f"({', '.join(owners)}); give it through config=")
        overrides.setdefault(owners[0], {})[key] = value
    return config.replace(overrides)


def _empty_with_meta(meta: dict[str, Any]) -> Table:
    table = empty_catalog()
    table.meta.update(meta)
    return table


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
