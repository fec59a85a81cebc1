"""Every example the CLI prints (`python -m randar --help`, each `COMMAND --help`) and every CLI line of README's
bash blocks runs as written, on the shipped default model, in a temporary working directory (so no output lands
in the repository), with a few counts made small to keep the suite fast: --steps 4, --count 2, --classes 0,1,
--per-class 1; absolute paths are made relative to that directory. torchrun lines run as the same command in
one process (tests/test_scaleout.py runs torchrun).
Examples that need an official checkpoint that is not downloaded must fail with the command to download it.
"""
from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from randar.cli import COMMANDS, build_parser, main
from randar.registry import REGISTRY, model_status

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "assets" / "examples"
TASKS = {"generate", "inpaint", "outpaint", "upscale", "vary"}
# (a branch step must be below the 4 steps its parent run was made with here)
SMALL = {"--steps": "4", "-s": "4", "--count": "2", "--per-class": "1", "--classes": "0,1", "--branch-step": "2",
         "--minutes": "0.02"}
RUNTIME = ["--device", "cpu", "--threads", "1", "--quiet"]

pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.slow,  # runs every --help and README example on the shipped model
    pytest.mark.skipif(not model_status("randar-emoji").complete, reason="the shipped default model is missing"),
]


def example_lines(text: str) -> list[str]:
    """CLI lines of a help text or of README's bash blocks: `python -m randar ...`, `randar ...` or
    `torchrun ... -m randar ...`, backslash continuations joined, trailing comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = []
    for line in joined.splitlines():
        line = line.strip()
        if re.match(r"(python -m randar|randar|torchrun .*-m randar) ", line):
            lines.append(line)
    return lines


def help_text(command: str | None) -> str:
    parser = build_parser()
    if command is None:
        return parser.format_help()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices[command].format_help()


def readme_lines() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [line for block in blocks for line in example_lines(block)]


def to_argv(line: str) -> list[str]:
    """The example's arguments after `randar`, with SMALL's counts and the test runtime options."""
    words = shlex.split(line.split(" #", 1)[0])
    start = words.index("randar") + 1
    # absolute paths (README's /shared/runs/all on a shared file system) go under the temporary working dir
    argv = [w.lstrip("/") if w.startswith("/") else w for w in words[start:]]
    out: list[str] = []
    i = 0
    while i < len(argv):
        out.append(argv[i])
        if argv[i] in SMALL and i + 1 < len(argv):
            out.append(SMALL[argv[i]])
            i += 1
        i += 1
    if out and out[0] in TASKS and "--steps" not in out and "-s" not in out:
        out += ["--steps", SMALL["--steps"]]
    if out and (out[0] in TASKS or out[0] == "rerun"):
        out += RUNTIME
    if out and out[0] == "train":
        out += ["--device", "cpu", "--threads", "1", "--eval-every", "100"]
    return out


def picture(w: int, h: int, seed: int) -> Image.Image:
    """A picture the default model knows: an example emoji, shifted and resized to w x h."""
    names = ["cat.png", "dog.png", "pizza.png", "rocket.png", "house.png"]
    img = Image.open(EXAMPLES / names[seed % len(names)]).convert("RGB")
    return img.resize((w, h), Image.BICUBIC)


def mask(w: int, h: int) -> Image.Image:
    m = np.zeros((h, w), np.uint8)
    m[h // 4:h // 2, w // 3:2 * w // 3] = 255
    return Image.fromarray(m)


def fixtures(work: Path) -> None:
    """The files the examples name: photo.png/.jpg, mask.png, photos/ + masks/, watermark.png, other.png, the
    repository's assets/examples (README uses them by their relative path)."""
    picture(96, 64, 0).save(work / "photo.png")
    picture(96, 64, 0).save(work / "photo.jpg")
    picture(96, 64, 3).save(work / "other.png")
    mask(96, 64).save(work / "mask.png")
    mask(96, 64).save(work / "watermark.png")
    (work / "photos").mkdir()
    (work / "masks").mkdir()
    picture(96, 64, 1).save(work / "photos" / "a.png")
    picture(96, 64, 2).save(work / "photos" / "b.jpg")
    mask(96, 64).save(work / "masks" / "a.png")
    mask(96, 64).save(work / "masks" / "b.png")
    (work / "moved").mkdir()
    shutil.copy(work / "photo.png", work / "moved" / "photo.png")
    shutil.copytree(EXAMPLES, work / "assets" / "examples")
    from randar.train.demo import make_demo_folder

    make_demo_folder(work / "shapes", per_class=4, size=32)  # `randar train shapes/ ...`: 24 pictures


def run_line(line: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = to_argv(line)
    code = main(argv)
    err = capsys.readouterr().err
    model = argv[argv.index("--model") + 1] if "--model" in argv else None
    if model in REGISTRY and not model_status(model).complete:  # an official checkpoint, not downloaded
        assert code == 2 and f"download {model}" in err, f"{line}\n{err}"
        return
    assert code == 0, f"{line!r} (run as {argv}) exited {code}:\n{err}"


SECTIONS = [None, *COMMANDS]


@pytest.mark.parametrize("command", SECTIONS, ids=[c or "main" for c in SECTIONS])
def test_every_help_example_runs(command, tmp_path, monkeypatch, capsys):
    lines = example_lines(help_text(command))
    if command not in (None, "generate", "inpaint", "outpaint", "upscale", "vary", "rerun", "train"):
        assert not lines  # models / download print no examples
        return
    assert lines, f"{command or 'main'} --help shows no examples"
    monkeypatch.chdir(tmp_path)
    fixtures(tmp_path)
    if command == "rerun":  # its examples repeat earlier runs: make them first
        for prep in ("python -m randar generate --class 3 --seed 0 --out out.png",
                     "python -m randar generate --class 3 --num 3 --seed 0 --out out.png",
                     "python -m randar inpaint photo.png mask.png --seed 0 --out edited.png"):
            run_line(prep, capsys)
    for line in lines:
        run_line(line, capsys)
    assert not list(REPO.glob("*.png")), "an example wrote into the repository"


def test_every_readme_cli_line_runs(tmp_path, monkeypatch, capsys):
    lines = readme_lines()
    assert any("inpaint" in line for line in lines) and any("torchrun" in line for line in lines)
    monkeypatch.chdir(tmp_path)
    fixtures(tmp_path)
    for line in lines:
        run_line(line, capsys)


def test_the_help_example_class_names_resolve():
    """`--class "smiling face"` (the main help's example) finds the default model's emoji of that name, and
    `--class face-smiling` (a Unicode subgroup) is the group of its smiling faces."""
    from randar.registry import resolve_model
    from randar.registry.class_names import class_or_group

    m = resolve_model("randar-emoji")
    names, aliases, groups = m.class_names, m.class_aliases, m.class_groups
    assert [names[i] for i in class_or_group("smiling face", names, aliases, groups)] == ["smiling-face"]
    assert [names[i] for i in class_or_group("1f600", names, aliases, groups)] == ["grinning-face"]  # code points
    assert [names[i] for i in class_or_group("😀", names, aliases, groups)] == ["grinning-face"]  # the emoji
    smiling = class_or_group("face-smiling", names, aliases, groups)
    assert len(smiling) > 5 and all(groups[i] == "face-smiling" for i in smiling)
