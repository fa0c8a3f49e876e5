"""Parameters of the scan, one dataclass per pipeline stage.

Defaults live here; a TOML parameter file (one table per stage, as in SoFiA-2's
``stage.key = value``) and ``--set stage.key=value`` overrides are merged on top and
validated: unknown stages or keys and values of the wrong type raise `InputError`.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import InputError

__all__ = ["NoiseConfig", "FindConfig", "ClassifyConfig", "StreamConfig", "RepairConfig",
           "Config",
           "load_config", "default_config_text"]


@dataclass(frozen=True)
class NoiseConfig:
    """Per-channel thermal noise from the residual."""

    #: width (sigma) of the Gaussian smoothing subtracted before measuring, in restoring-beam FWHM
    highpass_beams: float = 0.5
    #: sigma-clipping level of the robust (MAD) estimate
    clip: float = 3.0
    #: at most this many pixels per channel are sampled
    max_samples: int = 250_000


@dataclass(frozen=True)
class FindConfig:
    """Candidate finding."""

    #: one-channel image spike (contrast against the adjacent channels), in units of its
    #: own noise (the residual's channel contrast); the image itself in one-plane products
    threshold: float = 5.0
    #: a model component whose restored point alone would reach this many sigma is a candidate
    model_threshold: float = 3.0
    #: pixels where the primary beam response is below this are ignored
    pb_min: float = 0.2


@dataclass(frozen=True)
class ClassifyConfig:
    """The data test and the class rules."""

    #: confetti: the image excess not demanded by the data (image minus dirty) reaches this, rms
    excess_min: float = 3.5
    #: ... and the data hold at most (1 - this) of the image spike
    excess_fraction: float = 0.5
    #: ... and the image spike there is at least this fraction of the largest spike within
    #: one beam FWHM (within its half maximum: the feature itself, not the flank of a brighter
    #: one, such as a bright source whose psf and restoring beam differ near the main lobe)
    feature_fraction: float = 0.5
    #: ... and the excess is compact: one beam FWHM out it is still at least half of its own
    #: in at most this fraction of 16 directions (a beam is at 1/16 there; a ridge or
    #: plateau of resolved-out extended emission stays high in many)
    extent_max: float = 0.25
    #: real: the dirty image (data) alone shows a one-channel spike of this significance
    real_min: float = 5.0
    #: ... and negative spikes as strong are this rare (see the reliability column)
    reliability_min: float = 0.9
    #: radius of the ring that sets the local background of the excess, in restoring-beam FWHM
    ring_beams: float = 1.5
    #: the same in a one-plane product, where the ring alone sets the background (no
    #: adjacent channel takes the steady emission away): one FWHM, where a point's restored
    #: excess is at 1/16 of its peak, so that the ring follows the beam-scale sidelobes of
    #: bright emission as closely as it can while taking at most ~6 % of a compact feature
    plane_ring_beams: float = 1.0
    #: negative model flux is summed within this radius, in restoring-beam FWHM
    bowl_beams: float = 3.0
    #: pixels per candidate channel at which the data test's statistic is measured where
    #: nothing is singled out (its null distribution: see null_spread, false_alarm)
    null_samples: int = 512
    #: confetti: at most this many false alarms as strong expected in the whole cube
    false_alarm_max: float = 0.01
    #: diverged channel: over the channel, image - dirty (what the model adds beyond the
    #: data) varies this many times more than the dirty image (the data) itself
    diverged_min: float = 2.0
    #: unconverged channel: its residual rms is at least this many times the cube's median
    #: channel rms (thermal noise varies far less from channel to channel)
    unconverged_min: float = 3.0


@dataclass(frozen=True)
class RepairConfig:
    """Repair: which model components are removed, and when the data allow it."""

    #: the model change at a confetti candidate (a bounded least-squares solve over its
    #: one-channel model excess) lies within this radius, in restoring-beam FWHM
    radius_beams: float = 4.0
    #: the residual is the data's verdict on a removal within this radius of a candidate,
    #: in restoring-beam FWHM (where a compact component's psf imprint lies); farther, any
    #: imprint of the removal counts against it
    residual_beams: float = 3.0
    #: weight of the fit to the data against the excess taken out, in the solve; whether
    #: the data accept a removal is decided afterwards (consistency_max). Weighed equally
    #: (1), the solve keeps a quarter of an excess the data cannot see; much lower, it may
    #: buy the last of it with a large imprint (measured in the README, Repair)
    data_weight: float = 0.1
    #: a removal is refused when it changes the fit to the data (the dirty image) by more
    #: than this, in units of the channel's sigma (see the repair log's consistency_sigma)
    consistency_max: float = 1.0
    #: a removal is refused when it leaves more than this share of the candidate's
    #: unsupported excess (the data hold the rest)
    left_max: float = 0.5
    #: a removal is refused when it changes the image at a real source (a candidate
    #: classified real) by more than this share of its value
    real_change_max: float = 0.01


@dataclass(frozen=True)
class StreamConfig:
    """Channel-block streaming."""

    #: memory budget for the channel blocks of all products, MB: shared by the worker
    #: threads of a local scan; each dask worker's own on a cluster
    memory_mb: int = 512
    #: channels per block; 0 chooses from memory_mb and the products' tile depth
    block_channels: int = 0
    #: blocks processed at once (threads); 0 means one per CPU core, as many as the
    #: memory budget holds one-channel blocks for
    workers: int = 0


@dataclass(frozen=True)
class Config:
    """All parameters of a scan."""

    noise: NoiseConfig = field(default_factory=NoiseConfig)
    find: FindConfig = field(default_factory=FindConfig)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    repair: RepairConfig = field(default_factory=RepairConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested plain dict ``{stage: {key: value}}``."""
        return dataclasses.asdict(self)

    def replace(self, overrides: dict[str, dict[str, Any]]) -> "Config":
        """Return a copy with ``{stage: {key: value}}`` applied, validated."""
        stages = {f.name: getattr(self, f.name) for f in fields(self)}
        for stage, values in overrides.items():
            if stage not in stages:
                raise InputError(f"unknown parameter stage '{stage}' "
                                 f"(known: {', '.join(stages)})")
            if not isinstance(values, dict):
                raise InputError(f"parameter stage '{stage}' must be a table of key = value")
            current = stages[stage]
            known = {f.name: f for f in fields(current)}
            checked = {}
            for key, value in values.items():
                if key not in known:
                    raise InputError(f"unknown parameter '{stage}.{key}' "
                                     f"(known: {', '.join(known)})")
                checked[key] = _coerce(f"{stage}.{key}", value, type(getattr(current, key)))
            stages[stage] = dataclasses.replace(current, **checked)
        return Config(**stages)


def _coerce(name: str, value: Any, kind: type) -> Any:
    if kind is bool or isinstance(value, bool):
        raise InputError(f"parameter '{name}' must be a number, not {value!r}")
    if isinstance(value, str):
        try:
            value = float(value) if kind is float else int(value)
        except ValueError:
            raise InputError(f"parameter '{name}' must be a number, not '{value}'") from None
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise InputError(f"parameter '{name}' must be an integer, not {value}")
    if not isinstance(value, (int, float)):
        raise InputError(f"parameter '{name}' must be a number, not {value!r}")
    value = kind(value)
    if value < 0:
        raise InputError(f"parameter '{name}' must not be negative ({value})")
    return value


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """Turn ``["find.threshold=6", ...]`` into ``{"find": {"threshold": "6"}}``."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        stage, dot, name = key.strip().partition(".")
        if not sep or not dot or not stage or not name:
            raise InputError(f"--set expects stage.key=value, got '{item}'")
        out.setdefault(stage, {})[name] = value.strip()
    return out


def load_config(path: str | Path | None = None,
                overrides: dict[str, dict[str, Any]] | None = None) -> Config:
    """Defaults, then the TOML file at ``path`` (if given), then ``overrides``."""
    config = Config()
    if path is not None:
        path = Path(path)
        try:
            with path.open("rb") as handle:
                config = config.replace(tomllib.load(handle))
        except OSError as exc:
            raise InputError(f"{path}: cannot read parameter file ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{path}: not a valid TOML parameter file ({exc})") from None
    if overrides:
        config = config.replace(overrides)
    return config


def default_config_text() -> str:
    """The full default parameter file, commented from the dataclasses' field comments."""
    import inspect

    lines = ["# deconfetti parameter file: defaults. Pass with --config FILE;",
             "# override single values with --set stage.key=value.", ""]
    for stage in fields(Config):
        cls = stage.default_factory
        lines.append(f"[{stage.name}]  # {inspect.getdoc(cls)}")
        comments = _field_comments(cls)
        for f in fields(cls):
            if f.name in comments:
                lines.append(f"# {comments[f.name]}")
            lines.append(f"{f.name} = {f.default!r}")
        lines.append("")
    return "\n".join(lines)


def _field_comments(cls: type) -> dict[str, str]:
    import inspect

    comments, pending = {}, None
    for line in inspect.getsource(cls).splitlines():
        text = line.strip()
        if text.startswith("#:"):
            pending = f"{pending} {text[2:].strip()}" if pending else text[2:].strip()
        elif pending and ":" in text:
            comments[text.split(":")[0].strip()] = pending
            pending = None
    return comments
