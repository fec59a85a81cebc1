"""The fast decoding path: static shapes, a persistent cache, and one CUDA graph per step shape.

Why it is fast: the parallel-decoding schedule is known before decoding starts, so every step's input
length is known, and a step can be captured once as a CUDA graph and replayed with new inputs copied
into its static buffers. The KV cache is allocated once (full length, with the attention mask doing
the causal limiting), the position-instruction table is built once per request, logits are computed
only for the step's queries, and nothing in the loop waits for the GPU (no `.item()`, no host copies).
With `kernels.use_compiled()` the norms, rotary embeddings and SwiGLU are single fused kernels.

On the CPU there are no graphs: a step runs `cpu_step.CpuStep`, a lean forward over the same static
cache (one embedding lookup, both rotations at once, attention to the filled part only, the last block
only for the queries), since there the per-step cost is the number of small operations. A model whose
blocks carry hooks (counters, probes) runs the modules instead, so that the hooks see every call.
It computes the same function as `plain.decode_plain`: greedy float32 decoding gives the same tokens.
"""
from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor

from ..model.transformer import KVCache, RandARTransformer
from .cpu_step import CpuStep, blocks_have_hooks
from .loop import run_loop
from .loop_parts import Slots
from .request import DecodeRequest, StepEvent


@dataclass
class _Graph:
    graph: "torch.cuda.CUDAGraph"
    kind: Tensor
    value: Tensor
    cell: Tensor
    positions: Tensor
    logits: Tensor


class FastDecoder:
    """Holds the cache, the static buffers and the captured graphs for one (batch, length) shape.

    Re-used across requests of the same shape, so graphs are captured once per step shape per process.
    """

    def __init__(self, model: RandARTransformer, batch: int, max_len: int, use_graphs: bool | None = None) -> None:
        param = next(model.parameters())
        self._model = weakref.ref(model)  # the per-model cache (`decoder_for`) must not keep the model alive
        self.device, self.dtype = param.device, param.dtype
        self.batch, self.max_len = batch, max_len
        self.cache = KVCache(model.config, batch, max_len, self.device, self.dtype)
        self.use_graphs = self.device.type == "cuda" if use_graphs is None else use_graphs
        self.key_index = torch.arange(max_len, device=self.device)
        rows = model.rope.shape[0]
        self.rope = torch.zeros(max(rows, 1), *model.rope.shape[1:], device=self.device)
        self.pos_table = torch.zeros(self.rope.shape[0], model.config.dim, device=self.device, dtype=self.dtype)
        self.graphs: dict[tuple[int, int], _Graph] = {}
        self.pool = torch.cuda.graph_pool_handle() if self.use_graphs else None
        self.cpu_step = CpuStep(model, self.cache) if self.device.type == "cpu" else None

    @property
    def model(self) -> RandARTransformer:
        model = self._model()
        assert model is not None, "the model of this decoder was freed"
        return model

    @property
    def cache_bytes(self) -> int:
        extra = 0 if self.cpu_step is None else self.cpu_step.causal.numel() * self.cpu_step.causal.element_size()
        return 2 * self.cache.k.numel() * self.cache.k.element_size() + extra

    # ---- one forward over the static cache --------------------------------------------------------
    def _forward(self, kind: Tensor, value: Tensor, cell: Tensor, positions: Tensor, n_queries: int,
                 kv_len: int | None = None) -> Tensor:
        """`kv_len`: attend to the first kv_len slots only (eager steps know how far the cache is filled;
        a captured graph must attend to all of it, the mask hiding the unfilled part)."""
        model = self.model
        x, freqs = model.embed(kind, value, cell, self.rope, self.pos_table)
        mask = self.key_index[None, : kv_len or self.max_len] <= positions[:, None]
        h = model.forward_hidden(x, freqs, self.cache, positions, mask)
        return model.logits(h[:, -n_queries:])

    def _set_rope(self, rope: Tensor) -> None:
        if rope.shape[0] > self.rope.shape[0]:
            # A larger grid than any seen so far: rebuild the tables (graphs hold the old pointers).
            self.rope = torch.zeros(rope.shape[0], *rope.shape[1:], device=self.device)
            self.pos_table = torch.zeros(rope.shape[0], self.model.config.dim, device=self.device, dtype=self.dtype)
            self.graphs.clear()
        self.rope[: rope.shape[0]].copy_(rope)
        self.pos_table.copy_(self.model.position_instructions(self.rope))
        if self.cpu_step is not None:
            self.cpu_step.set_rope(rope, self.pos_table)

    def _graph(self, T: int, n_queries: int) -> _Graph:
        key = (T, n_queries)
        if key not in self.graphs:
            B = self.batch
            kind = torch.zeros(B, T, dtype=torch.long, device=self.device)
            value = torch.zeros_like(kind)
            cell = torch.zeros_like(kind)
            positions = torch.full((T,), self.max_len - 1, dtype=torch.long, device=self.device)
            # Warm up on a side stream (required before capture), writing only the last cache slot.
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                self._forward(kind, value, cell, positions, n_queries)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool):
                logits = self._forward(kind, value, cell, positions, n_queries)
            self.graphs[key] = _Graph(graph, kind, value, cell, positions, logits)
        return self.graphs[key]

    def step(self, slots: Slots, start: int, n_queries: int) -> Tensor:
        kind, value, cell = slots
        T = kind.shape[1]
        if not self.use_graphs:
            positions = torch.arange(start, start + T, device=self.device)
            return self._forward(kind, value, cell, positions, n_queries, kv_len=start + T)
        g = self._graph(T, n_queries)
        g.kind.copy_(kind)
        g.value.copy_(value)
        g.cell.copy_(cell)
        torch.arange(start, start + T, out=g.positions)
        g.graph.replay()
        return g.logits

    # ---- decoding -----------------------------------------------------------------------------
    def stream(self, req: DecodeRequest) -> Iterator[StepEvent]:
        req = req.to(self.device)
        self._set_rope(self.model.rope if req.rope is None else req.rope)
        lean = self.cpu_step is not None and not blocks_have_hooks(self.model)

        # The prefill has a one-off length, and look-ahead runs (randar.decoding.lookahead) a new shape at every
        # step: on a GPU both run eagerly rather than capturing a CUDA graph per shape (the CPU step takes any).
        look_ahead = req.confident or req.guess_every > 0

        def forward(batch_slots: Slots, start: int, n: int) -> Tensor:
            if lean:
                return self.cpu_step(*batch_slots, start, n)
            if start == 0 or look_ahead:
                T = batch_slots[0].shape[1]
                return self._forward(*batch_slots, torch.arange(start, start + T, device=self.device), n,
                                     kv_len=start + T)
            return self.step(batch_slots, start, n)

        return run_loop(req, self.device, self.model.null_class, forward)


_DECODERS: "weakref.WeakKeyDictionary[RandARTransformer, OrderedDict]" = weakref.WeakKeyDictionary()
CACHE_BUDGET_BYTES = 2 * 2**30  # KV caches kept alive per model, most recently used first


def decoder_for(model: RandARTransformer, batch: int, max_len: int) -> FastDecoder:
    """The cached decoder of this shape (cache length rounded up so nearby sizes share one).

    Several shapes stay alive (an app alternates native and x2 grids, batch 1 and 4): dropping the decoder
    of the other shape would throw its captured graphs away on every switch. The least recently used
    decoders go once their caches together pass CACHE_BUDGET_BYTES; the newest one always stays. They go
    with their model too: decoders hold it weakly, so an app that unloads a model frees its caches.
    """
    max_len = max(max_len, model.config.max_seq_len)
    per_model = _DECODERS.setdefault(model, OrderedDict())
    param = next(model.parameters())
    key = (batch, max_len, param.dtype, param.device)
    if key in per_model:
        per_model.move_to_end(key)
        return per_model[key]
    per_model[key] = decoder = FastDecoder(model, batch, max_len)
    while len(per_model) > 1 and sum(d.cache_bytes for d in per_model.values()) > CACHE_BUDGET_BYTES:
        per_model.popitem(last=False)
    return decoder


def decode_fast(model: RandARTransformer, req: DecodeRequest) -> Iterator[StepEvent]:
    req.validate(model)
    decoder = decoder_for(model, req.batch * req.copies, req.sequence_length)
    return decoder.stream(req)
