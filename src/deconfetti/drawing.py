"""Drawing the candidates' evidence PNGs, in this process or in forked copies of it.

matplotlib is imported only where a figure is drawn: a scan whose figures are drawn by
process forked before it (`drawing_process`) never imports it itself.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.util
import os
import threading
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
from astropy.table import Table

from .cutout import Cutout, make_cutout, sample_cutout
from .io.products import Products

if TYPE_CHECKING:
    from .figures import EvidenceFigures

__all__ = ["evidence_pngs", "drawing_process", "stop_drawing_processes", "figure_rows", "FIGURE_ORDER",
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
    drawn = None if drawer is None else _ask(drawer, (cutouts, workers))
    if not isinstance(drawn, dict):
        with _layouts(dpi) as figures:
            drawn = _draw_in_processes(figures, cutouts, workers)
    return {int(row["id"]): drawn[int(row["id"])] for row in rows}


@contextlib.contextmanager
def drawing_process(products: Products, count: int, *, dpi: int = 72) -> Iterator[Any]:
    """The process that draws this process's evidence PNGs at ``dpi`` (`evidence_pngs`
    ``drawer``). The first time, it is forked now, before a scan starts its threads, and
    lays out and first draws the figures (~2 s, on a `sample_cutout` of ``products``)
    while the scan runs; later scans (a survey's cubes, a notebook's) find it laid out.

    Yields its end of a pipe; None where ``count`` is 0, another thread is using it, or it
    is not running and cannot be forked (a thread other than this one runs, or there is
    no fork). It ends when this process does (or at `stop_drawing_processes`).
    """
    if count < 1 or not _DRAWERS_LOCK.acquire(blocking=False):
        yield None
        return
    try:
        drawer = _DRAWERS.get(dpi)
        if drawer is None or not drawer[0].is_alive():
            _DRAWERS.pop(dpi, None)
            drawer = None
            if (threading.active_count() == 1
                    and "fork" in multiprocessing.get_all_start_methods()):
                drawer = _DRAWERS[dpi] = _start_drawer(sample_cutout(products), dpi)
        yield None if drawer is None else drawer[1]
    finally:
        _DRAWERS_LOCK.release()


def stop_drawing_processes() -> None:
    """End the drawing processes (run at exit). Between requests they hold nothing to
    finish, and one may still be laying out (after a short scan): they are ended at once."""
    while _DRAWERS:
        process, connection = _DRAWERS.popitem()[1]
        connection.close()
        process.terminate()
        process.join()


#: the drawing process by dpi: (process, this end of its pipe)
_DRAWERS: dict[int, tuple[Any, Any]] = {}
_DRAWERS_LOCK = threading.Lock()
# run at exit by multiprocessing before it joins its children (which would wait for ever
# on a drawing process whose pipe is still open)
multiprocessing.util.Finalize(None, stop_drawing_processes, exitpriority=10)


def _forget_drawers() -> None:
    """In a forked child: the drawing processes are the parent's; the child neither asks
    them nor keeps their pipes open."""
    for _, connection in _DRAWERS.values():
        connection.close()
    _DRAWERS.clear()


os.register_at_fork(after_in_child=_forget_drawers)


def _start_drawer(sample: Cutout, dpi: int) -> tuple[Any, Any]:
    context = multiprocessing.get_context("fork")
    here, there = context.Pipe()
    # not a daemon: it forks copies of itself to draw (it ends when the pipe closes)
    process = context.Process(target=_serve, args=(there, here, sample, dpi))
    process.start()
    there.close()
    return process, here


def _ask(drawer: Any, message: Any) -> Any:
    """``drawer``'s answer to ``message`` (None if it fails). Where the exchange breaks
    off (an error, an interrupt), the process is ended, so that no answer is left in its
    pipe for the next question."""
    try:
        drawer.send(message)
        return drawer.recv()
    except (EOFError, OSError):
        return None
    except BaseException:
        for dpi, (process, connection) in list(_DRAWERS.items()):
            if connection is drawer:
                del _DRAWERS[dpi]
                connection.close()
                process.kill()
                process.join()
        raise


def _serve(connection: Any, parents: Any, sample: Cutout, dpi: int) -> None:
    """The drawing process: lays out its figures on ``sample``, then draws each
    ``(cutouts, workers)`` it is sent (`_draw_in_processes`) and sends back their PNGs
    (None on an error: they are drawn in the parent, which raises what is wrong), until
    the parent's end of the pipe closes (``parents``, closed here at once,
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
    # layouts not made yet are made, and first drawn, before the fork, so that the
    # processes share them and their backgrounds (a drawing process has them from its
    # sample already)
    out = {} if figures.laid_out(cutouts[0]) else _draw_pngs(figures, cutouts[:1])
    chunks = [[cutouts[i] for i in chunk]
              for chunk in np.array_split(np.arange(len(out), len(cutouts)), processes)]
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
    with contextlib.suppress(OSError):  # the parent is gone
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
