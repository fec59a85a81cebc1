"""One decoding step on the CPU with as few tensor operations as the arithmetic allows.

Why a separate forward: at batch 1 the default model's step is a few dozen small matrix products, and in
eager PyTorch the hundreds of small operations around them (three embedding lookups and a `where` chain,
two rotary embeddings of ~10 ops each, index copies, mask building) cost about as much as the products,
which MKL itself runs slowly at a few rows. This forward computes the same function as `RandARTransformer.embed` + `forward_hidden`
+ `logits` with the model's own weights, but

- embeds every slot with one lookup into a table of [class rows; token rows; position instructions; zero],
- rotates q and k together as one complex product with a precomputed table (the reference's float32
  arithmetic: (x0 cos - x1 sin, x1 cos + x0 sin) is what complex multiplication computes),
- writes keys and values into the static cache by slice and attends to the filled part only, under a
  precomputed causal mask (a step's queries see the cache and the earlier slots of their own step),
- adds each block's residual inside the output products (oneDNN's post-op: the same float32 sums),
- runs the last block's attention output and MLP only for the step's queries: only their logits are read,
- multiplies by weights pre-packed for oneDNN (`PackedWeights`), the output head's too: on small-row products
  MKL re-packs the weight on every call, which here costs more than the multiply (about 1.5x on the whole
  step's products; 2x on the head's [queries x 1024] product). bfloat16 weights are packed only where the
  processor and oneDNN can (`randar.runtime.cpu_features.packs_bfloat16`: AVX-512 BW/VL/DQ or AVX-NE-CONVERT);
  elsewhere the step multiplies with the unpacked bfloat16 weights, the plain path's arithmetic.

Rounding can differ from the reference path in the last bits (oneDNN's products block the sums
differently from MKL's), which leaves greedy float32 tokens identical (tests/test_engine.py checks it).
"""
from __future__ import annotations

import weakref
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..runtime.cpu_features import packs_bfloat16
from ..model import kernels
from ..model.transformer import BLANK, CLASS, POSITION, KVCache, RandARTransformer


PACK_LIMIT_BYTES = 512 * 2**20  # larger models multiply with their own weights: a packed copy doubles memory


def onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")


def can_pack(dtype: torch.dtype) -> bool:
    """Whether weights of `dtype` may be pre-packed here: float32 wherever oneDNN runs, bfloat16 only where
    the processor supports oneDNN's bfloat16 packing (it raises elsewhere: issue 29)."""
    if not onednn_available():
        return False
    return dtype == torch.float32 or (dtype == torch.bfloat16 and packs_bfloat16().ok)


class PackedWeights:
    """The model's linear weights in oneDNN's blocked layout, re-packed whenever a weight changes in place
    (an optimizer step while a training run samples with the fast path): `current` compares version
    counters once per request."""

    def __init__(self, weights: list[Tensor]) -> None:
        self.weights = weights
        self.versions: list[int] = []
        self.packed: list[Tensor] = []

    def current(self) -> list[Tensor]:
        versions = [w._version for w in self.weights]
        if versions != self.versions:
            with torch.inference_mode():
                self.packed = [torch.ops.mkldnn._reorder_linear_weight(w.detach(), 16) for w in self.weights]
            self.versions = versions
        return self.packed


_PACKED: "weakref.WeakKeyDictionary[RandARTransformer, PackedWeights]" = weakref.WeakKeyDictionary()


def has_hooks(modules: Iterable[torch.nn.Module]) -> bool:
    from torch.nn.modules import module as nn_module

    if nn_module._global_forward_hooks or nn_module._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in modules)


def blocks_have_hooks(model: RandARTransformer) -> bool:
    """Hooks on the transformer blocks (or global module hooks) expect the blocks to be called as modules,
    which the lean step does not do: such a model decodes through the modules. Hooks on the final norm or
    the output head only make the lean step call those two as modules (`CpuStep.head`)."""
    return has_hooks(model.layers.modules())


def onednn_linear(x: Tensor, packed: Tensor) -> Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")


def onednn_linear_add(x: Tensor, packed: Tensor, residual: Tensor) -> Tensor:
    """residual + x W^T in one call (oneDNN adds to the float32 result: the same numbers as two calls)."""
    return torch.ops.mkldnn._linear_pointwise.binary(x, residual, packed, None, "add")


def linear_add(x: Tensor, weight: Tensor, residual: Tensor) -> Tensor:
    return residual + F.linear(x, weight)


class CpuStep:
    """The lean forward over a static cache; `set_rope` once per request (it also refreshes the packed
    weights), then call per step."""

    def __init__(self, model: RandARTransformer, cache: KVCache) -> None:
        cfg = model.config
        model.fuse_for_inference()  # one [w1; w3] product per MLP; the state dict keeps its official keys
        self._model = weakref.ref(model)  # held by the per-model decoder cache: must not keep the model alive
        self.cache = cache
        self.n_head, self.head_dim, self.dim = cfg.n_head, cfg.head_dim, cfg.dim
        self.eps = cfg.norm_eps
        self.norms = [(b.attention_norm.weight, b.ffn_norm.weight) for b in model.layers]
        weights = [w for b in model.layers for w in (b.attention.wqkv.weight, b.attention.wo.weight,
                                                      b.feed_forward.w13, b.feed_forward.w2.weight)]
        weights.append(model.output.weight)  # last: the output head
        size = sum(w.numel() * w.element_size() for w in weights)
        self.packed: PackedWeights | None = None
        if size <= PACK_LIMIT_BYTES and can_pack(cache.k.dtype):
            self.packed = _PACKED.get(model)
            if self.packed is None or any(a is not b for a, b in zip(self.packed.weights, weights)):
                self.packed = _PACKED[model] = PackedWeights(weights)
        self.weights = weights
        self.linear: Callable[[Tensor, Tensor], Tensor] = onednn_linear if self.packed else F.linear
        self.linear_add: Callable[[Tensor, Tensor, Tensor], Tensor] = onednn_linear_add if self.packed else linear_add
        self.num_classes, self.vocab = cfg.num_classes, cfg.vocab_size
        self.token_offset = cfg.num_classes + 1
        self.position_offset = self.token_offset + cfg.vocab_size
        self.table: Tensor | None = None
        self.rotations = torch.empty(0, dtype=torch.complex64)
        n = cache.max_len
        self.causal = torch.ones(n, n, dtype=torch.bool, device=cache.k.device).tril_()  # True = may attend

    @property
    def model(self) -> RandARTransformer:
        model = self._model()
        assert model is not None, "the model of this step was freed"
        return model

    def set_rope(self, rope: Tensor, pos_table: Tensor) -> None:
        """The embedding table and the rotation tables of this request's grid."""
        m = self.model
        zero = torch.zeros(1, self.dim, device=pos_table.device, dtype=pos_table.dtype)
        self.table = torch.cat([m.cls_embedding.embedding_table.weight, m.tok_embeddings.weight,
                                pos_table[: rope.shape[0]], zero])
        self.zero_row = self.table.shape[0] - 1
        self.rotations = torch.view_as_complex(rope.float().contiguous())  # [rows, Dh/2]: cos + i sin
        if self.packed is not None:
            self.weights = self.packed.current()

    def embed_rows(self, kind: Tensor, value: Tensor, cell: Tensor) -> Tensor:
        """Row of the joint table for every slot (the same vectors `RandARTransformer.embed` picks)."""
        cls_row = value.clamp(0, self.num_classes)
        tok_row = value.clamp(0, self.vocab - 1) + self.token_offset
        pos_row = cell + (1 + self.position_offset)
        rows = torch.where(kind == CLASS, cls_row, torch.where(kind == POSITION, pos_row, tok_row))
        return rows.masked_fill_(kind == BLANK, self.zero_row)

    def __call__(self, kind: Tensor, value: Tensor, cell: Tensor, start: int, n_queries: int) -> Tensor:
        """Logits [B, n_queries, vocab] (float32) of a step whose slots occupy cache slots start..start+T-1."""
        assert self.table is not None, "set_rope first"
        B, T = kind.shape
        H, Dh = self.n_head, self.head_dim
        x = F.embedding(self.embed_rows(kind, value, cell), self.table)
        rotations = self.rotations[cell + 1].unsqueeze(2)  # [B, T, 1, Dh/2], broadcast over heads
        end = start + T
        mask = self.causal[start:end, :end]
        last = len(self.norms) - 1
        linear, linear_add, weights = self.linear, self.linear_add, self.weights
        for i, (norm1, norm2) in enumerate(self.norms):
            wqkv, wo, w13, w2 = weights[4 * i: 4 * i + 4]
            qkv = linear(kernels.rms_norm(x, norm1, self.eps), wqkv).view(B, T, 3 * H, Dh)
            qk = rotate(qkv[:, :, : 2 * H], rotations)
            q, k, v = qk[:, :, :H], qk[:, :, H:], qkv[:, :, 2 * H:]
            keys, values = self.cache.k[i], self.cache.v[i]
            keys[:, :, start:end].copy_(k.transpose(1, 2))
            values[:, :, start:end].copy_(v.transpose(1, 2))
            if i == last:  # only the queries' rows are read from here on
                x, q, mask = x[:, T - n_queries:], q[:, T - n_queries:], mask[T - n_queries:]
            y = F.scaled_dot_product_attention(q.transpose(1, 2), keys[:, :, :end], values[:, :, :end], attn_mask=mask)
            x = linear_add(y.transpose(1, 2).reshape(B, -1, self.dim), wo, x)
            a, b = linear(kernels.rms_norm(x, norm2, self.eps), w13).chunk(2, dim=-1)
            x = linear_add(kernels.swiglu(a, b), w2, x)
        return self.head(x)

    def head(self, x: Tensor) -> Tensor:
        """Final norm and output head; called as modules when they carry hooks, so that hooks see every step."""
        m = self.model
        if has_hooks((m.norm, m.output)):
            return m.logits(m.norm(x))
        return self.linear(kernels.rms_norm(x, m.norm.weight, m.norm.eps), self.weights[-1]).float()


def rotate(x: Tensor, rotations: Tensor) -> Tensor:
    """`kernels.rope` as one complex product: pairs (x0, x1) are x0 + i x1, rotations are cos + i sin."""
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
    return torch.view_as_real(pairs * rotations).flatten(3).type_as(x)
