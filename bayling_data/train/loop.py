"""The training loop: accelerate for devices and sharding, our own loop for exact loss weighting.

Each optimizer step's loss is the sum of per-token losses over every trained token of its
micro-batches on every rank, divided by that global count: a row counts by its tokens, not by the
micro-batch or rank it landed in. (accelerate divides by the accumulation steps and DDP/FSDP
average over ranks, so each micro-batch's sum is scaled by ``world * accumulation / tokens``.)
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch

from bayling_data.train.chat_templates import template_text
from bayling_data.train.config import TrainConfig, TrainConfigError
from bayling_data.train.data import Corpus, load_corpus, plan_epoch
from bayling_data.train.loss import LossSettings, resolve_loss
from bayling_data.train.metrics import (
    GroupedLoss,
    count_parameters,
    device_peak_tflops,
    mfu,
    model_flops,
    squared_row_lengths,
)
from bayling_data.train.packing import Batch, batch_loss, collate
from bayling_data.train.tokenize import MaskSpec

STATE_FILE = "trainer_state.json"


@dataclass
class TrainResult:
    steps: int
    final_dir: Path | None
    history: list[dict[str, Any]] = field(default_factory=list)


# --- setup ---------------------------------------------------------------------------------------


def make_accelerator(config: TrainConfig):
    """accelerate's Accelerator for the config's strategy: ``ddp``; ``fsdp`` (FSDP2,
    ``fully_shard`` per ``fsdp_wrap_class`` layer, through accelerate's FSDP2 path); or
    ``deepspeed_zero3``."""
    from accelerate import Accelerator, PartialState
    from accelerate.utils import DistributedType, InitProcessGroupKwargs

    accumulation = config.optim.gradient_accumulation_steps
    kwargs: dict[str, Any] = {}
    strategy = config.distributed.strategy
    if strategy == "fsdp":
        if config.distributed.cpu_offload and not torch.accelerator.is_available():
            raise TrainConfigError(
                "distributed.cpu_offload: FSDP2 offloads to pinned host memory, which needs a GPU "
                "(this machine has none)"
            )
        kwargs["fsdp_plugin"] = _fsdp2_plugin(config)
    elif strategy == "deepspeed_zero3":
        kwargs["deepspeed_plugin"] = _zero3_plugin(config)
    # Ranks other than 0 wait at a barrier while rank 0 tokenizes: give them the config's time.
    timeout = InitProcessGroupKwargs(timeout=timedelta(minutes=config.distributed.timeout_minutes))
    accelerator = Accelerator(
        mixed_precision="bf16" if config.bf16 else "no",
        gradient_accumulation_steps=accumulation,
        kwargs_handlers=[timeout],
        **kwargs,
    )
    if strategy == "fsdp" and accelerator.distributed_type == DistributedType.MULTI_CPU:
        # accelerate 1.16 turns FSDP on only for accelerators (GPU, XPU, ...): a CPU (gloo) run is
        # left MULTI_CPU, i.e. plain DDP. torch's fully_shard runs on gloo, so switch the state
        # to FSDP ourselves; accelerate's FSDP2 prepare, save_state and get_state_dict do the rest.
        # (What AcceleratorState does when it chooses FSDP, PartialState's copy included.)
        accelerator.state.distributed_type = DistributedType.FSDP
        accelerator.state.fsdp_plugin = kwargs["fsdp_plugin"]
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    if strategy == "deepspeed_zero3" and accelerator.distributed_type == DistributedType.DEEPSPEED:
        # Nothing but the model and optimizer goes through prepare (we batch ourselves), so
        # accelerate cannot read the micro-batch size off a DataLoader: give DeepSpeed ours.
        ds_config = accelerator.state.deepspeed_plugin.deepspeed_config
        ds_config["train_micro_batch_size_per_gpu"] = config.optim.batch_size
        ds_config["gradient_accumulation_steps"] = accumulation
        ds_config["train_batch_size"] = (
            config.optim.batch_size * accumulation * accelerator.num_processes
        )
    kind = accelerator.distributed_type
    group = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    if group != accelerator.num_processes:  # every rank would train on the same rows
        raise TrainConfigError(
            f"distributed.strategy: {strategy}: accelerate counts {accelerator.num_processes} "
            f"process(es) but the process group has {group}, so every rank would train on the "
            "same rows (accelerate does this for DeepSpeed on a machine without GPUs)"
        )
    if strategy == "deepspeed_zero3" and kind != DistributedType.DEEPSPEED:
        raise TrainConfigError(
            f"distributed.strategy: deepspeed_zero3: accelerate set this run up as {kind.value}, "
            "not DeepSpeed (it leaves DeepSpeed off with ACCELERATE_USE_CPU / --cpu)"
        )
    if strategy == "ddp" and kind in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        raise TrainConfigError(
            f"distributed.strategy: ddp: accelerate set this run up as {kind.value} (from "
            "accelerate launch's flags or config file); the strategy is the config's: set "
            "distributed.strategy, not the launcher's"
        )
    if strategy == "fsdp" and accelerator.num_processes > 1 and kind != DistributedType.FSDP:
        raise TrainConfigError(
            f"distributed.strategy: fsdp: accelerate set this {accelerator.num_processes}-process "
            f"run up as {kind.value}, not FSDP"
        )
    return accelerator


def _fsdp2_plugin(config: TrainConfig):
    from accelerate.utils import FullyShardedDataParallelPlugin
    from torch.distributed.fsdp import MixedPrecisionPolicy

    return FullyShardedDataParallelPlugin(
        fsdp_version=2,
        auto_wrap_policy="transformer_based_wrap",
        transformer_cls_names_to_wrap=[config.distributed.fsdp_wrap_class],
        reshard_after_forward=True,
        cpu_offload=config.distributed.cpu_offload,
        state_dict_type="SHARDED_STATE_DICT",  # save_state: torch.distributed.checkpoint shards
        activation_checkpointing=config.model.gradient_checkpointing,
        # Only rank 0 holds the loaded weights (transformers loads the others on meta); its
        # tensors are broadcast shard by shard after fully_shard.
        cpu_ram_efficient_loading=True,
        # bf16: fp32 master weights as shards (accelerate upcasts the trainable parameters before
        # sharding), bf16 all-gathered parameters for compute, gradients reduced in fp32.
        mixed_precision_policy=(
            MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
            if config.bf16
            else None
        ),
    )


def _zero3_plugin(config: TrainConfig):
    from accelerate.utils import DeepSpeedPlugin

    offload = "cpu" if config.distributed.cpu_offload else "none"
    return DeepSpeedPlugin(
        zero_stage=3,
        gradient_accumulation_steps=config.optim.gradient_accumulation_steps,
        gradient_clipping=config.optim.max_grad_norm or 0.0,
        offload_optimizer_device=offload,
        offload_param_device=offload,
        zero3_init_flag=True,  # from_pretrained partitions the weights as it loads them
        zero3_save_16bit_model=True,  # get_state_dict gathers a full 16-bit state dict
    )


def load_dtype(config: TrainConfig) -> torch.dtype:
    """The dtype weights are loaded in. ddp: fp32 (each rank's optimizer updates full fp32
    weights; bf16 is autocast). fsdp / deepspeed_zero3 with bf16: bf16, so that no rank holds
    the full model in fp32; the fp32 master weights exist only as shards (FSDP2: accelerate
    upcasts the trainable parameters, which only rank 0 holds, and shards them; ZeRO-3: its
    optimizer keeps fp32 partitions)."""
    if config.bf16 and config.distributed.strategy in ("fsdp", "deepspeed_zero3"):
        return torch.bfloat16
    return torch.float32


def attention_implementation(config: TrainConfig, device: torch.device) -> str:
    """flash-attention (varlen over packed rows) on GPUs that have it, else sdpa with a mask."""
    chosen = config.model.attn_implementation
    if chosen != "auto":
        return chosen
    if device.type == "cuda":
        try:
            import flash_attn  # noqa: F401

            return "flash_attention_2"
        except ImportError:
            pass
    return "sdpa"


def _not_loadable(key: str, name: str, err: Exception) -> TrainConfigError:
    """A model or tokenizer that cannot be loaded (offline and not cached, a wrong path or id):
    one line naming the key, not transformers' chained tracebacks."""
    if name.startswith(("/", "./", "../", "~")) and not Path(name).expanduser().exists():
        return TrainConfigError(f"{key}: {name}: no such folder")
    offline = "couldn't connect" in str(err) or "offline" in str(err).lower()
    why = (
        "it is not in the Hugging Face cache and the Hub cannot be reached (offline); download it "
        "first (huggingface-cli download) or give a local folder"
        if offline
        else str(err).strip().splitlines()[0]
    )
    return TrainConfigError(f"{key}: cannot load {name!r}: {why}")


def load_tokenizer(config: TrainConfig):
    from transformers import AutoTokenizer

    name = config.model.tokenizer or config.model.name_or_path
    key = "model.tokenizer" if config.model.tokenizer else "model.name_or_path"
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as err:
        raise _not_loadable(key, name, err) from None
    if tokenizer.pad_token_id is None:  # padding is never trained, any id will do
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(config: TrainConfig, tokenizer, implementation: str):
    from transformers import AutoConfig, AutoModelForCausalLM

    if config.model.init_config is not None:
        settings = dict(config.model.init_config)
        model_type = settings.pop("model_type", "llama")
        settings.setdefault("vocab_size", len(tokenizer))
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            settings.setdefault(name, getattr(tokenizer, name))
        model_config = AutoConfig.for_model(model_type, **settings)
        model = AutoModelForCausalLM.from_config(
            model_config, attn_implementation=implementation, dtype=load_dtype(config)
        )
    else:
        try:
            model = AutoModelForCausalLM.from_pretrained(
                config.model.name_or_path,
                attn_implementation=implementation,
                dtype=load_dtype(config),
            )
        except (OSError, ValueError) as err:
            raise _not_loadable("model.name_or_path", config.model.name_or_path, err) from None
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    model.config.use_cache = False
    if config.model.gradient_checkpointing and config.distributed.strategy != "fsdp":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.lora is not None:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:
            raise TrainConfigError(
                "lora: needs peft; install it with: python -m pip install peft"
            ) from None
        lora = config.lora
        model = get_peft_model(
            model,
            LoraConfig(
                r=lora.r,
                lora_alpha=lora.alpha,
                lora_dropout=lora.dropout,
                target_modules=lora.target_modules,
                task_type="CAUSAL_LM",
            ),
        )
    return model


def make_optimizer(model, config: TrainConfig):
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.optim.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.optim.learning_rate,
    )


# --- checkpoints ---------------------------------------------------------------------------------


def checkpoint_dirs(output_dir: Path) -> list[Path]:
    found = (output_dir / "checkpoints").glob("step-*")
    return sorted((p for p in found if (p / STATE_FILE).is_file()), key=lambda p: p.name)


def resolve_resume(config: TrainConfig) -> Path | None:
    wanted = config.output.resume_from
    if wanted is None:
        return None
    if wanted == "latest":
        found = checkpoint_dirs(Path(config.output.dir))
        return found[-1] if found else None
    path = Path(wanted).expanduser()
    if not (path / STATE_FILE).is_file():
        raise TrainConfigError(
            f"output.resume_from: {wanted} is not a checkpoint (no {STATE_FILE})"
        )
    return path


def save_checkpoint(accelerator, output_dir: Path, state: dict, keep: int | None) -> Path:
    folder = output_dir / "checkpoints" / f"step-{state['step']:08d}"
    accelerator.save_state(str(folder))
    if accelerator.is_main_process:
        (folder / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", "utf-8")
        if keep is not None:
            for old in checkpoint_dirs(output_dir)[:-keep]:
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return folder


def save_final(
    accelerator, model, tokenizer, template: str, folder: Path, lora: bool, dtype: torch.dtype
) -> None:
    """The model in Hugging Face format (LoRA: merged, with the adapter beside it), in the dtype
    it was loaded in. Sharded models are gathered into one full state dict on rank 0 first
    (FSDP2: torch's get_model_state_dict; ZeRO-3: its 16-bit consolidation)."""
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    state_dict = accelerator.get_state_dict(model)
    if not lora and state_dict:  # FSDP2 keeps fp32 master weights even when loaded in bf16
        state_dict = {
            name: tensor.to(dtype) if tensor.is_floating_point() else tensor
            for name, tensor in state_dict.items()
        }
    if lora:
        unwrapped.save_pretrained(
            folder / "adapter", is_main_process=accelerator.is_main_process, state_dict=state_dict
        )
        if accelerator.is_main_process:
            unwrapped.merge_and_unload().save_pretrained(folder)
    else:
        unwrapped.save_pretrained(
            folder,
            is_main_process=accelerator.is_main_process,
            save_function=accelerator.save,
            state_dict=state_dict,
        )
    if accelerator.is_main_process:
        tokenizer.chat_template = template  # the format it was trained in, for inference
        tokenizer.save_pretrained(folder)


# --- the loop ------------------------------------------------------------------------------------


def _step_batches(corpus, plan, step_in_epoch, accelerator, pad_id, pad_to) -> list[Batch]:
    return [
        collate(corpus, sequences, pad_id, pad_to).to(accelerator.device)
        for sequences in plan.step_batches(
            step_in_epoch, accelerator.process_index, accelerator.num_processes
        )
    ]


@torch.no_grad()
def held_out_loss(
    accelerator, model, corpus: Corpus, config: TrainConfig, pad_id, impl, loss: LossSettings
) -> float:
    """Mean per-token loss over the whole eval split (each rank a share of the sequences)."""
    plan = plan_epoch(
        corpus,
        seed=config.seed,
        epoch=0,
        max_length=config.data.max_length,
        packing=config.data.packing,
        batch_size=1,
        world=1,
        accumulation=1,
    )
    model.eval()
    totals = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
    world, rank = accelerator.num_processes, accelerator.process_index
    # Every rank runs as many forwards (a sharded model needs all ranks in each): a rank whose
    # share is shorter repeats micro-batch 0 and does not count it.
    for index in range(rank, -(-plan.num_micro_batches // world) * world, world):
        counted = index < plan.num_micro_batches
        batch = collate(corpus, plan.micro_batch(index if counted else 0), pad_id)
        out = batch_loss(model, batch.to(accelerator.device), impl, loss)
        if counted:
            totals += torch.stack([out.total.double(), out.trained.sum().double()])
    model.train()
    totals = accelerator.reduce(totals, "sum")
    return float(totals[0] / totals[1]) if totals[1] > 0 else float("nan")


def format_log(entry: dict[str, Any]) -> list[str]:
    lines = [
        f"step {entry['step']}/{entry['total_steps']} | epoch {entry['epoch']:.2f} | "
        f"loss {entry['loss']:.4f} | lr {entry['lr']:.2e} | "
        f"tok/s/gpu {entry['tokens_per_s_per_device']:,.0f} | mfu {entry['mfu']:.2%} | "
        f"trained {entry['trained_tokens']:,} tok"
    ]
    for kind in ("lang", "direction"):
        parts = [
            f"{name} {loss:.3f} ({n:,})" for name, (loss, n) in entry[f"loss_by_{kind}"].items()
        ]
        lines.append(f"  loss by {kind}: " + ", ".join(parts))
    return lines


def train(config: TrainConfig, log=print) -> TrainResult:
    """Run a training config to the end; returns the steps run and where the model went."""
    from accelerate.utils import set_seed
    from transformers import get_scheduler

    accelerator = make_accelerator(config)
    say = log if accelerator.is_main_process else (lambda *_: None)
    set_seed(config.seed)
    output_dir = Path(config.output.dir)
    resume = resolve_resume(config)

    tokenizer = load_tokenizer(config)
    template = template_text(config.data.template, tokenizer)
    spec = MaskSpec(
        template=template,
        loss_on=config.data.loss_on,
        max_length=config.data.max_length,
        truncation=config.data.truncation,
    )
    with accelerator.main_process_first():  # rank 0 tokenizes into the cache; the others read it
        corpus = load_corpus(config.data, tokenizer, spec, config.data.split)
        eval_corpus = (
            load_corpus(config.data, tokenizer, spec, config.data.eval_split)
            if config.data.eval_split
            else None
        )
    dropped = corpus.dropped()
    say(
        f"data: {corpus.num_rows:,} rows kept from {len(corpus.builds)} build(s); dropped "
        + ", ".join(f"{reason} {n:,}" for reason, n in dropped.items())
        + f" (truncation: {config.data.truncation}, max_length {config.data.max_length}, "
        f"loss on {config.data.loss_on})"
    )
    if corpus.num_rows == 0:
        raise TrainConfigError("data: no row is left to train on (see the drops above)")

    implementation = attention_implementation(config, accelerator.device)
    model = load_model(config, tokenizer, implementation)
    num_parameters = count_parameters(model)
    flops = model_flops(model)
    optimizer = make_optimizer(model, config)
    world, accumulation = accelerator.num_processes, config.optim.gradient_accumulation_steps

    def plan(epoch: int):
        return plan_epoch(
            corpus,
            seed=config.seed,
            epoch=epoch,
            max_length=config.data.max_length,
            packing=config.data.packing,
            batch_size=config.optim.batch_size,
            world=world,
            accumulation=accumulation,
        )

    first = plan(0)
    if first.steps == 0:
        raise TrainConfigError(
            "optim: one optimizer step needs more sequences than an epoch has "
            f"({first.num_micro_batches} micro-batches of {config.optim.batch_size}; "
            "lower batch_size or gradient_accumulation_steps)"
        )
    total_steps = config.optim.max_steps or math.ceil(config.optim.epochs * first.steps)
    # The optimizer goes through prepare with its model: FSDP2 (accelerate's _prepare_fsdp2)
    # points it at the sharded parameters, DeepSpeed replaces it with its ZeRO optimizer. The
    # scheduler is made afterwards, on the optimizer that steps.
    model, optimizer = accelerator.prepare(model, optimizer)
    scheduler = get_scheduler(
        config.optim.lr_scheduler,
        optimizer,
        num_warmup_steps=config.optim.warmup_steps,
        num_training_steps=total_steps,
    )
    accelerator.register_for_checkpointing(scheduler)  # stepped once per optimizer step, by us

    state = {"step": 0, "epoch": 0, "step_in_epoch": 0, "trained_tokens": 0, "seed": config.seed}
    if resume is not None:
        accelerator.load_state(str(resume))
        state = json.loads((resume / STATE_FILE).read_text("utf-8"))
        say(f"resumed from {resume} at step {state['step']} (epoch {state['epoch']})")
    current = first if state["epoch"] == 0 else plan(state["epoch"])
    pad_to = config.data.max_length if config.data.packing else None
    loss = resolve_loss(
        config.loss.implementation, config.loss.chunk_tokens, model, accelerator.device
    )
    train_dtype = torch.bfloat16 if config.bf16 else torch.float32
    peak, peak_source = device_peak_tflops(accelerator.device, config.peak_tflops, train_dtype)
    say(
        f"model: {num_parameters:,} parameters, attention {implementation}, "
        f"loss {loss.implementation}, {world} process(es), "
        f"{total_steps} steps of {world * accumulation * config.optim.batch_size} sequences; "
        f"mfu against {peak:.3g} TFLOP/s ({peak_source})"
    )
    grouped = GroupedLoss(
        {"lang": corpus.lang_names, "direction": corpus.direction_names}, accelerator.device
    )
    # loss, trained tokens, real tokens, the rows' squared lengths (attention FLOPs)
    interval = torch.zeros(4, dtype=torch.float64, device=accelerator.device)
    history: list[dict[str, Any]] = []
    log_file = output_dir / "train_log.jsonl"
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
    compute_seconds = 0.0  # training steps only: logging, evaluation and saving do not count
    model.train()
    while state["step"] < total_steps:
        step_started = time.perf_counter()
        if state["step_in_epoch"] >= current.steps:
            state["epoch"] += 1
            state["step_in_epoch"] = 0
            current = plan(state["epoch"])
        batches = _step_batches(
            corpus, current, state["step_in_epoch"], accelerator, tokenizer.pad_token_id, pad_to
        )
        local_trained = torch.tensor(
            float(sum(b.num_trained for b in batches)), device=accelerator.device
        )
        global_trained = accelerator.reduce(local_trained, "sum")
        scale = world * accumulation / global_trained.clamp(min=1.0)
        for batch in batches:
            with accelerator.accumulate(model):
                out = batch_loss(model, batch, implementation, loss)
                loss_sum = out.total
                accelerator.backward(loss_sum * scale)
                if accelerator.sync_gradients and config.optim.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), config.optim.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            grouped.add(
                out.losses,
                out.trained,
                {"lang": batch.lang[:, 1:], "direction": batch.direction[:, 1:]},
            )
            interval += torch.stack(
                [
                    loss_sum.detach().double(),
                    out.trained.sum().double(),
                    torch.tensor(batch.num_tokens).double().to(interval.device),
                    torch.tensor(squared_row_lengths(batch.segments)).double().to(interval.device),
                ]
            )
        scheduler.step()
        compute_seconds += time.perf_counter() - step_started
        state["step"] += 1
        state["step_in_epoch"] += 1
        state["trained_tokens"] += int(global_trained)
        step = state["step"]
        if step % config.output.logging_steps == 0 or step == total_steps:
            totals = accelerator.reduce(interval, "sum")
            groups = grouped.unpack(accelerator.reduce(grouped.packed(), "sum"))
            per_device = float(totals[2]) / world / compute_seconds
            entry = {
                "step": step,
                "total_steps": total_steps,
                "epoch": state["epoch"] + state["step_in_epoch"] / max(current.steps, 1),
                "loss": float(totals[0] / totals[1]),
                "lr": scheduler.get_last_lr()[0],
                "tokens_per_s_per_device": per_device,
                "mfu": mfu(
                    flops.flops(float(totals[2]), float(totals[3])) / world / compute_seconds, peak
                ),
                "trained_tokens": int(totals[1]),
                "loss_by_lang": groups["lang"],
                "loss_by_direction": groups["direction"],
                "batches": [batch.rows for batch in batches],
            }
            if config.output.eval_steps and step % config.output.eval_steps == 0 and eval_corpus:
                entry["eval_loss"] = held_out_loss(
                    accelerator,
                    model,
                    eval_corpus,
                    config,
                    tokenizer.pad_token_id,
                    implementation,
                    loss,
                )
            if config.eval and config.eval.every_steps and step % config.eval.every_steps == 0:
                entry["chrf"] = _chrf(accelerator, model, tokenizer, template, config)
            history.append(entry)
            for line in format_log(entry):
                say(line)
            for extra in ("eval_loss", "chrf"):
                if extra in entry:
                    say(f"  {extra}: {entry[extra]}")
            if accelerator.is_main_process:
                with open(log_file, "a", encoding="utf-8") as handle:
                    handle.write(
                        json.dumps({k: v for k, v in entry.items() if k != "batches"}) + "\n"
                    )
            interval.zero_()
            grouped.reset()
            compute_seconds = 0.0
        if config.output.save_steps and step % config.output.save_steps == 0:
            folder = save_checkpoint(accelerator, output_dir, state, config.output.save_total_limit)
            say(f"checkpoint: {folder}")

    final = output_dir / "final"
    summary: dict[str, Any] = {"step": state["step"]}
    if eval_corpus is not None and eval_corpus.num_rows:
        summary["eval_loss"] = held_out_loss(
            accelerator, model, eval_corpus, config, tokenizer.pad_token_id, implementation, loss
        )
    if config.eval is not None:
        summary["chrf"] = _chrf(accelerator, model, tokenizer, template, config)
    save_final(
        accelerator, model, tokenizer, template, final, config.lora is not None, load_dtype(config)
    )
    say(f"final: {final}" + "".join(f" | {k} {v}" for k, v in summary.items() if k != "step"))
    accelerator.end_training()
    return TrainResult(state["step"], final, history)


def _chrf(accelerator, model, tokenizer, template: str, config: TrainConfig) -> dict[str, float]:
    from bayling_data.train.eval import chrf_eval

    sharded = config.distributed.strategy != "ddp"
    return chrf_eval(accelerator, model, tokenizer, template, config.eval, sharded)
