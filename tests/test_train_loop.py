"""The training loop end to end on a real build: learning, resuming, loss breakdowns, saving."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
pytest.importorskip("tokenizers")

from train_fixtures import train_assets, train_config  # noqa: E402

from bayling_data.train.config import TrainConfig  # noqa: E402
from bayling_data.train.loop import train  # noqa: E402


def run(config: dict):
    return train(TrainConfig.model_validate(config), log=lambda *_: None)


@pytest.fixture(scope="module")
def thirty_steps(tmp_path_factory):
    assets = train_assets(tmp_path_factory)
    out = tmp_path_factory.mktemp("thirty")
    config = train_config(
        assets, out, optim={"max_steps": 30, "learning_rate": 1e-2}, output={"logging_steps": 5}
    )
    return run(config), out


def test_loss_falls_over_thirty_steps_on_the_sample_build(thirty_steps):
    result, _ = thirty_steps
    losses = [entry["loss"] for entry in result.history]
    assert result.steps == 30 and len(losses) == 6
    # Steps 26-30 against steps 1-5 (ln 1000 = 6.9 is the untrained loss of this vocabulary).
    assert losses[-1] < losses[0] - 0.3, losses


def test_per_language_and_direction_losses_add_up_to_the_overall_loss(thirty_steps):
    result, _ = thirty_steps
    for entry in result.history:
        for kind in ("loss_by_lang", "loss_by_direction"):
            groups = entry[kind]
            tokens = sum(n for _, n in groups.values())
            assert tokens == entry["trained_tokens"]
            weighted = sum(loss * n for loss, n in groups.values()) / tokens
            assert math.isclose(weighted, entry["loss"], rel_tol=1e-6), kind
        assert len(entry["loss_by_lang"]) > 1


def test_the_final_model_is_saved_in_hugging_face_format(thirty_steps):
    _, out = thirty_steps
    final = out / "run" / "final"
    model = transformers.AutoModelForCausalLM.from_pretrained(final)
    tokenizer = transformers.AutoTokenizer.from_pretrained(final)
    assert model.config.num_hidden_layers == 2
    assert "<|start_header_id|>" in tokenizer.chat_template  # the template it was trained with
    log = (out / "run" / "train_log.jsonl").read_text("utf-8").splitlines()
    assert len(log) == 6


def test_resuming_continues_with_the_same_data_order(tmp_path_factory):
    assets = train_assets(tmp_path_factory)
    out = tmp_path_factory.mktemp("resume")
    common = {"optim": {"max_steps": 6, "gradient_accumulation_steps": 2}}
    straight = run(train_config(assets, out / "straight", **common))
    first_half = train_config(
        assets,
        out / "halves",
        optim={"max_steps": 3, "gradient_accumulation_steps": 2},
        output={"save_steps": 3},
    )
    run(first_half)
    checkpoint = out / "halves" / "run" / "checkpoints" / "step-00000003"
    resumed = run(
        train_config(assets, out / "halves", **common, output={"resume_from": str(checkpoint)})
    )
    assert [e["step"] for e in resumed.history] == [4, 5, 6]
    assert [e["batches"] for e in resumed.history] == [e["batches"] for e in straight.history[3:]]
    for after, before in zip(resumed.history, straight.history[3:], strict=True):
        assert math.isclose(after["loss"], before["loss"], rel_tol=1e-5)
        assert math.isclose(after["lr"], before["lr"], rel_tol=1e-9)


def test_lora_with_chrf_eval(tmp_path_factory):
    pytest.importorskip("peft")
    pytest.importorskip("sacrebleu")
    assets = train_assets(tmp_path_factory)
    out = tmp_path_factory.mktemp("lora")
    config = train_config(
        assets,
        out,
        optim={"max_steps": 2},
        lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
        eval={"max_sentences": 2, "max_new_tokens": 4, "every_steps": 2},
    )
    result = run(config)
    chrf = result.history[-1]["chrf"]
    assert set(chrf) == {"eng_Latn-zho_Hans", "zho_Hans-eng_Latn"}
    assert all(0.0 <= score <= 100.0 for score in chrf.values())
    assert (out / "run" / "final" / "adapter" / "adapter_config.json").is_file()
    merged = transformers.AutoModelForCausalLM.from_pretrained(out / "run" / "final")
    assert not any("lora" in name for name, _ in merged.named_parameters())
