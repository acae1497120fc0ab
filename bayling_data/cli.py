"""The ``bayling-data`` command. Thin: it parses arguments and calls the library.

A user's mistake (a bad recipe, a malformed corpus) is one line on stderr and exit status 2, with no
traceback; heavy imports wait until a subcommand runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bayling_data import __version__
from bayling_data.errors import BaylingError

if TYPE_CHECKING:
    from bayling_data.progress import Progress

EXIT_USER_ERROR = 2
EXPORT_FORMATS = ("sharegpt", "alpaca", "openai", "parquet", "jsonl")  # io/export.py FORMATS
EXIT_INTERRUPTED = 130


def _add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override a recipe key, e.g. --set sources.0.path=flores200_dataset (repeatable)",
    )


def _add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="print nothing on stderr: no progress, no summary (--json still prints)",
    )


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object with the results to stdout (summaries stay on stderr)",
    )


def _print_json(data: object) -> None:
    """The one JSON object a ``--json`` command prints on stdout."""
    import json

    print(json.dumps(data, ensure_ascii=False, default=str))


def _say(args: argparse.Namespace, line: str) -> None:
    """A human summary line: on stderr, unless --quiet."""
    if not getattr(args, "quiet", False):
        print(line, file=sys.stderr)


def _progress(args: argparse.Namespace) -> Progress:
    """Progress on stderr: a display on a terminal, periodic lines when piped, none if quiet."""
    from bayling_data.progress import Progress

    return Progress.auto(args.quiet, prefix=f"bayling-data {args.command}")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayling-data",
        description="Cross-lingual instruction-tuning data around Chinese and English pivots.",
    )
    parser.add_argument("--version", action="version", version=f"bayling-data {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    build = commands.add_parser("build", help="run a recipe and write sharded Arrow output")
    build.add_argument("recipe", type=Path, help="recipe YAML file")
    _add_overrides(build)
    build.add_argument(
        "--quiet", action="store_true", help="print no progress or summary (--json still prints)"
    )
    _add_json(build)
    again = build.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted build of the same recipe, skipping its finished work",
    )
    again.add_argument(
        "--restart",
        action="store_true",
        help="discard an interrupted build's finished work and start over",
    )
    build.add_argument(
        "--executor",
        choices=["auto", "inprocess", "processes", "ray"],
        help="where shard work runs (default: the recipe's execution.executor, auto)",
    )
    build.add_argument(
        "--workers", type=int, metavar="N", help="worker processes (default: the cores)"
    )
    build.add_argument(
        "--ray-address", metavar="ADDRESS", help="join this Ray cluster (ray://head:10001, auto)"
    )

    validate = commands.add_parser(
        "validate",
        help="check a recipe and read its sources to the end as a build would, write nothing",
    )
    validate.add_argument("recipe", type=Path)
    _add_overrides(validate)
    _add_quiet(validate)

    langs = commands.add_parser("langs", help="look a language up by any code or name")
    langs.add_argument(
        "query", nargs="?", help="code or name (swh, sw, zho_simpl, Swahili, 斯瓦希里语)"
    )

    lid = commands.add_parser("lid", help="language-ID tools")
    lid_commands = lid.add_subparsers(dest="lid_command", required=True, metavar="LID_COMMAND")
    calibrate = lid_commands.add_parser(
        "calibrate",
        help="fit the lid filter's per-language rules for a language-ID model on a labelled "
        "multi-way set (Flores dev), measure which languages it tells apart, store the table",
    )
    calibrate.add_argument("--flores", type=Path, required=True, help="Flores-200/101 folder")
    calibrate.add_argument("--out", type=Path, required=True, help="calibration table to write")
    calibrate.add_argument("--backend", choices=["fasttext", "langid"], default="fasttext")
    calibrate.add_argument("--model", help="fastText model file (default: lid.176.ftz)")
    calibrate.add_argument("--split", default="dev")
    calibrate.add_argument("--languages", nargs="+", help="limit to these languages")
    calibrate.add_argument(
        "--max-loss",
        type=float,
        default=0.01,
        help="share of a language's own lines its rule may drop on the set (default 0.01)",
    )
    calibrate.add_argument(
        "--catch-target",
        type=float,
        default=0.95,
        help="pairs caught less than this are listed as indistinct (default 0.95)",
    )

    templates = commands.add_parser(
        "templates",
        help="list the prompt template files, or show a task's templates filled in for a pair",
    )
    templates.add_argument("task", nargs="?", help="task (template file name), e.g. translation")
    templates.add_argument("--src", default="swh", help="source language (any code or name)")
    templates.add_argument("--tgt", default="zh", help="target language (any code or name)")
    templates.add_argument("--prompt-lang", default="en", help="prompt language (zh or en)")
    templates.add_argument("--id", dest="template_id", help="show only this template")

    export = commands.add_parser(
        "export", help="write a build for trainers: sharegpt, alpaca, openai, parquet, jsonl"
    )
    export.add_argument("out_dir", type=Path, help="a build's output folder")
    export.add_argument(
        "--format",
        dest="fmt",
        required=True,
        choices=EXPORT_FORMATS,
    )
    export.add_argument("--to", dest="to_dir", type=Path, required=True, help="export folder")
    _add_quiet(export)
    _add_json(export)

    publish = commands.add_parser(
        "publish", help="lay a build out as a Hub data set (Parquet + dataset card) and upload it"
    )
    publish.add_argument("out_dir", type=Path, help="a build's output folder")
    publish.add_argument("--repo", required=True, metavar="ORG/NAME", help="Hub data set repo")
    publish.add_argument("--private", action="store_true", help="create the repo private")
    publish.add_argument("--revision", metavar="BRANCH", help="branch to push to")
    publish.add_argument("--create-pr", action="store_true", help="open a pull request")
    publish.add_argument(
        "--dry-run", action="store_true", help="write the folder it would upload; no network"
    )
    publish.add_argument("--staging-dir", type=Path, help="where to lay the folder out")
    publish.add_argument("--endpoint", help="Hub endpoint (default: huggingface.co or HF_ENDPOINT)")
    _add_quiet(publish)
    _add_json(publish)

    report = commands.add_parser(
        "report", help="an HTML page and PNG plots of a build: languages, tasks, lengths, funnel"
    )
    report.add_argument("out_dir", type=Path, help="a build's output folder")
    report.add_argument("--to", dest="to_dir", type=Path, help="default: OUT_DIR/report")
    report.add_argument(
        "--tokenizer",
        metavar="PATH_OR_NAME",
        help="count lengths in this tokenizer's tokens: a tokenizer.json, a SentencePiece "
        ".model, a tokenizer folder, or a Hub name when online (default: the recipe's "
        "tokenizer, else characters)",
    )
    _add_quiet(report)
    _add_json(report)

    train = commands.add_parser(
        "train",
        help="fine-tune a causal LM on builds (needs the [train] extra; see docs/training.md)",
    )
    train.add_argument("config", type=Path, help="training config YAML file")
    _add_overrides(train)

    evaluate = commands.add_parser(
        "eval",
        help="translate Flores/WMT test sets with a model; BLEU, chrF++ (sacrebleu), a table",
    )
    evaluate.add_argument("model", help="local checkpoint folder, or a Hub id when online")
    evaluate.add_argument("--flores", help="Flores-200/101 folder (or sample:flores200)")
    evaluate.add_argument("--flores-split", default="devtest", help="default: devtest")
    evaluate.add_argument(
        "--wmt",
        action="append",
        default=[],
        metavar="PATH",
        help="WMT test set prefix, text or SGML, e.g. wmt22/generaltest2022.zh-en (repeatable)",
    )
    evaluate.add_argument(
        "--directions",
        metavar="SRC-TGT,...",
        help="e.g. eng_Latn-deu_Latn,swh-zh (default: every language to and from zh and en)",
    )
    evaluate.add_argument("--limit", type=int, metavar="N", help="sentences per direction")
    evaluate.add_argument("--batch-size", type=int, default=8)
    evaluate.add_argument("--max-new-tokens", type=int, default=256)
    evaluate.add_argument(
        "--prompt-template",
        metavar="FORMAT",
        help="prompt format string with {src_name} {tgt_name} {src_text} "
        "(default: the build's translation prompt in the direction's pivot)",
    )
    evaluate.add_argument(
        "--chat-template",
        default="tokenizer",
        help="tokenizer (default), bayling, llama2, llama3 or a Jinja file",
    )
    evaluate.add_argument("--comet", metavar="PATH", help="local COMET model (unbabel-comet)")
    evaluate.add_argument("--dtype", default="auto", help="model dtype (auto, bfloat16, float32)")
    evaluate.add_argument(
        "--engine",
        default="auto",
        choices=["auto", "transformers", "vllm"],
        help="generation: vLLM when installed and a GPU is there (auto), or transformers",
    )
    evaluate.add_argument("--out", type=Path, required=True, help="folder for scores and outputs")

    inspect = commands.add_parser("inspect", help="counts and sample rows of a build's output")
    inspect.add_argument("out_dir", type=Path)
    inspect.add_argument("-n", "--samples", type=int, default=3, help="sample rows to show")
    inspect.add_argument(
        "--all",
        dest="show_all",
        action="store_true",
        help="list every language and direction, and sample messages whole (default: the top "
        "ones, and a line for the rest)",
    )
    _add_json(inspect)
    return parser


def _console(stderr: bool = False):
    from rich.console import Console

    console = Console(stderr=stderr)
    if not console.is_terminal:  # piped or captured: do not cut tables to 80 columns
        console = Console(stderr=stderr, width=160)
    return console


def _warn(warnings: list[str]) -> None:
    """Outcomes that are not errors but that a user must see (printed even with ``--quiet``)."""
    for warning in warnings:
        print(f"bayling-data: warning: {warning}", file=sys.stderr)


def _build(args: argparse.Namespace) -> int:
    from bayling_data.checks import build_warnings
    from bayling_data.pipeline import run_build
    from bayling_data.recipe import load_recipe
    from bayling_data.report import build_json, build_summary

    execution = [
        f"execution.{key}={value}"
        for key, value in (
            ("executor", args.executor),
            ("workers", args.workers),
            ("ray_address", args.ray_address),
        )
        if value is not None
    ]
    recipe = load_recipe(args.recipe, [*args.overrides, *execution])
    console = _console(stderr=True)
    report = run_build(recipe, progress=_progress(args), resume=args.resume, restart=args.restart)
    if not args.quiet:
        build_summary(report, console)
    _warn(build_warnings(report))
    if args.json:
        _print_json(build_json(report))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from bayling_data.checks import empty_source_warnings, read_sources
    from bayling_data.io.staging import check_output_dir
    from bayling_data.pipeline import plan_build
    from bayling_data.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    plan = plan_build(recipe)
    check_output_dir(Path(recipe.output.dir))
    sources = read_sources(plan, _progress(args))
    for source in sources:
        skipped = sum(source.skipped.values())
        print(
            f"{source.key} ({source.corpus}): {source.segments:,} segments"
            + (f", {skipped:,} skipped" if skipped else "")
        )
    segments = sum(source.segments for source in sources)
    _warn(empty_source_warnings(sources))
    print(
        f"{args.recipe}: ok: {len(plan.sources)} source(s), {segments:,} segments, "
        f"pivots {', '.join(plan.pivots)}, {len(plan.targets)} target languages, "
        f"tasks {', '.join(task.name for task in plan.tasks)}"
    )
    return 0


def _langs(args: argparse.Namespace) -> int:
    from bayling_data.languages import registry
    from bayling_data.report import languages_table

    reg = registry()
    if args.query is None:
        found = list(reg)
    else:
        found = reg.search(args.query)
        if not found:
            reg.resolve(args.query)  # raises with the nearest matches
    languages_table(found, _console())
    return 0


def _lid(args: argparse.Namespace) -> int:
    from bayling_data.filters.lid import calibrate_to_file

    table = calibrate_to_file(
        args.flores,
        args.out,
        backend=args.backend,
        model=args.model,
        split=args.split,
        languages=args.languages,
        max_loss=args.max_loss,
        catch_target=args.catch_target,
    )
    print(table.summary_text())
    print(f"wrote {args.out}")
    return 0


def _templates(args: argparse.Namespace) -> int:
    from bayling_data.languages import registry
    from bayling_data.tasks.templates import (
        bundled_files,
        known_specs,
        load_bundled,
        render_sample,
        sample_values,
    )

    if args.task is None:
        specs = known_specs()
        for task, path in bundled_files().items():
            templates = load_bundled(task)
            counts = ", ".join(f"{code} {len(ts)}" for code, ts in templates.by_language.items())
            spec = specs.get(task)
            fields = (
                " ".join(
                    [
                        *(f"{{{n}}}" for n in sorted(spec.required)),
                        *(f"[{{{n}}}]" for n in sorted(spec.optional)),
                    ]
                )
                if spec
                else "(no declared placeholders)"
            )
            print(f"{task}: {path}: {counts}; placeholders {fields}")
        return 0
    reg = registry()
    src, tgt = reg.resolve(args.src).code, reg.resolve(args.tgt).code
    prompt_lang = reg.resolve(args.prompt_lang).code
    templates = load_bundled(args.task)
    chosen = (
        (templates.get(args.template_id),)
        if args.template_id
        else templates.for_language(prompt_lang)
    )
    values = sample_values(src, tgt, prompt_lang)
    for template in chosen:
        print(f"--- {template.id}")
        print(render_sample(template, values))
    return 0


def _export(args: argparse.Namespace) -> int:
    from bayling_data.io.export import export

    result = export(args.out_dir, args.fmt, args.to_dir, progress=_progress(args))
    for split, path in result.files.items():
        _say(args, f"{split}: {result.rows[split]:,} rows -> {path}")
    _say(args, f"LLaMA-Factory: {result.to_dir / 'dataset_info.json'}")
    _say(args, f"axolotl: {result.to_dir / 'axolotl.yaml'}")
    if args.json:
        _print_json(
            {
                "format": result.fmt,
                "to_dir": str(result.to_dir),
                "files": {split: str(path) for split, path in result.files.items()},
                "rows": result.rows,
                "llama_factory": str(result.to_dir / "dataset_info.json"),
                "axolotl": str(result.to_dir / "axolotl.yaml"),
            }
        )
    return 0


def _publish(args: argparse.Namespace) -> int:
    from bayling_data.io.publish import publish

    result = publish(
        args.out_dir,
        args.repo,
        private=args.private,
        revision=args.revision,
        create_pr=args.create_pr,
        dry_run=args.dry_run,
        staging_dir=args.staging_dir,
        endpoint=args.endpoint,
        echo=lambda line: _say(args, line),
        progress=_progress(args),
    )
    if args.json:
        _print_json(
            {
                "repo": result.repo,
                "dry_run": result.dry_run,
                "folder": str(result.folder) if result.folder else None,
                "files": list(result.files),
                "rows": result.rows,
                "languages": list(result.languages),
                "revision": result.revision,
                "url": result.url,
            }
        )
    return 0


def _report(args: argparse.Namespace) -> int:
    from bayling_data.io.html_report import figures_json, write_report

    result = write_report(
        args.out_dir, args.to_dir, tokenizer=args.tokenizer, progress=_progress(args)
    )
    _say(args, f"wrote {result.html_path}")
    for path in result.png_paths.values():
        _say(args, f"wrote {path}")
    if args.json:
        _print_json(
            {
                "html": str(result.html_path),
                "png": {name: str(path) for name, path in result.png_paths.items()},
                "figures": figures_json(result),
            }
        )
    return 0


def _train(args: argparse.Namespace) -> int:
    from bayling_data.train import run_train

    run_train(args.config, args.overrides)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from bayling_data.train.evaluate import EvalSettings, run_eval

    settings = EvalSettings(
        model=args.model,
        flores=args.flores,
        flores_split=args.flores_split,
        wmt=args.wmt,
        directions=args.directions,
        limit=args.limit,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        prompt_template=args.prompt_template,
        chat_template=args.chat_template,
        comet=args.comet,
        dtype=args.dtype,
        engine=args.engine,
    )
    result = run_eval(settings, args.out)
    for path in result.files:
        print(f"wrote {path}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from bayling_data.report import inspect_json, inspect_output

    if args.json:
        _print_json(inspect_json(args.out_dir, samples=args.samples))
    else:
        inspect_output(
            args.out_dir, _console(stderr=True), samples=args.samples, show_all=args.show_all
        )
    return 0


COMMANDS = {
    "build": _build,
    "validate": _validate,
    "langs": _langs,
    "lid": _lid,
    "export": _export,
    "publish": _publish,
    "report": _report,
    "inspect": _inspect,
    "templates": _templates,
    "train": _train,
    "eval": _eval,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except BaylingError as err:
        message = str(err).replace("\n", "\\n")  # one line, whatever a message quotes
        print(f"bayling-data {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        hint = "; add --resume to the same command to continue" if args.command == "build" else ""
        print(f"bayling-data {args.command}: interrupted{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Output piped into `head` and cut short: not an error. Silence the final flush too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
