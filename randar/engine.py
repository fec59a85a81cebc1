"""The generation engine: decode any set of cells in any order, a schedule of steps, with a KV cache.

One request describes everything a task needs: which cells to generate in which order, which cells are
already known (a prefix written into the context first: the basis of inpainting, outpainting and
resolution extrapolation), the RoPE table of the grid, the step count, guidance and sampling.
Decoding is an iterator of `StepEvent`s so that a UI can animate it; `run` just drains it.

The cache always holds the teacher-forcing layout of what is decided plus the current step's queries:
a step appends queries P(q_0..q_{n-1}); once their tokens are sampled, the next forward writes
[T(t_0), P(q_1), T(t_1), ..., T(t_{n-1})] from the slot after P(q_0), then the next step's queries.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from torch import Tensor

from .model.transformer import BLANK, CLASS, POSITION, KVCache, RandARTransformer, cat_slots, class_slots, interleave_pairs
from .sampling import Guidance, SamplingParams, guide, sample
from .schedule import step_sizes

Slots = tuple[Tensor, Tensor, Tensor]


@dataclass
class DecodeRequest:
    cond: Tensor  # [B] class ids (the model's null class = unconditional)
    order: Tensor  # [B, M] cells to generate, in generation order
    num_cells: int  # cells in the grid (h * w); the output grid has this many entries
    steps: int = -1  # forward passes over the M generated tokens (-1: one token per step)
    guidance: Guidance = field(default_factory=Guidance)
    sampling: SamplingParams = field(default_factory=SamplingParams)
    prefix_cells: Tensor | None = None  # [B, K] cells already known, written into the context first
    prefix_tokens: Tensor | None = None  # [B, K] their codes
    rope: Tensor | None = None  # [1 + num_cells, head_dim/2, 2]; None: the model's own grid
    seed: int | None = None
    # Spatial guidance (resolution extrapolation): a third copy sees only part of the prefix tokens.
    spatial_scale: float = 0.0
    spatial_keep: Tensor | None = None  # [B, K] bool, False = that prefix token is hidden from the copy
    # Look-ahead (randar.lookahead): the model's guess for every undecided cell every `guess_every` steps
    # (0 = never; the tokens are the same either way), and confidence-first decoding (`order` is then
    # only the tie-break and query order; the model picks the lowest-entropy cells at each step).
    guess_every: int = 0
    confident: bool = False

    @property
    def batch(self) -> int:
        return int(self.cond.shape[0])

    @property
    def num_generated(self) -> int:
        return int(self.order.shape[1])

    @property
    def num_prefix(self) -> int:
        return 0 if self.prefix_cells is None else int(self.prefix_cells.shape[1])

    def schedule(self) -> list[int]:
        return step_sizes(self.num_generated, self.steps)

    def validate(self, model: RandARTransformer) -> None:
        """Fail before any compute, with a message that names the bad field."""
        cfg = model.config
        B, M = self.order.shape if self.order.dim() == 2 else (None, None)
        if B is None:
            raise ValueError(f"order must be [batch, cells], got shape {tuple(self.order.shape)}")
        if self.cond.shape != (B,):
            raise ValueError(f"cond must be [batch]={B} class ids, got shape {tuple(self.cond.shape)}")
        if ((self.cond < 0) | (self.cond > cfg.num_classes)).any():
            raise ValueError(f"class ids must be in 0..{cfg.num_classes - 1} (or {cfg.num_classes} for none)")
        cells = self.order
        if self.prefix_cells is not None:
            if self.prefix_tokens is None or self.prefix_tokens.shape != self.prefix_cells.shape or self.prefix_cells.shape[0] != B:
                raise ValueError("prefix_cells and prefix_tokens must both be [batch, K] with the same shape")
            if ((self.prefix_tokens < 0) | (self.prefix_tokens >= cfg.vocab_size)).any():
                raise ValueError(f"prefix tokens must be codes in 0..{cfg.vocab_size - 1}")
            cells = torch.cat([self.prefix_cells, self.order], dim=1)
        if ((cells < 0) | (cells >= self.num_cells)).any():
            raise ValueError(f"cells must be in 0..{self.num_cells - 1}")
        if (cells.sort(dim=1).values.diff(dim=1) == 0).any():
            raise ValueError("a cell appears twice among the prefix and the order")
        if self.rope is not None and self.rope.shape[0] != self.num_cells + 1:
            raise ValueError(f"rope table has {self.rope.shape[0]} rows, need 1 + num_cells = {self.num_cells + 1}")
        if self.rope is None and self.num_cells != cfg.block_size:
            raise ValueError(f"a grid of {self.num_cells} cells needs its own rope table (model grid: {cfg.block_size})")
        if self.spatial_scale and (self.spatial_keep is None or self.prefix_cells is None):
            raise ValueError("spatial guidance needs a prefix and spatial_keep")
        if isinstance(self.guess_every, bool) or not isinstance(self.guess_every, int) or self.guess_every < 0:
            raise ValueError(f"guess_every must be an integer >= 0 (0 = no guess view), got {self.guess_every!r}")
        self.schedule()  # validates steps


@dataclass
class StepEvent:
    step: int  # 1-based index of the finished step
    num_steps: int
    cells: Tensor  # [B, n] cells decoded in this step
    tokens: Tensor  # [B, n] their codes
    decoded: int  # generated tokens decided so far (this step included)
    total: int  # tokens to generate
    elapsed: float  # seconds since decoding started
    grid: Tensor  # [B, num_cells] the live token grid, -1 where undecided (copy it to keep it)
    guess: Tensor | None = None  # [B, num_cells] decided tokens + the most likely token of every undecided cell
    entropy: Tensor | None = None  # [B, num_cells] float32 entropy (nats) of the undecided cells, 0 elsewhere

    @property
    def done(self) -> bool:
        return self.decoded == self.total


def query_slots(cells: Tensor) -> Slots:
    return torch.full_like(cells, POSITION), torch.zeros_like(cells), cells


def guidance_batch(slots: Slots, req: DecodeRequest, null_class: int, prefix_span: slice | None = None) -> Slots:
    """Stack the copies the guidance needs: [cond; uncond (null class); spatial (prefix partly hidden)]."""
    kind, value, cell = slots
    copies_kind, copies_value, copies_cell = [kind], [value], [cell]
    if req.guidance.enabled or req.spatial_scale:
        copies_kind.append(kind)
        copies_value.append(torch.where(kind == CLASS, torch.full_like(value, null_class), value))
        copies_cell.append(cell)
    if req.spatial_scale:
        hidden = kind.clone()
        if prefix_span is not None:
            token_slots = hidden[:, prefix_span][:, 1::2]  # a view: the T slots of the prefix pairs
            token_slots.copy_(torch.where(req.spatial_keep, token_slots, torch.full_like(token_slots, BLANK)))
        copies_kind.append(hidden)
        copies_value.append(value)
        copies_cell.append(cell)
    return torch.cat(copies_kind), torch.cat(copies_value), torch.cat(copies_cell)


def combine(logits: Tensor, req: DecodeRequest, decoded: int) -> Tensor:
    """Fold the guidance copies back into one batch of logits."""
    if req.spatial_scale:
        c, u, sc = logits.chunk(3, dim=0)
        s = req.guidance.scale(decoded, req.num_generated)
        return u + s * (c - sc) + req.spatial_scale * (sc - u)
    if req.guidance.enabled:
        return guide(logits, req.guidance.scale(decoded, req.num_generated))
    return logits


def prefill_slots(req: DecodeRequest, first_queries: Tensor) -> tuple[Slots, slice | None]:
    """[cls, P(k0), T(k0), ..., P(q_0), ...]: class, known pairs, the first step's queries."""
    parts = [class_slots(req.cond)]
    span = None
    if req.num_prefix:
        parts.append(interleave_pairs(req.prefix_cells, req.prefix_tokens))
        span = slice(1, 1 + 2 * req.num_prefix)
    parts.append(query_slots(first_queries))
    return cat_slots(*parts), span


def make_generator(device: torch.device, seed: int | None) -> torch.Generator:
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen


StepForward = Callable[[Slots, int, int], Tensor]
"""(slots of this step [B*copies, T], cache slot of its first token, number of queries) -> their logits."""


def decode_loop(req: DecodeRequest, device: torch.device, null_class: int,
                forward: StepForward) -> Iterator[StepEvent]:
    """The decoding loop of both paths: build each step's slots, run `forward`, guide, sample, record.

    Why one loop: the plain and fast paths differ only in how one step's forward is computed (a cache
    sized to the step vs a static one with CUDA graphs); sharing the rest guarantees that both feed the
    model the same slots and consume the random generator identically, so their tokens match.
    """
    if req.confident:
        from .lookahead import confident_loop

        yield from confident_loop(req, device, null_class, forward)
        return
    sizes = req.schedule()
    M, B = req.num_generated, req.batch
    generator = make_generator(device, req.seed)
    grid = torch.full((B, req.num_cells), -1, dtype=torch.long, device=device)
    if req.num_prefix:
        grid.scatter_(1, req.prefix_cells, req.prefix_tokens)

    queries = req.order[:, : sizes[0]]
    slots, span = prefill_slots(req, queries)
    start, done, t0 = 0, 0, time.perf_counter()
    for step, n in enumerate(sizes):
        batch_slots = guidance_batch(slots, req, null_class, span if step == 0 else None)
        T = batch_slots[0].shape[1]
        logits = forward(batch_slots, start, n)
        tokens = sample(combine(logits, req, done), req.sampling, generator)
        grid.scatter_(1, queries, tokens)
        done += n
        event = StepEvent(step + 1, len(sizes), queries, tokens, done, M, time.perf_counter() - t0, grid)
        if req.guess_every and ((step + 1) % req.guess_every == 0 or done == M):
            from .lookahead import probe_after_step

            event.guess, event.entropy = probe_after_step(
                req, forward, lambda s: guidance_batch(s, req, null_class), lambda lg, d: combine(lg, req, d),
                queries, tokens, start, T, done, grid)
        yield event
        if done == M:
            break
        next_queries = req.order[:, done : done + sizes[step + 1]]
        pairs = interleave_pairs(queries, tokens)
        slots = cat_slots(tuple(p[:, 1:] for p in pairs), query_slots(next_queries))  # type: ignore[arg-type]
        start = start + T - n + 1  # right after P(q_0)
        queries = next_queries


def guidance_copies(req: DecodeRequest) -> int:
    """Rows per image in the model batch: the image, its unconditional twin, its spatially guided view."""
    return 1 + int(req.guidance.enabled or bool(req.spatial_scale)) + int(bool(req.spatial_scale))


def decode_plain(model: RandARTransformer, req: DecodeRequest) -> Iterator[StepEvent]:
    """The reference decoder: eager PyTorch, one forward per step, every cache read sized to the step."""
    req.validate(model)
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    req = _to_device(req, device)
    cache = KVCache(model.config, req.batch * guidance_copies(req), 1 + 2 * (req.num_prefix + req.num_generated),
                    device, dtype)

    def forward(batch_slots: Slots, start: int, n: int) -> Tensor:
        T = batch_slots[0].shape[1]
        positions = torch.arange(start, start + T, device=device)
        mask = positions[:, None] >= torch.arange(start + T, device=device)[None, :]
        x, freqs = model.embed(*batch_slots, req.rope)
        h = model.forward_hidden(x, freqs, cache, positions, mask)
        return model.logits(h[:, -n:])

    return decode_loop(req, device, model.null_class, forward)


def _to_device(req: DecodeRequest, device: torch.device) -> DecodeRequest:
    def mv(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.to(device)

    return DecodeRequest(
        cond=req.cond.to(device).long(),
        order=req.order.to(device).long(),
        num_cells=req.num_cells,
        steps=req.steps,
        guidance=req.guidance,
        sampling=req.sampling,
        prefix_cells=mv(req.prefix_cells),
        prefix_tokens=mv(req.prefix_tokens),
        rope=mv(req.rope),
        seed=req.seed,
        spatial_scale=req.spatial_scale,
        spatial_keep=mv(req.spatial_keep),
        guess_every=req.guess_every,
        confident=req.confident,
    )


def run(events: Iterator[StepEvent]) -> Tensor:
    """Drain a decoding stream; the final grid [B, num_cells]."""
    last = None
    for last in events:
        pass
    if last is None:
        raise ValueError("nothing to decode")
    return last.grid


def decode(model: RandARTransformer, req: DecodeRequest, fast: bool = True) -> Iterator[StepEvent]:
    """Decode a request. The fast path (static cache, CUDA graphs on GPU) gives the same tokens as the
    plain one; `fast=False` forces the plain reference decoder (benchmarks and tests compare the two)."""
    if fast:
        from .fast import decode_fast

        return decode_fast(model, req)
    return decode_plain(model, req)
