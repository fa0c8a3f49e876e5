"""File-system safety for every writer: atomic writes, one writer per output folder, and
no output inside or over an input.

A file is written to a temporary name beside its target (``.<name>.<random>.part``) and
renamed; a run killed with SIGKILL can leave only such hidden temporaries, which the next
writer of the folder removes (`remove_temporaries`) while it holds the folder's lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .errors import InputError

__all__ = ["LOCK_NAME", "atomic_write", "lock_output_dir", "remove_temporaries",
           "check_outputs_apart"]

LOCK_NAME = ".deconfetti.lock"
_PART = ".part"


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary_path)`` then rename it to ``path``; no half file is left.

    Raises `InputError` naming ``path`` when the folder cannot be written (permissions,
    full disk).
    """
    path = Path(path)
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                             suffix=_PART)
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    os.close(handle)
    temporary = Path(temporary)
    try:
        write(temporary)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def lock_output_dir(outdir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``outdir`` (one writer at a time); refuse if held.

    The lock is a ``flock`` on ``outdir/.deconfetti.lock``. The holder removes the file
    while it still holds the lock; a process that locked a file removed meanwhile tries
    again on the new one, so however many processes try, one writes.
    """
    path = Path(outdir) / LOCK_NAME
    while True:
        try:
            handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise InputError(f"{outdir}: cannot create the lock file "
                             f"({exc.strerror or exc})") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            raise InputError(f"{outdir}: another deconfetti is writing here; wait for it or "
                             "choose another --out") from None
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(handle).st_ino:
            break
        os.close(handle)  # the file was removed by the previous holder: lock the new one
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(handle)


def install(temporary: Path, target: Path, *, overwrite: bool = False) -> Path:
    """Rename a finished temporary file or folder to ``target``. An existing target is
    replaced only with ``overwrite``: moved aside, the new one renamed in, the old one
    removed, so that ``target`` is at every moment either the old or the new whole."""
    old = None
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise InputError(f"{target}: exists; use --overwrite to replace it")
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(temporary, target)
    if old is not None:
        remove_path(old)
    return target


def remove_path(path: Path) -> None:
    """Remove a file, a link (not what it points to) or a folder tree, if there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_temporaries(folder: Path) -> None:
    """Remove the hidden ``.*.part`` files a killed writer left in ``folder`` (call it
    holding the folder's lock)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for leftover in folder.glob(f".*{_PART}*"):
        if leftover.is_file() and not leftover.is_symlink():
            leftover.unlink(missing_ok=True)


def check_outputs_apart(outputs: Iterable[Path], inputs: Iterable[Path]) -> None:
    """Refuse an output that is an input, or lies inside an input product (a CASA image
    is a directory), symbolic links followed.

    Raises
    ------
    InputError
        Naming the output and the input it would write into.
    """
    resolved = [(Path(p), Path(p).resolve()) for p in inputs]
    for output in outputs:
        target = Path(os.path.abspath(output)).resolve()
        for given, product in resolved:
            if target == product:
                raise InputError(f"{output}: is the input product {given}; choose an "
                                 "output outside the inputs")
            if product in target.parents:
                raise InputError(f"{output}: lies inside the input product {given}; choose "
                                 "an output outside the inputs")
