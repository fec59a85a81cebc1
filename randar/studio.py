"""The Python API of RandAR Studio: load a model once, then create jobs.

    from .studio import Studio
    studio = Studio.load()                           # the default model; or a name / a model directory
    job = studio.generate("smiling face", batch=4, steps=32, seed=0)
    for event in job:                                # Progress per forward pass (for previews / bars)
        print(event.stage, event.job_step, "/", event.job_steps)
    result = job.result                              # Result: images, tokens, seed, settings, timings, notices
    again = studio.rerun(result.settings).run()      # the same pixels

Every method validates its inputs when it is called (errors before any compute) and returns a `Job`;
`seed=None` draws a random seed, reported in `job.seed` and `result.seed`.
The CLI and the web app are built on this module; it knows nothing of either.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .tasks.class_guess import ClassGuess, ClassGuesser, LikelihoodGuesser, guesser_for
from .io.images import ImageSource, load_image
from .model.transformer import RandARTransformer
from .model.tokenizer import ImageTokenizer
from .model.tokenizers import load_tokenizer
from .registry import resolve_model
from .options.params import (
    GenerateParams, GenerateX2Params, InpaintParams, OutpaintParams, UpscaleParams, VaryParams,
)
from .options.task_options import TaskOptions
from .tasks import derive
from .tasks.derive import SAME
from .tasks import (
    Canvas, Job, JobCancelled, ModelPair, Progress, Result, Timings, generate, generate_x2, inpaint, outpaint,
    rerun, upscale,
)

__all__ = ["Studio", "TaskOptions", "GenerateParams", "GenerateX2Params", "InpaintParams", "OutpaintParams",
           "UpscaleParams", "VaryParams", "Job", "JobCancelled", "Progress", "Result", "Timings", "Canvas", "ClassGuess",
           "pick_device"]


# at most this many CPU threads per core: more only thrash, and a huge count made PyTorch's thread pool
# crash the process (`--threads 100000` was a segfault, exit 139)
MAX_THREADS_PER_CORE = 4


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask), else all of the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def check_threads(threads: int) -> None:
    """ValueError unless 0 <= threads <= MAX_THREADS_PER_CORE * cores (0 = leave PyTorch's setting)."""
    limit = MAX_THREADS_PER_CORE * max(usable_cores(), os.cpu_count() or 1)
    if isinstance(threads, bool) or not isinstance(threads, int) or not 0 <= threads <= limit:
        raise ValueError(f"threads must be 0..{limit} ({MAX_THREADS_PER_CORE} per core of this machine; 0 = "
                         f"PyTorch's own setting), got {threads!r}")


def pick_device(device: str | torch.device = "auto", dtype: torch.dtype | str | None = None,
                threads: int | None = None) -> tuple[torch.device, torch.dtype]:
    """"auto": CUDA with bfloat16 when available, else CPU with float32.

    On the CPU, `threads` sets torch's intra-op threads; None: the usable cores minus one (at least one),
    leaving a core for the app around the model (web server, previews): PyTorch's spinning worker threads
    slow down many times over when they compete with other busy processes for every core. Nothing is
    changed when OMP_NUM_THREADS is set, or with threads=0.
    """
    if isinstance(dtype, str):
        try:
            dtype = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                     "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}[dtype]
        except KeyError:
            raise ValueError(f"unknown dtype {dtype!r}; use float32, bfloat16 or float16") from None
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {device!r} ({exc}); use auto, cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but PyTorch sees no CUDA GPU; use device='cpu'")
    if dtype is None:
        dtype = torch.bfloat16 if dev.type == "cuda" and torch.cuda.is_bf16_supported() else (
            torch.float16 if dev.type == "cuda" else torch.float32)
    if dev.type == "cpu" and dtype == torch.float16:
        raise ValueError("float16 is not supported on the CPU; use float32 (or bfloat16)")
    if dev.type == "cpu" and threads != 0 and (threads is not None or "OMP_NUM_THREADS" not in os.environ):
        if threads is None:
            threads = max(1, usable_cores() - 1)
        check_threads(threads)
        torch.set_num_threads(threads)
    return dev, dtype


class Studio:
    """A loaded model pair and the tasks over it. Thread use: one job at a time per Studio."""

    def __init__(self, gpt: RandARTransformer, vq: ImageTokenizer, class_names: list[str] | None = None, *,
                 name: str = "custom", cfg_scale: float = 4.0, description: str = "", fast: bool = True,
                 class_groups: list[str] | None = None, class_aliases: list[list[str]] | None = None,
                 class_guesser: ClassGuesser | None = None, default_class: str = "") -> None:
        self.pair = ModelPair(gpt.eval(), vq.eval(), list(class_names or []), name, float(cfg_scale),
                              list(class_groups or []), [list(a) for a in (class_aliases or [])])
        self.description = description
        self.fast = fast
        self.default_class = default_class  # what a UI's class box starts on ("" = the first class)
        self.class_guesser: ClassGuesser = class_guesser or LikelihoodGuesser()  # see `guess_class`

    @classmethod
    def load(cls, name_or_path: str | Path | None = None, *, device: str | torch.device = "auto",
             dtype: torch.dtype | str | None = None, checkpoints_dir: str | Path | None = None,
             threads: int | None = None, fast: bool = True) -> "Studio":
        """Load a registry model (default: randar-emoji) or a model directory.

        The transformer gets `dtype` (auto: bfloat16 on CUDA, float32 on CPU); the tokenizer stays in
        float32 (its nearest-code search and decoder are cheap and precision-sensitive). `threads`: CPU
        threads (None: cores - 1, see `pick_device`). `fast`: the engine's fast path (same tokens).
        Raises ModelNotFoundError (what is missing and how to get it) or ValueError (a checkpoint that does
        not fit its config, or a transformer and tokenizer that do not belong together).
        """
        resolved = resolve_model(name_or_path, checkpoints_dir)
        vq_path, vq_config = resolved.require_vq()
        dev, dt = pick_device(device, dtype, threads)
        # the tokenizer first: it is the smaller file, and one of the wrong kind or size (an error naming both
        # files) is then found before the transformer's gigabytes are read
        vq = load_tokenizer(vq_path, vq_config, device=dev, dtype=torch.float32, model=resolved.name,
                            transformer=resolved.gpt_path)
        gpt = RandARTransformer.from_pretrained(resolved.gpt_path, resolved.gpt_config, device=dev, dtype=dt)
        gpt.fuse_for_inference()
        model_dir = resolved.model_dir or resolved.gpt_path.parent
        return cls(gpt, vq, resolved.class_names, name=resolved.name, cfg_scale=resolved.cfg_scale,
                   class_groups=resolved.class_groups, class_aliases=resolved.class_aliases,
                   description=resolved.description, fast=fast, class_guesser=guesser_for(model_dir),
                   default_class=resolved.default_class)

    # ---- facts --------------------------------------------------------------------------------------
    @property
    def gpt(self) -> RandARTransformer:
        return self.pair.gpt

    @property
    def vq(self) -> ImageTokenizer:
        return self.pair.vq

    @property
    def name(self) -> str:
        return self.pair.name

    @property
    def image_size(self) -> int:
        """Pixels per side of the model's native images."""
        return self.pair.image_size

    @property
    def grid_size(self) -> int:
        """Tokens per side of the model's native grid."""
        return self.pair.grid

    @property
    def patch_size(self) -> int:
        """Pixels per token side (the tokenizer's downsample factor)."""
        return self.pair.patch

    @property
    def num_classes(self) -> int:
        return self.pair.num_classes

    @property
    def class_names(self) -> list[str]:
        return list(self.pair.class_names)

    @property
    def class_groups(self) -> list[str]:
        """Per class, its group ("" for none; empty list for a model without groups). A group's name given as
        the class picks one of its classes per image (from the seed)."""
        return list(self.pair.class_groups)

    @property
    def class_aliases(self) -> list[list[str]]:
        """Per class, more names it is found by (e.g. an emoji's code points and character)."""
        return [list(a) for a in self.pair.class_aliases]

    @property
    def device(self) -> torch.device:
        return self.pair.device

    @property
    def dtype(self) -> torch.dtype:
        return self.pair.dtype

    @property
    def cfg_scale(self) -> float:
        """The default guidance scale of this model (used when cfg=None)."""
        return self.pair.cfg_scale

    def class_index(self, name_or_id: int | str) -> int:
        """An index from an int, a numeric string, a name or a unique part of one (ValueError otherwise)."""
        return self.pair.class_index(name_or_id)

    def guess_class(self, image: ImageSource) -> ClassGuess:
        """The class `image` looks like to this model (`index` None: no class fits, use the null class), with a
        confidence and a line saying how it was chosen. The default guesser is the model's own likelihood of the
        picture's tokens (randar.tasks.class_guess, a fraction of a second on a CPU whatever the number of classes); a
        model directory may bring its own classifier (`randar.tasks.class_guess.register_guesser`). Transparency is
        composited onto white, as the tasks read inputs."""
        return self.class_guesser(self.pair, load_image(image))

    def __repr__(self) -> str:
        return (f"<Studio {self.name}: {self.image_size}px, {self.grid_size}x{self.grid_size} tokens, "
                f"{self.num_classes} classes, {self.device} {str(self.dtype).replace('torch.', '')}>")

    # ---- tasks ----------------------------------------------------------------------------------------
    # Each task takes one parameter object (randar.options.params: GenerateParams, InpaintParams, ...; its sampling
    # options in `.options`, a randar.options.task_options.TaskOptions) and/or keywords named like its fields or the
    # options' fields (order, order_map, steps, cfg, cfg_start, temperature, top_k, top_p, seed, batch, clip_steps),
    # which replace them: studio.inpaint(img, mask, region="whole", steps=32) and
    # studio.inpaint(img, mask, InpaintParams(region="whole", options=TaskOptions(steps=32))) are the same job.
    # The object is checked once, when it is made, and recorded as the run's settings' "params".

    def generate(self, label: Any = None, *, params: GenerateParams | None = None, **keywords: Any) -> Job:
        """Class-conditional images at the model's resolution (label None: no class). `order_map`: a painted
        picture (or a sidecar's string), painted cells decoded first (randar.ordering.painted); `priority`: a
        [G, G] map for order 'priority'."""
        return generate(self.pair, GenerateParams.build(params, _labelled(label, keywords)), fast=self.fast)

    def generate_x2(self, label: Any = None, *, params: GenerateX2Params | None = None, **keywords: Any) -> Job:
        """Class-conditional images at twice the model's resolution (lattice first, then the rest). `steps` is
        the forward passes of the whole job, split between the stages by their tokens (a quarter to the
        lattice); `fill_steps` sets the second stage apart, and `steps` then counts the lattice only.
        `fill_order`, `spatial_scale`, `masking_ratio`: randar.options.params.GenerateX2Params."""
        return generate_x2(self.pair, GenerateX2Params.build(params, _labelled(label, keywords)), fast=self.fast)

    def inpaint(self, image: ImageSource, mask: ImageSource, params: InpaintParams | None = None,
                **keywords: Any) -> Job:
        """Regenerate the masked part of an image (mask: white / opaque = regenerate). The result has the
        input's size and mode (L, LA, RGBA stay so; every pixel outside the mask keeps its bytes, alpha included;
        regenerated pixels are opaque: randar/tasks/modes.py). Temperature defaults to EDIT_TEMPERATURE.
        Parameters (label, region, context, dilate, feather, min_cover, prefill_with, harmonize_seam, fill_margin):
        randar.options.params.InpaintParams."""
        return inpaint(self.pair, image, mask, InpaintParams.build(params, keywords), fast=self.fast)

    def outpaint(self, image: ImageSource, params: OutpaintParams | None = None, **keywords: Any) -> Job:
        """Extend an image by pixels per side (left, right, top, bottom: exactly those), to an `aspect` ('16:9', to
        the nearest pixel) or by a `zoom` factor, the original placed by `align`; `randar.tasks.geometry.
        outpaint_size` gives the size beforehand. The input's mode is kept as for inpaint (the new border is
        opaque). The whole canvas is composed in one pass of the model's grid (the picture worked smaller where
        needed, then brought back to scale by the upscaler: `refine`); compose="windows" is the former method
        (overlapping windows). `order_map`: a painted picture over the output (or a sidecar's string), its new
        cells decoded first (randar.ordering.painted). Parameters: randar.options.params.OutpaintParams."""
        return outpaint(self.pair, image, OutpaintParams.build(params, keywords), fast=self.fast)

    def upscale(self, image: ImageSource, params: UpscaleParams | None = None, **keywords: Any) -> Job:
        """Upscale to exactly `scale` (2 or 4) times the image's width and height: bicubic, then the model's
        tokens at the target scale in overlapping tiles (the worst reproduced `regenerate` fraction generated
        anew, `steps` forward passes per tile, default DEFAULT_UPSCALE_STEPS), blended, and back-projected onto
        the input (`consistency` iterations). Parameters: randar.options.params.UpscaleParams."""
        return upscale(self.pair, image, UpscaleParams.build(params, keywords), fast=self.fast)

    def rerun(self, settings: dict[str, Any], *, image: ImageSource | None = None, mask: ImageSource | None = None,
              strict: bool = True) -> Job:
        """A job repeating a run from its `Result.settings` (inputs: given, or read from recorded paths)."""
        return rerun(self.pair, settings, image=image, mask=mask, strict=strict, fast=self.fast)

    # ---- runs made from other runs (randar/tasks/derive.py) -------------------------------------------------

    def branch(self, source: Result | dict[str, Any], step: int, *, index: int = 0, num: int = 1,
               seed: int | None = None, order: str | None = None, label: Any = SAME, cfg: float | None = None,
               cfg_start: float | None = None, temperature: float | None = None, top_k: int | None = None,
               top_p: float | None = None, image: ImageSource | None = None, mask: ImageSource | None = None,
               parent_output: dict[str, Any] | None = None) -> Job:
        """`num` branches of a run at job step `step`: its tokens decided by then are kept, the rest generated
        anew with `seed` (None: a random one). `source`: the run's `Result` (its tokens are at hand: the branch
        costs only the remaining steps plus one prefill) or its settings (the run's first `step` steps are run
        again first, to get them). Unset options are the run's own: its class (`label`), guidance, sampling and
        planned order (an `order` draws the remaining cells anew in that order). See randar.tasks.branch."""
        return derive.branch(self.pair, source, step, index=index, num=num, seed=seed, order=order, label=label,
                             cfg=cfg, cfg_start=cfg_start, temperature=temperature, top_k=top_k, top_p=top_p,
                             image=image, mask=mask, parent_output=parent_output, fast=self.fast)

    def vary(self, source: Result | ImageSource, params: VaryParams | None = None, *, index: int = 0,
             label: Any = SAME, **keywords: Any) -> Job:
        """Variations of a picture (`batch` of them): a `strength` fraction of its tokens regenerated, the rest kept
        (every pixel outside the regenerated cells keeps its bytes). `method`: "random", "confident" (the cells
        whose token the model finds least likely), "painted" (`painted`: where, a picture of strokes) or "cells"
        (exactly `cells`: click to resample). `source`: a picture (encoded first) or a `Result` (image `index`:
        its own tokens are used when its canvas is the whole picture; `label` defaults to its class). `tokens`:
        the picture's own token grid (a result's `tokens[i]`) for a picture given by path or pixels.
        Parameters: randar.options.params.VaryParams; see randar.tasks.vary."""
        return derive.vary(self.pair, source, VaryParams.build(params, keywords), index=index, label=label,
                           fast=self.fast)

    def resample(self, source: Result | ImageSource, cells: Any, *, index: int = 0, label: Any = SAME,
                 **keywords: Any) -> Job:
        """Regenerate exactly `cells` of a picture (a bool [rows, cols] grid of its tokens, (row, col) pairs or a
        "cells1:" string), keeping every other token and pixel: `vary(method="cells")`."""
        return self.vary(source, method="cells", cells=cells, strength=1.0, index=index, label=label, **keywords)


def _labelled(label: Any, keywords: dict[str, Any]) -> dict[str, Any]:
    """The keywords with a positional `label` among them (None: left to the parameter object's)."""
    return keywords if label is None else {**keywords, "label": label}
