"""The RandAR transformer: a LLaMA-style decoder that reads "where next" before "what".

Every image token T(p) is preceded by a position-instruction token P(p): one shared learned vector,
rotated with the 2D RoPE of cell p. So the model can be asked for any cell in any order. Parameter names
follow the official checkpoints exactly; `load_strict` relies on that.

A sequence is described slot by slot with three integer tensors (kind, value, cell), so that teacher
forcing, prefilling known tokens and incremental decoding all go through one `embed` and one `forward`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoint import Pretrained
from .config import GPTConfig
from . import kernels
from .rope import grid_rope

# Slot kinds. Class slots carry cell -1 (RoPE row 0, all zeros). A BLANK slot is a token slot whose
# input vector is zero: how spatial guidance hides a known token while keeping its position.
CLASS, POSITION, TOKEN, BLANK = 0, 1, 2, 3


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return kernels.rms_norm(x, self.weight, self.eps)


class KVCache:
    """Pre-allocated keys/values for every layer: [n_layer, B, H, max_len, head_dim].

    Static storage is what lets a decoding step be replayed as a CUDA graph: nothing is reallocated,
    slots are written by index.
    """

    def __init__(self, config: GPTConfig, batch: int, max_len: int, device: torch.device | str, dtype: torch.dtype) -> None:
        shape = (config.n_layer, batch, config.n_head, max_len, config.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.max_len = max_len

    @property
    def batch(self) -> int:
        return self.k.shape[1]


class Attention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.head_dim = config.n_head, config.head_dim
        self.wqkv = nn.Linear(config.dim, 3 * config.dim, bias=False)
        self.wo = nn.Linear(config.dim, config.dim, bias=False)

    def forward(
        self,
        x: Tensor,
        freqs: Tensor,
        cache: tuple[Tensor, Tensor] | None = None,
        slots: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """Without a cache: plain causal attention. With one: write k/v at `slots`, attend under `mask`."""
        B, T, _ = x.shape
        q, k, v = self.wqkv(x).view(B, T, 3, self.n_head, self.head_dim).unbind(2)
        q, k = kernels.rope(q, freqs), kernels.rope(k, freqs)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            cache_k, cache_v = cache
            cache_k.index_copy_(2, slots, k)
            cache_v.index_copy_(2, slots, v)
            kv_len = mask.shape[-1]
            y = F.scaled_dot_product_attention(q, cache_k[:, :, :kv_len], cache_v[:, :, :kv_len], attn_mask=mask)
        return self.wo(y.transpose(1, 2).reshape(B, T, -1))


class FeedForward(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.w1 = nn.Linear(config.dim, config.hidden_dim, bias=False)
        self.w3 = nn.Linear(config.dim, config.hidden_dim, bias=False)
        self.w2 = nn.Linear(config.hidden_dim, config.dim, bias=False)
        self.w13: Tensor | None = None  # set by fuse() for inference

    def forward(self, x: Tensor) -> Tensor:
        if self.fused:
            a, b = F.linear(x, self.w13).chunk(2, dim=-1)
            return self.w2(kernels.swiglu(a, b))
        return self.w2(kernels.swiglu(self.w1(x), self.w3(x)))

    @property
    def fused(self) -> bool:
        """w13 is set and w1/w3 are still its two halves: `module.to(dtype or device)` replaces the
        parameters and leaves the plain attribute w13 behind, and then it must not be used."""
        w13, w1, w3 = self.w13, self.w1.weight, self.w3.weight
        return (w13 is not None and w1.data_ptr() == w13.data_ptr()
                and w3.data_ptr() == w13.data_ptr() + w1.numel() * w1.element_size())

    def fuse(self) -> None:
        """One [w1; w3] matmul instead of two; w1/w3 become views of it, so no memory is duplicated
        and the state dict keeps its official keys. Built outside inference mode: a fast decode may fuse on
        first use inside `torch.inference_mode()`, and the model must stay usable with autograd after."""
        with torch.inference_mode(False), torch.no_grad():
            w13 = torch.cat([self.w1.weight.data, self.w3.weight.data])
        hidden = self.w1.weight.shape[0]
        self.w1.weight.data, self.w3.weight.data = w13[:hidden], w13[hidden:]
        self.w13 = w13


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.attention_norm = RMSNorm(config.dim, config.norm_eps)
        self.attention = Attention(config)
        self.ffn_norm = RMSNorm(config.dim, config.norm_eps)
        self.feed_forward = FeedForward(config)

    def forward(self, x: Tensor, freqs: Tensor, cache=None, slots=None, mask=None) -> Tensor:
        h = x + self.attention(self.attention_norm(x), freqs, cache, slots, mask)
        return h + self.feed_forward(self.ffn_norm(h))


class ClassEmbedding(nn.Module):
    """Row `num_classes` is the null class, used for the unconditional half of CFG."""

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + 1, dim)

    def forward(self, labels: Tensor) -> Tensor:
        return self.embedding_table(labels)


class RandARTransformer(Pretrained, nn.Module):
    config_section = "gpt"

    @classmethod
    def config_class(cls) -> type:
        return GPTConfig

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.cls_embedding = ClassEmbedding(config.num_classes, config.dim)
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.dim)
        self.pos_instruct_embeddings = nn.Parameter(torch.zeros(1, config.dim))
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm = RMSNorm(config.dim, config.norm_eps)
        self.output = nn.Linear(config.dim, config.vocab_size, bias=False)
        g = config.grid_size
        # Kept out of the buffers so that casting the model to bf16 never casts the angles: the
        # reference computes rotations from float32 tables.
        self._rope = grid_rope(g, g, config.head_dim, config.rope_base)

    @property
    def rope(self) -> Tensor:
        """The native grid's RoPE table (float32), on the model's device."""
        device = self.tok_embeddings.weight.device
        if self._rope.device != device:
            self._rope = self._rope.to(device)
        return self._rope

    @property
    def null_class(self) -> int:
        return self.config.num_classes

    def init_weights(self, std: float = 0.02, zero_output: bool = True) -> None:
        """Fresh weights: LLaMA-style normal init. Training zeroes the output head (a uniform start);
        benchmarks keep it random so that logits are not all tied."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=std)
        nn.init.normal_(self.pos_instruct_embeddings, std=std)
        if zero_output:
            nn.init.zeros_(self.output.weight)

    # ---- embedding -------------------------------------------------------------------------------
    def position_instructions(self, rope: Tensor) -> Tensor:
        """P(c) for every row of a RoPE table: the shared vector rotated per head. [rows, dim]."""
        cfg = self.config
        p = self.pos_instruct_embeddings.view(1, 1, cfg.n_head, cfg.head_dim).expand(1, rope.shape[0], -1, -1)
        return kernels.rope(p, rope.unsqueeze(0).to(p.device)).reshape(rope.shape[0], cfg.dim)

    def embed(
        self, kind: Tensor, value: Tensor, cell: Tensor, rope: Tensor | None = None, pos_table: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Slots -> (input vectors [B, T, dim], RoPE angles [B, T, head_dim/2, 2]).

        `pos_table` = position_instructions(rope), precomputed by callers that embed many times."""
        rope = self.rope if rope is None else rope
        row = cell + 1
        freqs = rope[row]
        cls = self.cls_embedding(value.clamp(0, self.config.num_classes))
        tok = self.tok_embeddings(value.clamp(0, self.config.vocab_size - 1))
        pos = (self.position_instructions(rope) if pos_table is None else pos_table)[row]
        k = kind.unsqueeze(-1)
        x = torch.where(k == CLASS, cls, torch.where(k == POSITION, pos, torch.where(k == BLANK, 0.0, tok)))
        return x, freqs

    # ---- forward ---------------------------------------------------------------------------------
    def forward_hidden(
        self,
        x: Tensor,
        freqs: Tensor,
        cache: KVCache | None = None,
        slots: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """Runs the blocks and the final norm. With a cache, `slots` [T] are the absolute positions of
        the inputs and `mask` [T, kv_len] (True = may attend) limits what they see."""
        for i, layer in enumerate(self.layers):
            kv = None if cache is None else (cache.k[i], cache.v[i])
            x = layer(x, freqs, kv, slots, mask)
        return self.norm(x)

    def fuse_for_inference(self) -> None:
        for layer in self.layers:
            if not layer.feed_forward.fused:
                layer.feed_forward.fuse()

    def logits(self, h: Tensor) -> Tensor:
        return self.output(h).float()

    def forward(self, tokens: Tensor, cond: Tensor, order: Tensor, rope: Tensor | None = None) -> Tensor:
        """Teacher forcing: tokens [B, N] in raster order, class ids [B], orders [B, N].

        Returns logits [B, N, vocab] in GENERATION order: row k predicts the token at order[k].
        """
        kind, value, cell = teacher_forcing_slots(tokens, cond, order)
        x, freqs = self.embed(kind, value, cell, rope)
        h = self.forward_hidden(x, freqs)
        return self.logits(h[:, 1::2])


def interleave_pairs(cells: Tensor, tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(P(c0), T(t0), P(c1), T(t1), ...) slots for cells/tokens [B, n] -> three [B, 2n] tensors."""
    B, n = cells.shape
    kind = torch.full((B, 2 * n), TOKEN, dtype=torch.long, device=cells.device)  # runs once per decoding step:
    kind[:, 0::2] = POSITION  # strided writes instead of a host list, repeat and interleave
    value = torch.zeros_like(kind)
    value[:, 1::2] = tokens
    cell = cells.unsqueeze(-1).expand(B, n, 2).reshape(B, 2 * n)
    return kind, value, cell


def class_slots(cond: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    B = cond.shape[0]
    full = torch.full((B, 1), CLASS, device=cond.device, dtype=torch.long)
    return full, cond.view(B, 1).long(), torch.full((B, 1), -1, device=cond.device, dtype=torch.long)


def cat_slots(*parts: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    return tuple(torch.cat([p[i] for p in parts], dim=1) for i in range(3))  # type: ignore[return-value]


def teacher_forcing_slots(tokens: Tensor, cond: Tensor, order: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """[cls, P(o0), T(o0), ..., P(o_{N-1})]: the training layout (the last token is never an input)."""
    ordered = tokens.gather(1, order)
    kind, value, cell = cat_slots(class_slots(cond), interleave_pairs(order, ordered))
    return kind[:, :-1], value[:, :-1], cell[:, :-1]
