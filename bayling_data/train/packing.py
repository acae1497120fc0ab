"""Packed batches that keep rows apart.

Several rows share one sequence; each row's positions restart at 0, its first token's label is
-100 (nothing before it in the row predicts it), and attention is block-diagonal: an explicit
mask for eager and sdpa attention, or reset ``position_ids`` alone for flash-attention, which
transformers turns into varlen calls. ``use_cache=False`` always: with a cache, transformers skips
packed-sequence detection and rows silently attend to one another.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bayling_data.train.data import Corpus

IGNORE = -100


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, L)
    labels: torch.Tensor  # (B, L), IGNORE where not trained
    position_ids: torch.Tensor  # (B, L), restarting at each row
    segments: torch.Tensor  # (B, L), 1.. per row, 0 for padding
    lang: torch.Tensor  # (B, L), the row's language index
    direction: torch.Tensor  # (B, L), the row's direction index
    rows: list[list[int]]

    @property
    def num_tokens(self) -> int:
        """Real (non-padding) tokens: what tokens/s counts."""
        return int((self.segments > 0).sum())

    @property
    def num_trained(self) -> int:
        return int((self.labels != IGNORE).sum())

    def to(self, device: torch.device) -> Batch:
        moved = {
            name: getattr(self, name).to(device)
            for name in ("input_ids", "labels", "position_ids", "segments", "lang", "direction")
        }
        return Batch(**moved, rows=self.rows)


def collate(
    corpus: Corpus, sequences: list[list[int]], pad_id: int, pad_to: int | None = None
) -> Batch:
    """Tensors for a micro-batch of sequences (each a list of global row indices)."""
    longest = max(int(sum(corpus.lengths[row] for row in seq)) for seq in sequences)
    width = pad_to or longest
    shape = (len(sequences), width)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    labels = torch.full(shape, IGNORE, dtype=torch.long)
    position_ids = torch.zeros(shape, dtype=torch.long)
    segments = torch.zeros(shape, dtype=torch.long)
    lang = torch.zeros(shape, dtype=torch.long)
    direction = torch.zeros(shape, dtype=torch.long)
    for b, sequence in enumerate(sequences):
        at = 0
        for segment, row in enumerate(sequence, start=1):
            ids, trained = corpus.row(row)
            n = len(ids)
            span = slice(at, at + n)
            ids_t = torch.from_numpy(ids.astype("int64"))
            input_ids[b, span] = ids_t
            labels[b, span] = torch.where(torch.from_numpy(trained.astype(bool)), ids_t, IGNORE)
            labels[b, at] = IGNORE
            position_ids[b, span] = torch.arange(n)
            segments[b, span] = segment
            lang[b, span] = int(corpus.lang_of[row])
            direction[b, span] = int(corpus.direction_of[row])
            at += n
        position_ids[b, at:] = torch.arange(width - at)  # padding: its own harmless run
    return Batch(input_ids, labels, position_ids, segments, lang, direction, sequences)


def block_causal_mask(segments: torch.Tensor, implementation: str, dtype: torch.dtype):
    """(B, 1, L, L): a token sees earlier tokens of its own row (padding sees padding), as bool
    for sdpa and as an additive float mask for eager; None for flash-attention (varlen instead)."""
    if implementation.startswith("flash_attention"):
        return None
    length = segments.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=segments.device).tril()
    allowed = (segments[:, :, None] == segments[:, None, :]) & causal
    allowed = allowed[:, None]
    if implementation == "sdpa":
        return allowed
    mask = torch.zeros(allowed.shape, dtype=dtype, device=segments.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)


def forward_logits(model, batch: Batch, implementation: str) -> torch.Tensor:
    """The model's logits for a batch, rows kept apart."""
    dtype = next(model.parameters()).dtype
    mask = block_causal_mask(batch.segments, implementation, dtype)
    return model(
        input_ids=batch.input_ids,
        position_ids=batch.position_ids,
        attention_mask=mask,
        use_cache=False,
    ).logits


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token cross entropy (B, L-1), 0 where untrained, and the trained mask: the token at t
    is predicted from position t-1."""
    targets = labels[:, 1:]
    losses = F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        ignore_index=IGNORE,
        reduction="none",
    ).view(targets.shape)
    return losses, targets != IGNORE
