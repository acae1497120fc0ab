"""FSDP2 on two CPU processes (gloo) trains the tiny Llama exactly as one process does: the same
per-step losses and final weights for the same global batch, and a checkpoint that resumes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
pytest.importorskip("tokenizers")
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

from bayling_data.train.config import TrainConfig, TrainConfigError  # noqa: E402
from bayling_data.train.loop import (  # noqa: E402
    load_dtype,
    load_model,
    load_tokenizer,
    make_accelerator,
    train,
)

# Each rank runs the config; rank 0 writes the per-step history (losses are reduced over ranks).
SCRIPT = """
import json, os, sys
import torch
torch.set_num_threads(1)
from bayling_data.train.config import TrainConfig
from bayling_data.train.loop import train
config = TrainConfig.model_validate(json.loads(open(sys.argv[1]).read()))
result = train(config, log=lambda *_: None)
if os.environ["RANK"] == "0":  # (train() ends the process group)
    keys = ("step", "loss", "batches", "eval_loss", "chrf")
    history = [{k: e[k] for k in keys if k in e} for e in result.history]
    open(sys.argv[2], "w").write(json.dumps(history))
"""


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def launch(config: dict, folder: Path) -> list[dict]:
    history = str(folder / "history.json")
    run_train_script(SCRIPT, config, folder, TORCHRUN, [history], {"ACCELERATE_USE_CPU": "1"})
    return json.loads((folder / "history.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    assets = train_assets(tmp_path_factory)
    out = tmp_path_factory.mktemp("fsdp")
    steps = {"max_steps": 3, "batch_size": 2}
    # 37 held-out sequences at 288: the ranks' shares differ, yet each must run every forward.
    data = {"max_length": 288}
    # Two ranks, two micro-batches each per step == one process, four micro-batches per step.
    model = pretrained_tiny(assets, out)  # rank 0 loads it, the other ranks get shards
    sharded = from_pretrained(
        train_config(
            assets,
            out / "fsdp",
            data=data,
            optim={**steps, "gradient_accumulation_steps": 2},
            distributed={"strategy": "fsdp"},
            output={"save_steps": 2, "eval_steps": 3},
        ),
        model,
    )
    single = from_pretrained(
        train_config(
            assets,
            out / "single",
            data=data,
            optim={**steps, "gradient_accumulation_steps": 4},
            output={"eval_steps": 3},
        ),
        model,
    )
    fsdp_history = launch(sharded, out / "fsdp")
    single_result = train(TrainConfig.model_validate(single), log=lambda *_: None)
    return out, fsdp_history, single_result.history, sharded


def test_fsdp2_updates_the_sharded_weights(runs):
    out, *_ = runs
    before = final_weights(out / "model")
    after = final_weights(out / "fsdp" / "run" / "final")
    assert before.keys() == after.keys()
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    # Every layer's matrices and norms moved (embeddings: only the rows of tokens seen).
    assert len(changed) == len(before), sorted(set(before) - set(changed))


def test_fsdp2_on_two_ranks_matches_one_process(runs):
    out, fsdp_history, single_history, _ = runs
    assert [e["step"] for e in fsdp_history] == [1, 2, 3]
    for sharded, single in zip(fsdp_history, single_history, strict=True):
        assert sharded["loss"] == pytest.approx(single["loss"], abs=1e-5)
    assert fsdp_history[-1]["eval_loss"] == pytest.approx(single_history[-1]["eval_loss"], abs=1e-5)
    single_weights = final_weights(out / "single" / "run" / "final")
    for name, tensor in final_weights(out / "fsdp" / "run" / "final").items():
        torch.testing.assert_close(tensor, single_weights[name], atol=1e-5, rtol=0, msg=name)


def test_an_fsdp2_checkpoint_resumes_to_the_same_step(runs, tmp_path):
    out, fsdp_history, _, sharded = runs
    checkpoint = out / "fsdp" / "run" / "checkpoints" / "step-00000002"
    assert (checkpoint / "trainer_state.json").is_file()
    # Sharded: torch.distributed.checkpoint wrote one file per rank.
    shards = sorted(p.name for p in (checkpoint / "pytorch_model_fsdp_0").glob("*.distcp"))
    assert shards == ["__0_0.distcp", "__1_0.distcp"]
    resumed = resumed_from(sharded, checkpoint, tmp_path / "run")
    history = launch(resumed, tmp_path)
    assert [e["step"] for e in history] == [3]
    assert history[0]["batches"] == fsdp_history[2]["batches"]
    assert history[0]["loss"] == pytest.approx(fsdp_history[2]["loss"], abs=1e-6)
    straight = final_weights(out / "fsdp" / "run" / "final")
    for name, tensor in final_weights(tmp_path / "run" / "final").items():
        torch.testing.assert_close(tensor, straight[name], atol=1e-6, rtol=0, msg=name)


def test_bf16_fsdp2_with_activation_checkpointing(runs, tmp_path):
    """MixedPrecisionPolicy (bf16 compute, fp32 shards and reduction) and FSDP's activation
    checkpointing; chrF++ generation on the sharded model (3 sentences: uneven over the ranks,
    synced_gpus); the final model is saved in bf16, the dtype it was loaded in."""
    pytest.importorskip("sacrebleu")
    out, fsdp_history, _, sharded = runs
    config = json.loads(json.dumps(sharded))
    config["bf16"] = True
    config["model"]["gradient_checkpointing"] = True
    config["optim"]["max_steps"] = 2
    config["output"] = {**sharded["output"], "dir": str(tmp_path / "run"), "save_steps": None}
    config["eval"] = {"max_sentences": 3, "max_new_tokens": 4, "every_steps": 2}
    history = launch(config, tmp_path)
    chrf = history[-1]["chrf"]
    assert set(chrf) == {"eng_Latn-zho_Hans", "zho_Hans-eng_Latn"}
    assert all(0.0 <= score <= 100.0 for score in chrf.values())
    for bf16, fp32 in zip(history, fsdp_history[:2], strict=False):
        assert bf16["batches"] == fp32["batches"]
        assert bf16["loss"] == pytest.approx(fp32["loss"], abs=0.02)
    final = tmp_path / "run" / "final"
    with safe_open(final / "model.safetensors", "pt") as saved:
        assert {saved.get_tensor(name).dtype for name in saved.keys()} == {torch.bfloat16}  # noqa: SIM118
    model = transformers.AutoModelForCausalLM.from_pretrained(final, dtype=torch.bfloat16)
    before = final_weights(out / "model")
    after = {name: p.detach().float() for name, p in model.named_parameters()}
    assert all(not torch.equal(before[name].bfloat16().float(), after[name]) for name in before)


@pytest.mark.parametrize(
    ("strategy", "bf16", "dtype"),
    [
        ("ddp", True, torch.float32),  # fp32 weights for each rank's optimizer; bf16 autocast
        ("ddp", False, torch.float32),
        ("fsdp", True, torch.bfloat16),  # fp32 only in FSDP2's shards
        ("fsdp", False, torch.float32),
        ("deepspeed_zero3", True, torch.bfloat16),  # fp32 only in ZeRO-3's partitions
    ],
)
def test_weights_load_in_bf16_only_when_sharded(tmp_path_factory, strategy, bf16, dtype):
    assets = train_assets(tmp_path_factory)
    out = tmp_path_factory.mktemp("dtype")
    config = TrainConfig.model_validate(
        train_config(assets, out, bf16=bf16, distributed={"strategy": strategy})
    )
    assert load_dtype(config) == dtype
    model = load_model(config, load_tokenizer(config), "sdpa")
    assert {p.dtype for p in model.parameters()} == {dtype}


@pytest.mark.skipif(torch.accelerator.is_available(), reason="the machine has an accelerator")
def test_fsdp2_cpu_offload_without_a_gpu_is_one_line(tmp_path_factory):
    """torch's CPUOffloadPolicy pins host memory: "Cannot access accelerator device when none is
    available" deep in fully_shard, which the config check says first."""
    assets = train_assets(tmp_path_factory)
    out = tmp_path_factory.mktemp("offload")
    config = train_config(assets, out, distributed={"strategy": "fsdp", "cpu_offload": True})
    with pytest.raises(TrainConfigError, match=r"^distributed.cpu_offload: FSDP2 offloads"):
        make_accelerator(TrainConfig.model_validate(config))
