"""`train`: a RandAR model of a folder of images (randar.train.command does the work)."""
from __future__ import annotations

import argparse

from .options import command

EPILOG = """\
examples:
  python -m randar.train.demo shapes/                                      # a folder to try: 6 kinds of shape
  python -m randar train shapes/ --out models/shapes --size 64 --minutes 2  # a small model on the CPU
  python -m randar train shapes/ --out models/shapes --resume --minutes 3 # go on after a stop (a longer budget)
  python -m randar train shapes/ --out models/shapes-e --tokenizer randar-emoji --init randar-emoji --minutes 5
  torchrun --standalone --nproc_per_node 8 -m randar train shapes/ --out models/shapes-8 --minutes 10

IMAGES_DIR: images at the top level (a model without classes), or one sub-folder per class (IMAGES_DIR/cat/*.png),
or classes in groups (IMAGES_DIR/animals/cat/*.png). Pictures are made square: shorter side resized to --size,
centre crop, transparency on white. A held-out share (--holdout) is never trained on; its NLL picks the weights
kept. Ctrl+C (or SIGTERM) stops after the current step and saves; --resume goes on from the last save.
MODEL_DIR is a model like any other: randar generate --model MODEL_DIR, python app.py --model MODEL_DIR."""


def _train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("images_dir", metavar="IMAGES_DIR", help="folder of images (sub-folders are classes)")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="the model folder to write")
    p.add_argument("--resume", action="store_true", help="go on with the run saved in MODEL_DIR (its settings)")
    p.add_argument("--overwrite", action="store_true",
                   help="start anew in a MODEL_DIR that holds a run or a model (removes only what a run writes)")
    g = p.add_argument_group("budget (a resume may give a new one)")
    g.add_argument("--minutes", type=float, default=None, help="transformer training time (wall clock, all resumes)")
    g.add_argument("--steps", type=int, default=None, help="transformer training steps")
    g.add_argument("--tokenizer-minutes", type=float, default=None, help="tokenizer training time (default a quarter "
                   "of --minutes)")
    g.add_argument("--tokenizer-steps", type=int, default=None, help="tokenizer training steps")
    g = p.add_argument_group("data")
    g.add_argument("--size", type=int, default=None, help="picture side in px (default 128; with --tokenizer: its "
                   "own)")
    g.add_argument("--holdout", type=float, default=None, help="share of images held out (default 0.05)")
    g.add_argument("--augment", default=None, help="zoom-out, flip, both (comma) or none (default zoom-out: the "
                   "picture smaller at a random spot; flip changes the meaning of text and arrows)")
    g.add_argument("--augment-prob", type=float, default=None, help="how often an augmented variant is used (0.3)")
    g = p.add_argument_group("models")
    g.add_argument("--tokenizer", default=None, metavar="NAME_OR_DIR",
                   help="reuse this tokenizer (a model name or folder, e.g. randar-emoji, or a vq.safetensors) "
                   "instead of training one")
    g.add_argument("--init", default=None, metavar="NAME_OR_DIR",
                   help="start the transformer from this model's weights (needs its --tokenizer); classes with "
                   "the same name, or whose group has its name, start from its rows")
    g.add_argument("--dim", type=int, default=None, help="transformer width (CPU 256, GPU 512)")
    g.add_argument("--layers", type=int, default=None, help="transformer layers (CPU 4, GPU 8; with --init: grow to)")
    g.add_argument("--heads", type=int, default=None, help="attention heads (CPU 4, GPU 8)")
    g.add_argument("--codebook-size", type=int, default=None, help="codes of a trained tokenizer (1024)")
    g.add_argument("--name", default=None, help="the model's name (default: MODEL_DIR's folder name)")
    g.add_argument("--cfg", type=float, default=None, help="the model's default guidance scale (3)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--batch", type=int, default=None, help="global batch (CPU 32, GPU 256)")
    g.add_argument("--lr", type=float, default=None, help="peak learning rate (6e-4; 3e-4 with --init)")
    g.add_argument("--warmup", type=int, default=None, help="warm-up steps (200; 100 with --init)")
    g.add_argument("--ema", type=float, default=None, help="moving-average decay of the weights (0.999; 0: off)")
    g.add_argument("--class-dropout", type=float, default=None, help="share of null-class labels (0.1)")
    g.add_argument("--seed", type=int, default=None, help="seed of the data order and everything random (0)")
    g.add_argument("--bf16", choices=("auto", "on", "off"), default=None,
                   help="bf16 autocast (auto: on GPUs and on CPUs with native bf16)")
    g = p.add_argument_group("checks and runtime")
    g.add_argument("--eval-every", type=float, default=None, metavar="MIN",
                   help="minutes between held-out checks, sample grids and best-weight saves (CPU 10, GPU 2)")
    g.add_argument("--save-every", type=float, default=None, metavar="MIN",
                   help="minutes between resumable saves (CPU 5, GPU 2)")
    g.add_argument("--device", default="auto", help="auto, cpu or cuda (with torchrun: each rank its GPU)")
    g.add_argument("--threads", type=int, default=None, help="CPU threads (default: PyTorch's choice)")


@command("train", help="train a RandAR model on a folder of images (resumable, CPU or GPUs)",
         configure=_train_options, epilog=EPILOG)
def cmd_train(args: argparse.Namespace) -> int:
    """Train a tokenizer (or reuse one), encode the folder, train the transformer; MODEL_DIR is then a model."""
    from ..train.command import run_train

    if args.bf16 is not None:
        args.bf16 = {"on": True, "off": False}.get(args.bf16, "auto")
    return run_train(args)
