"""Pinned outputs: the scan folder, repair log, repaired pixels and report of the shipped
example and two real tclean cases stay identical (apart from dates, versions and paths,
and numbers to their last digits: float rounding differs between CPUs and their numpy
builds, by about 1e-15 relative in the catalogs and 1e-7 in float32 pixels).

Any change of behaviour shows here as a changed file. When a change is meant, regenerate
the pins with ``DECONFETTI_UPDATE_PINNED=1 pytest tests/test_pinned.py`` and say why in the
commit.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

import deconfetti
from deconfetti.cli import main

DATA = Path(__file__).parent / "data"
PINNED = DATA / "pinned"
UPDATE = os.environ.get("DECONFETTI_UPDATE_PINNED") == "1"

#: case -> (products prefix, scan arguments, whether to repair)
CASES = {
    "example": (lambda: deconfetti.example_path(), ["--figures", "2", "--report", "--top", "2"], True),
    "nat7e": (lambda: str(DATA / "nat7e" / "img"), ["--figures", "0", "--report", "--top", "1"], False),
    "pedestal": (lambda: str(DATA / "pedestal" / "img"), ["--figures", "1"], True),
}
_DATE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)?")


def normalise_text(text: str, roots: list[str]) -> str:
    """Dates -> DATE, the given folders -> their placeholder, software versions dropped."""
    text = _DATE.sub("DATE", text)
    for i, root in enumerate(roots):
        text = text.replace(root, f"<ROOT{i}>")
    return re.sub(r'(deconfetti|version)(["\']?\s*[:=]\s*["\']?)\d+\.\d+[\w.+-]*', r"\1\2V", text)


def normalise_summary(text: str, roots: list[str]) -> str:
    summary = json.loads(text)
    summary.pop("software", None)
    return normalise_text(json.dumps(summary, indent=1, sort_keys=True), roots)


def normalise_ecsv(path: Path, roots: list[str]) -> str:
    """The columns and rows as written, the table's meta as sorted JSON (its YAML wraps
    at lengths that depend on the paths)."""
    from astropy.table import Table

    lines, inside = [], False
    for line in path.read_text().splitlines():
        inside = (inside or line.startswith("# meta:")) and not line.startswith("# schema:")
        if not inside:
            lines.append(line)
    meta = json.dumps(dict(Table.read(path, format="ascii.ecsv").meta), indent=1,
                      sort_keys=True, default=str)
    return normalise_text(meta + "\n" + "\n".join(lines), roots)


def digest(path: Path) -> str:
    """sha256 of a file; a CASA image's shape, unit, mask and pixel statistics."""
    if path.is_dir():
        from casacore.images import image
        img = image(str(path))
        data, mask = img.getdata(), img.getmask()
        head = hashlib.sha256(str(img.shape()).encode() + img.unit().encode()
                              + np.ascontiguousarray(mask).tobytes()).hexdigest()
        del img
        return f"pixels:{head}:" + json.dumps(_pixel_statistics(data))
    if path.suffix == ".fits":
        from astropy.io import fits
        with fits.open(path) as hdul:
            return hashlib.sha256(np.ascontiguousarray(hdul[0].data).tobytes()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pixel_statistics(data: np.ndarray) -> list[float]:
    """Count, sum, sum of |x|, root sum of squares, min, max of the finite pixels, and 32
    pixels spread over the cube."""
    flat = np.asarray(data, dtype=np.float64).ravel()
    finite = flat[np.isfinite(flat)]
    picks = flat[np.linspace(0, flat.size - 1, 32).astype(int)]
    return [float(v) for v in (finite.size, finite.sum(), np.abs(finite).sum(),
                               np.sqrt((finite ** 2).sum()), finite.min(), finite.max(),
                               *picks)]


_NUMBER = re.compile(r"([-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)")


def same(want: str, got: str, rtol: float = 1e-9) -> bool:
    """Equal text, numbers equal to ``rtol`` (pixel statistics: sums to ``rtol`` of the
    largest pixel times the square root of the count)."""
    if want.startswith("pixels:") and got.startswith("pixels:"):
        head_w, _, stats_w = want.rpartition(":")
        head_g, _, stats_g = got.rpartition(":")
        stats_w, stats_g = np.array(json.loads(stats_w)), np.array(json.loads(stats_g))
        count, scale = stats_w[0], np.abs(stats_w[4:6]).max()
        return head_w == head_g and np.allclose(stats_g, stats_w, rtol=rtol,
                                                atol=rtol * scale * np.sqrt(count))
    parts_w, parts_g = _NUMBER.split(want), _NUMBER.split(got)
    if len(parts_w) != len(parts_g) or parts_w[::2] != parts_g[::2]:
        return False
    return all(a == b or np.isclose(float(a), float(b), rtol=rtol, atol=1e-3 * rtol)
               for a, b in zip(parts_w[1::2], parts_g[1::2]))


def run_case(name: str, work: Path) -> dict[str, str]:
    """Scan (and repair) one case into ``work``; return file -> normalised text or digest."""
    prefix, scan_args, do_repair = CASES[name]
    prefix = prefix()
    scan_dir = work / "scan"
    assert main(["scan", prefix, "--out", str(scan_dir), "-q", *scan_args]) == 0
    if do_repair:
        rep = work / "repaired"
        assert main(["repair", str(scan_dir), "--out", str(rep), "--startmodel", "-q"]) == 0
        assert main(["report", str(scan_dir), "--overwrite", "--top", "2", "-q"]) == 0
    roots = [str(work), str(Path(prefix).parent.resolve()), str(Path(prefix).parent)]
    pinned: dict[str, str] = {}
    for path in _files(work):
        rel = path.relative_to(work).as_posix()
        if path.suffix == ".json":
            pinned[rel] = normalise_summary(path.read_text(), roots)
        elif path.suffix == ".ecsv":
            pinned[rel] = normalise_ecsv(path, roots)
        elif path.suffix in (".reg", ".crtf"):
            pinned[rel] = normalise_text(path.read_text(), roots)
        elif path.suffix == ".html":
            html = normalise_text(path.read_text(), roots)
            pinned[rel] = "sha256:" + hashlib.sha256(html.encode()).hexdigest()
        else:
            pinned[rel] = "sha256:" + digest(path)
    return pinned


def _files(folder: Path) -> list[Path]:
    """Files and CASA images (as one entry each) under ``folder``, hidden ones left out;
    a link is listed by its target's content."""
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and not (entry / "table.dat").exists():
            found += _files(entry)
        else:
            found.append(entry)
    return found


@pytest.mark.parametrize("name", sorted(CASES))
def test_outputs_pinned(name, tmp_path):
    got = run_case(name, tmp_path)
    pin = PINNED / f"{name}.json"
    if UPDATE:
        pin.parent.mkdir(exist_ok=True)
        pin.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = json.loads(pin.read_text())
    assert sorted(got) == sorted(want)
    for key in want:
        assert same(want[key], got[key], tolerance(key)), key


def tolerance(key: str) -> float:
    """Relative tolerance of a pinned file's numbers: the repair's float32 iterative solve
    carries rounding to ~3e-5 relative; the scan's float64 statistics to ~1e-15."""
    return 3e-4 if key.startswith("repaired/") or key.endswith("repair.ecsv") else 1e-9
