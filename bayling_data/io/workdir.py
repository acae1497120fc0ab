"""A build's work folder: the files that stages hand each other, and what makes a build resumable.

It lives beside the output, as ``.NAME.work/``, and holds ``state.json`` (what build this is and
how its input was cut into work shards), the work shards of every leg, the keys and verdicts of
every global step, and a ``.done`` marker per finished piece of work. A piece of work writes its
files under temporary names, renames them into place, then writes its marker: a build killed at
any moment leaves either a finished piece with its marker or one that is redone, never a file
that looks finished and is not. ``bayling-data build --resume`` skips the marked pieces.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa

from bayling_data.errors import BaylingError

WORK_FORMAT = "bayling-data-work/1"


def work_dir_for(out_dir: Path) -> Path:
    out_dir = Path(os.path.abspath(out_dir))
    return out_dir.parent / f".{out_dir.name}.work"


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_json(path: Path, data: Any) -> None:
    """Write JSON under a temporary name, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True) + "\n", "utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text("utf-8"))


class ArrowSink:
    """An Arrow IPC stream written under a temporary name; :meth:`commit` renames it into place."""

    def __init__(self, path: Path, schema: pa.Schema):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.rows = 0
        self._tmp = _temporary(path)
        self._file = pa.OSFile(str(self._tmp), "wb")
        self._writer = pa.ipc.new_stream(self._file, schema)

    def write(self, data: pa.RecordBatch | pa.Table) -> None:
        if data.num_rows:
            self._writer.write(data)
            self.rows += data.num_rows

    def commit(self) -> None:
        self._writer.close()
        self._file.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._writer.close()
        self._file.close()
        self._tmp.unlink(missing_ok=True)


@contextmanager
def arrow_sink(path: Path, schema: pa.Schema) -> Iterator[ArrowSink]:
    sink = ArrowSink(path, schema)
    try:
        yield sink
    except BaseException:
        sink.abort()
        raise
    sink.commit()


def write_arrow(path: Path, data: pa.Table) -> None:
    with arrow_sink(path, data.schema) as sink:
        sink.write(data)


def read_table(path: Path) -> pa.Table:
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_stream(source).read_all()


def read_schema(path: Path) -> pa.Schema:
    with pa.input_stream(str(path)) as source:
        return pa.ipc.open_stream(source).schema


def read_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """An Arrow IPC stream's batches, one at a time, read (not memory-mapped) so that a batch's
    memory is freed once it is used: streaming a large work file costs about one batch."""
    with pa.input_stream(str(path)) as source:
        yield from pa.ipc.open_stream(source)


def read_tables(paths: Iterable[Path]) -> list[pa.Table]:
    return [read_table(path) for path in paths]


class WorkDir:
    """Paths and completion markers of one build's work folder."""

    def __init__(self, root: Path, created: Path | None = None, lock: int | None = None):
        self.root = root
        self.created = created  # the highest folder above root that this build made
        self._lock = lock  # a file descriptor holding the folder's exclusive lock

    @property
    def lock_path(self) -> Path:
        return self.root.with_name(f"{self.root.name}.lock")

    def release(self) -> None:
        """Let another build use this folder (the lock also goes when the process dies)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __truediv__(self, part: str) -> Path:
        return self.root / part

    def marker(self, name: str) -> Path:
        return self.root / "done" / f"{name}.done"

    def done(self, name: str) -> bool:
        return self.marker(name).exists()

    def mark(self, name: str, report: Any = None) -> None:
        """Record a finished piece of work, with what it reports (stats), atomically."""
        write_json(self.marker(name), report)

    def report(self, name: str) -> Any:
        return read_json(self.marker(name))

    def remove(self) -> None:
        """Remove the work folder, and the folders above it that the build made, if empty."""
        shutil.rmtree(self.root, ignore_errors=True)
        self.lock_path.unlink(missing_ok=True)
        self.release()
        if self.created is None:
            return
        for folder in self.root.parents:
            try:
                folder.rmdir()
            except OSError:
                break
            if folder == self.created:
                break


def open_work_dir(root: Path, state: dict[str, Any], resume: bool) -> tuple[WorkDir, bool]:
    """The work folder for a build with this ``state`` (format, signature, shard size); returns
    it and whether earlier work is being resumed.

    Without ``resume`` an earlier work folder is discarded. With it, the earlier folder must be
    of the same build, cut into shards the same way: anything else is refused, since mixing the
    pieces of two builds would give output that neither would.
    """
    created = next((p for p in reversed(root.parents) if not p.exists()), None)
    root.parent.mkdir(parents=True, exist_ok=True)
    work = WorkDir(root, created, _lock(root.with_name(f"{root.name}.lock")))
    try:
        return work, _claim(work, {"format": WORK_FORMAT, **state}, resume)
    except BaseException:
        work.release()
        raise


def _claim(work: WorkDir, state: dict[str, Any], resume: bool) -> bool:
    """Check an earlier folder for a resume, or start a fresh one; True when resuming."""
    root = work.root
    state_file = root / "state.json"
    if resume and state_file.is_file():
        earlier = read_json(state_file)
        if earlier.get("signature") != state["signature"]:
            raise BaylingError(
                f"--resume: {root} holds an unfinished build of another recipe or version "
                f"({earlier.get('signature')}); build without --resume to start over"
            )
        if earlier.get("shard_segments") != state["shard_segments"]:
            shards = earlier.get("shards")
            cut = f"{shards} work shards" if shards is not None else "work shards"
            raise BaylingError(
                f"--resume: {root} was cut into {cut} of {earlier.get('shard_segments')} "
                f"segments, but execution.shard_segments is now {state['shard_segments']}; "
                "resume with the same value, or build without --resume to start over"
            )
        return True
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    write_json(state_file, state)
    return False


def _lock(path: Path) -> int:
    """An exclusive lock on ``path``, or a one-line error when another build holds it: two
    builds writing one work folder would corrupt each other's pieces."""
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(handle)
        raise BaylingError(
            f"{path.with_suffix('')}: another build of this output is running "
            f"({path} is locked); wait for it to finish or stop it"
        ) from None
    return handle


def update_state(work: WorkDir, **values: Any) -> None:
    state = read_json(work / "state.json")
    state.update(values)
    write_json(work / "state.json", state)
