"""Block results kept on disk so that an interrupted scan resumes where it stopped.

A checkpoint folder holds ``fingerprint.json`` (the inputs' paths, sizes and modification
times, the parameters and the block size) and one ``block_<start>.npz`` per finished
block, each written atomically. Blocks are reused only under the same fingerprint;
files are read with ``allow_pickle=False`` (nothing from disk is unpickled).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .files import atomic_write, remove_temporaries
from .io.products import Products
from .stream import Block, BlockResult

__all__ = ["BlockStore"]


class BlockStore:
    """Finished blocks of one scan in ``folder``.

    Parameters
    ----------
    folder : Path
    products : Products
    parameters : dict
        The scan's full configuration (`Config.to_dict`) and block size. The number of
        workers is left out: results do not depend on it, and blocks are checked by their
        channels.
    resume : bool
        Keep blocks already there when their fingerprint matches; otherwise start empty.
    """

    def __init__(self, folder: Path, products: Products, parameters: dict[str, Any], *,
                 resume: bool):
        self.folder = Path(folder)
        stream = {k: v for k, v in parameters.get("stream", {}).items() if k != "workers"}
        parameters = {**parameters, "stream": stream}
        fingerprint = {"inputs": {kind: _stat(path) for kind, path in products.paths.items()},
                       "parameters": parameters}
        marker = self.folder / "fingerprint.json"
        same = resume and marker.exists() and _read_json(marker) == json.loads(
            json.dumps(fingerprint))
        try:
            if not same and self.folder.exists():
                shutil.rmtree(self.folder)
            self.folder.mkdir(parents=True, exist_ok=True)
            remove_temporaries(self.folder)  # left by a killed scan
        except OSError as exc:
            raise InputError(f"{self.folder}: cannot write the checkpoint "
                             f"({exc.strerror or exc})") from None
        if not same:
            atomic_write(marker, lambda p: p.write_text(json.dumps(fingerprint),
                                                        encoding="utf-8"))

    def has(self, block: Block) -> bool:
        """Whether ``block`` was stored, complete (reads only its ``stop`` entry and the
        names)."""
        path = self.folder / f"block_{block.start}.npz"
        try:
            with np.load(path, allow_pickle=False) as data:
                return int(data["stop"]) == block.stop and "map_shapes" in data.files
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return False

    def load(self, block: Block):
        """The stored result of ``block``, or None."""
        path = self.folder / f"block_{block.start}.npz"
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                parts = {name: data[name] for name in data.files}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        if int(parts.pop("stop")) != block.stop:
            return None
        return BlockResult(
            rms=parts.pop("rms"), unsupported=parts.pop("unsupported"),
            peak=parts.pop("peak", None),
            negatives={k[4:]: parts.pop(k) for k in list(parts) if k.startswith("neg_")},
            columns={k[4:]: parts.pop(k) for k in list(parts) if k.startswith("col_")},
            maps=_split_maps(parts.pop("map_values"), parts.pop("map_shapes")))

    def save(self, block: Block, result) -> None:
        """Store ``result`` of ``block`` (atomically)."""
        arrays = {"stop": np.array(block.stop), "rms": result.rms,
                  "unsupported": result.unsupported}
        if result.peak is not None:
            arrays["peak"] = result.peak
        arrays.update({f"col_{k}": np.asarray(v) for k, v in result.columns.items()})
        arrays.update({f"neg_{k}": np.asarray(v) for k, v in result.negatives.items()})
        arrays["map_shapes"] = np.array([m.shape for m in result.maps], dtype=int).reshape(-1, 2)
        arrays["map_values"] = (np.concatenate([m.ravel() for m in result.maps])
                                if result.maps else np.zeros(0, np.float32))
        atomic_write(self.folder / f"block_{block.start}.npz", lambda p: _savez(p, arrays))

    def remove(self) -> None:
        """Delete the folder (after the outputs are written)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def _stat(path: str) -> list:
    target = Path(path)
    files = [target] if target.is_file() else sorted(target.glob("table.f*"))
    return [path] + [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def _split_maps(values: np.ndarray, shapes: np.ndarray) -> list[np.ndarray]:
    """The maps that `BlockStore.save` stored flat, back in their shapes."""
    ends = np.cumsum([h * w for h, w in shapes])
    return [part.reshape(shape) for part, shape in
            zip(np.split(values, ends[:-1]) if len(shapes) else [], shapes)]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as handle:  # a file object: np.savez would append .npz to a name
        np.savez(handle, **arrays)
