"""DeepSpeed ZeRO-3 through accelerate on one CPU process (gloo): prepare takes the model without
a DataLoader, steps train like the plain loop, checkpoints resume and the final model loads."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
pytest.importorskip("tokenizers")
pytest.importorskip("deepspeed")

from safetensors import safe_open  # noqa: E402
from train_fixtures import (  # noqa: E402
    final_weights,
    from_pretrained,
    pretrained_tiny,
    resumed_from,
    run_train_script,
    train_assets,
    train_config,
)

from bayling_data.train.config import TrainConfig  # noqa: E402
from bayling_data.train.loop import train  # noqa: E402

SCRIPT = """
import json, os, socket, sys
with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
os.environ.update(WORLD_SIZE="1", RANK="0", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1",
                  MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), DS_ACCELERATOR="cpu")
import torch
torch.set_num_threads(1)
from accelerate.utils import DistributedType
from bayling_data.train.config import TrainConfig
from bayling_data.train.loop import train
config = TrainConfig.model_validate(json.loads(open(sys.argv[1]).read()))
result = train(config, log=lambda *_: None)
keys = ("step", "loss", "batches", "chrf")
history = [{k: e[k] for k in keys if k in e} for e in result.history]
open(sys.argv[2], "w").write(json.dumps(history))
"""


def launch(config: dict, folder: Path) -> list[dict]:
    run_train_script(
        SCRIPT, config, folder, [sys.executable], ["history.json"], {"ACCELERATE_USE_CPU": None}
    )
    return json.loads((folder / "history.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    assets = train_assets(tmp_path_factory)
    out = tmp_path_factory.mktemp("zero3")
    optim = {"max_steps": 2, "gradient_accumulation_steps": 2}
    model = pretrained_tiny(assets, out)  # (zero.Init would initialise a config differently)
    zero3 = from_pretrained(
        train_config(
            assets,
            out / "zero3",
            optim=optim,
            distributed={"strategy": "deepspeed_zero3"},
            output={"save_steps": 1},
        ),
        model,
    )
    plain = from_pretrained(train_config(assets, out / "plain", optim=optim), model)
    history = launch(zero3, out / "zero3")
    return out, history, train(TrainConfig.model_validate(plain), log=lambda *_: None), zero3


def test_zero3_steps_like_the_plain_loop(runs):
    out, history, plain, _ = runs
    assert [e["step"] for e in history] == [1, 2]
    for zero3, single in zip(history, plain.history, strict=True):
        assert zero3["batches"] == single["batches"]
        assert zero3["loss"] == pytest.approx(single["loss"], abs=1e-5)
    expected = final_weights(out / "plain" / "run" / "final")
    got = final_weights(out / "zero3" / "run" / "final")
    assert got.keys() == expected.keys()
    start = final_weights(out / "model")
    for name, tensor in got.items():
        # Each weight moved 2 x lr = 6e-3 (Adam); ZeRO-3 sums the gradients in another order
        # (flat partitions), which Adam's g / sqrt(v) magnifies where a gradient is ~0: a few
        # 1e-5 at most, 1% of the step.
        assert (expected[name] - start[name]).abs().max() > 1e-3, name
        torch.testing.assert_close(tensor, expected[name], atol=6e-5, rtol=0, msg=name)


def test_a_zero3_checkpoint_resumes(runs, tmp_path):
    out, history, _, zero3 = runs
    checkpoint = out / "zero3" / "run" / "checkpoints" / "step-00000001"
    assert (checkpoint / "pytorch_model" / "zero_pp_rank_0_mp_rank_00_model_states.pt").is_file()
    resumed = resumed_from(zero3, checkpoint, tmp_path / "run")
    again = launch(resumed, tmp_path)
    assert [e["step"] for e in again] == [2]
    assert again[0]["batches"] == history[1]["batches"]
    assert again[0]["loss"] == pytest.approx(history[1]["loss"], abs=1e-6)


def test_bf16_zero3_with_gradient_checkpointing(runs, tmp_path):
    pytest.importorskip("sacrebleu")
    _, history, _, zero3 = runs
    config = json.loads(json.dumps(zero3))
    config["bf16"] = True
    config["model"]["gradient_checkpointing"] = True
    config["optim"]["max_steps"] = 1
    config["output"] = {**zero3["output"], "dir": str(tmp_path / "run"), "save_steps": None}
    config["eval"] = {"max_sentences": 2, "max_new_tokens": 4, "every_steps": 1}
    again = launch(config, tmp_path)
    assert set(again[0]["chrf"]) == {"eng_Latn-zho_Hans", "zho_Hans-eng_Latn"}  # generation
    assert again[0]["batches"] == history[0]["batches"]
    assert again[0]["loss"] == pytest.approx(history[0]["loss"], abs=0.02)
    with safe_open(tmp_path / "run" / "final" / "model.safetensors", "pt") as saved:
        assert {saved.get_tensor(name).dtype for name in saved.keys()} == {torch.bfloat16}  # noqa: SIM118


ERROR_SCRIPT = """
import json, sys
from bayling_data.train.config import TrainConfig, TrainConfigError
from bayling_data.train.loop import make_accelerator
config = TrainConfig.model_validate(json.loads(open(sys.argv[1]).read()))
try:
    make_accelerator(config)
except TrainConfigError as err:
    print(err)
"""


def make_accelerator_says(config: dict, folder: Path, launcher: list[str], env: dict) -> str:
    """What make_accelerator's TrainConfigError says under this launcher and environment."""
    result = run_train_script(
        ERROR_SCRIPT, config, folder, launcher, [], {"DS_ACCELERATOR": "cpu", **env}
    )
    return result.stdout.strip().splitlines()[-1]


def test_zero3_under_accelerates_cpu_flag_is_a_config_error(runs, tmp_path):
    """accelerate leaves DeepSpeed off with ACCELERATE_USE_CPU: one line, not a silent DDP run."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    single = {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
              "MASTER_PORT": port, "ACCELERATE_USE_CPU": "1"}  # fmt: skip
    said = make_accelerator_says(runs[3], tmp_path, [sys.executable], single)
    assert said == (
        "distributed.strategy: deepspeed_zero3: accelerate set this run up as MULTI_CPU, not "
        "DeepSpeed (it leaves DeepSpeed off with ACCELERATE_USE_CPU / --cpu)"
    )


def test_zero3_on_two_cpu_processes_is_a_config_error(runs, tmp_path):
    """Without a GPU accelerate counts one DeepSpeed process whatever the launcher started: both
    ranks would train on the same rows. One line instead."""
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
    ]
    env = {"ACCELERATE_USE_CPU": None}
    said = make_accelerator_says(runs[3], tmp_path, launcher, env)
    assert said == (
        "distributed.strategy: deepspeed_zero3: accelerate counts 1 process(es) but the process "
        "group has 2, so every rank would train on the same rows (accelerate does this for "
        "DeepSpeed on a machine without GPUs)"
    )


def test_a_launcher_that_asks_for_deepspeed_under_ddp_is_a_config_error(runs, tmp_path):
    """accelerate launch --use_deepspeed (or its config file) sets ACCELERATE_USE_DEEPSPEED."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    single = {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
              "MASTER_PORT": port, "ACCELERATE_USE_CPU": None,
              "ACCELERATE_USE_DEEPSPEED": "true"}  # fmt: skip
    config = {**runs[3], "distributed": {"strategy": "ddp"}}
    said = make_accelerator_says(config, tmp_path, [sys.executable], single)
    assert said.startswith("distributed.strategy: ddp: accelerate set this run up as DEEPSPEED")
