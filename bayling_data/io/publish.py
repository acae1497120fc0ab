"""Publish a build to the Hugging Face Hub as a dataset repo (``bayling-data publish``).

A build folder (``dataset_dict.json``, ``manifest.json``, Arrow shards per split) is laid out the
way the Hub expects a dataset repo, so that the dataset viewer and ``datasets.load_dataset`` read
it without a loading script::

    staging/
      README.md                            (dataset card: YAML front matter + body)
      data/train-00000-of-00001.parquet    (one Parquet file per Arrow shard)
      data/validation-00000-of-00001.parquet

The staged folder is then sent with ``HfApi.upload_folder`` in one commit. The token is never
written to the card, never printed and is scrubbed from any error text that is shown.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from bayling_data.errors import BaylingError
from bayling_data.io.card import SplitCensus, build_card
from bayling_data.io.card import hub_language as hub_language  # re-exported: publish's API
from bayling_data.io.card import size_category as size_category
from bayling_data.io.shards import iter_split_batches, split_schema
from bayling_data.io.staging import output_errors
from bayling_data.progress import Advance, Progress

ROW_GROUP_ROWS = 10_000  # rows per Parquet row group
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class PublishResult:
    """What ``publish`` did, for the CLI to report."""

    repo: str
    folder: Path | None  # the staged folder; None once a temporary one was removed after upload
    files: tuple[str, ...]  # paths in the repo, posix style
    rows: dict[str, int]
    dry_run: bool
    revision: str | None = None
    url: str | None = None  # commit URL, or the pull request URL with create_pr
    languages: tuple[str, ...] = field(default=())


def _read_manifest(out_dir: Path) -> dict[str, Any]:
    path = out_dir / "manifest.json"
    if not path.is_file():
        raise BaylingError(
            f"{out_dir}: not a bayling-data build (no manifest.json); run build first"
        )
    try:
        return json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise BaylingError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def _parquet_parts(
    batches: Iterator[pa.RecordBatch],
    schema: pa.Schema,
    paths: list[Path],
    rows_per: int,
    census: SplitCensus,
    advance: Advance,
) -> None:
    """Stream a split into ``paths``, ``rows_per`` rows each (the last takes the rest), in row
    groups of :data:`ROW_GROUP_ROWS` counted from each file's start.

    Each row group is handed to the writer as the same slices of the shards' record batches that
    slicing the whole split would give, so the files are byte for byte what writing the split
    from memory wrote; only one row group's rows are held at a time.
    """
    part, writer = 0, None
    in_part, pending, pending_rows = 0, [], 0

    def flush() -> None:
        nonlocal pending, pending_rows
        assert writer is not None
        writer.write_table(pa.Table.from_batches(pending, schema), row_group_size=ROW_GROUP_ROWS)
        pending, pending_rows = [], 0

    def open_part() -> pq.ParquetWriter:
        return pq.ParquetWriter(str(paths[part]), schema, compression="zstd")

    writer = open_part()
    for batch in batches:
        census.add(batch)
        advance(batch.num_rows)
        offset = 0
        while offset < batch.num_rows:
            if in_part == rows_per and part + 1 < len(paths):
                if pending:
                    flush()
                writer.close()
                part, in_part = part + 1, 0
                writer = open_part()
            room = ROW_GROUP_ROWS - pending_rows
            if part + 1 < len(paths):
                room = min(room, rows_per - in_part)
            take = min(room, batch.num_rows - offset)
            pending.append(batch.slice(offset, take))
            pending_rows += take
            in_part += take
            offset += take
            if pending_rows == ROW_GROUP_ROWS:
                flush()
    if pending:
        flush()
    elif in_part == 0:
        writer.write_table(schema.empty_table())  # an empty file still has its (empty) row group
    writer.close()
    for path in paths[part + 1 :]:  # fewer rows than files: the rest are empty, as slices were
        with pq.ParquetWriter(str(path), schema, compression="zstd") as empty:
            empty.write_table(schema.empty_table())


def stage(
    out_dir: str | Path, repo: str, folder: str | Path, progress: Progress | None = None
) -> PublishResult:
    """Write the repo layout (Parquet shards under ``data/`` and README.md) into ``folder``,
    streaming each split's shards batch by batch (memory does not grow with the build)."""
    progress = progress or Progress.off()
    out_dir, folder = Path(out_dir), Path(folder)
    manifest = _read_manifest(out_dir)
    with output_errors(folder, "--staging-dir"):
        if folder.is_dir() and any(folder.iterdir()):
            raise BaylingError(
                f"{folder}: staging folder is not empty; give an empty or new folder"
            )
    splits = list((manifest.get("splits") or {}).keys())
    if not splits:
        raise BaylingError(f"{out_dir / 'manifest.json'}: the manifest lists no splits")
    with output_errors(folder, "--staging-dir"):
        (folder / "data").mkdir(parents=True, exist_ok=True)
    census: dict[str, SplitCensus] = {}
    data_files: dict[str, list[str]] = {}
    for split in splits:
        n_shards = max(1, len(manifest["splits"][split].get("shards") or []))
        names = [f"data/{split}-{i:05d}-of-{n_shards:05d}.parquet" for i in range(n_shards)]
        census[split] = SplitCensus()
        try:
            # Counting rows reads only the batches' headers (the shards are memory-mapped).
            rows = sum(batch.num_rows for batch in iter_split_batches(out_dir, split))
            with (
                output_errors(folder, "--staging-dir"),
                progress.phase(f"stage {split}", rows, "rows") as advance,
            ):
                _parquet_parts(
                    iter_split_batches(out_dir, split),
                    split_schema(out_dir, split),
                    [folder / name for name in names],
                    -(-rows // n_shards) or 1,
                    census[split],
                    advance,
                )
        except (OSError, KeyError, pa.ArrowInvalid) as exc:
            raise BaylingError(
                f"{out_dir / split}: cannot read the split's shards ({exc})"
            ) from None
        data_files[split] = names
    card = build_card(
        manifest,
        repo,
        census,
        data_files,
        features=_features(out_dir, splits[0]),
        file_sizes={n: (folder / n).stat().st_size for names in data_files.values() for n in names},
    )
    with output_errors(folder, "--staging-dir"):
        (folder / "README.md").write_text(card, "utf-8")  # last: a folder without it is unfinished
    files = ("README.md", *[n for names in data_files.values() for n in names])
    codes = sorted({c for split in census.values() for c in split.languages})
    return PublishResult(
        repo=repo,
        folder=folder,
        files=files,
        rows={s: c.rows for s, c in census.items()},
        dry_run=True,
        languages=tuple(codes),
    )


def _features(out_dir: Path, split: str) -> list[dict[str, Any]] | None:
    """The split's columns as the Hub's ``dataset_info.features`` (from the shards' schema)."""
    import datasets

    try:
        return datasets.Features.from_arrow_schema(split_schema(out_dir, split))._to_yaml_list()
    except (OSError, KeyError, ValueError, pa.ArrowInvalid):
        return None


def _scrub(text: str, secrets: list[str]) -> str:
    """One line, with every secret replaced, so it is safe to show."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = re.sub(r"(?i)(bearer\s+)\S+", r"\1***", text)
    return " ".join(text.split())


def _transport_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module in ("httpx2", "httpx", "requests"):
        try:
            mod = __import__(module)
        except ImportError:
            continue
        for name in ("TransportError", "ConnectionError", "Timeout"):
            if isinstance(getattr(mod, name, None), type):
                errors.append(getattr(mod, name))
    return tuple(errors)


def _hub_error(exc: BaseException, repo: str, endpoint: str, secrets: list[str]) -> BaylingError:
    """Turn a huggingface_hub / HTTP client exception into one safe, actionable line."""
    from huggingface_hub.errors import HfHubHTTPError

    detail = _scrub(str(exc), secrets)[:300]
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        status = exc.response.status_code
        if status in (401, 403):
            return BaylingError(
                f"cannot publish to {repo}: the Hub at {endpoint} refused the token "
                f"(HTTP {status}); log in with `hf auth login` or set HF_TOKEN to a token "
                "with write access"
            )
        return BaylingError(f"cannot publish to {repo}: the Hub answered HTTP {status} ({detail})")
    if isinstance(exc, _transport_errors()):
        return BaylingError(
            f"cannot publish to {repo}: offline, cannot reach {endpoint} "
            f"({type(exc).__name__}); check the connection, or use --dry-run"
        )
    return BaylingError(f"cannot publish to {repo}: {type(exc).__name__}: {detail}")


def publish(
    out_dir: str | Path,
    repo: str,
    *,
    private: bool = False,
    revision: str | None = None,
    create_pr: bool = False,
    dry_run: bool = False,
    staging_dir: str | Path | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    echo: Callable[[str], None] = print,
    progress: Progress | None = None,
) -> PublishResult:
    """Stage a build as a Hub dataset repo and upload it (or, with ``dry_run``, only stage it).

    ``token=None`` lets huggingface_hub find one (``HF_TOKEN`` or the cached login). A temporary
    staging folder is kept on a dry run (so it can be inspected) and removed after an upload.
    """
    if not _REPO_ID.match(repo):
        raise BaylingError(f"--repo {repo!r}: expected ORG/NAME, e.g. my-org/bayling-pivot")
    temporary = staging_dir is None
    folder = Path(tempfile.mkdtemp(prefix="bayling-publish-")) if temporary else Path(staging_dir)
    try:
        staged = stage(out_dir, repo, folder, progress)
    except BaseException:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    where = f"{repo}@{revision or 'main'}" + (" (as a pull request)" if create_pr else "")
    if dry_run:
        echo(f"dry run: staged {len(staged.files)} files in {folder}")
        for name in staged.files:
            echo(f"  {name} ({(folder / name).stat().st_size} bytes)")
        echo(
            f"would create dataset repo {repo} ({'private' if private else 'public'}) "
            f"and upload the folder to {where}"
        )
        return staged
    try:
        url = _upload(folder, repo, private, revision, create_pr, endpoint, token, echo)
    finally:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)
    echo(f"published {repo}: {url}")
    return PublishResult(
        repo=repo,
        folder=None if temporary else folder,
        files=staged.files,
        rows=staged.rows,
        dry_run=False,
        revision=revision,
        url=url,
        languages=staged.languages,
    )


def _upload(
    folder: Path,
    repo: str,
    private: bool,
    revision: str | None,
    create_pr: bool,
    endpoint: str | None,
    token: str | None,
    echo: Callable[[str], None],
) -> str:
    """Create the repo (if needed) and upload the folder in one commit; return the commit/PR URL."""
    from huggingface_hub import HfApi, get_token

    api = HfApi(endpoint=endpoint, token=token)
    # Resolved only to scrub it from error text; it is never shown.
    secrets = [token or get_token() or ""]
    try:
        echo(f"creating dataset repo {repo} on {api.endpoint} (exists is fine)")
        api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
        if revision and not create_pr:
            api.create_branch(repo, repo_type="dataset", branch=revision, exist_ok=True)
        echo(f"uploading {folder} to {repo}" + (f"@{revision}" if revision else ""))
        info = api.upload_folder(
            repo_id=repo,
            repo_type="dataset",
            folder_path=folder,
            revision=revision,
            create_pr=create_pr,
            commit_message="Publish with bayling-data",
        )
    except BaylingError:
        raise
    except Exception as exc:  # every failure becomes one safe line
        raise _hub_error(exc, repo, api.endpoint, secrets) from None
    return _scrub(str(info.pr_url or info.commit_url), secrets)
