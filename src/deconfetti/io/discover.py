"""Finding tclean products by name: a prefix and its siblings, folders and glob patterns,
and the names of deconfetti's own outputs (which discovery skips)."""

from __future__ import annotations

import errno
import glob
import os
import re
from pathlib import Path

from ..errors import InputError

__all__ = ["PRODUCT_KINDS", "TAG", "REPAIRED", "kind_of", "split_name", "find_sibling",
           "check_link", "is_output", "inside_image", "find_images", "only_image_in",
           "repaired_path"]

#: the tclean products deconfetti knows, in the order they are looked up
PRODUCT_KINDS = ("image", "model", "residual", "psf", "pb", "mask")
#: the tag of deconfetti's scan folders, ``NAME.deconfetti/``
TAG = "deconfetti"
#: the tag of repaired products, ``NAME.repaired.<kind>`` (a prefix apart from the scan's)
REPAIRED = "repaired"
_SUFFIX = re.compile(r"^(?P<prefix>.+)\.(?P<kind>image|model|residual|psf|pb|mask)"
                     r"(?P<tt>\.tt0)?(?P<ext>\.fits?)?$", re.IGNORECASE)


def kind_of(path: Path) -> str | None:
    """The product kind its name gives ``path`` ('image', ..., 'mask'), or None."""
    match = _SUFFIX.match(path.name)
    return match["kind"].lower() if match else None


def split_name(source: Path) -> tuple[Path | None, str, str]:
    """``NAME.image.tt0.fits`` -> (NAME, '.tt0', '.fits'); a bare prefix -> (prefix, '', '');
    (None, '', '') when nothing is found."""
    match = _SUFFIX.match(source.name)
    check_link(source)
    if match and source.exists():
        return source.with_name(match["prefix"]), match["tt"] or "", match["ext"] or ""
    for tt in ("", ".tt0"):
        for ext in ("", ".fits"):
            candidate = source.with_name(f"{source.name}.image{tt}{ext}")
            check_link(candidate)
            if candidate.exists():
                return source, tt, ext
    return None, "", ""


def find_sibling(prefix: Path, kind: str, tt: str, ext: str) -> Path | None:
    """``prefix.<kind>`` in the format of ``tt`` and ``ext`` first, then the others."""
    order = [(tt, ext)] + [(t, e) for t in ("", ".tt0") for e in ("", ".fits") if (t, e) != (tt, ext)]
    for t, e in order:
        candidate = prefix.with_name(f"{prefix.name}.{kind}{t}{e}")
        check_link(candidate)
        if candidate.exists():
            return candidate
    return None


def check_link(path: Path) -> None:
    """Refuse a symbolic link that leads nowhere (missing target or a loop); a link to a
    product is read like the product."""
    if not path.is_symlink():
        return
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{path}: symbolic link loop") from None
        raise InputError(f"{path}: symbolic link to a missing file "
                         f"({os.readlink(path)})") from None


def is_output(path: Path) -> bool:
    """A repaired product (``NAME.deconfetti.<kind>``) or a path inside a scan folder."""
    return (f".{REPAIRED}." in path.name
            or any(part.endswith(f".{TAG}") for part in path.parts[:-1]))


def inside_image(path: Path) -> bool:
    """Whether ``path`` lies inside a CASA image directory: the parts of a virtual
    concatenation that tclean's parallel imaging moved into it (``NAME.image/NAME.n1.image``)
    are the cube's, not tclean runs of their own."""
    return any((parent / "table.dat").is_file() or (parent / "imageconcat.json").is_file()
               for parent in path.parents)


def find_images(sources: list[str | Path]) -> list[Path]:
    """The image product of every tclean run under ``sources``.

    Each source is a directory (searched recursively for ``*.image``, ``*.image.tt0``,
    ``*.image.fits`` and ``*.image.tt0.fits``), a glob pattern (``**`` allowed), or a
    product or prefix. One image per imagename prefix (a CASA image is preferred to its
    FITS export), sorted by path. In directories and glob patterns deconfetti's own outputs
    are skipped: repaired products (``NAME.repaired.image``) and anything inside a scan
    folder (``NAME.deconfetti/``); so is anything inside a CASA image (`inside_image`).
    """
    patterns = ("*.image", "*.image.tt0", "*.image.fits", "*.image.tt0.fits")
    found: list[Path] = []
    for source in sources:
        path = Path(source)
        check_link(path)
        if path.is_dir() and kind_of(path) is None:
            for pattern in patterns:
                found += [p for p in path.rglob(pattern)
                          if not is_output(p) and not inside_image(p)]
        elif any(ch in str(source) for ch in "*?["):
            found += [Path(p) for p in glob.glob(str(source), recursive=True)
                      if kind_of(Path(p)) == "image" and not is_output(Path(p))
                      and not inside_image(Path(p))]
        else:
            prefix, tt, ext = split_name(path)
            if prefix is None:
                raise InputError(f"{source}: not found, and no {source}.image beside it")
            found.append(find_sibling(prefix, "image", tt, ext))
    by_prefix: dict[Path, Path] = {}
    for image in sorted(set(found), key=lambda p: (str(p).endswith(".fits"), str(p))):
        by_prefix.setdefault(split_name(image)[0], image)
    return sorted(by_prefix.values())


def only_image_in(folder: Path) -> Path:
    """The image product of the one tclean run directly in ``folder`` (deconfetti's own
    outputs left out); an `InputError` listing them when there are several or none."""
    images = [image for image in find_images([folder]) if image.parent == folder]
    if len(images) == 1:
        return images[0]
    if not images:
        raise InputError(f"{folder}: folder holds no tclean products (*.image, "
                         "*.image.fits, .tt0)")
    names = ", ".join(image.name for image in images[:5]) + (", ..." if len(images) > 5 else "")
    raise InputError(f"{folder}: folder holds {len(images)} tclean runs ({names}); give one, "
                     "or scan them all with 'deconfetti scan-many'")


def repaired_path(path: Path, outdir: Path | None = None) -> Path:
    """``NAME.deconfetti.<kind>[.tt0][.fits]`` for the product at ``path``, beside it or
    in ``outdir``."""
    match = _SUFFIX.match(path.name)
    if match:
        name = (f"{match['prefix']}.{REPAIRED}.{match['kind']}{match['tt'] or ''}"
                f"{match['ext'] or ''}")
    else:
        name = f"{path.name}.{REPAIRED}"
    return Path(outdir if outdir is not None else path.parent) / name
