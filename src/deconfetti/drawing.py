"""Drawing the candidates' evidence PNGs, in this process or in forked copies of it.

matplotlib is imported only where a figure is drawn: a scan whose figures are drawn by
process forked before it (`drawing_process`) never imports it itself.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
from astropy.table import Table

from .cutout import Cutout, make_cutout, sample_cutout
from .io.products import Products

if TYPE_CHECKING:
    from .figures import EvidenceFigures

__all__ = ["evidence_pngs", "drawing_process", "figure_rows", "FIGURE_ORDER",
           "ROWS_PER_PROCESS"]

#: which candidates get figures first: those that call for a repair or a look; the
#: candidates of a diverged channel last (their verdict is the channel's, in the summary)
FIGURE_ORDER = ("confetti", "uncertain", "real", "benign", "noise", "diverged")


def figure_rows(catalog: Table, count: int) -> Table:
    """The ``count`` candidates that get figures (``figures/`` and the report): by class
    in `FIGURE_ORDER`, and in catalog order (by unsupported_snr) within a class."""
    rank = {name: i for i, name in enumerate(FIGURE_ORDER)}
    keys = [rank.get(str(name), len(rank)) for name in catalog["classification"]]
    return catalog[np.argsort(np.array(keys, dtype=int), kind="stable")[:count]]


#: fewest candidates worth drawing in a process of their own
ROWS_PER_PROCESS = 3


def evidence_pngs(products: Products, rows: Table, *, dpi: int = 72,
                  contrast: dict | None = None, diverged: frozenset = frozenset(),
                  workers: int = 1, drawer: Any = None) -> dict[int, dict[str, bytes]]:
    """PNG bytes of every evidence figure of each row, by candidate id and figure name
    (``contrast`` and ``diverged`` as in `deconfetti.cutout.make_cutout`).

    The cutouts are read here. They are drawn by ``drawer`` (from `drawing_process`, laid
    out already) where given, else in this process. Either draws the figures of the first
    row, then, with ``workers`` > 1 and enough rows, up to ``workers - 1`` forked copies of
    itself draw their share of the rows (at least `ROWS_PER_PROCESS` each) while it draws
    its own. A process is forked only where nothing but this thread runs (a fork copies no
    other thread, and a lock one of them held would stay locked); elsewhere, and where
    there is no fork, all are drawn by one. What a failed process leaves is drawn here.
    """
    cutouts = [make_cutout(products, row, contrast=contrast, diverged=diverged)
               for row in rows]
    drawn = None
    if drawer is not None:
        with contextlib.suppress(EOFError, OSError):
            drawer.send((cutouts, workers))
            drawn = drawer.recv()
    if not isinstance(drawn, dict):
        with _layouts(dpi) as figures:
            drawn = _draw_in_processes(figures, cutouts, workers)
    return {int(row["id"]): drawn[int(row["id"])] for row in rows}


@contextlib.contextmanager
def drawing_process(products: Products, count: int, *, dpi: int = 72) -> Iterator[Any]:
    """A process forked now, before a scan starts its threads, that lays out and first
    draws the evidence figures of ``products`` (~2 s, on a `sample_cutout`) while the scan
    runs, then draws the PNGs of its candidates (`evidence_pngs` ``drawer``).

    Yields its end of a pipe; None where ``count`` is 0, a thread other than this one runs
    or there is no fork. The process ends with the block.
    """
    if (count < 1 or threading.active_count() > 1
            or "fork" not in multiprocessing.get_all_start_methods()):
        yield None
        return
    sample = sample_cutout(products)
    context = multiprocessing.get_context("fork")
    here, there = context.Pipe()
    # not a daemon: it forks copies of itself to draw (it ends when the pipe closes)
    process = context.Process(target=_serve, args=(there, here, sample, dpi))
    process.start()
    there.close()
    try:
        yield here
    finally:
        with contextlib.suppress(OSError):
            here.send(None)
        here.close()
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join()


def _serve(connection: Any, parents: Any, sample: Cutout, dpi: int) -> None:
    """The drawing process: lays out its figures on ``sample``, then draws each
    ``(cutouts, workers)`` it is sent (`_draw_in_processes`) and sends back their PNGs
    (None on an error: they are drawn in the parent, which raises what is wrong), until it
    is sent None or the parent's end of the pipe closes (``parents``, closed here at once,
    so that a parent killed outright leaves no process behind)."""
    parents.close()
    _forget_fonts()
    with _layouts(dpi) as figures:
        with contextlib.suppress(Exception):
            figures.pngs(sample)
        while True:
            try:
                message = connection.recv()
            except EOFError:
                break
            if message is None:
                break
            drawn = None
            with contextlib.suppress(Exception):
                drawn = _draw_in_processes(figures, *message)
            try:
                connection.send(drawn)
            except OSError:  # the parent is gone
                break
    connection.close()


#: the process's evidence layouts by dpi, laid out once for every scan it draws
_LAYOUTS: dict[int, EvidenceFigures] = {}
_LAYOUTS_LOCK = threading.Lock()


@contextlib.contextmanager
def _layouts(dpi: int) -> Iterator[EvidenceFigures]:
    """The process's evidence layouts at ``dpi``: made and first drawn once (~2 s), then
    kept for the next scan's figures (a survey's cubes, one after another); a new set
    where another thread is drawing on them."""
    from .figures import EvidenceFigures

    if not _LAYOUTS_LOCK.acquire(blocking=False):
        yield EvidenceFigures(dpi)
        return
    try:
        yield _LAYOUTS.setdefault(dpi, EvidenceFigures(dpi))
    finally:
        _LAYOUTS_LOCK.release()


def _draw_in_processes(figures: EvidenceFigures, cutouts: list[Cutout], workers: int
                       ) -> dict[int, dict[str, bytes]]:
    """The PNGs of ``cutouts``, drawn here and by processes forked after the first."""
    processes = max(1, min(workers, len(cutouts) // ROWS_PER_PROCESS))
    if (processes == 1 or threading.active_count() > 1
            or "fork" not in multiprocessing.get_all_start_methods()):
        return _draw_pngs(figures, cutouts)
    # the first is drawn before the fork: the layouts and their backgrounds are shared
    out = _draw_pngs(figures, cutouts[:1])
    chunks = [[cutouts[i] for i in chunk]
              for chunk in np.array_split(np.arange(1, len(cutouts)), processes)]
    context = multiprocessing.get_context("fork")
    children = []
    for chunk in chunks[:-1]:
        reader, writer = context.Pipe(duplex=False)
        child = context.Process(target=_send_pngs, daemon=True, args=(writer, figures, chunk))
        child.start()
        writer.close()
        children.append((child, reader, chunk))
    out.update(_draw_pngs(figures, chunks[-1]))  # the smallest share
    for child, reader, chunk in children:
        try:
            drawn = reader.recv()
        except EOFError:  # the process died: its share is drawn here
            drawn = None
        child.join()
        out.update(drawn if isinstance(drawn, dict) else _draw_pngs(figures, chunk))
    return out


def _draw_pngs(figures: EvidenceFigures, cutouts: list[Cutout]) -> dict[int, dict[str, bytes]]:
    """PNG bytes of every evidence figure of each cutout, by candidate id."""
    return {int(cutout.row["id"]): figures.pngs(cutout) for cutout in cutouts}


def _send_pngs(writer: Any, figures: EvidenceFigures, cutouts: list[Cutout]) -> None:
    """`_draw_pngs` in a forked process, the result down ``writer`` (None on an error:
    the parent draws them instead)."""
    _forget_fonts()
    drawn = None
    with contextlib.suppress(Exception):
        drawn = _draw_pngs(figures, cutouts)
    writer.send(drawn)
    writer.close()


def _forget_fonts() -> None:
    """In a forked process: fonts opened before the fork share their file offsets with
    the parent, which may read them at the same time. matplotlib empties its font cache
    in a forked child; the mathtext cache, whose glyphs hold fonts too, is emptied here."""
    import sys

    mathtext = sys.modules.get("matplotlib.mathtext")
    if mathtext is not None:
        getattr(mathtext.MathTextParser._parse_cached, "cache_clear", lambda: None)()
