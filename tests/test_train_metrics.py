"""MFU from the model's sizes, checked against FLOPs counted by hand (issue 14)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from train_fixtures import TINY_LLAMA  # noqa: E402

from bayling_data.train.metrics import (  # noqa: E402
    device_peak_tflops,
    mfu,
    model_flops,
    squared_row_lengths,
)

# TINY_LLAMA at a 1000-token vocabulary, by hand: per layer q 48·48, k and v 48·24 (2 kv heads of
# 12), o 48·48, gate/up/down 48·96 each, two norms of 48: 20,832; two layers, the final norm (48),
# the embedding and the output layer (48,000 each): 137,712 parameters, of which 89,712 are not
# the embedding lookup. Attention width: 4 heads of 12 = 48.
MATMUL_N = 2 * 20_832 + 48 + 48_000
# Two packed sequences: rows of 3 and 5 tokens then 2 of padding; one row of 4 then 6 of padding.
SEGMENTS = torch.tensor([[1, 1, 1, 2, 2, 2, 2, 2, 0, 0], [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]])
TOKENS, SQUARED = 12, 3**2 + 5**2 + 4**2
ATTENTION = 6 * 2 * 48 * SQUARED  # 6 · layers · width · Σ s²


def tiny(**overrides):
    settings = {k: v for k, v in TINY_LLAMA.items() if k != "model_type"}
    config = transformers.LlamaConfig(**settings, vocab_size=1000, **overrides)
    return transformers.LlamaForCausalLM(config)


def test_packed_rows_count_their_own_lengths():
    assert squared_row_lengths(SEGMENTS) == SQUARED == 50
    assert squared_row_lengths(torch.ones(1, 10, dtype=torch.long)) == 100  # one row, unpacked


def test_full_fine_tuning_is_6n_without_the_embedding_plus_causal_attention():
    model = tiny()
    assert sum(p.numel() for p in model.parameters()) == 137_712
    flops = model_flops(model)
    assert (flops.matmul_parameters, flops.layers, flops.attention_width) == (MATMUL_N, 2, 48)
    assert flops.flops(TOKENS, SQUARED) == 6 * MATMUL_N * TOKENS + ATTENTION == 6_488_064


def test_tied_embeddings_count_the_output_matmul_once():
    model = tiny(tie_word_embeddings=True)
    assert sum(p.numel() for p in model.parameters()) == MATMUL_N  # the table is the output layer
    assert model_flops(model).matmul_parameters == MATMUL_N


def test_frozen_weights_cost_no_weight_gradients():
    model = tiny()
    for name, parameter in model.named_parameters():
        parameter.requires_grad = name.startswith("lm_head")
    flops = model_flops(model)
    assert flops.trainable_matmul_parameters == 48_000
    expected = (4 * MATMUL_N + 2 * 48_000) * TOKENS + ATTENTION
    assert flops.flops(TOKENS, SQUARED) == expected


def test_mfu_is_flops_per_second_over_the_peak_of_the_training_dtype():
    assert mfu(6.5e12, 989.0) == pytest.approx(6.5 / 989)
    assert device_peak_tflops(torch.device("cpu"), 2.0) == (2.0, "config peak_tflops")
    peak, source = device_peak_tflops(torch.device("cpu"), None, torch.bfloat16)
    assert peak > 0 and source == "measured bfloat16 matmul on this CPU"
