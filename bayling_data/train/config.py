"""The training config: a YAML file validated into frozen pydantic models.

Mistakes (an unknown key, a wrong type, a missing data folder, a bad ``--set``) become one
:class:`TrainConfigError` line naming the key path, as recipes do; ``docs/training.md`` documents
every key. This module imports no torch, so the CLI can check a config before the heavy imports.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from bayling_data.config import StrictModel
from bayling_data.errors import BaylingError
from bayling_data.recipe import _substitute_env, apply_override, format_validation_error

TEMPLATE_NAMES = ("tokenizer", "llama2", "llama3", "bayling")


class TrainConfigError(BaylingError):
    """The training config file or an override is invalid."""


class ModelConfig(StrictModel):
    name_or_path: str | None = Field(
        default=None, description="Hub id or local folder of a pretrained causal LM."
    )
    init_config: dict[str, Any] | None = Field(
        default=None,
        description="Build a randomly initialised model from these config keys instead "
        "(model_type plus sizes; for smoke tests and benchmarks).",
    )
    tokenizer: str | None = Field(default=None, description="Default: name_or_path.")
    attn_implementation: Literal["auto", "eager", "sdpa", "flash_attention_2"] = "auto"
    gradient_checkpointing: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        if (self.name_or_path is None) == (self.init_config is None):
            raise ValueError("give exactly one of name_or_path and init_config")
        if self.init_config is not None and self.tokenizer is None:
            raise ValueError("init_config needs a tokenizer (model.tokenizer)")
        return self


class DataSource(StrictModel):
    path: str = Field(description="A bayling-data build's output folder.")
    weight: float = Field(
        default=1.0,
        gt=0,
        description="Rows drawn per epoch as a multiple of the build's rows (2.0 repeats it, "
        "0.5 takes a fixed half).",
    )

    @field_validator("path")
    @classmethod
    def _is_build(cls, value: str) -> str:
        folder = Path(value).expanduser()
        if not folder.is_dir():
            raise ValueError(f"no such build folder: {value}")
        if not (folder / "manifest.json").is_file():
            raise ValueError(f"{value} is not a bayling-data build (no manifest.json)")
        return str(folder)


class DataConfig(StrictModel):
    builds: list[DataSource] = Field(min_length=1)
    split: str = "train"
    eval_split: str | None = Field(
        default="validation", description="Split for the held-out loss; null for none."
    )
    max_length: int = Field(default=2048, ge=8)
    packing: bool = True
    template: str = Field(
        default="tokenizer",
        description="tokenizer (its own chat template), llama2, llama3, bayling, or a path to a "
        "Jinja file.",
    )
    loss_on: Literal["all_assistant", "last_assistant"] = "all_assistant"
    truncation: Literal["drop", "keep_complete_turns"] = Field(
        default="drop",
        description="drop: rows longer than max_length go; keep_complete_turns: cut after the "
        "last assistant turn that fits whole, drop the row if none fits.",
    )
    num_proc: int | None = Field(
        default=None,
        ge=1,
        description="Processes that tokenize; default: the CPUs this process may use, up to 8.",
    )
    cache_dir: str | None = Field(
        default=None, description="Tokenized cache; default ~/.cache/bayling_data/tokenized."
    )

    @field_validator("template")
    @classmethod
    def _known_template(cls, value: str) -> str:
        if value not in TEMPLATE_NAMES and not Path(value).expanduser().is_file():
            raise ValueError(
                f"unknown template {value!r}; expected one of {', '.join(TEMPLATE_NAMES)} "
                "or a Jinja file"
            )
        return value


class OptimConfig(StrictModel):
    learning_rate: float = Field(default=2e-5, gt=0)
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    warmup_steps: int = Field(default=0, ge=0)
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float | None = Field(default=1.0, gt=0)
    epochs: float = Field(default=1.0, gt=0)
    max_steps: int | None = Field(default=None, gt=0, description="Overrides epochs.")
    batch_size: int = Field(default=1, ge=1, description="Sequences per device per micro-batch.")
    gradient_accumulation_steps: int = Field(default=1, ge=1)


class LossConfig(StrictModel):
    implementation: Literal["auto", "chunked", "full", "liger"] = Field(
        default="auto",
        description="auto: Liger's fused linear cross entropy on CUDA when liger_kernel is "
        "installed, else chunked; full: the whole (B, L, V) logits in fp32.",
    )
    chunk_tokens: int = Field(
        default=4096, ge=1, description="Trained tokens whose logits are computed at once."
    )


class LoraConfig(StrictModel):
    r: int = Field(default=16, gt=0)
    alpha: int = Field(default=32, gt=0)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] | str = "all-linear"


class DistributedConfig(StrictModel):
    strategy: Literal["ddp", "fsdp", "deepspeed_zero3"] = "ddp"
    fsdp_wrap_class: str = Field(
        default="LlamaDecoderLayer", description="Layer class each FSDP unit wraps."
    )
    cpu_offload: bool = False
    timeout_minutes: int = Field(
        default=60,
        gt=0,
        description="Process-group timeout: how long ranks wait at a collective, e.g. for rank "
        "0 to tokenize a 3M-row build (torch: 10 minutes with NCCL, 30 with gloo).",
    )


class EvalConfig(StrictModel):
    every_steps: int | None = Field(default=None, gt=0, description="Default: only at the end.")
    flores: str = Field(default="sample:flores200", description="Flores folder for chrF++.")
    flores_split: str = "devtest"
    directions: list[str] = Field(default=["eng_Latn-zho_Hans", "zho_Hans-eng_Latn"])
    max_sentences: int = Field(default=50, gt=0)
    max_new_tokens: int = Field(default=128, gt=0)


class OutputConfig(StrictModel):
    dir: str
    logging_steps: int = Field(default=10, gt=0)
    eval_steps: int | None = Field(
        default=None, gt=0, description="Held-out loss interval (it is also computed at the end)."
    )
    save_steps: int | None = Field(default=None, gt=0, description="Checkpoint interval.")
    save_total_limit: int | None = Field(default=2, gt=0)
    resume_from: str | None = Field(
        default=None, description="A checkpoint folder, or 'latest' in output.dir."
    )


class TrainConfig(StrictModel):
    model: ModelConfig
    data: DataConfig
    optim: OptimConfig = Field(default_factory=OptimConfig)
    bf16: bool = False
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)
    lora: LoraConfig | None = None
    loss: LossConfig = Field(default_factory=LossConfig)
    eval: EvalConfig | None = None
    output: OutputConfig
    seed: int = 0
    peak_tflops: float | None = Field(
        default=None, gt=0, description="Device peak for MFU; default: known GPUs, measured on CPU."
    )

    @model_validator(mode="after")
    def _lora_unsharded(self) -> TrainConfig:
        if self.lora is not None and self.distributed.strategy != "ddp":
            raise ValueError(
                f"lora with distributed.strategy {self.distributed.strategy} is not supported "
                "(the adapter is merged into a full model at the end); use ddp"
            )
        return self


def _model_at(path: list[str]) -> type[BaseModel] | None:
    """The pydantic model a key path leads to (our sections nest plainly, lists of models aside)."""
    current: Any = TrainConfig
    for part in path:
        if part.isdigit():
            continue
        field = current.model_fields.get(part) if current else None
        if field is None:
            return None
        candidates = [field.annotation, *getattr(field.annotation, "__args__", ())]
        for arg in list(candidates):
            candidates.extend(getattr(arg, "__args__", ()))
        current = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
    return current


def describe_error(err: ValidationError, where: str) -> str:
    """One line for the first problem; unknown keys list the keys allowed there."""
    first = err.errors()[0]
    if first["type"] != "extra_forbidden":
        return format_validation_error(err, where)
    loc = [str(part) for part in first["loc"]]
    model = _model_at(loc[:-1])
    allowed = list(model.model_fields) if model else []
    near = difflib.get_close_matches(loc[-1], allowed, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return f"{where}: {'.'.join(loc)}: unknown key{hint}; expected one of: {', '.join(allowed)}"


def load_train_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read, override, substitute and validate a training config file."""
    where = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise TrainConfigError(f"{where}: no such config file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise TrainConfigError(f"{where}: cannot read the config ({problem})") from None
    if not isinstance(data, dict):
        raise TrainConfigError(f"{where}: expected a mapping of config keys at the top level")
    for override in overrides:
        apply_override(data, override)
    data = _substitute_env(data, where, "")
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as err:
        raise TrainConfigError(describe_error(err, where)) from None
