"""``bayling-data eval``: translate Flores and WMT test sets with a model, score BLEU and chrF++.

The prompts are the ones the build trains on (``tasks/templates/translation.yaml``), written in the
pivot of each direction and rendered with the model's chat template, so a score measures the model
on the instructions it was tuned with. Scores come from sacrebleu's corpus metrics, with their
signatures, so they can be compared with published numbers. :func:`run_eval` is the entry point;
``train/eval.py`` (chrF++ during training) shares the chat-template rendering and the generation.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bayling_data.errors import BaylingError
from bayling_data.languages import registry

PIVOTS = ("zho_Hans", "eng_Latn")
DEFAULT_TEMPLATE_IDS = {"zho_Hans": "tr-zh-01", "eng_Latn": "tr-en-01"}
PROMPT_FIELDS = ("src_name", "tgt_name", "src_text")


class EvalError(BaylingError):
    """A user's mistake in an eval command: a model not on disk, a bad direction or template."""


@dataclass(frozen=True)
class TestSet:
    """One direction of one test set: sources and their references (one list per reference)."""

    name: str  # flores200, or the WMT corpus name (newstest2014)
    src: str
    tgt: str
    sources: list[str]
    references: list[list[str]]

    @property
    def direction(self) -> str:
        return f"{self.src}-{self.tgt}"

    @property
    def key(self) -> str:
        """A file-name-safe id: ``flores200.eng_Latn-deu_Latn``."""
        return re.sub(r"[^\w.-]", "_", f"{self.name}.{self.direction}")


@dataclass
class EvalSettings:
    """Everything that shapes the numbers, stored in scores.json beside them."""

    model: str
    flores: str | None = None
    flores_split: str = "devtest"
    wmt: list[str] = field(default_factory=list)
    directions: str | list[str] | None = None
    limit: int | None = None
    batch_size: int = 8
    max_new_tokens: int = 256
    prompt_template: str | None = None
    chat_template: str = "tokenizer"
    comet: str | None = None
    dtype: str = "auto"
    #: auto: vLLM when it is installed and a GPU is there, else transformers.
    engine: str = "auto"


@dataclass
class DirectionScore:
    test_set: str
    direction: str
    src: str
    tgt: str
    tier: str
    sentences: int
    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str
    comet: float | None = None


# -- test sets -----------------------------------------------------------------------------------


def parse_directions(text: str | Sequence[str] | None) -> list[tuple[str, str]] | None:
    """``eng_Latn-deu_Latn,zh-sw`` as Flores-200 code pairs (any code or name the registry
    knows)."""
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    reg, pairs = registry(), []
    for item in (part.strip() for part in items):
        if not item:
            continue
        src, sep, tgt = item.partition("-")
        if not sep or not src or not tgt:
            raise EvalError(f"--directions: {item!r}: expected SRC-TGT, e.g. eng_Latn-deu_Latn")
        pairs.append((reg.resolve(src).code, reg.resolve(tgt).code))
    if not pairs:
        raise EvalError("--directions: no direction given")
    return pairs


def default_directions(languages: Iterable[str]) -> list[tuple[str, str]]:
    """Every language present to and from each pivot present, and between the pivots."""
    present = list(dict.fromkeys(languages))
    pivots = [code for code in PIVOTS if code in present]
    pairs: list[tuple[str, str]] = []
    for code in present:
        if code in PIVOTS:
            continue
        for pivot in pivots:
            pairs += [(code, pivot), (pivot, code)]
    pairs += [(a, b) for a in pivots for b in pivots if a != b]
    return pairs


def flores_test_sets(
    path: str,
    split: str,
    directions: list[tuple[str, str]] | None,
    limit: int | None,
) -> list[TestSet]:
    """The Flores directions asked for (default: :func:`default_directions` of the languages)."""
    from bayling_data.schema import segment_languages
    from bayling_data.sources.flores import FloresSource
    from bayling_data.sources.samples import resolve_source_path

    wanted = None if directions is None else sorted({code for pair in directions for code in pair})
    source = FloresSource(resolve_source_path(path), languages=wanted, splits=[split])
    table = source.to_table()
    present = segment_languages(table)
    if directions is None:
        directions = default_directions(present)
    missing = sorted({code for pair in directions for code in pair} - set(present))
    if missing:
        raise EvalError(f"{path}: no {split} file for {', '.join(missing)}")
    sets = []
    for src, tgt in directions:
        rows = zip(table.column(src).to_pylist(), table.column(tgt).to_pylist(), strict=True)
        pairs = [(s, t) for s, t in rows if s and t][:limit]
        sets.append(
            TestSet(source.corpus, src, tgt, [s for s, _ in pairs], [[t for _, t in pairs]])
        )
    return sets


def wmt_test_set(path: str, limit: int | None) -> TestSet:
    """A WMT test set (text or SGML, named as published), every reference kept for BLEU."""
    from bayling_data.sources.wmt import WmtSource

    source = WmtSource(path)
    table = source.to_table()
    src, refs = source.source_side.code, source.references
    by_segment: dict[str, tuple[str, dict[str, str]]] = {}
    several = len(refs) > 1
    for seg_id, src_text, ref_text in zip(
        table.column("segment_id").to_pylist(),
        table.column(src).to_pylist(),
        table.column(refs[0].code).to_pylist(),
        strict=True,
    ):
        base, _, ref_name = seg_id.rpartition("#") if several else (seg_id, "", refs[0].name)
        by_segment.setdefault(base, (src_text, {}))[1][ref_name] = ref_text
    # A segment some reference left blank is dropped: sacrebleu needs every reference per line.
    kept = [entry for entry in by_segment.values() if len(entry[1]) == len(refs)][:limit]
    return TestSet(
        source.corpus,
        src,
        refs[0].code,
        [text for text, _ in kept],
        [[texts[ref.name] for _, texts in kept] for ref in refs],
    )


# -- prompts -------------------------------------------------------------------------------------


def prompt_language(src: str, tgt: str) -> str:
    """Chinese prompts for directions touching Chinese, English ones otherwise (as BayLing 2)."""
    return "zho_Hans" if "zho_Hans" in (src, tgt) else "eng_Latn"


def prompt_renderer(prompt_template: str | None) -> Callable[[str, str, str], str]:
    """A (src, tgt, text) -> prompt function: the build's template, or the user's format string."""
    reg = registry()
    if prompt_template is not None:
        try:
            prompt_template.format(**dict.fromkeys(PROMPT_FIELDS, ""))
        except (KeyError, IndexError, ValueError) as err:
            raise EvalError(
                f"--prompt-template: {err!s}: use the fields {{src_name}}, {{tgt_name}}, "
                "{src_text} (double braces for literal ones)"
            ) from None
    else:
        from bayling_data.tasks.templates import load_templates

        bundled = load_templates("translation")
        chosen = {lang: bundled.get(tid) for lang, tid in DEFAULT_TEMPLATE_IDS.items()}

    def render_prompt(src: str, tgt: str, text: str) -> str:
        lang = prompt_language(src, tgt)
        names = {"src_name": reg.prompt_name(src, lang), "tgt_name": reg.prompt_name(tgt, lang)}
        if prompt_template is not None:
            return prompt_template.format(**names, src_text=text)
        return chosen[lang].render(**names, src_text=text)

    return render_prompt


# -- model ---------------------------------------------------------------------------------------


def hub_offline() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return constants.HF_HUB_OFFLINE or flag in ("1", "true", "yes", "on")


def resolve_model(model: str) -> str:
    """A local folder, or a Hub id: downloaded when online, found in the cache when offline."""
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path)
    looks_like_path = model.startswith((".", "/", "~")) or model.count("/") > 1 or path.exists()
    if looks_like_path:
        raise EvalError(f"{model}: no such model folder")
    offline = hub_offline()
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(model, local_files_only=offline)
    except Exception as err:  # the hub raises many kinds; each is the user's model name or network
        if offline:
            raise EvalError(
                f"{model}: not on disk (HF_HUB_OFFLINE is set, so it cannot be downloaded); "
                "give a local checkpoint folder or download it first"
            ) from None
        raise EvalError(f"{model}: cannot load from the Hub: {type(err).__name__}") from None


def load_model(model: str, dtype: str = "auto"):
    """Model and tokenizer from a folder, eval mode, on the GPU when there is one."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve_model(model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        loaded = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    except (OSError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise EvalError(f"{model}: cannot load the model: {first_line}") from None
    if torch.cuda.is_available():
        loaded = loaded.to("cuda")
    loaded.eval()
    return loaded, tokenizer


def generate_batched(
    model,
    tokenizer,
    chat_template: str,
    prompts: list[str],
    batch_size: int,
    max_new_tokens: int,
    synced_gpus: bool = False,
) -> list[str]:
    """Greedy answers, left-padded batches, stopping at the chat template's stop tokens.
    ``synced_gpus``: every rank of a sharded model generates in step (training-time eval)."""
    import torch

    from bayling_data.train.chat_templates import render, stop_token_ids

    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    stops = stop_token_ids(tokenizer, chat_template, model)
    device = next(model.parameters()).device
    answers: list[str] = []
    for start in range(0, len(prompts), batch_size):
        texts = [
            render(tokenizer, chat_template, [{"role": "user", "content": p}], True)
            for p in prompts[start : start + batch_size]
        ]
        batch = tokenizer(texts, add_special_tokens=False, return_tensors="pt", padding=True)
        batch = batch.to(device)
        with torch.no_grad():
            out = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=stops,
                synced_gpus=synced_gpus,
            )
        new = out[:, batch["input_ids"].shape[1] :]
        answers += [text.strip() for text in tokenizer.batch_decode(new, skip_special_tokens=True)]
    return answers


ENGINES = ("auto", "transformers", "vllm")


def choose_engine(engine: str) -> str:
    """The generation engine: ``auto`` takes vLLM where it can run (installed, and a GPU), else
    transformers; ``vllm`` asked for where it cannot run is a one-line error."""
    import torch

    if engine not in ENGINES:
        raise EvalError(f"--engine: expected one of {', '.join(ENGINES)}, not {engine!r}")
    has_vllm = importlib.util.find_spec("vllm") is not None
    if engine == "vllm" and not has_vllm:
        raise EvalError("--engine vllm: vllm is not installed (python -m pip install vllm)")
    if engine == "vllm" and not torch.cuda.is_available():
        raise EvalError("--engine vllm: vLLM needs a GPU and this machine has none")
    if engine == "auto":
        return "vllm" if has_vllm and torch.cuda.is_available() else "transformers"
    return engine


class VllmGenerator:
    """Greedy answers through vLLM (continuous batching; the batch size is vLLM's): the prompts
    rendered with the same chat template and given as token ids, so that no second BOS is
    added, stopping at the template's stop tokens. Not run here (no GPU): written to vLLM's
    documented ``LLM.generate`` API."""

    def __init__(self, model: str, dtype: str, max_new_tokens: int):
        from transformers import AutoTokenizer
        from vllm import LLM

        folder = resolve_model(model)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            self.llm = LLM(model=folder, tokenizer=folder, dtype=dtype)
        except (OSError, ValueError) as err:
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
            raise EvalError(f"{model}: cannot load the model in vLLM: {first_line}") from None
        self.max_new_tokens = max_new_tokens

    def generate(self, chat_template: str, prompts: list[str]) -> list[str]:
        from vllm import SamplingParams

        from bayling_data.train.chat_templates import render, stop_token_ids

        stops = stop_token_ids(self.tokenizer, chat_template)
        params = SamplingParams(
            temperature=0.0, max_tokens=self.max_new_tokens, stop_token_ids=stops
        )
        requests = [
            {
                "prompt_token_ids": self.tokenizer(
                    render(self.tokenizer, chat_template, [{"role": "user", "content": p}], True),
                    add_special_tokens=False,
                )["input_ids"]
            }
            for p in prompts
        ]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        return [output.outputs[0].text.strip() for output in outputs]


# -- scores --------------------------------------------------------------------------------------


def flores200_spm_available() -> bool:
    """sacrebleu's flores200 tokenizer without a download: sentencepiece and the model file."""

    from sacrebleu.tokenizers.tokenizer_spm import SPM_MODELS
    from sacrebleu.utils import SACREBLEU_DIR

    model_file = Path(SACREBLEU_DIR, "models", os.path.basename(SPM_MODELS["flores200"]["url"]))
    return importlib.util.find_spec("sentencepiece") is not None and model_file.is_file()


def bleu_tokenizer(tgt: str, spm: bool) -> str:
    """zh for Chinese targets, else flores200 spm when it is on disk, else 13a."""
    if tgt.startswith(("zho_", "yue_")):
        return "zh"
    return "flores200" if spm else "13a"


def tier_of(src: str, tgt: str) -> str:
    """The resource tier of a direction's non-pivot side (``pivot`` between the two pivots)."""
    others = [code for code in (src, tgt) if code not in PIVOTS]
    if not others:
        return "pivot"
    return registry().get(others[0]).tier or "unknown"


def score_test_set(
    test_set: TestSet, hypotheses: list[str], spm: bool, comet_model=None
) -> DirectionScore:
    """Corpus BLEU and chrF++ by sacrebleu, with their signatures."""
    from sacrebleu.metrics import BLEU, CHRF

    bleu = BLEU(tokenize=bleu_tokenizer(test_set.tgt, spm))
    chrf = CHRF(word_order=2)
    comet = None
    if comet_model is not None:
        comet = comet_score(comet_model, test_set, hypotheses)
    return DirectionScore(
        test_set=test_set.name,
        direction=test_set.direction,
        src=test_set.src,
        tgt=test_set.tgt,
        tier=tier_of(test_set.src, test_set.tgt),
        sentences=len(hypotheses),
        bleu=round(bleu.corpus_score(hypotheses, test_set.references).score, 2),
        chrf=round(chrf.corpus_score(hypotheses, test_set.references).score, 2),
        bleu_signature=str(bleu.get_signature()),
        chrf_signature=str(chrf.get_signature()),
        comet=comet,
    )


def load_comet(path: str | None, say: Callable[[str], None]):
    """A local COMET checkpoint, or None (with a line saying why) when it cannot be used."""
    if path is None:
        return None

    if importlib.util.find_spec("comet") is None:
        say("COMET skipped: unbabel-comet is not installed (pip install unbabel-comet)")
        return None
    checkpoint = Path(path).expanduser()
    if checkpoint.is_dir():
        checkpoint = checkpoint / "checkpoints" / "model.ckpt"
    if not checkpoint.is_file():
        raise EvalError(f"--comet: {path}: no COMET checkpoint (checkpoints/model.ckpt) there")
    from comet import load_from_checkpoint

    return load_from_checkpoint(str(checkpoint))


def comet_score(comet_model, test_set: TestSet, hypotheses: list[str]) -> float:
    data = [
        {"src": s, "mt": h, "ref": r}
        for s, h, r in zip(test_set.sources, hypotheses, test_set.references[0], strict=True)
    ]
    import torch

    out = comet_model.predict(data, batch_size=16, gpus=1 if torch.cuda.is_available() else 0)
    return round(float(out.system_score) * 100, 2)


# -- output --------------------------------------------------------------------------------------


def write_atomically(path: Path, text: str) -> None:
    """Write beside the file under a temporary name, then rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_hypotheses(
    out_dir: Path, results: list[tuple[TestSet, list[str]]], label_of: Callable[[int], str]
) -> Path:
    """``hypotheses/KEY.hyp`` and ``KEY.ref[.A]`` per direction, the folder renamed into place."""
    final = out_dir / "hypotheses"
    temp = Path(tempfile.mkdtemp(dir=out_dir, prefix=".hypotheses.", suffix=".tmp"))
    try:
        for test_set, hypotheses in results:
            (temp / f"{test_set.key}.src").write_text(_lines(test_set.sources), "utf-8")
            (temp / f"{test_set.key}.hyp").write_text(_lines(hypotheses), "utf-8")
            for index, references in enumerate(test_set.references):
                suffix = "" if len(test_set.references) == 1 else f".{label_of(index)}"
                (temp / f"{test_set.key}.ref{suffix}").write_text(_lines(references), "utf-8")
        if final.exists():
            old = final.with_name(f".hypotheses.old.{os.getpid()}")
            final.rename(old)
            temp.rename(final)
            shutil.rmtree(old)
        else:
            temp.rename(final)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return final


def _lines(texts: list[str]) -> str:
    """One text a line (a newline inside a hypothesis would shift every line after it)."""
    return "".join(" ".join(text.splitlines()) + "\n" for text in texts)


def other_language(score: DirectionScore) -> str:
    """The non-pivot side of a direction (the target between the two pivots)."""
    return score.src if score.tgt in PIVOTS and score.src not in PIVOTS else score.tgt


def direction_kind(score: DirectionScore) -> str:
    """``X→zho_Hans``, ``eng_Latn→X`` for Flores pivot directions; the direction itself else."""
    if score.tier == "pivot" or not score.test_set.startswith("flores"):
        return f"{score.src}→{score.tgt}"
    return f"X→{score.tgt}" if other_language(score) == score.src else f"{score.src}→X"


def _tier_order(item: tuple[tuple[str, str], list[DirectionScore]]) -> tuple[str, bool, str]:
    (kind, tier), _ = item
    return kind, tier == "all", tier


def averages(scores: list[DirectionScore]) -> list[tuple[str, str, int, float, float]]:
    """(group, tier, directions, BLEU, chrF++) averages: Flores by direction kind and tier."""
    groups: dict[tuple[str, str], list[DirectionScore]] = {}
    for score in scores:
        if score.test_set.startswith("flores") and score.tier != "pivot":
            for tier in (score.tier, "all"):
                groups.setdefault((direction_kind(score), tier), []).append(score)
    rows = []
    for (kind, tier), members in sorted(groups.items(), key=_tier_order):
        bleu = sum(s.bleu for s in members) / len(members)
        chrf = sum(s.chrf for s in members) / len(members)
        rows.append((kind, tier, len(members), round(bleu, 2), round(chrf, 2)))
    return rows


def scores_markdown(
    scores: list[DirectionScore], settings: EvalSettings, tokenizer_note: str
) -> str:
    """The paper-style table: every direction, then averages by resource tier."""
    with_comet = any(s.comet is not None for s in scores)
    lines = [
        f"# Translation scores: {settings.model}",
        "",
        f"BLEU tokenizer: {tokenizer_note}. chrF++ is chrF with word n-grams of order 2.",
        "",
        "| test set | direction | tier | sentences | BLEU | chrF++ |"
        + (" COMET |" if with_comet else ""),
        "|---|---|---|---:|---:|---:|" + ("---:|" if with_comet else ""),
    ]
    for s in scores:
        comet = f" {s.comet:.2f} |" if s.comet is not None else ""
        lines.append(
            f"| {s.test_set} | {s.src}→{s.tgt} | {s.tier} | {s.sentences} | {s.bleu:.2f} "
            f"| {s.chrf:.2f} |{comet}"
        )
    rows = averages(scores)
    if rows:
        lines += [
            "",
            "## Averages by resource tier (Flores)",
            "",
            "| directions | tier | count | BLEU | chrF++ |",
            "|---|---|---:|---:|---:|",
        ]
        lines += [f"| {k} | {t} | {n} | {b:.2f} | {c:.2f} |" for k, t, n, b, c in rows]
    signatures = sorted({s.bleu_signature for s in scores} | {s.chrf_signature for s in scores})
    lines += ["", "## sacrebleu signatures", "", *(f"- `{sig}`" for sig in signatures), ""]
    return "\n".join(lines)


def scores_plot(scores: list[DirectionScore], path: Path) -> None:
    """Per-language chrF++ bars, one bar per direction kind (X→zh, zh→X, X→en, en→X, WMT)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_language: dict[str, dict[str, float]] = {}
    for s in scores:
        kind = direction_kind(s)
        if not s.test_set.startswith("flores"):
            kind = f"{s.test_set} {kind}"
        by_language.setdefault(other_language(s), {})[kind] = s.chrf
    kinds = sorted({kind for values in by_language.values() for kind in values})
    languages = sorted(by_language)
    width = 0.8 / max(len(kinds), 1)
    figure, axes = plt.subplots(figsize=(max(6.0, 0.3 * len(languages) * max(len(kinds), 1)), 4))
    for index, kind in enumerate(kinds):
        xs = [i + index * width for i, lang in enumerate(languages) if kind in by_language[lang]]
        ys = [by_language[lang][kind] for lang in languages if kind in by_language[lang]]
        axes.bar(xs, ys, width, label=kind)
    axes.set_xticks([i + width * (len(kinds) - 1) / 2 for i in range(len(languages))])
    axes.set_xticklabels(languages, rotation=60, ha="right", fontsize=8)
    axes.set_ylabel("chrF++")
    axes.legend(fontsize=7)
    figure.tight_layout()
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(handle)
    try:
        figure.savefig(temp, dpi=110)
        os.replace(temp, path)
    finally:
        plt.close(figure)
        Path(temp).unlink(missing_ok=True)


@dataclass
class EvalResult:
    out_dir: Path
    scores: list[DirectionScore]
    tokenizer_note: str
    files: list[Path]


def run_eval(
    settings: EvalSettings, out_dir: Path, say: Callable[[str], None] = print
) -> EvalResult:
    """Read the test sets, translate them, score, write the table, json, plot and hypotheses.

    Inputs and prompts are checked before the model loads, so a mistake fails in seconds.
    """
    from bayling_data.train import require_train_extra

    if settings.flores is None and not settings.wmt:
        raise EvalError("give --flores PATH and/or --wmt PATH: there is nothing to translate")
    if settings.limit is not None and settings.limit < 1:
        raise EvalError(f"--limit: expected a positive number, got {settings.limit}")
    if settings.batch_size < 1 or settings.max_new_tokens < 1:
        raise EvalError("--batch-size and --max-new-tokens must be positive")
    wanted = parse_directions(settings.directions)
    test_sets: list[TestSet] = []
    if settings.flores is not None:
        test_sets += flores_test_sets(
            settings.flores, settings.flores_split, wanted, settings.limit
        )
    for path in settings.wmt:
        wmt = wmt_test_set(path, settings.limit)
        if wanted is None or (wmt.src, wmt.tgt) in wanted:
            test_sets.append(wmt)
        else:
            say(f"{path}: {wmt.direction} is not among --directions; skipped")
    if not test_sets:
        raise EvalError("no direction to evaluate (check --directions against the test sets)")
    render_prompt = prompt_renderer(settings.prompt_template)
    prompts = {
        ts.key: [render_prompt(ts.src, ts.tgt, text) for text in ts.sources] for ts in test_sets
    }
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise EvalError(f"--out: {out_dir}: cannot make the folder: {err.strerror}") from None

    require_train_extra()
    from bayling_data.sources.wmt import _letter
    from bayling_data.train.chat_templates import template_text

    engine = choose_engine(settings.engine)
    say(f"generation: {engine}")
    if engine == "vllm":
        vllm = VllmGenerator(settings.model, settings.dtype, settings.max_new_tokens)
        model, tokenizer = None, vllm.tokenizer
    else:
        model, tokenizer = load_model(settings.model, settings.dtype)
    try:
        chat_template = template_text(settings.chat_template, tokenizer)
    except OSError as err:
        raise EvalError(f"--chat-template: {settings.chat_template}: {err.strerror}") from None
    except BaylingError as err:  # the train config's wording names data.template
        raise EvalError(f"--chat-template: {str(err).partition(': ')[2]}") from None
    comet_model = load_comet(settings.comet, say)
    spm = flores200_spm_available()
    note = (
        "zh for Chinese targets, flores200 (spm) for the others"
        if spm
        else "zh for Chinese targets, 13a for the others (flores200 spm model not on disk)"
    )
    say(f"BLEU tokenizer: {note}")
    results, scores = [], []
    for test_set in test_sets:
        if engine == "vllm":
            hypotheses = vllm.generate(chat_template, prompts[test_set.key])
        else:
            hypotheses = generate_batched(
                model,
                tokenizer,
                chat_template,
                prompts[test_set.key],
                settings.batch_size,
                settings.max_new_tokens,
            )
        score = score_test_set(test_set, hypotheses, spm, comet_model)
        say(f"{test_set.name} {test_set.direction}: BLEU {score.bleu:.2f} chrF++ {score.chrf:.2f}")
        results.append((test_set, hypotheses))
        scores.append(score)

    files = [write_hypotheses(out_dir, results, _letter)]
    markdown = out_dir / "scores.md"
    write_atomically(markdown, scores_markdown(scores, settings, note))
    plot = out_dir / "scores.png"
    scores_plot(scores, plot)
    summary = {
        "model": settings.model,
        "settings": asdict(settings),
        "bleu_tokenizer": note,
        "signatures": {
            "bleu": sorted({s.bleu_signature for s in scores}),
            "chrf": sorted({s.chrf_signature for s in scores}),
        },
        "scores": [asdict(s) for s in scores],
        "averages": [
            dict(zip(("directions", "tier", "count", "bleu", "chrf"), row, strict=True))
            for row in averages(scores)
        ],
    }
    scores_json = out_dir / "scores.json"  # written last: its presence means the run finished
    write_atomically(scores_json, json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    return EvalResult(out_dir, scores, note, [markdown, scores_json, plot, *files])
