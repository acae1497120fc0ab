"""`bayling-data eval`: a tiny Llama translates the sample Flores devtest and a WMT file; the
scores written are sacrebleu's on the written hypotheses, and user mistakes are one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("sacrebleu")

from train_fixtures import TINY_LLAMA, train_tokenizer

from bayling_data.cli import EXIT_USER_ERROR, main
from bayling_data.sources.samples import resolve_source_path

FLORES = resolve_source_path("sample:flores200")
DIRECTIONS = "eng_Latn-deu_Latn,deu_Latn-zho_Hans"

_MODEL: dict[str, Path] = {}


def tiny_model(root_factory) -> Path:
    """A 2-layer Llama with a BPE tokenizer trained on the sample devtest, saved once a session."""
    if "tiny" not in _MODEL:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        folder = root_factory.mktemp("tiny_llama")
        texts = [
            line
            for path in sorted((FLORES / "devtest").glob("*.devtest"))
            for line in path.read_text("utf-8").splitlines()
        ]
        tokenizer_dir = train_tokenizer(texts, folder, vocab_size=600)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        config = {k: v for k, v in TINY_LLAMA.items() if k != "model_type"}
        torch.manual_seed(0)
        model = LlamaForCausalLM(
            LlamaConfig(
                vocab_size=len(tokenizer),
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                **config,
            )
        )
        model.save_pretrained(folder)
        _MODEL["tiny"] = folder
    return _MODEL["tiny"]


def write_wmt_sgml(folder: Path) -> Path:
    """newstest-style SGML, German source, two English references; returns the prefix."""
    german = ["Guten Morgen.", "Das Haus ist groß & alt.", "Wir fahren nach Berlin."]
    refs = {
        "A": ["Good morning.", "The house is big & old.", "We are going to Berlin."],
        "B": ["Morning.", "The house is large and old.", "We drive to Berlin."],
    }

    def sgml(kind: str, lang: str, texts: list[str], extra: str = "") -> str:
        segs = "".join(
            f'<seg id="{i}">{t.replace("&", "&amp;")}</seg>\n' for i, t in enumerate(texts, 1)
        )
        return (
            f'<{kind} setid="newstest2099" srclang="de" trglang="en"{extra}>\n'
            f'<doc docid="d1" genre="news">\n{segs}</doc>\n</{kind}>\n'
        )

    (folder / "newstest2099-deen-src.de.sgm").write_text(sgml("srcset", "de", german), "utf-8")
    for name, texts in refs.items():
        (folder / f"newstest2099-deen-ref.{name}.en.sgm").write_text(
            sgml("refset", "en", texts, f' refid="{name}"'), "utf-8"
        )
    return folder / "newstest2099-deen"


def read_lines(path: Path) -> list[str]:
    return path.read_text("utf-8").splitlines()


def test_eval_scores_equal_sacrebleu_on_written_hypotheses(tmp_path, tmp_path_factory, capsys):
    from sacrebleu.metrics import BLEU, CHRF

    model = tiny_model(tmp_path_factory)
    wmt = write_wmt_sgml(tmp_path)
    out = tmp_path / "eval"
    code = main(
        [
            "eval", str(model), "--flores", "sample:flores200", "--wmt", str(wmt),
            "--directions", f"{DIRECTIONS},deu_Latn-eng_Latn", "--limit", "4",
            "--batch-size", "3", "--max-new-tokens", "6", "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    for name in ("scores.md", "scores.json", "scores.png"):
        assert (out / name).is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    summary = json.loads((out / "scores.json").read_text("utf-8"))
    scores = {(s["test_set"], s["direction"]): s for s in summary["scores"]}
    assert set(scores) == {
        ("flores200", "eng_Latn-deu_Latn"),
        ("flores200", "deu_Latn-zho_Hans"),
        ("flores200", "deu_Latn-eng_Latn"),
        ("newstest2099", "deu_Latn-eng_Latn"),
    }
    assert summary["settings"]["limit"] == 4 and summary["model"] == str(model)
    hyp_dir = out / "hypotheses"
    for (test_set, direction), score in scores.items():
        key = f"{test_set}.{direction}"
        hypotheses = read_lines(hyp_dir / f"{key}.hyp")
        several = test_set == "newstest2099"
        ref_files = [f"{key}.ref.A", f"{key}.ref.B"] if several else [f"{key}.ref"]
        references = [read_lines(hyp_dir / name) for name in ref_files]
        assert len(hypotheses) == (3 if several else 4)
        tokenize = "zh" if direction.endswith("zho_Hans") else "13a"
        if score["bleu_signature"].split("tok:")[1].startswith("flores200"):
            tokenize = "flores200"
        bleu, chrf = BLEU(tokenize=tokenize), CHRF(word_order=2)
        assert score["bleu"] == round(bleu.corpus_score(hypotheses, references).score, 2)
        assert score["chrf"] == round(chrf.corpus_score(hypotheses, references).score, 2)
        assert score["bleu_signature"] == str(bleu.get_signature())
        assert score["chrf_signature"] == str(chrf.get_signature())
        assert str(chrf.get_signature()) in summary["signatures"]["chrf"]
    table = (out / "scores.md").read_text("utf-8")
    assert "| flores200 | eng_Latn→deu_Latn |" in table and "resource tier" in table
    assert "nrefs:1|case:mixed|eff:no|tok:zh" in table
    assert (out / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_default_prompt_names_languages_in_the_pivot():
    from bayling_data.train.evaluate import default_directions, prompt_renderer

    render = prompt_renderer(None)
    assert render("swh_Latn", "zho_Hans", "Habari").startswith("把下面的斯瓦希里语翻译成简体中文")
    assert render("eng_Latn", "deu_Latn", "Hi").startswith("Translate the following English")
    custom = prompt_renderer("{src_name} => {tgt_name}: {src_text}")
    assert custom("deu_Latn", "eng_Latn", "Hallo") == "German => English: Hallo"
    assert default_directions(["deu_Latn", "eng_Latn", "zho_Hans"]) == [
        ("deu_Latn", "zho_Hans"), ("zho_Hans", "deu_Latn"),
        ("deu_Latn", "eng_Latn"), ("eng_Latn", "deu_Latn"),
        ("zho_Hans", "eng_Latn"), ("eng_Latn", "zho_Hans"),
    ]  # fmt: skip


def test_missing_model_folder_is_one_line(tmp_path, capsys):
    code = main(
        ["eval", str(tmp_path / "no_model"), "--flores", "sample:flores200", "--out", str(tmp_path)]
    )
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR
    assert err == f"bayling-data eval: error: {tmp_path / 'no_model'}: no such model folder\n"


def test_offline_hub_id_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    code = main(
        [
            "eval", "nobody/no-such-model", "--flores", "sample:flores200",
            "--directions", "eng_Latn-deu_Latn", "--out", str(tmp_path / "out"),
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR
    assert err.count("\n") == 1
    assert err.startswith("bayling-data eval: error: nobody/no-such-model: not on disk")


def test_bad_direction_is_one_line(tmp_path, capsys):
    code = main(
        ["eval", str(tmp_path), "--flores", "sample:flores200", "--directions", "eng_Latn",
         "--out", str(tmp_path / "out")]
    )  # fmt: skip
    assert code == EXIT_USER_ERROR
    assert "expected SRC-TGT" in capsys.readouterr().err


def test_wmt_text_set_and_stop_tokens(tmp_path, tmp_path_factory):
    from transformers import AutoTokenizer

    from bayling_data.train.chat_templates import stop_token_ids, template_text
    from bayling_data.train.evaluate import wmt_test_set

    (tmp_path / "generaltest2099.de-en.src.de").write_text("Hallo.\nJa.\nNein.\n", "utf-8")
    (tmp_path / "generaltest2099.de-en.ref.A.en").write_text("Hello.\nYes.\nNo.\n", "utf-8")
    test_set = wmt_test_set(str(tmp_path / "generaltest2099.de-en"), limit=2)
    assert (test_set.name, test_set.direction) == ("generaltest2099", "deu_Latn-eng_Latn")
    assert test_set.sources == ["Hallo.", "Ja."] and test_set.references == [["Hello.", "Yes."]]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model(tmp_path_factory))
    eot = tokenizer.convert_tokens_to_ids("<|eot_id|>")
    assert stop_token_ids(tokenizer, template_text("tokenizer", tokenizer)) == [
        tokenizer.eos_token_id,
        eot,
    ]
    assert stop_token_ids(tokenizer, template_text("llama2", tokenizer)) == [tokenizer.eos_token_id]


def test_the_engine_is_transformers_without_vllm_and_vllm_asked_for_is_one_line(
    tmp_path, tmp_path_factory, capsys
):
    """auto falls back to transformers where vLLM cannot run (not installed, or no GPU); asking
    for vLLM there fails in one line before anything is generated."""
    import importlib.util

    import torch

    from bayling_data.train.evaluate import choose_engine

    if importlib.util.find_spec("vllm") is not None and torch.cuda.is_available():
        pytest.skip("vLLM can run here")
    assert choose_engine("auto") == "transformers"
    assert choose_engine("transformers") == "transformers"
    model = tiny_model(tmp_path_factory)
    capsys.readouterr()  # what saving the model printed (a progress bar when it is made here)
    code = main(
        ["eval", str(model), "--flores", "sample:flores200", "--directions", "eng_Latn-deu_Latn",
         "--limit", "1", "--engine", "vllm", "--out", str(tmp_path / "out")]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR
    assert err.count("\n") == 1
    assert err.startswith("bayling-data eval: error: --engine vllm: ")
    assert not (tmp_path / "out" / "scores.json").exists()
