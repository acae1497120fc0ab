"""The chunked loss equals the full-logits loss, in value and gradient (issue 14).

Tolerance: both paths compute the same fp32 cross entropy of the same logits; the chunked one
multiplies only the trained rows of the hidden states by the output layer, a chunk at a time, so
the matmuls are blocked differently and results differ by fp32 rounding (~1e-7 relative on the
losses). Gradients go through 2 layers and a 1000-word softmax: 1e-5 absolute / 1e-4 relative
leaves room for that rounding and nothing else (a wrong mask or a missed chunk moves the loss by
~1e-1 and gradients by far more).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from train_fixtures import tiny_llamas, validation_corpus  # noqa: E402

from bayling_data.train.config import TrainConfigError  # noqa: E402
from bayling_data.train.loss import LossSettings, chunked_losses, resolve_loss  # noqa: E402
from bayling_data.train.packing import batch_loss, collate  # noqa: E402

SEQUENCES = {  # rows of the validation split
    ("packed", 1): [[3, 11, 17, 25]],
    ("packed", 4): [[3, 11, 17], [25, 4], [8, 30, 12], [19, 6]],
    ("unpacked", 1): [[3]],
    ("unpacked", 4): [[3], [11], [17], [25]],
}
CHUNK = 37  # small and odd: several chunks per batch, the last one short
LOSS_TOLERANCE = {"atol": 1e-5, "rtol": 1e-5}
GRAD_TOLERANCE = {"atol": 1e-5, "rtol": 1e-4}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    corpus, tokenizer = validation_corpus(tmp_path_factory, 1024, "loss_cache")
    models = tiny_llamas(len(tokenizer))
    return corpus, tokenizer.pad_token_id, models


def padded_batch(corpus, pad_id, sequences, packed: bool):
    """Packed: padded past the longest sequence, as the loop pads to max_length; else to it."""
    longest = max(sum(int(corpus.lengths[row]) for row in seq) for seq in sequences)
    return collate(corpus, sequences, pad_id, pad_to=longest + 5 if packed else None)


def losses_and_grads(model, batch, implementation, settings):
    model.zero_grad()
    out = batch_loss(model, batch, implementation, settings)
    (out.total / out.trained.sum()).backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    return out, grads


@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("layout", ["packed", "unpacked"])
@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_chunked_losses_and_gradients_equal_the_full_logits_path(
    setup, implementation, layout, batch_size
):
    corpus, pad_id, models = setup
    sequences = SEQUENCES[(layout, batch_size)]
    batch = padded_batch(corpus, pad_id, sequences, packed=layout == "packed")
    model = models[implementation]
    full, full_grads = losses_and_grads(model, batch, implementation, LossSettings("full"))
    chunked, grads = losses_and_grads(model, batch, implementation, LossSettings("chunked", CHUNK))
    assert torch.equal(chunked.trained, full.trained)
    assert int(chunked.trained.sum()) == batch.num_trained > CHUNK
    assert not chunked.losses[~chunked.trained].any()  # untrained places are exactly 0
    torch.testing.assert_close(chunked.losses, full.losses, **LOSS_TOLERANCE)
    torch.testing.assert_close(chunked.total, full.total, **LOSS_TOLERANCE)
    assert full_grads.keys() == grads.keys()
    for name, grad in full_grads.items():
        torch.testing.assert_close(grads[name], grad, **GRAD_TOLERANCE, msg=name)


def test_the_output_layer_sees_only_trained_rows_a_chunk_at_a_time(setup):
    corpus, pad_id, models = setup
    model = models["sdpa"]
    batch = padded_batch(corpus, pad_id, SEQUENCES[("packed", 4)], packed=True)
    head = model.get_output_embeddings()
    seen: list[int] = []

    def recording_forward(hidden):
        seen.append(hidden.shape[0])
        return torch.nn.Linear.forward(head, hidden)

    head.forward = recording_forward  # an instance forward of its own, to be given back after
    try:
        with torch.no_grad():
            out = batch_loss(model, batch, "sdpa", LossSettings("chunked", CHUNK))
        assert head.forward is recording_forward
    finally:
        del head.forward
    assert sum(seen) == batch.num_trained and max(seen) == CHUNK
    assert len(seen) == -(-batch.num_trained // CHUNK)
    assert out.total.requires_grad is False


def test_chunked_losses_of_no_rows_is_empty():
    hidden = torch.zeros(0, 4)
    assert chunked_losses(lambda h: h, hidden, torch.zeros(0, dtype=torch.long), 8).shape == (0,)


def test_auto_is_chunked_on_cpu_and_liger_says_what_it_needs(setup):
    _, _, models = setup
    cpu = torch.device("cpu")
    assert resolve_loss("auto", 512, models["sdpa"], cpu) == LossSettings("chunked", 512)
    assert resolve_loss("full", 512, models["sdpa"], cpu).implementation == "full"
    with pytest.raises(TrainConfigError, match=r"^loss\.implementation: liger needs liger_kernel"):
        resolve_loss("liger", 512, models["sdpa"], cpu)


def test_models_that_transform_their_logits_take_the_full_path():
    config = transformers.Gemma2Config(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        vocab_size=50,
    )
    model = transformers.Gemma2ForCausalLM(config)
    assert config.final_logit_softcapping is not None
    assert resolve_loss("auto", 64, model, torch.device("cpu")).implementation == "full"
    with pytest.raises(TrainConfigError, match=r"final_logit_softcapping.*use full"):
        resolve_loss("chunked", 64, model, torch.device("cpu"))
