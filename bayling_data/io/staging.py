"""Atomic output: a build writes into a hidden sibling folder and renames it into place at the end.

An interrupted or failed build therefore never leaves a folder that looks finished: either the old
output is still there untouched, or the new one is complete with its manifest. A folder that
cannot be created or written (read-only, a path through a file, permission denied) is an
:class:`OutputError` in one line, not an ``OSError`` traceback.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bayling_data.errors import BaylingError, OutputError

MANIFEST_NAME = "manifest.json"


def _file_in_the_way(path: Path) -> Path | None:
    """``path`` or its nearest existing ancestor when that is not a folder (so the folder cannot
    be made), else None."""
    for ancestor in [path, *path.parents]:
        if os.path.lexists(ancestor):
            return None if ancestor.is_dir() else ancestor
    return None


def describe_os_error(err: OSError, path: Path) -> str:
    """What went wrong creating or writing ``path``, in words, on one line."""
    blocking = _file_in_the_way(path)
    if blocking is not None:
        return f"{blocking} is a file, not a folder"
    where = f": {err.filename}" if err.filename else ""
    if isinstance(err, FileExistsError):
        return f"already exists{where} (made meanwhile by another program?)"
    reason = err.strerror or type(err).__name__
    return f"{reason}{where}".replace("\n", " ")


@contextmanager
def output_errors(path: Path, key: str, what: str = "") -> Iterator[None]:
    """Turn an ``OSError`` while creating or writing ``path`` into an :class:`OutputError` that
    names ``key`` (the recipe key or flag that chose it), the path (``what`` it is) and the
    reason."""
    try:
        yield
    except OSError as err:
        named = f"{what} {path}" if what else str(path)
        raise OutputError(
            f"{key}: cannot create or write {named}: {describe_os_error(err, path)}"
        ) from None


def check_output_dir(
    out_dir: Path, key: str = "output.dir", marker: str = MANIFEST_NAME, what: str = "build"
) -> None:
    """Refuse to replace anything but an earlier bayling-data output of this kind (a folder
    holding ``marker``) or an empty folder, and a folder that cannot be made (a file above it)."""
    if os.path.lexists(out_dir) and not out_dir.is_dir():
        raise OutputError(f"{key}: {out_dir} exists and is not a folder")
    blocking = _file_in_the_way(out_dir)
    if blocking is not None:
        raise OutputError(f"{key}: cannot create {out_dir}: {blocking} is a file, not a folder")
    if not os.path.lexists(out_dir):
        return
    with output_errors(out_dir, key):
        holds_files = any(out_dir.iterdir())
    if holds_files and not (out_dir / marker).is_file():
        raise BaylingError(
            f"{key}: {out_dir} is not empty and holds no bayling-data {what} "
            f"(no {marker}); choose another folder, or empty this one"
        )


def _remove_made_folders(out_dir: Path, created: Path | None) -> None:
    """Remove the parent folders that this output made (``created`` and below), if still empty."""
    if created is None:
        return
    for folder in [out_dir.parent, *out_dir.parent.parents]:
        if folder == created.parent:
            break
        try:
            folder.rmdir()
        except OSError:
            break


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Rename ``staging`` to ``out_dir``, retiring an earlier output; on failure the earlier
    output is put back."""
    if not out_dir.exists():
        staging.rename(out_dir)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    out_dir.rename(retired / out_dir.name)
    try:
        staging.rename(out_dir)
    except BaseException:
        (retired / out_dir.name).rename(out_dir)
        retired.rmdir()
        raise
    shutil.rmtree(retired, ignore_errors=True)


def clear_interrupted(out_dir: Path) -> list[Path]:
    """Remove what an interrupted write of ``out_dir`` left beside it: ``.NAME.partial-*``
    folders (a kill during the write, hundreds of MB), and ``.NAME.old-*`` ones of an earlier
    output being replaced, put back first when the kill came between the two renames. Returns
    the paths removed.

    Call it only while holding the build's work-folder lock: then no other build is writing
    these folders, and every one of them is a dead build's.
    """
    out_dir = Path(os.path.abspath(out_dir))
    parent = out_dir.parent
    if not parent.is_dir():
        return []
    removed = []
    for retired in sorted(parent.glob(f".{out_dir.name}.old-*")):
        earlier = retired / out_dir.name
        if not os.path.lexists(out_dir) and (earlier / MANIFEST_NAME).is_file():
            with output_errors(out_dir, "output.dir"):
                earlier.rename(out_dir)
        shutil.rmtree(retired, ignore_errors=True)
        removed.append(retired)
    for partial in sorted(parent.glob(f".{out_dir.name}.partial-*")):
        shutil.rmtree(partial, ignore_errors=True)
        removed.append(partial)
    return removed


@contextmanager
def staged_output(
    out_dir: Path, key: str = "output.dir", marker: str = MANIFEST_NAME, what: str = "build"
) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``out_dir``, on failure it is removed.

    ``out_dir`` may only be replaced when it holds ``marker`` (an earlier output of this kind).
    """
    out_dir = Path(os.path.abspath(out_dir))
    check_output_dir(out_dir, key, marker, what)
    created = next((p for p in reversed(out_dir.parents) if not p.exists()), None)
    try:
        with output_errors(out_dir, key):
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    except BaseException:
        _remove_made_folders(out_dir, created)
        raise
    umask = os.umask(0)
    os.umask(umask)
    try:
        staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; the output should not be
        yield staging
        # Checked again: something may have taken the name while the output was written.
        check_output_dir(out_dir, key, marker, what)
        with output_errors(out_dir, key):
            _move_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_made_folders(out_dir, created)
        raise
