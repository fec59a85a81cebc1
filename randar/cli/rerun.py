"""`rerun`: repeat a run from the sidecar JSON of its output (same model, settings, seed, inputs: same pixels)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..io.outputs import image_format, read_sidecar

from .derive import add_branch_options, check_branch_args, run_branch
from .options import FOLDER_OUTPUT_EXT, OUTPUTS_EPILOG, add_output_options, add_runtime_options, command
from .batch.model import ModelRequest
from .batch.driver import drive
from .batch.plain import FileBatch
from .batch.work import Work
from .folders import must_exist, gif_output

if TYPE_CHECKING:  # heavy (torch): imported by the commands that run a model
    from ..studio import Job, Studio


# ----------------------------------------------------------------------------------------------------
# rerun


def _rerun_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("sidecar", metavar="SIDECAR", help="the .json file written next to an output (e.g. out.png.json)")
    g = p.add_argument_group("inputs (default: the recorded files)")
    g.add_argument("--image", default=None, metavar="FILE", help="the input image, if it has moved")
    g.add_argument("--mask", default=None, metavar="FILE", help="the input mask (inpaint), if it has moved")
    g.add_argument("--no-strict", dest="strict", action="store_false",
                   help="accept inputs that differ from the recorded ones (their sha256 is checked by default) "
                   "and a model of another shape: apply the settings to new inputs")
    add_branch_options(p)
    add_output_options(p)
    add_runtime_options(p, model_default=None, device_default=None, recorded=True)


RERUN_EPILOG = """\
examples:
  python -m randar rerun out.png.json --out again.png          # the same pixels as out.png
  python -m randar rerun out_2.png.json --out third.png        # image 2 of a batch (the batch runs again)
  python -m randar rerun edited.png.json --image moved/photo.png --out moved_again.png
  python -m randar rerun edited.png.json --image other.png --no-strict --out other_edited.png
  python -m randar rerun out.png.json --branch-step 40 --seed 1 --num 4 --out branch.png   # 4 branches at step 40

The same model, settings, seed, device and precision give the same pixels; a note says when the device
or precision differs from the recorded one (the pixels may then differ). --branch-step K keeps what the
run had decided after its step K and generates the rest anew (--seed, --num, optionally --order, --class,
--cfg, --temperature); each branch's sidecar names its parent and step, and reruns to the same pixels.

""" + OUTPUTS_EPILOG


@command("rerun", help="repeat a run from the sidecar JSON of its output", configure=_rerun_options,
         epilog=RERUN_EPILOG, description="Repeat a run from the sidecar JSON written next to its output: "
         "same model, settings, seed and inputs, same pixels.")
def cmd_rerun(args: argparse.Namespace) -> int:
    record = read_sidecar(Path(args.sidecar))
    settings = record["settings"]
    index = record.get("index", 0)
    if not isinstance(index, int) or index < 0:
        raise ValueError(f"{args.sidecar}: bad image index {index!r}")
    out = Path(args.out)
    if out.is_dir():
        out = out / str(record.get("image") or f"rerun{FOLDER_OUTPUT_EXT}")
    image_format(out)
    from ..tasks import check_settings

    check_settings(settings, args.sidecar)
    check_branch_args(args)
    check_rerun_inputs(settings, args)
    notes: list[str] = []
    request = rerun_model_request(args, record, notes)
    if args.branch_step is not None:
        return run_branch(args, record, out, index, request, notes)

    def make(studio: "Studio") -> "Job":
        try:
            job = studio.rerun(settings, image=args.image, mask=args.mask, strict=args.strict)
        except ValueError as exc:  # the API's words for the option
            if "strict=False" not in str(exc):
                raise
            raise ValueError(str(exc).replace("strict=False", "--no-strict")) from exc
        if index >= job.plan.batch:
            raise ValueError(f"{args.sidecar}: image {index} of a batch of {job.plan.batch}")
        return job

    work = Work(out.name, make, [out], [index], gif=gif_output(args.gif, out.stem, False), gif_row=index)
    return drive(FileBatch(args, [work], notes), request)


def check_rerun_inputs(settings: dict[str, Any], args: argparse.Namespace) -> None:
    """The inputs a rerun reads: --image/--mask, else the recorded files, which must still be there (an error
    naming the option to use, before the model is loaded)."""
    from ..io.images import check_image_file  # torch, via randar.io.images: only for the commands that need it

    inputs = settings.get("inputs") or {}
    for name, given in (("image", args.image), ("mask", args.mask)):
        record = inputs.get(name)
        if record is None:
            if given is not None:
                raise ValueError(f"--{name}: {settings.get('task')} runs have no {name} input")
        elif given is not None:
            must_exist(Path(given), f"--{name}")
            check_image_file(given, f"--{name} {given}")  # over the pixel cap: refused from the header, now
        elif not record.get("path") or not Path(record["path"]).is_file():
            where = record.get("path") or "an in-memory image"
            raise ValueError(f"the {name} of this run ({where}) is not there: pass --{name} FILE")
        else:
            check_image_file(record["path"], f"the recorded {name} {record['path']}")


def _device_type(device: str) -> str:
    """cpu or cuda ("auto" resolved as Studio.load resolves it)."""
    if device == "auto":
        return "cuda" if _cuda_available() else "cpu"
    return device.split(":")[0]


def rerun_model_request(args: argparse.Namespace, record: dict[str, Any], notes: list[str]) -> ModelRequest:
    """The model, device, precision and decoding path of the recorded run, unless the options say
    otherwise (with a note where that may change the pixels)."""
    runtime = record["settings"].get("runtime") or {}
    recorded_model = record.get("model") or {}
    model = args.model or recorded_model.get("source") or recorded_model.get("name")
    recorded_device = str(runtime.get("device") or "auto")
    recorded_type = recorded_device.split(":")[0]
    device = args.device
    if device is None:
        device = recorded_device if recorded_type in ("cpu", "cuda") else "auto"
        if recorded_type == "cuda" and not _cuda_available():
            device = "cpu"
            notes.append(f"the run was made on {recorded_device}, and there is no CUDA GPU here: running on the "
                         "CPU, so the pixels may differ")
    same_type = _device_type(device) == recorded_type
    dtype = args.dtype or (runtime.get("dtype") if same_type else None)
    if args.device is not None and not same_type:
        notes.append(f"the run was made on {recorded_device}; --device {args.device} may give other pixels")
    if args.dtype and runtime.get("dtype") and args.dtype != runtime.get("dtype"):
        notes.append(f"the run was made in {runtime.get('dtype')}; --dtype {args.dtype} may give other pixels")
    fast = args.fast and bool(runtime.get("fast", True))
    return ModelRequest(model, args.checkpoints, device, dtype, args.threads, fast)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
