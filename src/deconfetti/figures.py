"""Matplotlib figures of the evidence: functions that return Figures; saving is elsewhere.

Per candidate (from a `Cutout`): channel maps of the image, model and residual, the 3x3
neighbouring spectra, and the data test (image spike beside the same spike in the data).
Per cube: the peak-intensity map with every candidate and the per-channel counts and noise.
Maps are drawn in offset arcsec from the candidate, east to the left.
"""

from __future__ import annotations

import numpy as np
from astropy.visualization import ImageNormalize, LinearStretch
from matplotlib.colors import SymLogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

from .classify import CLASSES
from .cutout import Cutout

__all__ = ["channel_maps", "spectra", "profiles", "data_test", "overview", "evidence",
           "MAP_KINDS"]

#: product -> (title, unit, stretch)
MAP_KINDS = {"image": ("image", "Jy/beam", "linear"),
             "model": ("model", "Jy/pixel", "symlog"),
             "residual": ("residual", "Jy/beam", "symmetric")}


def evidence(cutout: Cutout) -> dict[str, Figure]:
    """Every figure of one candidate, by name, in reading order (a one-plane product has
    cuts through the candidate, ``profiles``, where a cube has ``spectra``)."""
    figures = {"data_test": data_test(cutout)}
    figures.update({f"{kind}_maps": channel_maps(cutout, kind) for kind in MAP_KINDS})
    if len(cutout.spectral_channels) > 1:
        figures["spectra"] = spectra(cutout)
    else:
        figures["profiles"] = profiles(cutout)
    return figures


def channel_maps(cutout: Cutout, kind: str) -> Figure:
    """3x3 channel maps of ``kind`` ('image', 'model', 'residual') around the candidate
    (one map for a one-plane product)."""
    title, unit, stretch = MAP_KINDS[kind]
    data = getattr(cutout, kind)
    norm = _norm(data, stretch, cutout.rms)
    if len(cutout.channels) == 1:
        figure = Figure(figsize=(5.4, 4.8))
        axes = np.array([[_grid(figure, 1, 1, left=0.16, right=0.8, bottom=0.12, top=0.86)]])
    else:
        figure = Figure(figsize=(8.2, 8.0))
        axes = _grid(figure, 3, 3, left=0.09, right=0.86, bottom=0.07, top=0.9, wspace=0.08,
                     hspace=0.22)
    chan = int(cutout.row["channel"])
    extent = _extent(cutout, data.shape[1:])
    image = None
    for ax, i in zip(axes.flat, range(9)):
        if i >= len(cutout.channels):
            ax.set_axis_off()
            continue
        image = ax.imshow(data[i], origin="lower", extent=extent, norm=norm,
                          cmap="inferno" if kind == "image" else "RdBu_r",
                          interpolation="nearest")
        c = int(cutout.channels[i])
        marked = c == chan
        if len(cutout.channels) > 1:
            ax.set_title(f"ch {c}: {cutout.map_axis[i]:.2f} {_unit_label(cutout)}",
                         fontsize=9, color="crimson" if marked else "black",
                         fontweight="bold" if marked else "normal", y=1.0)
        _mark(ax, cutout, "cyan" if kind == "image" else "black")
        if kind != "model":
            _draw_beam(ax, cutout, extent, "white" if kind == "image" else "black")
    for ax in axes[-1]:
        ax.set_xlabel("offset RA (arcsec)")
    for ax in axes[:, 0]:
        ax.set_ylabel("offset Dec (arcsec)")
    where = f"(x={cutout.row['x']}, y={cutout.row['y']})"
    if len(cutout.channels) == 1:
        figure.colorbar(image, cax=figure.add_axes((0.83, 0.16, 0.035, 0.66)), label=unit)
        figure.suptitle(f"#{cutout.row['id']} {title} {where}")
        return figure
    if image is not None:
        figure.colorbar(image, cax=figure.add_axes((0.88, 0.15, 0.025, 0.67)), label=unit)
    figure.suptitle(f"#{cutout.row['id']} {title}: channels around {chan} {where}")
    return figure


def spectra(cutout: Cutout) -> Figure:
    """Spectra of the 3x3 pixels around the candidate: image, residual, model x ppb."""
    figure = Figure(figsize=(10, 8))
    axes = _grid(figure, 3, 3, left=0.08, right=0.98, bottom=0.07, top=0.91, wspace=0.06,
                 hspace=0.2)
    axis = cutout.spectral_axis
    mark = axis[list(cutout.spectral_channels).index(int(cutout.row["channel"]))]
    for iy, dy in enumerate((1, 0, -1)):
        for ix, dx in enumerate((-1, 0, 1)):
            ax = axes[iy, ix]
            j, i = 1 + dy, 1 + dx
            ax.step(axis, cutout.spectra["image"][:, j, i], where="mid", color="black",
                    lw=1.2, label="image")
            ax.step(axis, cutout.spectra["residual"][:, j, i], where="mid", color="tab:orange",
                    lw=1.0, label="residual")
            ax.plot(axis, cutout.spectra["model"][:, j, i], color="tab:blue", lw=1.0,
                    alpha=0.8, label="model x pixels/beam")
            ax.axvline(mark, color="crimson", ls="--", lw=1, label="candidate channel")
            ax.set_title(f"dx={dx} dy={dy}", fontsize=9, y=1.0)
    limit = _spectra_limits(cutout)
    axes[0, 0].set_ylim(*limit)
    for ax in axes[-1]:
        ax.set_xlabel(_axis_label(cutout))
    for ax in axes[:, 0]:
        ax.set_ylabel("Jy/beam")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    figure.suptitle(f"#{cutout.row['id']} spectra around x={cutout.row['x']}, "
                    f"y={cutout.row['y']} (model clipped to the plot)")
    return figure


def profiles(cutout: Cutout) -> Figure:
    """Cuts through the candidate along RA and Dec of a one-plane product: image,
    residual and model x pixels per beam (Jy/beam) against offset (arcsec)."""
    figure = Figure(figsize=(10, 4.2))
    # RA and Dec offsets run differently (east to the left): the panels share only y
    axes = figure.subplots(1, 2, sharey=True, gridspec_kw=dict(left=0.08, right=0.98,
                                                               bottom=0.14, top=0.84,
                                                               wspace=0.08))
    y, x = cutout.row["y"] - cutout.origin[0], cutout.row["x"] - cutout.origin[1]
    major, minor, _ = cutout.beam
    per_beam = np.pi / (4 * np.log(2)) * major * minor
    extent = _extent(cutout, cutout.image.shape[1:])
    shown = []
    for ax, (name, index, span) in zip(axes, (("RA", (y, slice(None)), extent[:2]),
                                             ("Dec", (slice(None), x), extent[2:]))):
        image, residual = cutout.image[0][index], cutout.residual[0][index]
        shown += [image, residual]
        offsets = np.linspace(span[0], span[1], len(image) + 1)
        offsets = 0.5 * (offsets[1:] + offsets[:-1])
        ax.step(offsets, image, where="mid", color="black", lw=1.2, label="image")
        ax.step(offsets, residual, where="mid", color="tab:orange", lw=1.0, label="residual")
        ax.plot(offsets, cutout.model[0][index] * per_beam, color="tab:blue", lw=1.0,
                alpha=0.8, label="model x pixels/beam")
        ax.axvline(0.0, color="crimson", ls="--", lw=1, label="candidate")
        ax.set_xlim(*span)  # RA: east (increasing) to the left, as in the maps
        ax.set_xlabel(f"offset {name} (arcsec)")
        ax.set_title(f"along {name}", fontsize=9, y=1.0)
    values = np.concatenate(shown)
    values = values[np.isfinite(values)]
    low, high = (float(values.min()), float(values.max())) if values.size else (-1.0, 1.0)
    pad = 0.15 * (high - low or 1.0)
    for ax in axes:
        ax.set_ylim(low - pad, high + pad)
    axes[0].set_ylabel("Jy/beam")
    axes[0].legend(fontsize=7, loc="upper left")
    figure.suptitle(f"#{cutout.row['id']} cuts through x={cutout.row['x']}, "
                    f"y={cutout.row['y']} (one plane; model clipped to the plot)")
    return figure


def data_test(cutout: Cutout) -> Figure:
    """The one-channel spike in the restored image beside the same spike in the data
    (dirty image), and what the model adds beyond the data."""
    figure = Figure(figsize=(12, 4.4))
    axes = _grid(figure, 1, 3, left=0.06, right=0.9, bottom=0.13, top=0.84, wspace=0.08)
    extent = _extent(cutout, cutout.spike.shape)
    panels = [("restored image spike", cutout.spike),
              ("dirty image spike (the data)", cutout.dirty_spike),
              ("image minus data (model only)", cutout.spike - cutout.dirty_spike)]
    finite = np.concatenate([p[np.isfinite(p)] for _, p in panels])
    top = max(5 * cutout.spike_rms, float(np.max(np.abs(finite))) if finite.size else 1.0)
    image = None
    for ax, (title, plane) in zip(axes, panels):
        image = ax.imshow(plane / cutout.spike_rms, origin="lower", extent=extent,
                          cmap="RdBu_r", vmin=-top / cutout.spike_rms,
                          vmax=top / cutout.spike_rms, interpolation="nearest")
        _mark(ax, cutout, "black")
        ax.set_title(title, fontsize=10, y=1.0)
        ax.set_xlabel("offset RA (arcsec)")
        _draw_beam(ax, cutout, extent, "black")
        if not np.isfinite(plane).any():
            ax.text(0.5, 0.5, "no psf", transform=ax.transAxes, ha="center")
    axes[0].set_ylabel("offset Dec (arcsec)")
    figure.colorbar(image, cax=figure.add_axes((0.915, 0.17, 0.012, 0.63)),
                    label="spike / spike_rms")
    row = cutout.row
    colour = CLASSES[row["classification"]][0]
    figure.suptitle(f"#{row['id']} {row['classification'].upper()}: image spike "
                    f"{row['spike_snr']:.1f}, data {row['dirty_snr']:.1f} (spike_rms); "
                    f"unsupported {row['unsupported_snr']:.1f} rms", color=_dark(colour))
    return figure


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


def _grid(figure: Figure, nrows: int, ncols: int, **spacing: float) -> np.ndarray:
    """Panels sharing both axes on a fixed grid (figure fractions in ``spacing``): laid out
    once, without a layout engine measuring every tick label at each draw."""
    axes = figure.subplots(nrows, ncols, sharex=True, sharey=True, gridspec_kw=spacing)
    for ax in np.ravel(axes):  # titles and labels at fixed places: not fitted to the ticks
        ax.title.set_y(1.0)
        ax.xaxis.set_label_coords(0.5, -0.17 if nrows > 1 else -0.1)
        ax.yaxis.set_label_coords(-0.2 if ncols > 1 else -0.1, 0.5)
    return axes


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


def _draw_beam(ax, cutout: Cutout, extent: list[float], colour: str) -> None:
    """The restoring beam in the lower left (east is to the left, so a PA from north
    through east turns counter-clockwise on the page)."""
    major, minor, pa = cutout.beam
    scale = cutout.pixel_scale
    centre = (extent[0] - 0.12 * (extent[0] - extent[1]),
              extent[2] + 0.12 * (extent[3] - extent[2]))
    ax.add_patch(Ellipse(centre, minor * scale, major * scale, angle=pa, facecolor=colour,
                         alpha=0.45, edgecolor=colour, lw=1.0))


def _mark(ax, cutout: Cutout, colour: str) -> None:
    """An open circle of one beam FWHM around the candidate (leaves its pixel visible)."""
    ax.add_patch(Ellipse((0, 0), cutout.beam[0] * cutout.pixel_scale,
                         cutout.beam[0] * cutout.pixel_scale, facecolor="none",
                         edgecolor=colour, lw=1.0, ls="--"))


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
