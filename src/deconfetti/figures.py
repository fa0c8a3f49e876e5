"""Matplotlib figures of the evidence: functions that return Figures; saving is elsewhere.

Per candidate (from a `Cutout`): channel maps of the image, model and residual, the 3x3
neighbouring spectra, and the data test (image spike beside the same spike in the data).
Per cube: the peak-intensity map with every candidate and the per-channel counts and noise.
Maps are drawn in offset arcsec from the candidate, east to the left.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from astropy.visualization import ImageNormalize, LinearStretch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize, SymLogNorm
from matplotlib.figure import Figure
from matplotlib.image import imsave
from matplotlib.patches import Ellipse
from matplotlib.transforms import Bbox

from .classify import CLASSES
from .cutout import Cutout

__all__ = ["channel_maps", "spectra", "profiles", "data_test", "overview", "evidence",
           "EvidenceFigures", "MAP_KINDS"]

#: product -> (title, unit, stretch)
MAP_KINDS = {"image": ("image", "Jy/beam", "linear"),
             "model": ("model", "Jy/pixel", "symlog"),
             "residual": ("residual", "Jy/beam", "symmetric")}


class EvidenceFigures:
    """Draws the evidence figures of one candidate after another. Each layout is made
    once and its artists are updated for the next candidate: most of a new figure's cost
    is making its axes and ticks. The Figures returned are redrawn by the next `draw`.

    ``dpi`` is the resolution they will be saved at: a figure drawn and saved at its own
    resolution keeps its renderer and text layouts from one candidate to the next.
    """

    def __init__(self, dpi: float | None = None) -> None:
        self.dpi = dpi
        self._layouts: dict[tuple, Any] = {}

    def draw(self, cutout: Cutout) -> dict[str, Figure]:
        """Every figure of one candidate, by name, in reading order (a one-plane product has
        cuts through the candidate, ``profiles``, where a cube has ``spectra``)."""
        return {name: layout.draw(cutout) for name, layout in self._layouts_of(cutout)}

    def pngs(self, cutout: Cutout) -> dict[str, bytes]:
        """PNG bytes of every figure of one candidate, by name (as `draw` names them), at
        ``dpi``: what does not change from the last candidate is not drawn again."""
        out = {}
        for name, layout in self._layouts_of(cutout):
            layout.draw(cutout)
            out[name] = layout.png()
        return out

    def laid_out(self, cutout: Cutout) -> bool:
        """Whether every layout this candidate's figures need is made already."""
        return all(key in self._layouts for _, key in self._wanted(cutout))

    def _wanted(self, cutout: Cutout) -> list[tuple[str, tuple]]:
        """(name, layout key) of every figure of the candidate, in reading order."""
        single = len(cutout.channels) == 1
        wanted = [("data_test", _DataTest, ())]
        wanted += [(f"{kind}_maps", _ChannelMaps, (kind, single)) for kind in MAP_KINDS]
        wanted.append(("profiles", _Profiles, ()) if len(cutout.spectral_channels) == 1
                      else ("spectra", _Spectra, ()))
        return [(name, (layout, *args)) for name, layout, args in wanted]

    def _layouts_of(self, cutout: Cutout) -> list[tuple[str, _Layout]]:
        out = []
        for name, key in self._wanted(cutout):
            if key not in self._layouts:
                self._layouts[key] = key[0](*key[1:], dpi=self.dpi)
            out.append((name, self._layouts[key]))
        return out


def evidence(cutout: Cutout) -> dict[str, Figure]:
    """Every figure of one candidate, by name (new Figures; `EvidenceFigures.draw`)."""
    return EvidenceFigures().draw(cutout)


def channel_maps(cutout: Cutout, kind: str) -> Figure:
    """3x3 channel maps of ``kind`` ('image', 'model', 'residual') around the candidate
    (one map for a one-plane product)."""
    return _ChannelMaps(kind, len(cutout.channels) == 1).draw(cutout)


def spectra(cutout: Cutout) -> Figure:
    """Spectra of the 3x3 pixels around the candidate: image, residual, model x ppb."""
    return _Spectra().draw(cutout)


def profiles(cutout: Cutout) -> Figure:
    """Cuts through the candidate along RA and Dec of a one-plane product: image,
    residual and model x pixels per beam (Jy/beam) against offset (arcsec)."""
    return _Profiles().draw(cutout)


def data_test(cutout: Cutout) -> Figure:
    """The one-channel spike in the restored image beside the same spike in the data
    (dirty image), and what the model adds beyond the data."""
    return _DataTest().draw(cutout)


#: zlib level of the evidence PNGs: 3 encodes in half the time of PIL's default 6, for
#: files about 6 % larger
PNG_COMPRESSION = 3


class _Layout:
    """A figure drawn for one candidate after another (`draw`), saved by `png`.

    A layout with ``dynamic`` artists (those a candidate changes: images, marks, titles,
    the colour bar) draws the rest once, as a background, for as long as `static_key`
    stays the same, and then only them over it, in matplotlib's own order (Axes by Axes,
    each by zorder). The PNG then differs from the whole figure's only where a tick mark
    meets its frame (the two black lines are blended in the other order); a test checks
    that. Without ``dynamic`` the figure is drawn whole.
    """

    figure: Figure
    dynamic: list | None = None

    def draw(self, cutout: Cutout) -> Figure:
        raise NotImplementedError

    def static_key(self) -> tuple:
        """What the background shows that a candidate can change: whether each static Axes
        is shown, its axis labels and limits."""
        dynamic = set(map(id, self.dynamic or ()))
        return tuple((ax.get_visible(), ax.get_xlabel(), ax.get_ylabel(), ax.get_xlim(),
                      ax.get_ylim()) for ax in self.figure.axes if id(ax) not in dynamic)

    def png(self) -> bytes:
        """The figure as last drawn, as PNG bytes at its own dpi."""
        canvas = self.figure.canvas
        if self.dynamic is None:
            canvas.draw()
        else:
            self._draw_over_background()
        buffer = io.BytesIO()
        imsave(buffer, canvas.buffer_rgba(), format="png", origin="upper", dpi=self.figure.dpi,
               pil_kwargs={"compress_level": PNG_COMPRESSION})
        return buffer.getvalue()

    def _draw_over_background(self) -> None:
        canvas = self.figure.canvas
        key = self.static_key()
        if key != getattr(self, "_key", None):
            for artist in self.dynamic:
                artist.set_animated(True)
            canvas.draw()  # leaves the animated artists out
            for artist in self.dynamic:
                artist.set_animated(False)
            # the whole canvas, in its integer pixels: the figure's bbox in float pixels
            # (8.2 in x 50 dpi = 409.99999...) would leave the last column out, and with
            # it what the last candidate drew there
            self._background = canvas.copy_from_bbox(
                Bbox.from_bounds(0, 0, *canvas.get_width_height()))
            self._key = key
        else:
            canvas.restore_region(self._background)
        renderer = canvas.get_renderer()
        dynamic = set(map(id, self.dynamic))
        for artist in sorted(self.figure.get_children()[1:], key=lambda a: a.get_zorder()):
            if id(artist) in dynamic:
                artist.draw(renderer)
            elif artist in self.figure.axes and artist.get_visible():
                for child in sorted(artist.get_children(), key=lambda a: a.get_zorder()):
                    if id(child) in dynamic:
                        child.draw(renderer)


class _ChannelMaps(_Layout):
    """The channel maps of one product: a 3x3 grid, or one map for a one-plane product."""

    def __init__(self, kind: str, single: bool, *, dpi: float | None = None):
        self.kind, self.single = kind, single
        title, unit, _ = MAP_KINDS[kind]
        if single:
            self.figure = _figure((5.4, 4.8), dpi)
            self.axes = np.array([[_grid(self.figure, 1, 1, left=0.16, right=0.8, bottom=0.12,
                                         top=0.86)]])
            cax = self.figure.add_axes((0.83, 0.16, 0.035, 0.66))
        else:
            self.figure = _figure((8.2, 8.0), dpi)
            self.axes = _grid(self.figure, 3, 3, left=0.09, right=0.86, bottom=0.07, top=0.9,
                              wspace=0.08, hspace=0.22)
            cax = self.figure.add_axes((0.88, 0.15, 0.025, 0.67))
        cmap = "inferno" if kind == "image" else "RdBu_r"
        colour = "cyan" if kind == "image" else "black"
        self.images, self.marks, self.beams = [], [], []
        for ax in self.axes.flat:
            self.images.append(ax.imshow(np.zeros((1, 1)), origin="lower", cmap=cmap,
                                         interpolation="nearest"))
            self.marks.append(_mark(ax, colour))
            self.beams.append(None if kind == "model" else
                              _beam(ax, "white" if kind == "image" else "black"))
            ax.set_title("", fontsize=9, y=1.0)
        for ax in self.axes[:, 0]:
            ax.set_ylabel("offset Dec (arcsec)")
        self.figure.colorbar(self.images[0], cax=cax, label=unit)
        self.title = self.figure.suptitle("")
        self.dynamic = [*self.images, *self.marks, *(b for b in self.beams if b is not None),
                        *(ax.title for ax in self.axes.flat), self.title, cax,
                        *_frames(self.axes)]

    def draw(self, cutout: Cutout) -> Figure:
        title, _, stretch = MAP_KINDS[self.kind]
        data = getattr(cutout, self.kind)
        norm = _norm(data, stretch, cutout.rms)
        chan = int(cutout.row["channel"])
        extent = _extent(cutout, data.shape[1:])
        shown = len(cutout.channels)
        for i, ax in enumerate(self.axes.flat):
            ax.set_visible(i < shown)
            if i >= shown:
                continue
            # the offsets are read off the lowest panel of each column, the bottom row's
            # when fewer than nine channels are shown (near either end of the cube)
            lowest = self.single or i + self.axes.shape[1] >= shown
            ax.xaxis.set_tick_params(labelbottom=lowest)
            ax.set_xlabel("offset RA (arcsec)" if lowest else "")
            self.images[i].set_data(data[i])
            self.images[i].set_norm(norm)
            self.images[i].set_extent(extent)
            c = int(cutout.channels[i])
            if not self.single:
                ax.title.set_text(f"ch {c}: {cutout.map_axis[i]:.2f} {_unit_label(cutout)}")
                ax.title.set_color("crimson" if c == chan else "black")
                ax.title.set_fontweight("bold" if c == chan else "normal")
            _place_mark(self.marks[i], cutout)
            if self.beams[i] is not None:
                _place_beam(self.beams[i], cutout, extent)
        self.axes[0, 0].set_xlim(extent[0], extent[1])
        self.axes[0, 0].set_ylim(extent[2], extent[3])
        where = f"(x={cutout.row['x']}, y={cutout.row['y']})"
        self.title.set_text(f"#{cutout.row['id']} {title} {where}" if self.single else
                            f"#{cutout.row['id']} {title}: channels around {chan} {where}")
        return self.figure


class _Spectra(_Layout):
    """Spectra of the 3x3 pixels around a candidate."""

    def __init__(self, *, dpi: float | None = None) -> None:
        self.figure = _figure((10, 8), dpi)
        self.axes = _grid(self.figure, 3, 3, left=0.08, right=0.98, bottom=0.07, top=0.91,
                          wspace=0.06, hspace=0.2)
        self.lines = {}
        for iy, dy in enumerate((1, 0, -1)):
            for ix, dx in enumerate((-1, 0, 1)):
                ax = self.axes[iy, ix]
                self.lines[iy, ix] = (
                    ax.step([], [], where="mid", color="black", lw=1.2, label="image")[0],
                    ax.step([], [], where="mid", color="tab:orange", lw=1.0,
                            label="residual")[0],
                    ax.plot([], [], color="tab:blue", lw=1.0, alpha=0.8,
                            label="model x pixels/beam")[0],
                    ax.axvline(0.0, color="crimson", ls="--", lw=1, label="candidate channel"))
                ax.set_title(f"dx={dx} dy={dy}", fontsize=9, y=1.0)
        for ax in self.axes[:, 0]:
            ax.set_ylabel("Jy/beam")
        self.axes[0, 0].legend(fontsize=7, loc="upper left")
        self.title = self.figure.suptitle("")

    def draw(self, cutout: Cutout) -> Figure:
        axis = cutout.spectral_axis
        mark = axis[list(cutout.spectral_channels).index(int(cutout.row["channel"]))]
        for (iy, ix), (image, residual, model, marker) in self.lines.items():
            j, i = 2 - iy, ix  # rows run dy = 1, 0, -1: pixel row y + dy
            image.set_data(axis, cutout.spectra["image"][:, j, i])
            residual.set_data(axis, cutout.spectra["residual"][:, j, i])
            model.set_data(axis, cutout.spectra["model"][:, j, i])
            marker.set_xdata([mark, mark])
        for ax in self.axes.flat:  # shared x: the limits span every panel's data
            ax.relim()
        self.axes[0, 0].autoscale_view(scaley=False)
        self.axes[0, 0].set_ylim(*_spectra_limits(cutout))
        for ax in self.axes[-1]:
            ax.set_xlabel(_axis_label(cutout))
        self.title.set_text(f"#{cutout.row['id']} spectra around x={cutout.row['x']}, "
                            f"y={cutout.row['y']} (model clipped to the plot)")
        return self.figure


class _Profiles(_Layout):
    """Cuts along RA and Dec through a candidate of a one-plane product."""

    def __init__(self, *, dpi: float | None = None) -> None:
        self.figure = _figure((10, 4.2), dpi)
        # RA and Dec offsets run differently (east to the left): the panels share only y
        self.axes = self.figure.subplots(1, 2, sharey=True, gridspec_kw=dict(
            left=0.08, right=0.98, bottom=0.14, top=0.84, wspace=0.08))
        self.lines = []
        for ax, name in zip(self.axes, ("RA", "Dec")):
            self.lines.append((
                ax.step([], [], where="mid", color="black", lw=1.2, label="image")[0],
                ax.step([], [], where="mid", color="tab:orange", lw=1.0, label="residual")[0],
                ax.plot([], [], color="tab:blue", lw=1.0, alpha=0.8,
                        label="model x pixels/beam")[0]))
            ax.axvline(0.0, color="crimson", ls="--", lw=1, label="candidate")
            ax.set_xlabel(f"offset {name} (arcsec)")
            ax.set_title(f"along {name}", fontsize=9, y=1.0)
        self.axes[0].set_ylabel("Jy/beam")
        self.axes[0].legend(fontsize=7, loc="upper left")
        self.title = self.figure.suptitle("")

    def draw(self, cutout: Cutout) -> Figure:
        y, x = cutout.row["y"] - cutout.origin[0], cutout.row["x"] - cutout.origin[1]
        major, minor, _ = cutout.beam
        per_beam = np.pi / (4 * np.log(2)) * major * minor
        extent = _extent(cutout, cutout.image.shape[1:])
        shown = []
        for ax, lines, (index, span) in zip(self.axes, self.lines,
                                            (((y, slice(None)), extent[:2]),
                                             ((slice(None), x), extent[2:]))):
            image, residual = cutout.image[0][index], cutout.residual[0][index]
            shown += [image, residual]
            offsets = np.linspace(span[0], span[1], len(image) + 1)
            offsets = 0.5 * (offsets[1:] + offsets[:-1])
            for line, values in zip(lines, (image, residual, cutout.model[0][index] * per_beam)):
                line.set_data(offsets, values)
            ax.set_xlim(*span)  # RA: east (increasing) to the left, as in the maps
        values = np.concatenate(shown)
        values = values[np.isfinite(values)]
        low, high = (float(values.min()), float(values.max())) if values.size else (-1.0, 1.0)
        pad = 0.15 * (high - low or 1.0)
        self.axes[0].set_ylim(low - pad, high + pad)
        self.title.set_text(f"#{cutout.row['id']} cuts through x={cutout.row['x']}, "
                            f"y={cutout.row['y']} (one plane; model clipped to the plot)")
        return self.figure


class _DataTest(_Layout):
    """The image spike, the dirty image's spike and their difference, in spike_rms."""

    PANELS = ("restored image spike", "dirty image spike (the data)",
              "image minus data (model only)")

    def __init__(self, *, dpi: float | None = None) -> None:
        self.figure = _figure((12, 4.4), dpi)
        self.axes = _grid(self.figure, 1, 3, left=0.06, right=0.9, bottom=0.13, top=0.84,
                          wspace=0.08)
        self.norm = Normalize(-1, 1)
        self.images, self.marks, self.beams, self.empty = [], [], [], []
        for ax, title in zip(self.axes, self.PANELS):
            self.images.append(ax.imshow(np.zeros((1, 1)), origin="lower", cmap="RdBu_r",
                                         norm=self.norm, interpolation="nearest"))
            self.marks.append(_mark(ax, "black"))
            ax.set_title(title, fontsize=10, y=1.0)
            ax.set_xlabel("offset RA (arcsec)")
            self.beams.append(_beam(ax, "black"))
            self.empty.append(ax.text(0.5, 0.5, "no psf", transform=ax.transAxes,
                                      ha="center"))
        self.axes[0].set_ylabel("offset Dec (arcsec)")
        cax = self.figure.add_axes((0.915, 0.17, 0.012, 0.63))
        self.figure.colorbar(self.images[0], cax=cax, label="spike / spike_rms")
        self.title = self.figure.suptitle("")
        self.dynamic = [*self.images, *self.marks, *self.beams, *self.empty, self.title, cax,
                        *_frames(self.axes)]

    def draw(self, cutout: Cutout) -> Figure:
        extent = _extent(cutout, cutout.spike.shape)
        planes = (cutout.spike, cutout.dirty_spike, cutout.spike - cutout.dirty_spike)
        finite = np.concatenate([p[np.isfinite(p)] for p in planes])
        top = max(5 * cutout.spike_rms, float(np.max(np.abs(finite))) if finite.size else 1.0)
        self.norm.vmin, self.norm.vmax = -top / cutout.spike_rms, top / cutout.spike_rms
        for i, plane in enumerate(planes):
            self.images[i].set_data(plane / cutout.spike_rms)
            self.images[i].set_extent(extent)
            _place_mark(self.marks[i], cutout)
            _place_beam(self.beams[i], cutout, extent)
            self.empty[i].set_visible(not np.isfinite(plane).any())
        self.axes[0].set_xlim(extent[0], extent[1])
        self.axes[0].set_ylim(extent[2], extent[3])
        row = cutout.row
        self.title.set_text(f"#{row['id']} {row['classification'].upper()}: image spike "
                            f"{row['spike_snr']:.1f}, data {row['dirty_snr']:.1f} (spike_rms); "
                            f"unsupported {row['unsupported_snr']:.1f} rms")
        self.title.set_color(_dark(CLASSES[row["classification"]][0]))
        return self.figure


def overview(peak: np.ndarray, catalog, rms: np.ndarray, frequency_axis: np.ndarray,
             axis_label: str) -> Figure:
    """Peak-intensity map with all candidates by class; candidates and noise per channel.

    Parameters
    ----------
    peak : ndarray, shape (ny, nx)
        Peak intensity, Jy/beam.
    catalog : Table
        Candidates (x, y, channel, classification).
    rms : ndarray, shape (nchan,)
        Noise per channel, Jy/beam.
    frequency_axis : ndarray, shape (nchan,)
        Velocity or frequency of each channel; ``axis_label`` names it.
    """
    figure = Figure(figsize=(13, 5.2), layout="constrained")
    left, right = figure.subplots(1, 2, width_ratios=[1, 1.35])
    finite = peak[np.isfinite(peak)]
    vmax = np.percentile(finite, 99.5) if finite.size else 1.0
    left.imshow(peak, origin="lower", cmap="gray_r", vmin=np.percentile(finite, 5)
                if finite.size else 0, vmax=vmax, interpolation="nearest")
    for name, (colour, _) in CLASSES.items():
        rows = catalog[catalog["classification"] == name]
        left.scatter(rows["x"], rows["y"], s=36, facecolors="none", edgecolors=colour,
                     linewidths=1.4, label=f"{name} ({len(rows)})")
    left.set_xlabel("x (pixel)", labelpad=1)
    left.set_ylabel("y (pixel)")
    left.set_title("peak intensity over channels")
    left.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=4,
                frameon=False)
    channels = np.arange(len(rms))
    bottom = np.zeros(len(rms))
    for name, (colour, _) in CLASSES.items():
        counts = np.bincount(np.asarray(catalog["channel"][catalog["classification"] == name],
                                        dtype=int), minlength=len(rms))
        right.bar(channels, counts, bottom=bottom, color=colour, edgecolor="0.3", lw=0.3,
                  label=name)
        bottom += counts
    right.set_xlabel("channel")
    right.set_ylabel("candidates")
    right.legend(fontsize=8, loc="upper left")
    noise = right.twinx()
    noise.plot(channels, rms * 1e3, color="black", lw=1.2, marker=".", label="rms")
    noise.set_ylabel("rms (mJy/beam)")
    noise.set_ylim(0, np.nanmax(rms) * 1.3e3 if np.isfinite(rms).any() else 1)
    right.set_title("candidates and noise per channel")
    top = right.secondary_xaxis("top", functions=_channel_to_axis(frequency_axis))
    top.set_xlabel(axis_label)
    return figure


def _figure(size: tuple[float, float], dpi: float | None) -> Figure:
    """A Figure of ``size`` inches with its own Agg canvas (kept from save to save)."""
    figure = Figure(figsize=size, dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def _grid(figure: Figure, nrows: int, ncols: int, **spacing: float) -> np.ndarray:
    """Panels sharing both axes on a fixed grid (figure fractions in ``spacing``): laid out
    once, without a layout engine measuring every tick label at each draw."""
    axes = figure.subplots(nrows, ncols, sharex=True, sharey=True, gridspec_kw=spacing)
    for ax in np.ravel(axes):  # titles and labels at fixed places: not fitted to the ticks
        ax.title.set_y(1.0)
        ax.xaxis.set_label_coords(0.5, -0.17 if nrows > 1 else -0.1)
        ax.yaxis.set_label_coords(-0.2 if ncols > 1 else -0.1, 0.5)
    return axes


def _frames(axes: np.ndarray) -> list:
    """The spines of every Axes (drawn over its images)."""
    return [spine for ax in np.ravel(axes) for spine in ax.spines.values()]


def _norm(data: np.ndarray, stretch: str, rms: float) -> ImageNormalize:
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return ImageNormalize(vmin=0, vmax=1)
    if stretch == "symmetric":
        top = max(5 * rms, float(np.max(np.abs(finite))))
        return ImageNormalize(vmin=-top, vmax=top, stretch=LinearStretch())
    if stretch == "symlog":  # linear within +-1 rms (a pixel that restores to 1 sigma)
        top = max(float(np.max(np.abs(finite))), 10 * rms)
        return SymLogNorm(linthresh=rms, vmin=-top, vmax=top)
    return ImageNormalize(vmin=float(np.percentile(finite, 1)), vmax=float(finite.max()),
                          stretch=LinearStretch())


def _extent(cutout: Cutout, shape: tuple[int, int]) -> list[float]:
    """Offset arcsec of the pixel edges, east (RA increasing) to the left."""
    y0, x0 = cutout.origin
    scale = cutout.pixel_scale
    dx0 = (x0 - 0.5 - cutout.row["x"]) * scale
    dx1 = (x0 + shape[1] - 0.5 - cutout.row["x"]) * scale
    dy0 = (y0 - 0.5 - cutout.row["y"]) * scale
    dy1 = (y0 + shape[0] - 0.5 - cutout.row["y"]) * scale
    return [-dx0, -dx1, dy0, dy1]


def _beam(ax, colour: str) -> Ellipse:
    """The restoring beam's ellipse (placed by `_place_beam`)."""
    return ax.add_patch(Ellipse((0, 0), 1, 1, facecolor=colour, alpha=0.45, edgecolor=colour,
                                lw=1.0))


def _place_beam(patch: Ellipse, cutout: Cutout, extent: list[float]) -> None:
    """The restoring beam in the lower left (east is to the left, so a PA from north
    through east turns counter-clockwise on the page)."""
    major, minor, pa = cutout.beam
    scale = cutout.pixel_scale
    patch.set_center((extent[0] - 0.12 * (extent[0] - extent[1]),
                      extent[2] + 0.12 * (extent[3] - extent[2])))
    patch.set_width(minor * scale)
    patch.set_height(major * scale)
    patch.set_angle(pa)


def _mark(ax, colour: str) -> Ellipse:
    """An open circle around the candidate (sized by `_place_mark`)."""
    return ax.add_patch(Ellipse((0, 0), 1, 1, facecolor="none", edgecolor=colour, lw=1.0,
                                ls="--"))


def _place_mark(patch: Ellipse, cutout: Cutout) -> None:
    """One beam FWHM across, so that the candidate's pixel stays visible."""
    patch.set_width(cutout.beam[0] * cutout.pixel_scale)
    patch.set_height(cutout.beam[0] * cutout.pixel_scale)


def _unit_label(cutout: Cutout) -> str:
    return cutout.spectral_unit


def _axis_label(cutout: Cutout) -> str:
    return "radio velocity (km/s)" if cutout.spectral_unit == "km/s" else "frequency (GHz)"


def _spectra_limits(cutout: Cutout) -> tuple[float, float]:
    values = np.concatenate([cutout.spectra["image"].ravel(), cutout.spectra["residual"].ravel()])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return -1.0, 1.0
    low, high = float(values.min()), float(values.max())
    pad = 0.15 * (high - low or 1.0)
    return low - pad, high + pad


def _channel_to_axis(axis: np.ndarray):
    """Forward and inverse maps channel <-> spectral value for a secondary axis (linear)."""
    if len(axis) < 2 or not np.all(np.isfinite(axis)) or axis[-1] == axis[0]:
        return (lambda c: c), (lambda v: v)
    slope = (axis[-1] - axis[0]) / (len(axis) - 1)
    return (lambda c: axis[0] + slope * np.asarray(c)), (lambda v: (np.asarray(v) - axis[0]) / slope)


def _dark(colour: str) -> str:
    return {"yellow": "darkgoldenrod", "cyan": "darkcyan", "gray": "dimgray"}.get(colour, colour)
