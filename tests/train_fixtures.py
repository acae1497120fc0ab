"""Real, local parts for the training tests: a build of the sample recipe, a BPE tokenizer trained
on its text, a tiny Llama config. Built once per test session (the cache below), offline."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch
from conftest import SAMPLE_RECIPE

from bayling_data.io.shards import read_split
from bayling_data.pipeline import run_build
from bayling_data.recipe import load_recipe

torch.set_num_threads(1)  # the test machine has 2 cores; more threads only contend

TINY_LLAMA = {
    "model_type": "llama",
    "hidden_size": 48,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
}
SPECIAL_TOKENS = ["<s>", "</s>", "<pad>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]


@dataclass(frozen=True)
class TrainAssets:
    build: Path
    tokenizer_dir: Path


_ASSETS: dict[str, TrainAssets] = {}


def train_tokenizer(texts: list[str], folder: Path, vocab_size: int = 1000) -> Path:
    """A byte-level BPE trained on the texts, saved as a Hugging Face tokenizer folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from bayling_data.train.chat_templates import TEMPLATE_DIR

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    core.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=SPECIAL_TOKENS[3:],
    )
    tokenizer.chat_template = (TEMPLATE_DIR / "llama3.jinja").read_text("utf-8")
    tokenizer.save_pretrained(folder)
    return folder


def train_assets(root_factory) -> TrainAssets:
    """The session's sample build and tokenizer (made on first use)."""
    if "sample" not in _ASSETS:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        root = root_factory.mktemp("train_assets")
        build = root / "build"
        recipe = load_recipe(SAMPLE_RECIPE, [f"output.dir={build}"])
        run_build(recipe, progress=False)
        table = read_split(build, "train")
        texts = [m["content"] for row in table.column("messages").to_pylist() for m in row]
        _ASSETS["sample"] = TrainAssets(build, train_tokenizer(texts, root / "tokenizer"))
    return _ASSETS["sample"]


def train_config(assets: TrainAssets, out: Path, **sections) -> dict:
    """A training config dict for the tiny model on the sample build; sections override keys."""
    config = {
        "model": {
            "init_config": dict(TINY_LLAMA),
            "tokenizer": str(assets.tokenizer_dir),
            "attn_implementation": "sdpa",
        },
        "data": {
            "builds": [{"path": str(assets.build)}],
            "max_length": 256,
            "template": "llama3",
            "cache_dir": str(out / "cache"),
        },
        "optim": {
            "learning_rate": 3e-3,
            "lr_scheduler": "constant",
            "max_steps": 4,
            "batch_size": 2,
        },
        "output": {"dir": str(out / "run"), "logging_steps": 1},
        "seed": 7,
        "peak_tflops": 1.0,
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            config.setdefault(section, {}).update(values)
        else:
            config[section] = values
    return config


def validation_corpus(root_factory, max_length: int, cache_name: str):
    """The sample build's validation rows tokenized with BayLing's template, and the tokenizer."""
    import transformers

    from bayling_data.train.chat_templates import template_text
    from bayling_data.train.data import Corpus, tokenize_build
    from bayling_data.train.tokenize import MaskSpec

    assets = train_assets(root_factory)
    tokenizer = transformers.AutoTokenizer.from_pretrained(assets.tokenizer_dir)
    spec = MaskSpec(template=template_text("bayling", tokenizer), max_length=max_length)
    cache = root_factory.mktemp(cache_name)
    corpus = Corpus(
        [tokenize_build(str(assets.build), "validation", tokenizer, spec, cache, 1)], [1.0]
    )
    return corpus, tokenizer


def tiny_llamas(vocab_size: int) -> dict:
    """The tiny Llama with eager and with sdpa attention, the same weights (seed 0) in both."""
    import transformers

    models = {}
    for implementation in ("eager", "sdpa"):
        torch.manual_seed(0)
        config = transformers.LlamaConfig(
            **{k: v for k, v in TINY_LLAMA.items() if k != "model_type"},
            vocab_size=vocab_size,
            attn_implementation=implementation,
        )
        models[implementation] = transformers.LlamaForCausalLM(config)
    return models


def pretrained_tiny(assets: TrainAssets, folder: Path) -> Path:
    """The tiny Llama (seed 0, the assets' vocabulary) saved as a pretrained model folder, for
    runs that load it with from_pretrained (rank 0 only under FSDP, partitioned under ZeRO-3)."""
    from bayling_data.train.config import TrainConfig
    from bayling_data.train.loop import load_model, load_tokenizer

    config = TrainConfig.model_validate(train_config(assets, folder))
    torch.manual_seed(0)
    tokenizer = load_tokenizer(config)
    load_model(config, tokenizer, "sdpa").save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    return folder / "model"


def from_pretrained(config: dict, model: Path) -> dict:
    """A train_config dict that loads ``model`` instead of building the tiny config."""
    config["model"] = {**config["model"], "name_or_path": str(model), "init_config": None}
    return config


def run_train_script(
    script: str,
    config: dict,
    folder: Path,
    launcher: list[str],
    args: list[str],
    env: dict[str, str | None],
) -> subprocess.CompletedProcess:
    """``script`` (as run.py) with ``config`` (as config.json) under ``launcher`` in ``folder``,
    one thread per process and this checkout on the path; ``env`` entries of None are unset.
    Asserts a zero exit status, with the output's tail when not."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "run.py").write_text(script)
    merged = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    merged = {key: value for key, value in merged.items() if value is not None}
    merged["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).parents[1]), merged.get("PYTHONPATH", "")]
    )
    result = subprocess.run(
        [*launcher, str(folder / "run.py"), str(folder / "config.json"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=merged,
        cwd=folder,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result


def final_weights(folder: Path) -> dict[str, torch.Tensor]:
    """A saved model's parameters, in fp32."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def resumed_from(config: dict, checkpoint: Path, out: Path) -> dict:
    """The config, writing to ``out`` and resuming from ``checkpoint`` (no more checkpoints)."""
    resumed = json.loads(json.dumps(config))
    resumed["output"] = {
        **config["output"],
        "dir": str(out),
        "save_steps": None,
        "resume_from": str(checkpoint),
    }
    return resumed
