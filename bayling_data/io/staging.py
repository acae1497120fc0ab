"""Atomic output: a build writes into a hidden sibling folder and renames it into place at the end.

An interrupted or failed build therefore never leaves a folder that looks finished: either the old
output is still there untouched, or the new one is complete with its manifest.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bayling_data.errors import BaylingError

MANIFEST_NAME = "manifest.json"


def check_output_dir(
    out_dir: Path, key: str = "output.dir", marker: str = MANIFEST_NAME, what: str = "build"
) -> None:
    """Refuse to replace anything but an earlier bayling-data output of this kind (a folder
    holding ``marker``) or an empty folder."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise BaylingError(f"{key}: {out_dir} exists and is not a folder")
    if any(out_dir.iterdir()) and not (out_dir / marker).is_file():
        raise BaylingError(
            f"{key}: {out_dir} is not empty and holds no bayling-data {what} "
            f"(no {marker}); choose another folder, or empty this one"
        )


@contextmanager
def staged_output(
    out_dir: Path, key: str = "output.dir", marker: str = MANIFEST_NAME, what: str = "build"
) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``out_dir``, on failure it is removed.

    ``out_dir`` may only be replaced when it holds ``marker`` (an earlier output of this kind).
    """
    out_dir = Path(os.path.abspath(out_dir))
    check_output_dir(out_dir, key, marker, what)
    created = None
    for ancestor in reversed(out_dir.parents):
        if not ancestor.exists():
            created = ancestor
            break
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; the output should not be
    try:
        yield staging
        if out_dir.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            out_dir.rename(retired / out_dir.name)
            staging.rename(out_dir)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created is not None:
            # Remove the parent folders this build made, if they are still empty.
            for folder in [out_dir.parent, *out_dir.parent.parents]:
                if folder == created.parent:
                    break
                try:
                    folder.rmdir()
                except OSError:
                    break
        raise
