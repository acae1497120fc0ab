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

from bayling_data.errors import BaylingError, OutputError
from bayling_data.io.staging import output_errors

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


def open_work_dir(
    root: Path, state: dict[str, Any], resume: bool, restart: bool = False
) -> tuple[WorkDir, bool]:
    """The work folder for a build with this ``state`` (format, signature, shard size); returns
    it and whether earlier work is being resumed.

    An earlier folder's finished work is never thrown away unasked: ``resume`` continues it (the
    folder must be of the same build, cut into shards the same way, since mixing the pieces of
    two builds would give output that neither would), ``restart`` discards it, and with neither
    the build is refused. An earlier folder with nothing finished in it is simply replaced.
    """
    if resume and restart:
        raise BaylingError("--resume and --restart exclude each other; choose one")
    created = next((p for p in reversed(root.parents) if not p.exists()), None)
    with output_errors(root, "output.dir", "the build's work folder"):
        root.parent.mkdir(parents=True, exist_ok=True)
        lock = _lock(root.with_name(f"{root.name}.lock"))
    work = WorkDir(root, created, lock)
    try:
        with output_errors(root, "output.dir", "the build's work folder"):
            return work, _claim(work, {"format": WORK_FORMAT, **state}, resume, restart)
    except BaseException:
        work.release()
        raise


def _finished(work: WorkDir) -> int:
    """How many pieces of work the folder holds completion markers for."""
    done = work.root / "done"
    return sum(1 for _ in done.glob("*.done")) if done.is_dir() else 0


def _claim(work: WorkDir, state: dict[str, Any], resume: bool, restart: bool) -> bool:
    """Check an earlier folder for a resume, refuse to discard its finished work unasked, or
    start a fresh one; True when resuming."""
    root = work.root
    state_file = root / "state.json"
    if os.path.lexists(root) and not root.is_dir():
        raise OutputError(
            f"output.dir: the build's work folder {root} exists and is not a folder; "
            "remove it or choose another output.dir"
        )
    earlier = _earlier_state(state_file)
    if resume and earlier is not None:
        if earlier.get("signature") != state["signature"]:
            raise BaylingError(
                f"--resume: {root} holds an unfinished build of another recipe or version "
                f"({earlier.get('signature')}); build with --restart instead to discard it "
                "and start over"
            )
        if earlier.get("shard_segments") != state["shard_segments"]:
            raise BaylingError(
                f"--resume: {root} was cut into {_cut(earlier)} of "
                f"{earlier.get('shard_segments')} segments, but execution.shard_segments is now "
                f"{state['shard_segments']}; resume with the same value, or build with "
                "--restart instead to start over"
            )
        return True
    if earlier is not None and not restart:
        _refuse_to_discard(work, earlier, state)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    write_json(state_file, state)
    return False


def _earlier_state(state_file: Path) -> dict[str, Any] | None:
    """The state an earlier build left, or None when there is none (or it is unreadable: a
    build killed before its state was written has finished nothing)."""
    if not state_file.is_file():
        return None
    try:
        earlier = read_json(state_file)
    except (ValueError, UnicodeDecodeError):
        return None
    return earlier if isinstance(earlier, dict) else None


def _cut(earlier: dict[str, Any]) -> str:
    shards = earlier.get("shards")
    return f"{shards} work shards" if shards is not None else "work shards"


def _refuse_to_discard(work: WorkDir, earlier: dict[str, Any], state: dict[str, Any]) -> None:
    """Raise unless the earlier folder is of this build and has nothing finished to lose."""
    root, finished = work.root, _finished(work)
    if earlier.get("signature") != state["signature"]:
        raise BaylingError(
            f"output.dir: {root} holds an unfinished build of another recipe or version "
            f"({earlier.get('signature')}, {finished} pieces of work done); add --restart to "
            "discard it and start over, or choose another output.dir"
        )
    if not finished:
        return
    if earlier.get("shard_segments") != state["shard_segments"]:
        raise BaylingError(
            f"output.dir: {root} holds {finished} finished pieces of an interrupted build of "
            f"this recipe, cut into {_cut(earlier)} of {earlier.get('shard_segments')} "
            f"segments; add --resume with --set execution.shard_segments="
            f"{earlier.get('shard_segments')} to continue, or --restart to discard them and "
            "start over"
        )
    raise BaylingError(
        f"output.dir: {root} holds {finished} finished pieces of an interrupted build of this "
        "recipe; add --resume to the same command to continue, or --restart to discard them "
        "and start over"
    )


def _lock(path: Path) -> int:
    """An exclusive lock on ``path``, or a one-line error when another build holds it: two
    builds writing one work folder would corrupt each other's pieces. The lock is the kernel's
    (``flock``), so a build that died, however it died, leaves no lock behind, only the file."""
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
