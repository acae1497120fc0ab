"""Packing under flash-attention keeps rows apart at every batch size (issue 14).

flash_attn is not installed on CPU, so transformers' own flash path runs with its CUDA kernels
swapped for exact torch ones: the attention function is transformers' ``flash_attention_forward``
and the dispatch is its ``_flash_attention_forward`` (varlen from cu_seq_lens, varlen inferred from
position_ids only when the batch is one sequence, else the dense kernel), registered under
``flash_attention_2_emulated`` so ``uses_flash_attention`` and transformers both treat it as flash.
"""

from __future__ import annotations

import itertools

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

import torch.nn.functional as F  # noqa: E402
from train_fixtures import TINY_LLAMA, train_assets, train_config  # noqa: E402
from transformers import modeling_flash_attention_utils as flash_utils  # noqa: E402
from transformers.integrations.flash_attention import flash_attention_forward  # noqa: E402
from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask  # noqa: E402
from transformers.modeling_utils import AttentionInterface  # noqa: E402

from bayling_data.train.chat_templates import template_text  # noqa: E402
from bayling_data.train.config import TrainConfig  # noqa: E402
from bayling_data.train.data import Corpus, tokenize_build  # noqa: E402
from bayling_data.train.loop import train  # noqa: E402
from bayling_data.train.packing import (  # noqa: E402
    Batch,
    batch_token_losses,
    collate,
    flatten,
    forward_logits,
    token_losses,
    uses_flash_attention,
)
from bayling_data.train.tokenize import MaskSpec  # noqa: E402

EMULATED_FLASH = "flash_attention_2_emulated"
IMPLEMENTATIONS = ["eager", "sdpa", EMULATED_FLASH]
# Rows of the validation split: one sequence of four rows, or four sequences of two or three.
SEQUENCES = {
    1: [[3, 11, 17, 25]],
    4: [[3, 11, 17], [25, 4], [8, 30, 12], [19, 6]],
}
TOLERANCE = {"atol": 1e-4, "rtol": 1e-4}


# --- flash-attention kernels in torch ------------------------------------------------------------


class KernelCalls:
    """Which emulated kernel transformers chose, and the row boundaries it gave the varlen one."""

    def __init__(self) -> None:
        self.dense: list[tuple[int, ...]] = []
        self.varlen: list[list[int]] = []

    def clear(self) -> None:
        self.dense.clear()
        self.varlen.clear()


CALLS = KernelCalls()


def _exact_attention(q, k, v, causal: bool, scale: float | None):
    """(L, H, D) queries over (L, H_kv, D) keys: flash-attention's maths, grouped heads included."""
    groups = q.shape[1] // k.shape[1]
    k, v = (x.repeat_interleave(groups, dim=1).transpose(0, 1) for x in (k, v))
    out = F.scaled_dot_product_attention(q.transpose(0, 1), k, v, is_causal=causal, scale=scale)
    return out.transpose(0, 1)


def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, **_):
    """flash_attn.flash_attn_func: (B, L, H, D), each batch row one sequence."""
    CALLS.dense.append(tuple(q.shape[:2]))
    return torch.stack(
        [_exact_attention(q[b], k[b], v[b], causal, softmax_scale) for b in range(q.shape[0])]
    )


def flash_attn_varlen_func(
    q,
    k,
    v,
    cu_seqlens_q,
    cu_seqlens_k,
    max_seqlen_q=None,
    max_seqlen_k=None,
    dropout_p=0.0,
    softmax_scale=None,
    causal=False,
    **_,
):
    """flash_attn.flash_attn_varlen_func: (N, H, D), a sequence between consecutive cu_seqlens."""
    assert torch.equal(cu_seqlens_q, cu_seqlens_k)
    bounds = cu_seqlens_q.tolist()
    assert int(max_seqlen_q) == max(b - a for a, b in itertools.pairwise(bounds))
    CALLS.varlen.append(bounds)
    return torch.cat(
        [
            _exact_attention(q[a:b], k[a:b], v[a:b], causal, softmax_scale)
            for a, b in itertools.pairwise(bounds)
        ]
    )


@pytest.fixture(scope="module")
def emulated_flash():
    """transformers' flash path under EMULATED_FLASH, with the torch kernels above loaded."""
    AttentionInterface.register(EMULATED_FLASH, flash_attention_forward)
    AttentionMaskInterface.register(EMULATED_FLASH, flash_attention_mask)
    loaded = {
        "_loaded_implementation": EMULATED_FLASH,
        "_flash_fn": flash_attn_func,
        "_flash_varlen_fn": flash_attn_varlen_func,
        "_flash_with_kvcache_fn": None,
        "_pad_fn": flash_utils._pad_input,
        "_unpad_fn": flash_utils._unpad_input,
        "_process_flash_kwargs_fn": flash_utils._lazy_define_process_function(
            flash_attn_varlen_func
        ),
        "_process_with_kvcache_kwargs_fn": dict,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in loaded.items():
            patch.setattr(flash_utils, name, value)
        yield CALLS
    AttentionInterface._global_mapping.pop(EMULATED_FLASH, None)
    AttentionMaskInterface._global_mapping.pop(EMULATED_FLASH, None)


# --- the data and models -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def setup(tmp_path_factory, emulated_flash):
    assets = train_assets(tmp_path_factory)
    tokenizer = transformers.AutoTokenizer.from_pretrained(assets.tokenizer_dir)
    spec = MaskSpec(template=template_text("bayling", tokenizer), max_length=1024)
    cache = tmp_path_factory.mktemp("flash_packing_cache")
    corpus = Corpus(
        [tokenize_build(str(assets.build), "validation", tokenizer, spec, cache, 1)], [1.0]
    )
    models = {}
    for implementation in IMPLEMENTATIONS:
        torch.manual_seed(0)  # the same weights under every attention
        config = transformers.LlamaConfig(
            **{k: v for k, v in TINY_LLAMA.items() if k != "model_type"},
            vocab_size=len(tokenizer),
            attn_implementation=implementation,
        )
        models[implementation] = transformers.LlamaForCausalLM(config).eval()
    return corpus, tokenizer.pad_token_id, models


def packed_batch(corpus: Corpus, pad_id: int, batch_size: int) -> Batch:
    """The batch's sequences padded to a common width with some padding left in every one."""
    sequences = SEQUENCES[batch_size]
    longest = max(sum(int(corpus.lengths[row]) for row in seq) for seq in sequences)
    return collate(corpus, sequences, pad_id, pad_to=longest + 5)


def row_loss_gaps(eager_model, corpus, pad_id, packed: Batch, losses, trained) -> list:
    """(place of the row in its sequence, largest gap between its packed per-token losses and its
    losses run alone in eager attention on the same weights), for every packed row. Checks on the
    way that the trained tokens are the same and that a row's first token and padding are not."""
    gaps = []
    for b, sequence in enumerate(packed.rows):
        at = 0
        for place, row in enumerate(sequence):
            alone = collate(corpus, [[row]], pad_id)
            alone_losses, alone_trained = token_losses(
                forward_logits(eager_model, alone, "eager"), alone.labels
            )
            n = alone.input_ids.shape[1]
            span = slice(at, at + n - 1)
            assert torch.equal(trained[b, span], alone_trained[0])
            if at > 0:
                assert not trained[b, at - 1] and float(losses[b, at - 1]) == 0.0
            gaps.append((place, float((losses[b, span] - alone_losses[0]).abs().max())))
            at += n
        assert not trained[b, at - 1 :].any()
    return gaps


def assert_losses_match_rows_alone(eager_model, corpus, pad_id, packed: Batch, losses, trained):
    gaps = row_loss_gaps(eager_model, corpus, pad_id, packed, losses, trained)
    assert max(gap for _, gap in gaps) < 1e-4, gaps


# --- the checks ----------------------------------------------------------------------------------


def test_emulated_flash_counts_as_flash_attention(setup):
    _, _, models = setup
    assert uses_flash_attention(EMULATED_FLASH)
    assert uses_flash_attention("kernels-community/flash-attn2")
    assert not uses_flash_attention("sdpa")
    assert models[EMULATED_FLASH].config._attn_implementation == EMULATED_FLASH


@torch.no_grad()
def test_emulated_flash_kernel_equals_sdpa_on_one_unpacked_row(setup, emulated_flash):
    """The emulation itself is exact: one row, no packing, same logits as sdpa."""
    corpus, pad_id, models = setup
    alone = collate(corpus, [[SEQUENCES[1][0][0]]], pad_id)
    emulated_flash.clear()
    flash_logits = models[EMULATED_FLASH](input_ids=alone.input_ids, use_cache=False).logits
    assert emulated_flash.dense and not emulated_flash.varlen
    sdpa_logits = models["sdpa"](input_ids=alone.input_ids, use_cache=False).logits
    torch.testing.assert_close(flash_logits, sdpa_logits, **TOLERANCE)


@torch.no_grad()
def test_reset_positions_alone_mix_rows_under_flash_at_batch_4(setup, emulated_flash):
    """The old flash path (no mask, reset position_ids) documents the bug: at batch 1 transformers
    infers varlen and rows stay apart, at batch 4 it runs the dense kernel and they mix."""
    corpus, pad_id, models = setup
    model, eager_model = models[EMULATED_FLASH], models["eager"]
    for batch_size, rows_stay_apart in ((1, True), (4, False)):
        packed = packed_batch(corpus, pad_id, batch_size)
        emulated_flash.clear()
        old_logits = model(
            input_ids=packed.input_ids,
            position_ids=packed.position_ids,
            attention_mask=None,
            use_cache=False,
        ).logits
        assert bool(emulated_flash.varlen) == rows_stay_apart
        assert bool(emulated_flash.dense) != rows_stay_apart
        losses, trained = token_losses(old_logits, packed.labels)
        gaps = row_loss_gaps(eager_model, corpus, pad_id, packed, losses, trained)
        if rows_stay_apart:
            assert max(gap for _, gap in gaps) < 1e-4, gaps
        else:  # a sequence's first row sees only itself; every later row sees the rows before it
            assert all((gap < 1e-4) == (place == 0) for place, gap in gaps), gaps


@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@torch.no_grad()
def test_packed_per_token_losses_equal_the_rows_alone(setup, implementation, batch_size):
    corpus, pad_id, models = setup
    model = models[implementation]
    packed = packed_batch(corpus, pad_id, batch_size)
    losses, trained = batch_token_losses(model, packed, implementation)
    assert losses.shape == trained.shape == (batch_size, packed.input_ids.shape[1] - 1)
    assert int(trained.sum()) == packed.num_trained
    assert_losses_match_rows_alone(models["eager"], corpus, pad_id, packed, losses, trained)
    # the logits path agrees with the loss path (the loss path skips the (B, L, V) copy)
    reference, _ = token_losses(forward_logits(model, packed, implementation), packed.labels)
    torch.testing.assert_close(losses * trained, reference * trained, **TOLERANCE)


@pytest.mark.parametrize("batch_size", [1, 4])
@torch.no_grad()
def test_flash_runs_varlen_over_exactly_the_packed_rows(setup, emulated_flash, batch_size):
    corpus, pad_id, models = setup
    packed = packed_batch(corpus, pad_id, batch_size)
    lengths = [int(corpus.lengths[row]) for sequence in packed.rows for row in sequence]
    bounds = torch.tensor([0, *lengths]).cumsum(0).tolist()
    flat = flatten(packed)
    assert flat.input_ids.shape == (1, packed.num_tokens)
    assert flat.attention_kwargs["cu_seq_lens_q"].tolist() == bounds
    assert flat.attention_kwargs["max_length_q"] == max(lengths)
    emulated_flash.clear()
    batch_token_losses(models[EMULATED_FLASH], packed, EMULATED_FLASH)
    layers = models[EMULATED_FLASH].config.num_hidden_layers
    assert emulated_flash.varlen == [bounds] * layers and not emulated_flash.dense


@pytest.mark.parametrize("batch_size", [1, 4])
def test_flash_packed_gradients_equal_sdpa_packed_gradients(setup, batch_size):
    """Training sees the same loss and gradients: the losses put back carry their gradients."""
    corpus, pad_id, models = setup
    packed = packed_batch(corpus, pad_id, batch_size)
    grads = {}
    for implementation in ("sdpa", EMULATED_FLASH):
        model = models[implementation]
        model.zero_grad()
        losses, trained = batch_token_losses(model, packed, implementation)
        (losses.sum() / trained.sum()).backward()
        grads[implementation] = {n: p.grad.clone() for n, p in model.named_parameters()}
        model.zero_grad()
    for name, grad in grads["sdpa"].items():
        torch.testing.assert_close(grads[EMULATED_FLASH][name], grad, atol=1e-5, rtol=1e-4)


def test_training_under_flash_logs_the_losses_of_training_under_sdpa(setup, tmp_path_factory):
    """The loop end to end at batch 4 (the bundled recipe's): same losses step by step, overall
    and per language and direction. (The config allows only real implementations, so the emulated
    one is set after validation.)"""
    pytest.importorskip("accelerate")
    assets = train_assets(tmp_path_factory)
    histories = {}
    for implementation in ("sdpa", EMULATED_FLASH):
        out = tmp_path_factory.mktemp(f"loop_{implementation}")
        config = TrainConfig.model_validate(
            train_config(
                assets, out, data={"max_length": 512}, optim={"max_steps": 3, "batch_size": 4}
            )
        )
        model = config.model.model_copy(update={"attn_implementation": implementation})
        config = config.model_copy(update={"model": model})
        histories[implementation] = train(config, log=lambda *_: None).history
    for sdpa_entry, flash_entry in zip(*histories.values(), strict=True):
        assert flash_entry["batches"] == sdpa_entry["batches"]
        assert flash_entry["trained_tokens"] == sdpa_entry["trained_tokens"]
        assert flash_entry["loss"] == pytest.approx(sdpa_entry["loss"], rel=1e-4)
        for kind in ("loss_by_lang", "loss_by_direction"):
            assert flash_entry[kind].keys() == sdpa_entry[kind].keys()
            for group, (loss, n) in sdpa_entry[kind].items():
                assert flash_entry[kind][group][1] == n
                assert flash_entry[kind][group][0] == pytest.approx(loss, rel=1e-4), group
    first_step = histories["sdpa"][0]["batches"]
    assert any(len(sequence) > 1 for micro_batch in first_step for sequence in micro_batch)
