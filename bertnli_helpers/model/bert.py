"""BERT in one readable file: a config, the encoder, the ``<cls>`` pooler and the NLI classifier.

One ``BERTEncoder`` covers two flavours that differ in three small ways:

============================  =====================  ===========================
                              the book (``"book"``)   Hugging Face (``"hf"``)
============================  =====================  ===========================
feed-forward activation       ReLU                   GELU
LayerNorm + dropout on input  no                     yes
LayerNorm epsilon             1e-5                   1e-12
============================  =====================  ===========================

Everything else is shared: learned token, segment and position embeddings summed; post-LN
Transformer blocks (``x = norm(x + dropout(sublayer(x)))``); attention through
``torch.nn.functional.scaled_dot_product_attention`` with the padding mask built from the valid
lengths, so padded positions are never attended to.

Two CPU training paths are written out by hand because PyTorch's are slow there (see
``benchmarks/README.md``, "where a step goes"): dropout draws its mask from 64-bit random words,
four elements each, instead of one Bernoulli draw per element; and when a backward pass will
run, attention is computed explicitly (scores and softmax in fp32, as PyTorch's own CPU path
does) instead of through SDPA, whose CPU training paths cost about twice as much for short
SNLI pairs. Inference and every GPU keep SDPA and ``F.dropout``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from bertnli_helpers.errors import InputTooLongError
from bertnli_helpers.model.inference import evaluating

Flavour = Literal["book", "hf"]


@dataclass
class BertConfig:
    """Sizes and flavour of a BERT encoder (``bert.small`` is the default size)."""

    vocab_size: int
    hidden_size: int = 256
    num_layers: int = 2
    num_heads: int = 4
    ffn_size: int = 512
    max_len: int = 512  # rows of the position table: the longest input the model accepts
    type_vocab_size: int = 2
    dropout: float = 0.1
    attention_dropout: float | None = None  # None: same as dropout
    flavour: Flavour = "book"
    layer_norm_eps: float | None = None  # None: the flavour's default

    def __post_init__(self) -> None:
        if self.flavour not in ("book", "hf"):
            raise ValueError(f"flavour must be 'book' or 'hf', not {self.flavour!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
            )
        if self.attention_dropout is None:
            self.attention_dropout = self.dropout
        if self.layer_norm_eps is None:
            self.layer_norm_eps = 1e-5 if self.flavour == "book" else 1e-12

    def to_dict(self) -> dict:
        return asdict(self)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout``, with a cheaper mask on the CPU: keep each element with probability
    ``1 - p`` (to 1/32768), scaled by ``1 / (1 - p)`` rounded to ``x``'s dtype, as
    ``F.dropout``'s mask is; the backward pass is one multiplication by that mask."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training=True)
    scale = torch.full((), 1.0 / (1.0 - p), dtype=x.dtype)
    return x * (_keep_mask(x.shape, p) * scale)


def _keep_mask(shape: torch.Size, p: float) -> torch.Tensor:
    """Bernoulli(1 - p) booleans from 15 random bits per element: one 64-bit draw of the CPU
    generator covers four elements, where ``bernoulli_`` draws one number per element."""
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_()  # 63 random bits each
    lanes = words.view(torch.int16)[:n].view(shape) & 0x7FFF  # uniform on [0, 32768)
    return lanes >= round(p * 32768)


class Dropout(nn.Module):
    """``nn.Dropout`` through :func:`dropout` (no parameters: checkpoints are unchanged)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def explicit_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
    dropout_p: float, training: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention written out: ``(context, weights)``. Scores and softmax run in fp32
    even under autocast (short rows, so it is cheap); the weights meet ``v`` in ``v``'s dtype."""
    fp32 = {"dtype": torch.float32, "memory_format": torch.contiguous_format}  # bmm-ready
    with torch.autocast(q.device.type, enabled=False):
        scores = q.to(**fp32) @ k.transpose(-2, -1).to(**fp32) * (1.0 / math.sqrt(q.shape[-1]))
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=-1)
    dropped = dropout(weights.to(v.dtype), dropout_p, training)
    return dropped @ v, weights


def padding_mask(valid_lens: torch.Tensor | None, seq_len: int) -> torch.Tensor | None:
    """Boolean mask ``(batch, 1, 1, seq)``, True where a key may be attended to.

    Returns None when nothing is padded, which lets attention use its fastest kernels.
    """
    if valid_lens is None:
        return None
    keep = torch.arange(seq_len, device=valid_lens.device)[None, :] < valid_lens[:, None]
    if bool(keep.all()):
        return None
    return keep[:, None, None, :]


def masked_mean(encoded: torch.Tensor, valid_lens: torch.Tensor | None) -> torch.Tensor:
    """Mean pooling: each row's states ``(batch, seq, hidden)`` averaged over its first
    ``valid_lens`` ``(batch,)`` positions (None: all), so padding never counts: ``(batch, hidden)``.
    """
    return _masked_mean(encoded, _valid_positions(encoded, valid_lens))


class SelfAttention(nn.Module):
    """Multi-head self-attention with separate query/key/value/output projections."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        h = config.hidden_size
        self.num_heads = config.num_heads
        self.dropout_p = config.attention_dropout
        self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)
        self.out = nn.Linear(h, h)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, hidden = x.shape
        return x.view(batch, seq, self.num_heads, hidden // self.num_heads).transpose(1, 2)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        weights = None
        # explicit: for attention maps (the analysis notebook), and on the CPU when a backward
        # pass will follow (faster there than SDPA's CPU training paths)
        cpu_backward = x.device.type == "cpu" and torch.is_grad_enabled() and q.requires_grad
        if need_weights or cpu_backward:
            context, weights = explicit_attention(q, k, v, mask, self.dropout_p, self.training)
        else:
            dropout_p = self.dropout_p if self.training else 0.0
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                                     dropout_p=dropout_p)
        batch, _, seq, _ = context.shape
        return self.out(context.transpose(1, 2).reshape(batch, seq, -1)), weights


class FeedForward(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense1 = nn.Linear(config.hidden_size, config.ffn_size)
        self.dense2 = nn.Linear(config.ffn_size, config.hidden_size)
        self.activation = nn.ReLU() if config.flavour == "book" else nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense2(self.activation(self.dense1(x)))


class EncoderBlock(nn.Module):
    """Post-LN Transformer block, as in the original BERT and the book."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = SelfAttention(config)
        self.norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn = FeedForward(config)
        self.norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.dropout)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attention(x, mask, need_weights)
        x = self.norm1(x + self.dropout(attended))
        return self.norm2(x + self.dropout(self.ffn(x))), weights


class BERTEncoder(nn.Module):
    """Embeddings + blocks: ``(tokens, segments, valid_lens) -> (batch, seq, hidden)``."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden_size
        self.token_embedding = nn.Embedding(config.vocab_size, h)
        self.segment_embedding = nn.Embedding(config.type_vocab_size, h)
        self.pos_embedding = nn.Parameter(torch.zeros(config.max_len, h))
        hf = config.flavour == "hf"
        self.embed_norm = nn.LayerNorm(h, eps=config.layer_norm_eps) if hf else nn.Identity()
        self.embed_dropout = Dropout(config.dropout) if hf else nn.Identity()
        self.blocks = nn.ModuleList(EncoderBlock(config) for _ in range(config.num_layers))

    def embed(self, tokens: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
        seq_len = tokens.shape[1]
        if seq_len > self.config.max_len:
            raise InputTooLongError(
                f"input of {seq_len} tokens is longer than the model's position table "
                f"({self.config.max_len}); truncate pairs to max_len <= {self.config.max_len}"
            )
        x = self.token_embedding(tokens) + self.segment_embedding(segments)
        x = x + self.pos_embedding[:seq_len]
        return self.embed_dropout(self.embed_norm(x))

    def forward(
        self, tokens: torch.Tensor, segments: torch.Tensor, valid_lens: torch.Tensor | None = None
    ) -> torch.Tensor:
        mask = padding_mask(valid_lens, tokens.shape[1])
        x = self.embed(tokens, segments)
        for block in self.blocks:
            x, _ = block(x, mask)
        return x

    @torch.no_grad()
    def attention_maps(
        self, tokens: torch.Tensor, segments: torch.Tensor, valid_lens: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Attention weights of every layer and head: ``(layers, batch, heads, seq, seq)``.

        Computed in eval mode (no dropout), whatever mode the model is in.
        """
        maps = []
        with evaluating(self):
            mask = padding_mask(valid_lens, tokens.shape[1])
            x = self.embed(tokens, segments)
            for block in self.blocks:
                x, weights = block(x, mask, need_weights=True)
                maps.append(weights)
        return torch.stack(maps)


def init_bert_weights(module: nn.Module, std: float = 0.02) -> None:
    """BERT's initialisation: normal(0, 0.02) weights, zero biases, unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for p in module.parameters(recurse=False):
        nn.init.normal_(p, std=std)
    if isinstance(module, BERTEncoder):
        nn.init.normal_(module.pos_embedding, std=std)


class PretrainedBERT(nn.Module):
    """A pretrained encoder and its ``<cls>`` pooler (``hidden``: Linear + Tanh), as in the book.

    The pretraining heads (masked LM, next-sentence) are not kept: fine-tuning never uses them.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = BERTEncoder(config)
        self.hidden = nn.Sequential(nn.Linear(config.hidden_size, config.hidden_size), nn.Tanh())
        init_bert_weights(self)

    def forward(
        self, tokens: torch.Tensor, segments: torch.Tensor, valid_lens: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = self.encoder(tokens, segments, valid_lens)
        return encoded, self.hidden(encoded[:, 0, :])


class PoolingHead(nn.Module):
    """Turns the encoder's states into the features the classifier's MLP reads.

    ``forward(encoded, valid_lens, segments)`` takes the states ``(batch, seq, hidden)``, the valid
    lengths ``(batch,)`` (None: nothing padded) and the segment ids ``(batch, seq)``, and returns
    ``(batch, width)``. A head as wide as the encoder is read by the pretrained pooler; any other
    width gets a new hidden layer in ``BERTClassifier``, since the pretrained one cannot read it.
    """

    vectors = 1  # how many hidden-size vectors the features are made of

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.width = self.vectors * hidden_size


class CLSPooling(PoolingHead):
    """The book's: the ``<cls>`` state, the one the pretrained pooler was trained to read."""

    def forward(self, encoded: torch.Tensor, valid_lens: torch.Tensor | None,
                segments: torch.Tensor | None) -> torch.Tensor:
        return encoded[:, 0, :]


class MeanPooling(PoolingHead):
    """The mean of all valid token states, for encoders trained as sentence embedders with mean
    pooling (such as MiniLM), whose ``<cls>`` state never learned to summarise."""

    def forward(self, encoded: torch.Tensor, valid_lens: torch.Tensor | None,
                segments: torch.Tensor | None) -> torch.Tensor:
        return masked_mean(encoded, valid_lens)


class PairPooling(PoolingHead):
    """The mean of the premise's tokens ``u`` and of the hypothesis's ``v``, compared as
    Sentence-BERT compares sentences: ``[u, v, |u - v|, u * v]``."""

    vectors = 4

    def forward(self, encoded: torch.Tensor, valid_lens: torch.Tensor | None,
                segments: torch.Tensor | None) -> torch.Tensor:
        if segments is None:
            raise ValueError("pooling='pair' needs the segment ids to tell premise from hypothesis")
        valid = _valid_positions(encoded, valid_lens)
        u = _masked_mean(encoded, valid & (segments == 0))  # <cls> premise <sep>
        v = _masked_mean(encoded, valid & (segments == 1))  # hypothesis <sep>
        return torch.cat([u, v, (u - v).abs(), u * v], dim=-1)


# name -> head class (or any factory taking the encoder's hidden size); the CLI offers these names.
POOLING_HEADS: dict[str, Callable[[int], PoolingHead]] = {
    "cls": CLSPooling,
    "mean": MeanPooling,
    "pair": PairPooling,
}


def pooling_head(name: str, hidden_size: int) -> PoolingHead:
    """The head registered as ``name``, built for an encoder of ``hidden_size``."""
    if name not in POOLING_HEADS:
        known = ", ".join(POOLING_HEADS)
        raise ValueError(f"pooling must be one of the registered heads ({known}), not {name!r}")
    return POOLING_HEADS[name](hidden_size)


class BERTClassifier(nn.Module):
    """The book's NLI model: pretrained encoder and pooler, then a new ``Linear(hidden, 3)``.

    ``freeze_encoder=True`` keeps the encoder's weights fixed and trains only the MLP on top,
    the cheap baseline that full fine-tuning is compared against. ``pooling`` names the head in
    ``POOLING_HEADS`` that makes the features the MLP classifies: ``"cls"`` (the book's),
    ``"mean"`` or ``"pair"``. A head wider than the encoder (``"pair"``: ``4 * hidden``) is read
    by a new ``Linear(width, hidden)`` + Tanh instead of the pretrained pooler.
    """

    def __init__(
        self,
        bert: PretrainedBERT,
        num_classes: int = 3,
        *,
        freeze_encoder: bool = False,
        pooling: str = "cls",
    ) -> None:
        super().__init__()
        hidden_size = bert.config.hidden_size
        self.config = bert.config
        self.pooling = pooling
        self.encoder = bert.encoder
        self.pooling_head = pooling_head(pooling, hidden_size)
        self.hidden = _pooler_for(bert, self.pooling_head.width)
        self.output = nn.Linear(hidden_size, num_classes)
        init_bert_weights(self.output)
        if freeze_encoder:
            self.encoder.requires_grad_(False)

    def pool(
        self,
        encoded: torch.Tensor,
        valid_lens: torch.Tensor | None,
        segments: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The features the MLP classifies (see ``POOLING_HEADS``)."""
        return self.pooling_head(encoded, valid_lens, segments)

    @property
    def encoder_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.encoder.parameters())

    def forward(
        self, inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]
    ) -> torch.Tensor:
        tokens, segments, valid_lens = inputs
        encoded = self.encoder(tokens, segments, valid_lens)
        return self.output(self.hidden(self.pool(encoded, valid_lens, segments)))


def _pooler_for(bert: PretrainedBERT, width: int) -> nn.Module:
    """The pretrained pooler when it can read ``width`` features, else a new Linear + Tanh."""
    hidden_size = bert.config.hidden_size
    if width == hidden_size:
        return bert.hidden
    pooler = nn.Sequential(nn.Linear(width, hidden_size), nn.Tanh())
    init_bert_weights(pooler[0])
    return pooler


def _valid_positions(encoded: torch.Tensor, valid_lens: torch.Tensor | None) -> torch.Tensor:
    """``(batch, seq)``, True at the positions that are not padding."""
    if valid_lens is None:
        return torch.ones(encoded.shape[:2], dtype=torch.bool, device=encoded.device)
    positions = torch.arange(encoded.shape[1], device=encoded.device)[None, :]
    return positions < valid_lens[:, None]


def _masked_mean(encoded: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean of the token states where ``keep`` is true (a zero vector where it never is)."""
    weights = keep.unsqueeze(-1).to(encoded.dtype)
    return (encoded * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
