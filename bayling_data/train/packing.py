"""Packed batches that keep rows apart.

Several rows share one sequence; each row's positions restart at 0, its first token's label is
-100 (nothing before it in the row predicts it), and attention is block-diagonal: an explicit
mask for eager and sdpa attention. Flash-attention takes no such mask, and transformers only reads
row boundaries from reset ``position_ids`` when the batch is one sequence, so a micro-batch of
several would let its rows attend to one another: for flash-attention the micro-batch is flattened
into one padding-free sequence with the boundaries passed as ``cu_seq_lens`` (what
``DataCollatorWithFlattening`` does), and the losses are put back where the packed batch has them.
``use_cache=False`` always: with a cache, transformers skips packed-sequence detection and rows
silently attend to one another.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bayling_data.train.data import Corpus
from bayling_data.train.loss import (
    IGNORE,
    LossSettings,
    TokenLosses,
    model_token_losses,
)
from bayling_data.train.loss import token_losses as token_losses  # the tests' full-logits reference

CHUNKED = LossSettings("chunked")


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


def uses_flash_attention(implementation: str) -> bool:
    """transformers' own test (``is_flash_attention_requested``): flash_attention_2/3/4, hub kernels
    such as kernels-community/flash-attn2 and paged variants all run varlen from cu_seq_lens and
    ignore a dense mask."""
    return "flash" in implementation


@dataclass
class Flattened:
    """A micro-batch as one padding-free sequence: the packed rows of every sequence end to end."""

    input_ids: torch.Tensor  # (1, N), N = real tokens of the batch
    position_ids: torch.Tensor  # (1, N), restarting at each packed row
    labels: torch.Tensor  # (1, N)
    kept: torch.Tensor  # (B, L) bool, where the N tokens sit in the batch
    attention_kwargs: dict[str, torch.Tensor | int]  # cu_seq_lens_q/k, max_length_q/k

    def forward_logits(self, model) -> torch.Tensor:
        """(1, N, V); the kwargs reach every attention layer (FlashAttentionKwargs), no mask."""
        return model(
            input_ids=self.input_ids,
            position_ids=self.position_ids,
            use_cache=False,
            **self.attention_kwargs,
        ).logits


def flatten(batch: Batch) -> Flattened:
    """One sequence of the batch's real tokens, each packed row its own varlen segment.

    The boundaries are given explicitly (not left for transformers to infer from position_ids) so
    that every flash path, kernels included, runs varlen over exactly the packed rows."""
    kept = batch.segments > 0
    position_ids = batch.position_ids[kept]
    starts = (position_ids == 0).nonzero().view(-1)
    total = torch.tensor([position_ids.numel()], device=starts.device)
    cu_seq_lens = torch.cat([starts, total]).to(torch.int32)
    max_length = int(cu_seq_lens.diff().max())
    return Flattened(
        input_ids=batch.input_ids[kept][None],
        position_ids=position_ids[None],
        labels=batch.labels[kept][None],
        kept=kept,
        attention_kwargs={
            "cu_seq_lens_q": cu_seq_lens,
            "cu_seq_lens_k": cu_seq_lens,
            "max_length_q": max_length,
            "max_length_k": max_length,
        },
    )


def block_causal_mask(segments: torch.Tensor, implementation: str, dtype: torch.dtype):
    """(B, 1, L, L): a token sees earlier tokens of its own row (padding sees padding), as bool
    for sdpa and as an additive float mask for eager; None for flash-attention (see ``flatten``)."""
    if uses_flash_attention(implementation):
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
    """The model's logits for a batch (B, L, V), rows kept apart; under flash-attention the
    padding's logits are 0 (padding is never run)."""
    if uses_flash_attention(implementation):
        flat = flatten(batch)
        flat_logits = flat.forward_logits(model)
        logits = flat_logits.new_zeros(*batch.input_ids.shape, flat_logits.shape[-1])
        logits[flat.kept] = flat_logits[0]
        return logits
    dtype = next(model.parameters()).dtype
    mask = block_causal_mask(batch.segments, implementation, dtype)
    return model(
        input_ids=batch.input_ids,
        position_ids=batch.position_ids,
        attention_mask=mask,
        use_cache=False,
    ).logits


def batch_loss(
    model, batch: Batch, implementation: str, loss: LossSettings = CHUNKED
) -> TokenLosses:
    """The batch's per-token losses (B, L-1) and their sum, rows kept apart under every attention,
    computed as ``loss`` says (chunked by default: no (B, L, V) fp32 copy of the logits).

    Under flash-attention the losses are taken on the flattened sequence and put back at their
    (B, L-1) places. Where the flat sequence runs from one row into the next, the target is a row's
    first token, whose label is -100: no loss crosses rows."""
    if not uses_flash_attention(implementation):
        dtype = next(model.parameters()).dtype
        inputs = {
            "input_ids": batch.input_ids,
            "position_ids": batch.position_ids,
            "attention_mask": block_causal_mask(batch.segments, implementation, dtype),
            "use_cache": False,
        }
        return model_token_losses(model, inputs, batch.labels, loss)
    flat = flatten(batch)
    inputs = {
        "input_ids": flat.input_ids,
        "position_ids": flat.position_ids,
        "use_cache": False,
        **flat.attention_kwargs,
    }
    flat_out = model_token_losses(model, inputs, flat.labels, loss)
    sequence, position = flat.kept.nonzero(as_tuple=True)
    sequence, position = sequence[1:], position[1:]  # the targets of the flat losses
    has_context = position > 0  # a sequence's first token is no target in the packed batch
    losses = flat_out.losses.new_zeros(batch.labels.shape[0], batch.labels.shape[1] - 1)
    losses[sequence[has_context], position[has_context] - 1] = flat_out.losses[0][has_context]
    return TokenLosses(losses, batch.labels[:, 1:] != IGNORE, flat_out.total)


def batch_token_losses(
    model, batch: Batch, implementation: str, loss: LossSettings = CHUNKED
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_loss``'s per-token losses (B, L-1), differentiable, and the trained mask."""
    out = batch_loss(model, batch, implementation, loss)
    return out.losses, out.trained
