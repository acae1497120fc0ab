"""Packing keeps rows apart: same logits as alone, same loss as unpacked, and a naive pack fails."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

import numpy as np  # noqa: E402
from train_fixtures import tiny_llamas, validation_corpus  # noqa: E402

from bayling_data.train.data import pack_bounds, pack_rows  # noqa: E402
from bayling_data.train.packing import collate, forward_logits, token_losses  # noqa: E402

ROWS = [3, 11, 17, 25]  # four rows of the validation split, packed into one sequence
SEQ = 1280  # their length together, BayLing's system prompt in each


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    corpus, tokenizer = validation_corpus(tmp_path_factory, SEQ, "packing_cache")
    models = {name: model.eval() for name, model in tiny_llamas(len(tokenizer)).items()}
    return corpus, tokenizer, models


def test_rows_pack_into_one_sequence(setup):
    corpus, _, _ = setup
    assert sum(int(corpus.lengths[r]) for r in ROWS) <= SEQ
    assert pack_rows(torch.tensor(ROWS).numpy(), corpus.lengths, SEQ, packing=True) == [ROWS]


def run_packed(setup, implementation: str):
    """The model, the four rows packed into one padded sequence, and that sequence's logits."""
    corpus, tokenizer, models = setup
    model = models[implementation]
    packed = collate(corpus, [ROWS], tokenizer.pad_token_id, pad_to=SEQ)
    return model, packed, forward_logits(model, packed, implementation)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
@torch.no_grad()
def test_a_packed_rows_logits_equal_its_logits_alone(setup, implementation):
    corpus, tokenizer, _ = setup
    model, _, logits = run_packed(setup, implementation)
    packed_logits = logits[0]
    at = 0
    for row in ROWS:
        alone = collate(corpus, [[row]], tokenizer.pad_token_id)
        alone_logits = forward_logits(model, alone, implementation)[0]
        n = alone_logits.shape[0]
        torch.testing.assert_close(packed_logits[at : at + n], alone_logits, atol=1e-4, rtol=1e-4)
        at += n


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
@torch.no_grad()
def test_packed_loss_equals_the_token_weighted_loss_of_the_rows_unpacked(setup, implementation):
    corpus, tokenizer, _ = setup
    model, packed, logits = run_packed(setup, implementation)
    losses, trained = token_losses(logits, packed.labels)
    packed_loss = losses.sum() / trained.sum()
    # Unpacked: a padded batch of the four rows, one per sequence.
    unpacked = collate(corpus, [[r] for r in ROWS], tokenizer.pad_token_id)
    losses, trained = token_losses(forward_logits(model, unpacked, implementation), unpacked.labels)
    per_row = losses.sum(dim=1) / trained.sum(dim=1)
    weighted = (per_row * trained.sum(dim=1)).sum() / trained.sum()
    assert abs(float(packed_loss) - float(weighted)) < 1e-4
    assert packed.num_trained == unpacked.num_trained


@torch.no_grad()
def test_naive_packing_fails_the_same_check(setup):
    """Without the block mask, rows attend to earlier rows: the check above must catch that."""
    corpus, tokenizer, models = setup
    model = models["sdpa"]
    packed = collate(corpus, [ROWS], tokenizer.pad_token_id, pad_to=SEQ)
    second = ROWS[1]
    alone = forward_logits(model, collate(corpus, [[second]], tokenizer.pad_token_id), "sdpa")[0]
    start = int(corpus.lengths[ROWS[0]])
    window = slice(start, start + alone.shape[0])
    naive_runs = {
        # one causal mask over the whole sequence, positions running on
        "no mask, running positions": model(input_ids=packed.input_ids, use_cache=False).logits,
        # positions reset, but a cache makes transformers skip packed-sequence detection
        "reset positions with a cache": model(
            input_ids=packed.input_ids, position_ids=packed.position_ids, use_cache=True
        ).logits,
    }
    for name, logits in naive_runs.items():
        assert not torch.allclose(logits[0, window], alone, atol=1e-4), name


def greedy_reference(rows, lengths, max_length):
    """The packing rule written out row by row: a row that does not fit starts a new sequence."""
    sequences, current, used = [], [], 0
    for row in rows:
        if current and used + lengths[row] > max_length:
            sequences.append(current)
            current, used = [], 0
        current.append(int(row))
        used += int(lengths[row])
    return [*sequences, current] if current else sequences


def test_array_packing_equals_the_greedy_rule_row_by_row():
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 300, size=2000)
    lengths[[5, 77]] = 700  # longer than max_length: a sequence alone
    rows = rng.permutation(2000)
    assert pack_rows(rows, lengths, 512, packing=True) == greedy_reference(rows, lengths, 512)
    bounds = pack_bounds(rows, lengths, 512, packing=True)
    assert bounds[0] == 0 and bounds[-1] == len(rows) and bounds.dtype == np.int64
    assert pack_rows(rows, lengths, 512, packing=False) == [[int(r)] for r in rows]
