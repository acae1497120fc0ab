"""`bayling-data train`: config mistakes and a missing [train] extra are one line and exit 2."""

from __future__ import annotations

import importlib.util
import json

import pytest
import yaml
from conftest import REPO

from bayling_data.cli import main

CONFIG = REPO / "recipes" / "train_sample.yaml"


@pytest.fixture
def fake_build(tmp_path):
    """Enough of a build for the config to validate (training itself is in test_train_loop)."""
    build = tmp_path / "build"
    build.mkdir()
    (build / "manifest.json").write_text(json.dumps({"splits": {}}), "utf-8")
    return build


def one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "optim.learnig_rate=1e-4",
            "optim.learnig_rate: unknown key (did you mean 'learning_rate'?)",
        ),
        ("optim.batch_size=four", "optim.batch_size: Input should be a valid integer"),
        ("data.builds.0.path=/no/such/build", "data.builds.0.path: no such build folder"),
        ("data.template=chatml", "data.template: unknown template 'chatml'"),
        ("output=", "output: Input should be a valid dictionary"),
    ],
)
def test_config_mistakes_are_one_line_naming_the_key(capsys, fake_build, override, expected):
    argv = ["train", str(CONFIG), "--set", f"data.builds.0.path={fake_build}", "--set", override]
    err = one_line_error(capsys, argv)
    assert err.startswith(f"bayling-data train: error: {CONFIG}: ")
    assert expected in err


def test_missing_config_file(capsys, tmp_path):
    assert "no such config file" in one_line_error(capsys, ["train", str(tmp_path / "x.yaml")])


def test_the_example_config_validates(fake_build):
    from bayling_data.train.config import load_train_config

    config = load_train_config(CONFIG, [f"data.builds.0.path={fake_build}"])
    assert config.data.template == "tokenizer" and config.optim.gradient_accumulation_steps == 4
    documented = (REPO / "docs" / "training.md").read_text("utf-8")
    for section, values in yaml.safe_load(CONFIG.read_text("utf-8")).items():
        assert f"`{section}`" in documented
        for key in values if isinstance(values, dict) else ():
            assert f"`{key}`" in documented, f"{section}.{key} is not in docs/training.md"


def test_without_the_train_extra_the_error_says_how_to_install_it(capsys, fake_build, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    err = one_line_error(
        capsys, ["train", str(CONFIG), "--set", f"data.builds.0.path={fake_build}"]
    )
    assert "needs torch (the [train] extra)" in err
    assert err.rstrip().endswith('install it with: python -m pip install "bayling-data[train]"')


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            "no-such-org/no-such-model",
            "not in the Hugging Face cache and the Hub cannot be reached",
        ),
        ("/no/such/model", "/no/such/model: no such folder"),
    ],
)
def test_a_model_that_cannot_be_loaded_is_one_line(fake_build, tmp_path, model, expected):
    pytest.importorskip("transformers")
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run(
        [sys.executable, "-m", "bayling_data", "train", str(CONFIG), "--set",
         f"data.builds.0.path={fake_build}", "--set", f"model.name_or_path={model}", "--set",
         f"output.dir={tmp_path / 'out'}"],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert (
        f"model.name_or_path: cannot load {model!r}" in result.stderr or expected in result.stderr
    )
    assert expected in result.stderr


LLAMA3_8B = REPO / "recipes" / "train_llama3_8b.yaml"
ZERO3 = ["distributed.strategy=deepspeed_zero3", "output.dir=out/llama3_8b_zero3"]


@pytest.mark.parametrize(("overrides", "strategy"), [([], "fsdp"), (ZERO3, "deepspeed_zero3")])
def test_the_llama3_8b_recipe_and_its_zero3_override_validate(fake_build, overrides, strategy):
    from bayling_data.train.config import load_train_config

    config = load_train_config(LLAMA3_8B, [f"data.builds.0.path={fake_build}", *overrides])
    assert config.distributed.strategy == strategy and config.bf16 and config.lora is None
    assert config.model.gradient_checkpointing and config.data.template == "llama3"
    assert config.optim.batch_size * config.optim.gradient_accumulation_steps * 8 == 128
    # The commands in the docs and the recipe's header are the ones checked here.
    command = " ".join(f"--set {override}" for override in ZERO3)
    assert command in (REPO / "docs" / "training.md").read_text("utf-8")
    assert command in LLAMA3_8B.read_text("utf-8")
    documented = (REPO / "docs" / "training.md").read_text("utf-8")
    for section, values in yaml.safe_load(LLAMA3_8B.read_text("utf-8")).items():
        for key in values if isinstance(values, dict) else ():
            assert f"`{key}`" in documented, f"{section}.{key} is not in docs/training.md"


def test_lora_under_a_sharded_strategy_is_one_line(capsys, fake_build):
    argv = ["train", str(CONFIG), "--set", f"data.builds.0.path={fake_build}", "--set", "lora.r=4",
            "--set", "distributed.strategy=fsdp"]  # fmt: skip
    assert "lora with distributed.strategy fsdp is not supported" in one_line_error(capsys, argv)
