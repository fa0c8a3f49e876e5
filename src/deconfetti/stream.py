"""Channel blocks: the only place that decides how a cube is cut and how its blocks are
run (worker threads, a dask cluster, a checkpoint store).

A block is a run of core channels plus a halo of one adjacent channel on each side,
so that channel-to-neighbour features are exact at block edges. Blocks follow the
products' tile depth where they can, so that each read touches whole tiles.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import itertools
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

__all__ = ["Block", "BlockResult", "plan_blocks", "plan_runs", "choose_block_channels",
           "choose_workers",
           "run_blocks", "run_in_order", "tune_malloc", "PLANES_PER_CHANNEL", "PLANES_FIXED",
           "RUN_TILES"]

#: float32 planes held per core channel of a block: image, model, residual, pb, psf and
#: the validity mask (bool), and the image, model, residual, pb and mask of the next
#: block, read ahead (`run_in_order`), rounded up
PLANES_PER_CHANNEL = 11
#: float32-plane equivalents held whatever the block size: the halo channels of the five
#: products, the planes each product keeps for the next block's halo, the per-channel
#: feature maps and temporaries
PLANES_FIXED = 30
#: most channels of a run, in tile depths: a run re-reads one halo tile at each end
#: (under 1/32 more reading), and an interrupted run is redone whole on resume
RUN_TILES = 64


@dataclass(frozen=True)
class Block:
    """Core channels ``start:stop`` and the channels read for them, ``read_start:read_stop``."""

    start: int
    stop: int
    read_start: int
    read_stop: int

    @property
    def core(self) -> slice:
        """Core channels as a slice into the read block."""
        return slice(self.start - self.read_start, self.stop - self.read_start)


@dataclass
class BlockResult:
    """What the scan of one channel block returns."""

    #: noise of the core channels, Jy/beam
    rms: np.ndarray
    #: robust rms of image - dirty over that of the dirty image, per core channel (NaN
    #: where no candidate channel led to measuring it)
    unsupported: np.ndarray
    #: the measured catalog columns of the block's candidates
    columns: dict[str, np.ndarray]
    #: negative image spikes: channel, y, x and strength (positive numbers)
    negatives: dict[str, np.ndarray]
    #: peak intensity of the block's core channels, Jy/beam, shape (ny, nx); in a run of
    #: blocks, the first block carries the run's peak and the others None
    peak: np.ndarray | None
    #: the data test's map around each candidate, in the order of ``columns``
    #: (`deconfetti.datatest.contrast_map`, Jy/beam); empty without a psf
    maps: list[np.ndarray] = dataclasses.field(default_factory=list)


def plan_blocks(nchan: int, block_channels: int, *, halo: int = 1) -> list[Block]:
    """Cut ``nchan`` channels into blocks of ``block_channels`` core channels plus halo."""
    size = max(1, int(block_channels))
    return [Block(start, min(start + size, nchan), max(0, start - halo),
                  min(nchan, start + size + halo))
            for start in range(0, nchan, size)]


def choose_block_channels(shape: tuple[int, int, int], *, memory_mb: float,
                          tile_depth: int = 1) -> int:
    """Core channels per block so that one block stays within ``memory_mb``.

    Peak memory of a block is about ``(PLANES_PER_CHANNEL * n + PLANES_FIXED)`` float32
    planes of ``ny * nx`` pixels. The result is a multiple or divisor of ``tile_depth``.
    """
    nchan, ny, nx = shape
    plane_mb = ny * nx * 4 / 2 ** 20
    fit = int((memory_mb / plane_mb - PLANES_FIXED) // PLANES_PER_CHANNEL)
    fit = max(1, min(fit, nchan))
    if tile_depth > 1:
        if fit >= tile_depth:
            fit -= fit % tile_depth
        else:
            fit = max(d for d in range(1, fit + 1) if tile_depth % d == 0)
    return fit


def choose_workers(shape: tuple[int, int, int], *, memory_mb: float, cores: int) -> int:
    """Worker threads for a local scan: one per core, but no more than can each hold a
    one-channel block (`choose_block_channels`' model) within ``memory_mb`` together;
    at least one."""
    plane_mb = shape[1] * shape[2] * 4 / 2 ** 20
    fit = int(memory_mb // ((PLANES_PER_CHANNEL + PLANES_FIXED) * plane_mb))
    return max(1, min(cores, fit))


def plan_runs(blocks: list[Block], *, workers: int, tile_depth: int = 1) -> list[list[Block]]:
    """Group consecutive blocks into runs, each streamed in order by one worker.

    Inside a run, a block's halo comes from the previous block's read, so only a run's
    two ends re-read a halo tile. Runs are at most ``RUN_TILES`` tile depths of channels,
    and short enough that there are at least ``workers`` runs when there are as many
    blocks. Blocks that are not contiguous (some already done) start a new run.
    """
    total = sum(block.stop - block.start for block in blocks)
    target = min(-(-total // max(1, workers)), RUN_TILES * max(1, tile_depth))
    runs: list[list[Block]] = []
    length = 0
    for block in blocks:
        if not runs or length >= target or runs[-1][-1].stop != block.start:
            runs.append([])
            length = 0
        runs[-1].append(block)
        length += block.stop - block.start
    return runs


def run_blocks(work: Callable[[Block, dict, Any], BlockResult], blocks: list[Block], *,
               read: Callable[[Block, dict], Any], store: Any, workers: int, client: Any,
               tile_depth: int) -> Iterator[tuple[Block, BlockResult]]:
    """Yield ``(block, work(block, carry, read(block, kept)))`` in block order: stored blocks
    from ``store``, the others computed in runs of consecutive blocks (`run_in_order`) on
    ``client`` (``work`` and ``read`` must pickle; a task reads its blocks itself), or
    here on ``workers`` threads that share the product handles (twice as many runs as
    threads, for balance), each with a reader thread reading its next block.

    Computed blocks are stored a run at a time, the run's peak map in its first block,
    so that the store holds one peak map per run.
    """
    todo = [block for block in blocks if store is None or not store.has(block)]
    stored = set(blocks) - set(todo)
    nodes = (sum(client.nthreads().values()) or 1) if client is not None else 2 * workers
    runs = plan_runs(todo, workers=nodes, tile_depth=tile_depth)
    last = {run[-1]: run for run in runs}
    with contextlib.ExitStack() as stack:
        if client is not None and todo:
            futures = client.map(run_in_order, [work] * len(runs), runs, [read] * len(runs),
                                 ahead=False, pure=False)
            computed = itertools.chain.from_iterable(future.result() for future in futures)
        elif workers > 1 and len(runs) > 1:
            pool = stack.enter_context(concurrent.futures.ThreadPoolExecutor(workers))
            stack.callback(pool.shutdown, wait=True, cancel_futures=True)
            computed = itertools.chain.from_iterable(
                pool.map(functools.partial(run_in_order, work, read=read), runs))
        else:
            computed = itertools.chain.from_iterable(run_in_order(work, run, read)
                                                     for run in runs)
        computed = iter(computed)
        batch: list[BlockResult] = []
        for block in blocks:
            if block in stored:
                yield block, store.load(block)
                continue
            result = next(computed)
            yield block, result
            if store is not None:
                _fold_peak(batch, result)
                if block in last:
                    for done, kept in zip(last[block], batch):
                        store.save(done, kept)
                    batch = []


def run_in_order(work: Callable[[Block, dict, Any], BlockResult], blocks: list[Block],
                 read: Callable[[Block, dict], Any], *, ahead: bool = True
                 ) -> list[BlockResult]:
    """``work(block, carry, read(block, kept))`` over consecutive blocks in order (a
    worker's task), so that each block's halo comes from the previous read: ``carry``, one
    dict for the run, holds what a block's work leaves to the next, and ``kept``, another,
    what its read leaves to the next read. The run's peak map is returned in the first
    block's result, None in the others.

    With ``ahead``, a reader thread reads the next block while this one is worked on, so
    at most two blocks' planes are held. python-casacore holds the GIL while it reads
    (casacore/python-casacore#209), so what the thread hides is the numpy work of
    ``read`` (and what else it does, e.g. `deconfetti.pipeline.read_block`'s noise).
    A dask task goes without (``ahead=False``): it runs on the cores its worker was
    given, and the cluster scales by workers.
    """
    tune_malloc()
    results: list[BlockResult] = []
    carry: dict = {}
    kept: dict = {}
    if not ahead:
        for block in blocks:
            _fold_peak(results, work(block, carry, read(block, kept)))
        return results
    # one thread reads the whole run: the products keep each thread's last planes for
    # the next block's halo
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="reader") as reader:
        coming = reader.submit(read, blocks[0], kept) if blocks else None
        for i, block in enumerate(blocks):
            planes = coming.result()
            coming = reader.submit(read, blocks[i + 1], kept) if i + 1 < len(blocks) else None
            _fold_peak(results, work(block, carry, planes))
    return results


def _fold_peak(results: list[BlockResult], result: BlockResult) -> None:
    """Append ``result`` to a run's results, its peak map folded into the first one's."""
    if results and result.peak is not None:
        first = results[0]
        first.peak = result.peak if first.peak is None else np.fmax(first.peak, result.peak)
        result = dataclasses.replace(result, peak=None)
    results.append(result)


@functools.cache
def tune_malloc() -> None:
    """Fix glibc's malloc thresholds for channel planes (process-wide; once per process).

    By default glibc raises its mmap threshold after large frees, so freed planes stay in
    the process (~115 MB more peak memory on a 2048 x 2048 scan); with a small fixed
    threshold they go back, but then every new plane is page-faulted in afresh (measured:
    half of a scan's time spent in the kernel). With the threshold fixed at 32 MiB
    (glibc's largest) and trimming above 64 MiB, planes up to 32 MiB are reused from the
    heap and free memory beyond 64 MiB is returned; one arena serves every thread, so the
    worker threads' freed planes are trimmed too. No-op where glibc is absent.
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 * 2 ** 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 64 * 2 ** 20)  # M_TRIM_THRESHOLD
        libc.mallopt(-8, 1)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass
