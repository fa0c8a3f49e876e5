"""Figures checked for content: right channels, positions, scaling and marks."""

import io

import numpy as np
import pytest

import deconfetti
from deconfetti import figures
from deconfetti.cutout import make_cutout


@pytest.fixture(scope="module")
def confetti(example_scan):
    row = example_scan.candidates[example_scan.candidates["classification"] == "confetti"][0]
    return row, make_cutout(example_scan.products, row)


def test_channel_maps_show_the_channels_around_the_candidate(example_scan, confetti):
    row, cutout = confetti
    chan, y, x = int(row["channel"]), int(row["y"]), int(row["x"])
    figure = figures.channel_maps(cutout, "image")
    panels = [ax for ax in figure.axes if ax.images and ax.get_title()]
    shown = [int(ax.get_title().split(":")[0].split()[1]) for ax in panels]
    assert shown == list(range(max(0, chan - 4), min(example_scan.products.nchan, chan + 5)))
    marked = [ax for ax in panels if ax.title.get_color() == "crimson"]
    assert len(marked) == 1 and marked[0].get_title().startswith(f"ch {chan}:")
    # the marked panel holds the cube's data, centred on the candidate (offset 0 at its pixel)
    data = marked[0].images[0].get_array()
    y0, x0 = cutout.origin
    np.testing.assert_array_equal(data, example_scan.products.read(
        "image", chan, chan + 1, (slice(y0, y0 + data.shape[0]), slice(x0, x0 + data.shape[1])))[0])
    left, right, bottom, top = marked[0].images[0].get_extent()
    scale = example_scan.products.pixel_scale
    assert left == pytest.approx((x - x0 + 0.5) * scale)  # east (RA) to the left
    assert bottom == pytest.approx(-(y - y0 + 0.5) * scale)


def test_model_and_residual_maps(confetti):
    _, cutout = confetti
    for kind in ("model", "residual"):
        figure = figures.channel_maps(cutout, kind)
        assert kind in figure.get_suptitle()
        assert any(ax.images for ax in figure.axes)


def test_spectra_mark_the_channel_and_scale_the_model(example_scan, confetti):
    row, cutout = confetti
    y, x = int(row["y"]), int(row["x"])
    figure = figures.spectra(cutout)
    centre = next(ax for ax in figure.axes if ax.get_title() == "dx=0 dy=0")
    lines = {line.get_label(): line for line in centre.get_lines()}
    mark = lines["candidate channel"].get_xdata()[0]
    assert mark == pytest.approx(float(row["velocity"]), abs=1e-6)
    model = example_scan.products.read("model", int(cutout.spectral_channels[0]),
                                       int(cutout.spectral_channels[-1]) + 1,
                                       (slice(y, y + 1), slice(x, x + 1)))[:, 0, 0]
    ppb = example_scan.products.pixels_per_beam[cutout.spectral_channels]
    np.testing.assert_allclose(lines["model x pixels/beam"].get_ydata(), model * ppb, rtol=1e-6)
    assert "km/s" in centre.get_xlabel() or "km/s" in figure.axes[-1].get_xlabel()


def test_data_test_shows_the_spike_and_the_data(confetti):
    row, cutout = confetti
    figure = figures.data_test(cutout)
    image_panel, data_panel, difference = [ax for ax in figure.axes if ax.images][:3]
    y0, x0 = cutout.origin
    at = (int(row["y"]) - y0, int(row["x"]) - x0)
    assert image_panel.images[0].get_array()[at] == pytest.approx(row["spike_snr"], rel=1e-4)
    # the data hold far less than the image: that is why it is confetti
    assert data_panel.images[0].get_array()[at] < 0.5 * row["spike_snr"]
    assert difference.images[0].get_array()[at] > 0.5 * row["spike_snr"]
    assert "CONFETTI" in figure.get_suptitle()


def test_overview_marks_every_candidate_by_class(example_scan):
    table = example_scan.candidates
    figure = figures.overview(example_scan.peak, table, example_scan.rms,
                              np.arange(example_scan.products.nchan, dtype=float), "channel")
    peak_panel = figure.axes[0]
    confetti = next(c for c in peak_panel.collections if c.get_label().startswith("confetti"))
    offsets = confetti.get_offsets()
    chosen = table[table["classification"] == "confetti"]
    np.testing.assert_array_equal(np.asarray(offsets), np.column_stack([chosen["x"], chosen["y"]]))
    bars = [p for p in figure.axes[1].patches]
    assert sum(p.get_height() for p in bars) == len(table)


def test_the_figures_data_test_is_the_catalogs():
    """On a 7m mosaic with bright emission (sidelobes everywhere) the data panel shows
    the catalog's dirty spike at the candidate, not a windowed approximation of it."""
    from conftest import DATA

    result = deconfetti.scan(DATA / "nat7e" / "img")
    diverged = set(result.summary["diverged_channels"])
    rows = [r for r in result.candidates if not {r["channel"] - 1, r["channel"] + 1} & diverged]
    for row in rows[:4]:
        cut = make_cutout(result.products, row)
        y0, x0 = cut.origin
        shown = cut.dirty_spike[row["y"] - y0, row["x"] - x0] / row["spike_rms"]
        assert shown == pytest.approx(row["dirty_snr"], abs=1e-3)


def test_candidate_figures_for_a_notebook(sim_fits):
    """`deconfetti.candidate_figures` gives one candidate's evidence as Figures; an id
    the scan lacks is a one-line InputError."""
    import deconfetti
    from matplotlib.figure import Figure

    result = deconfetti.scan(sim_fits)
    ident = int(result.candidates["id"][0])
    figures = deconfetti.candidate_figures(result, ident)
    assert list(figures) == ["data_test", "image_maps", "model_maps", "residual_maps", "spectra"]
    assert all(isinstance(f, Figure) for f in figures.values())
    with pytest.raises(deconfetti.InputError, match="no candidate with id 9999"):
        deconfetti.candidate_figures(result, 9999)


def test_one_plane_figures_fit_one_plane(sim_fits, tmp_path):
    """A continuum (one-plane) product: one map per product, and cuts through the
    candidate along RA and Dec instead of spectra (there is no spectrum)."""
    from deconfetti.io.products import open_products
    from deconfetti.simulate import write_plane

    plane = write_plane(open_products(sim_fits), 5, tmp_path, "plane")
    result = deconfetti.scan(plane)
    ident = int(result.candidates["id"][0])
    shown = deconfetti.candidate_figures(result, ident)
    assert list(shown) == ["data_test", "image_maps", "model_maps", "residual_maps", "profiles"]
    for kind in ("image", "model", "residual"):
        images = [ax for ax in shown[f"{kind}_maps"].axes if ax.images]
        assert len(images) == 1
    ra, dec = shown["profiles"].axes[:2]
    assert ra.get_xlim()[0] > ra.get_xlim()[1]  # east to the left, as in the maps
    assert dec.get_xlim()[0] < dec.get_xlim()[1]
    assert [line.get_label() for line in ra.get_lines()][:3] == ["image", "residual",
                                                                 "model x pixels/beam"]


def test_figures_drawn_on_reused_layouts_are_those_of_new_figures(example_scan):
    """One set of layouts, updated from candidate to candidate, draws each candidate
    exactly as new figures do (nothing left over from the one before)."""
    from deconfetti.report import _png_bytes

    rows = example_scan.candidates[:4]
    reused = figures.EvidenceFigures(dpi=50)
    for row in rows:
        cutout = make_cutout(example_scan.products, row, contrast=example_scan.contrast)
        drawn = {name: _png_bytes(f, 50) for name, f in reused.draw(cutout).items()}
        fresh = {name: _png_bytes(f, 50) for name, f in figures.evidence(cutout).items()}
        assert drawn == fresh, int(row["id"])


def test_pngs_drawn_over_a_kept_background_are_those_of_whole_figures(example_scan):
    """PNGs whose unchanged parts were drawn for an earlier candidate have the pixels of
    the whole figure drawn anew, except where a tick mark meets an Axes' frame (the same
    two black lines blended in the other order): nothing of an earlier candidate is left."""
    from PIL import Image

    from deconfetti.report import _png_bytes

    catalog = example_scan.candidates
    middle = catalog[(catalog["channel"] >= 4) & (catalog["channel"] <= 10)]  # 9 maps each
    rows = [middle[0], middle[1], catalog[0], middle[2], middle[2]]
    reused = figures.EvidenceFigures(dpi=50)
    whole_draws = []
    for layout_name, layout in reused._layouts_of(make_cutout(example_scan.products, rows[0])):
        draw = layout.figure.canvas.draw
        layout.figure.canvas.draw = lambda draw=draw, name=layout_name: (
            whole_draws.append(name), draw())[1]
    for row in rows:
        cutout = make_cutout(example_scan.products, row, contrast=example_scan.contrast)
        pngs = reused.pngs(cutout)
        fresh = figures.EvidenceFigures(dpi=50).draw(cutout)
        assert list(pngs) == list(fresh)
        for name, figure in fresh.items():
            png = _png_bytes(figure, 50)
            if png == pngs[name]:
                continue
            whole, kept = (np.asarray(Image.open(io.BytesIO(p)), dtype=int)
                           for p in (png, pngs[name]))
            assert whole.shape == kept.shape
            differs = np.abs(whole - kept).max(axis=-1) > 0
            frames = np.zeros_like(differs)
            height = differs.shape[0]
            for ax in figure.axes:
                box = ax.get_window_extent()
                rows_, cols = np.ogrid[:height, :differs.shape[1]]
                y = height - rows_ - 0.5  # pixel centres, y up as in display coordinates
                x = cols + 0.5
                inside = ((x > box.x0 - 2) & (x < box.x1 + 2) & (y > box.y0 - 2)
                          & (y < box.y1 + 2))
                near_edge = ((np.abs(x - box.x0) < 2) | (np.abs(x - box.x1) < 2)
                             | (np.abs(y - box.y0) < 2) | (np.abs(y - box.y1) < 2))
                frames |= inside & near_edge
            assert not (differs & ~frames).any(), (int(row["id"]), name)
            assert differs.sum() < 100, (int(row["id"]), name)
    # the maps and the data test of the later candidates were drawn over a kept background
    assert whole_draws.count("image_maps") < len(rows)
    assert whole_draws.count("data_test") < len(rows)
    assert whole_draws.count("spectra") == len(rows)


def test_nothing_left_on_the_canvas_survives_into_the_next_png(example_scan):
    """Whatever an earlier candidate left anywhere on a kept canvas, its edge pixels
    included (at 50 dpi an 8.2 in figure is 409.99... float pixels wide, 410 whole ones),
    is drawn over for the next one: its PNGs do not depend on what came before."""
    catalog = example_scan.candidates
    rows = catalog[(catalog["channel"] >= 4) & (catalog["channel"] <= 10)][:2]  # 9 maps each
    cutouts = [make_cutout(example_scan.products, row, contrast=example_scan.contrast)
               for row in rows]
    clean = figures.EvidenceFigures(dpi=50)
    clean.pngs(cutouts[0])
    expected = clean.pngs(cutouts[1])
    soiled = figures.EvidenceFigures(dpi=50)
    soiled.pngs(cutouts[0])
    for _, layout in soiled._layouts_of(cutouts[0]):
        pixels = np.asarray(layout.figure.canvas.buffer_rgba())
        pixels[:, [0, -1]] = pixels[[0, -1]] = (255, 0, 0, 255)  # the canvas's border
    assert soiled.pngs(cutouts[1]) == expected


def test_figures_drawn_in_forked_processes_are_the_same(example_scan):
    from deconfetti.report import evidence_pngs

    rows = example_scan.candidates[:7]
    serial = evidence_pngs(example_scan.products, rows, dpi=50, contrast=example_scan.contrast)
    forked = evidence_pngs(example_scan.products, rows, dpi=50, contrast=example_scan.contrast,
                           workers=2)
    assert list(forked) == [int(i) for i in rows["id"]]
    assert forked == serial



@pytest.mark.parametrize("chan, lowest", [(1, [3, 4, 5]), (3, [5, 6, 7]), (7, [6, 7, 8])])
def test_channel_maps_near_the_cube_edge_keep_their_offsets(example_scan, confetti, chan,
                                                            lowest):
    """The lowest shown panel of each column carries the RA offsets (tick labels and the
    axis label): the bottom row's with nine channels, others' near either end of the cube
    (channels 0-5 around channel 1, 0-7 around channel 3, of the example's 15)."""
    row, _ = confetti
    cutout = make_cutout(example_scan.products, {**dict(zip(row.colnames, row)),
                                                 "channel": chan})
    figure = figures.channel_maps(cutout, "image")
    figure.canvas.draw()
    panels = [ax for ax in figure.axes if ax.images and ax.get_visible()]
    assert len(panels) == len(cutout.channels)
    labelled = [i for i, ax in enumerate(panels)
                if ax.get_xlabel() and any(t.get_visible() and t.get_text()
                                           for t in ax.get_xticklabels())]
    assert labelled == lowest


def test_layouts_kept_for_the_next_scan_draw_it_as_new_ones(example_scan, sim_scan):
    """The layouts a process keeps from one scan's figures to the next (a survey's
    cubes) draw each scan's figures as a first drawing does."""
    from deconfetti.drawing import _LAYOUTS, evidence_pngs

    def pngs(scan):
        return evidence_pngs(scan.products, scan.candidates[:3], dpi=50,
                             contrast=scan.contrast)

    _LAYOUTS.clear()
    first = pngs(example_scan)
    assert 50 in _LAYOUTS
    pngs(sim_scan)
    assert pngs(example_scan) == first


def test_a_drawing_process_draws_what_this_process_draws(example_scan):
    """The process forked before a scan (laid out on a sample cutout while it runs) draws
    the PNGs this process would, serves the next scans too, and where it has died, or
    cannot be forked because another thread runs, they are drawn here."""
    import multiprocessing
    import threading

    from deconfetti.drawing import drawing_process, evidence_pngs, stop_drawing_processes

    rows = example_scan.candidates[:7]
    kwargs = dict(dpi=50, contrast=example_scan.contrast)
    here = evidence_pngs(example_scan.products, rows, **kwargs)
    stop_drawing_processes()
    with drawing_process(example_scan.products, len(rows), dpi=50) as drawer:
        assert drawer is not None
        assert evidence_pngs(example_scan.products, rows, drawer=drawer, workers=2,
                             **kwargs) == here
    (process,) = multiprocessing.active_children()
    with drawing_process(example_scan.products, len(rows), dpi=50) as again:
        assert again is drawer  # laid out already: the next scan's figures are drawn there
        with drawing_process(example_scan.products, len(rows), dpi=50) as busy:
            assert busy is None  # in use
        process.kill()
        assert evidence_pngs(example_scan.products, rows, drawer=again, **kwargs) == here
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:  # the dead one cannot be replaced while another thread runs
        with drawing_process(example_scan.products, len(rows), dpi=50) as drawer:
            assert drawer is None
    finally:
        stop.set()
        other.join()
    with drawing_process(example_scan.products, 0, dpi=50) as drawer:
        assert drawer is None
    with drawing_process(example_scan.products, len(rows), dpi=50) as drawer:
        assert drawer is not None and drawer is not again
    # a forked child (a user's own pool of processes) starts its own, if it draws
    context = multiprocessing.get_context("fork")
    child = context.Process(target=_exit_with_drawers)
    child.start()
    child.join()
    assert child.exitcode == 0
    stop_drawing_processes()
    assert multiprocessing.active_children() == []


def _exit_with_drawers() -> None:
    import sys

    from deconfetti.drawing import _DRAWERS

    sys.exit(len(_DRAWERS))
