"""``publish``: the staged repo layout, and the Hub protocol against a local fake (no network)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from bayling_data.errors import BaylingError
from bayling_data.io.publish import hub_language, publish, size_category
from bayling_data.pipeline import run_build
from bayling_data.recipe import load_recipe

RECIPE = Path(__file__).parents[1] / "recipes" / "pivot_zh_en.yaml"
TOKEN = "hf_bayTestSecretToken0123456789"
REPO = "test-org/pivot-zh-en"


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("build") / "out"
    run_build(load_recipe(RECIPE, [f"output.dir={out}"]))
    return out


def _front_matter(readme: Path) -> dict[str, Any]:
    text = readme.read_text("utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


class FakeHub:
    """A ThreadingHTTPServer on 127.0.0.1 that records requests and answers like the Hub."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.requests: list[dict[str, Any]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while size := int(self.rfile.readline().strip(), 16):
                        data += self.rfile.read(size)
                        self.rfile.readline()
                    self.rfile.readline()
                    return data
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _answer(self, status: int, payload: object) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                body = self._body()
                hub.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "auth": self.headers.get("Authorization"),
                        "body": body,
                    }
                )
                status, payload = hub.answer(self.command, self.path, body, self.headers)
                self._answer(status, payload)

            do_GET = do_POST = do_PUT = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, method: str, path: str, body: bytes, headers: Any) -> tuple[int, object]:
        if self.mode == "401":
            # Echo the credentials back, as a careless server might: publish must scrub them.
            return 401, {
                "error": f"Invalid credentials in Authorization: {headers.get('Authorization')}"
            }
        route = path.split("?")[0]
        if route == "/api/repos/create":
            return 200, {"url": f"{self.endpoint}/datasets/{REPO}"}
        if route == "/api/validate-yaml":
            return 200, {}
        if route.startswith(f"/api/datasets/{REPO}/branch/"):
            return 200, {}
        if route.startswith(f"/api/datasets/{REPO}/preupload/"):
            files = json.loads(body)["files"]
            return 200, {
                "files": [
                    {
                        "path": f["path"],
                        # Parquet goes the LFS route (batch answered "already stored").
                        "uploadMode": "lfs" if f["path"].endswith(".parquet") else "regular",
                        "shouldIgnore": False,
                    }
                    for f in files
                ]
            }
        if route == f"/datasets/{REPO}.git/info/lfs/objects/batch":
            objects = json.loads(body)["objects"]
            return 200, {"objects": [{"oid": o["oid"], "size": o["size"]} for o in objects]}
        if route.startswith(f"/api/datasets/{REPO}/commit/"):
            return 200, {
                "pullRequestUrl": f"{self.endpoint}/datasets/{REPO}/discussions/1",
                "commitUrl": f"{self.endpoint}/datasets/{REPO}/commit/{'a' * 40}",
                "commitOid": "a" * 40,
            }
        return 404, {"error": f"fake hub: no route for {method} {route}"}

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain (non-Xet) uploads, no ambient token or offline switch from the developer's machine."""
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    with FakeHub() as hub:
        yield hub


def test_size_category_and_iso_codes() -> None:
    assert size_category(999) == "n<1K"
    assert size_category(4400) == "1K<n<10K"
    assert size_category(2_000_000) == "1M<n<10M"
    assert hub_language("zho_Hans") == "zh"
    assert hub_language("eng_Latn") == "en"


def test_dry_run_stages_a_loadable_repo(
    build: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import datasets

    staging = tmp_path / "staging"
    result = publish(build, REPO, dry_run=True, staging_dir=staging)
    printed = capsys.readouterr().out
    assert result.dry_run and result.folder == staging
    assert str(staging) in printed and "would create dataset repo" in printed

    manifest = json.loads((build / "manifest.json").read_text("utf-8"))
    # A cache of its own: pytest reuses tmp paths, and datasets' cache would answer for them.
    loaded = datasets.load_dataset(str(staging), cache_dir=str(tmp_path / "hf-cache"))
    assert {s: loaded[s].num_rows for s in loaded} == {
        s: info["rows"] for s, info in manifest["splits"].items()
    }
    assert sorted(p.name for p in (staging / "data").iterdir()) == [
        "train-00000-of-00001.parquet",
        "validation-00000-of-00001.parquet",
    ]

    meta = _front_matter(staging / "README.md")
    languages = set()
    for info in manifest["splits"].values():
        for column in ("src_lang", "tgt_lang", "prompt_lang"):
            languages |= set(info["counts"][column])
    assert {hub_language(code) for code in languages} <= set(meta["language"])
    assert {"zh", "en", "sw", "yo", "ar"} <= set(meta["language"])
    assert meta["license"] == "cc-by-sa-4.0"
    assert "translation" in meta["task_categories"]
    assert meta["size_categories"] == ["1K<n<10K"]
    assert [f["split"] for f in meta["configs"][0]["data_files"]] == ["train", "validation"]
    card = (staging / "README.md").read_text("utf-8")
    assert manifest["signature"] in card
    assert f'load_dataset("{REPO}")' in card
    assert "##### Filter funnel" in card and "### Templates" in card


def test_dry_run_without_staging_dir_names_a_temp_folder(
    build: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = publish(build, REPO, dry_run=True)
    assert result.folder is not None and (result.folder / "README.md").is_file()
    assert str(result.folder) in capsys.readouterr().out


def test_upload_to_local_hub(
    build: Path,
    tmp_path: Path,
    hub_env: None,
    fake_hub: FakeHub,
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = publish(
        build,
        REPO,
        private=True,
        staging_dir=tmp_path / "staging",
        endpoint=fake_hub.endpoint,
        token=TOKEN,
    )
    routes = [(r["method"], r["path"].split("?")[0]) for r in fake_hub.requests]
    assert routes[0] == ("POST", "/api/repos/create")
    create = json.loads(fake_hub.requests[0]["body"])
    assert create["name"] == "pivot-zh-en" and create["organization"] == "test-org"
    assert create["type"] == "dataset"
    assert create.get("visibility") == "private" or create.get("private") is True
    assert ("POST", f"/api/datasets/{REPO}/commit/main") in routes
    assert all(r["auth"] == f"Bearer {TOKEN}" for r in fake_hub.requests)

    commit = next(
        r for r in fake_hub.requests if r["path"].startswith(f"/api/datasets/{REPO}/commit")
    )
    lines = [json.loads(line) for line in commit["body"].decode().splitlines() if line]
    committed = {
        line["value"]["path"]: line["value"] for line in lines if line["key"] in ("file", "lfsFile")
    }
    assert set(committed) == {
        "README.md",
        "data/train-00000-of-00001.parquet",
        "data/validation-00000-of-00001.parquet",
    }
    assert ("POST", f"/datasets/{REPO}.git/info/lfs/objects/batch") in routes
    assert committed["data/train-00000-of-00001.parquet"]["algo"] == "sha256"
    readme = base64.b64decode(committed["README.md"]["content"]).decode()
    assert readme == (tmp_path / "staging" / "README.md").read_text("utf-8")

    assert result.url and "commit" in result.url and not result.dry_run
    printed = capsys.readouterr()
    assert TOKEN not in printed.out + printed.err
    assert TOKEN not in repr(result)
    for path in (tmp_path / "staging").rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes()
    for path in build.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes()


def test_upload_to_branch_and_as_pull_request(
    build: Path, tmp_path: Path, hub_env: None, fake_hub: FakeHub
) -> None:
    publish(build, REPO, revision="v1", staging_dir=tmp_path / "a", endpoint=fake_hub.endpoint)
    routes = [(r["method"], r["path"]) for r in fake_hub.requests]
    assert ("POST", f"/api/datasets/{REPO}/branch/v1") in routes
    assert ("POST", f"/api/datasets/{REPO}/commit/v1") in routes
    fake_hub.requests.clear()
    result = publish(
        build, REPO, create_pr=True, staging_dir=tmp_path / "b", endpoint=fake_hub.endpoint
    )
    assert result.url and result.url.endswith("/discussions/1")
    assert any(
        r["path"] == f"/api/datasets/{REPO}/commit/main?create_pr=1" for r in fake_hub.requests
    )


def test_unauthorised_is_one_line_without_token(
    build: Path, tmp_path: Path, hub_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeHub(mode="401") as hub, pytest.raises(BaylingError) as info:
        publish(build, REPO, staging_dir=tmp_path / "s", endpoint=hub.endpoint, token=TOKEN)
    message = str(info.value)
    assert "\n" not in message and "401" in message and "token" in message
    assert TOKEN not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    printed = capsys.readouterr()
    assert TOKEN not in printed.out + printed.err


def test_connection_refused_is_offline_error(build: Path, tmp_path: Path, hub_env: None) -> None:
    hub = FakeHub()
    endpoint = hub.endpoint
    hub.server.server_close()  # nothing listens on the port any more
    with pytest.raises(BaylingError) as info:
        publish(build, REPO, staging_dir=tmp_path / "s", endpoint=endpoint, token=TOKEN)
    message = str(info.value)
    assert "\n" not in message and "offline" in message and endpoint in message
    assert TOKEN not in message


def test_not_a_build_and_bad_repo(tmp_path: Path) -> None:
    with pytest.raises(BaylingError, match=r"manifest\.json"):
        publish(tmp_path, REPO, dry_run=True, staging_dir=tmp_path / "s")
    with pytest.raises(BaylingError, match="ORG/NAME"):
        publish(tmp_path, "no-slash", dry_run=True)


def test_publish_command_line_dry_run(tmp_path, capsys):
    from bayling_data.cli import main

    out = tmp_path / "build"
    run_build(
        load_recipe(
            str(Path(__file__).resolve().parents[1] / "recipes" / "pivot_zh_en.yaml"),
            [f"output.dir={out}"],
        )
    )
    code = main(
        [
            "publish",
            str(out),
            "--repo",
            "org/name",
            "--dry-run",
            "--staging-dir",
            str(tmp_path / "s"),
        ]
    )
    assert code == 0
    assert (tmp_path / "s" / "README.md").is_file()
    # The command line prints its human summary on stderr (stdout is for --json).
    assert "would create dataset repo org/name" in capsys.readouterr().err
    assert main(["publish", str(out), "--repo", "not-a-repo", "--dry-run"]) == 2
