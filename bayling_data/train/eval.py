"""chrF++ on held-out Flores sentences, by generating translations with the model being trained."""

from __future__ import annotations

from contextlib import nullcontext

from bayling_data.languages import registry
from bayling_data.sources.flores import FloresSource
from bayling_data.sources.samples import resolve_source_path
from bayling_data.train.config import EvalConfig, TrainConfigError
from bayling_data.train.evaluate import generate_batched


def translation_prompt(src: str, tgt: str, text: str) -> str:
    reg = registry()
    src_name, tgt_name = reg.resolve(src).name_en, reg.resolve(tgt).name_en
    return f"Translate the following {src_name} text into {tgt_name}.\n{text}"


def flores_pairs(config: EvalConfig) -> dict[str, list[tuple[str, str]]]:
    """(source, reference) sentences per direction, the first ``max_sentences`` of the split."""
    pairs = {}
    for direction in config.directions:
        src, _, tgt = direction.partition("-")
        if not tgt:
            raise TrainConfigError(f"eval.directions: {direction!r}: expected SRC-TGT")
        source = FloresSource(
            resolve_source_path(config.flores), languages=[src, tgt], splits=[config.flores_split]
        )
        table = source.to_table()
        src_code, tgt_code = (registry().resolve(code).code for code in (src, tgt))
        rows = zip(
            table.column(src_code).to_pylist(), table.column(tgt_code).to_pylist(), strict=True
        )
        pairs[direction] = [(s, t) for s, t in rows if s and t][: config.max_sentences]
    return pairs


def chrf_eval(accelerator, model, tokenizer, template: str, config: EvalConfig, sharded: bool):
    """chrF++ per direction. Every rank translates its slice (padded to equal length, so that
    sharded models, which need all ranks in every forward, stay in step)."""
    import sacrebleu
    from accelerate.utils import gather_object

    world, rank = accelerator.num_processes, accelerator.process_index
    scores = {}
    unwrapped = accelerator.unwrap_model(model)
    was_training = unwrapped.training
    unwrapped.eval()
    gather_params = nullcontext()
    if sharded and accelerator.is_fsdp2 is False and accelerator.distributed_type.name == "FSDP":
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        gather_params = FSDP.summon_full_params(model, recurse=False)
    with gather_params:
        for direction, pairs in flores_pairs(config).items():
            src, _, tgt = direction.partition("-")
            prompts = [translation_prompt(src, tgt, s) for s, _ in pairs]
            per_rank = -(-len(prompts) // world)
            mine = (prompts[rank::world] + prompts[-1:] * per_rank)[:per_rank]
            # One prompt a batch, as before: eval sets are small and nothing is padded.
            answers = generate_batched(
                unwrapped,
                tokenizer,
                template,
                mine,
                batch_size=1,
                max_new_tokens=config.max_new_tokens,
                synced_gpus=sharded and world > 1,
            )
            gathered = gather_object([(rank + i * world, a) for i, a in enumerate(answers)])
            ordered = [a for index, a in sorted(gathered) if index < len(prompts)]
            references = [t for _, t in pairs]
            score = sacrebleu.corpus_chrf(ordered, [references], word_order=2)
            scores[direction] = round(score.score, 2)
    if was_training:
        unwrapped.train()
    return scores
