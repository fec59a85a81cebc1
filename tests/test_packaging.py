"""`pip install <repo>` works as README says: from a directory outside the repository, in a fresh virtual
environment, the commands `randar` and `randar-studio` run, and the shipped default model is found inside the
installed package (a regular install) or in the working copy (an editable install).

The package is built from a copy of the repository's files (tracked and untracked-but-not-ignored, as a clean
clone would have them), so that the build's own leftovers (build/, *.egg-info) never land in the repository.
The fresh environment sees the running interpreter's packages (torch, gradio, setuptools) through a .pth file,
which is what `python -m venv --system-site-packages` does for a base interpreter but also works when the tests
themselves run inside a virtual environment (CI's .venv-ci); `--no-deps --no-build-isolation` keeps it offline.
"""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds and installs the package

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "assets" / "examples"
# what only the tests use: never installed (a module `testing` in the app package, or anything of tests/, would
# ship test drivers to users and, as top-level names, clash with their own); `app` is the repository's start script
TEST_HELPERS = ("tests", "testing", "app_server", "conftest", "app")


def repo_files() -> list[str]:
    """The files a clean clone plus this working tree's new files would hold (no ignored outputs or weights)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to know which files belong to the repository")
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                         capture_output=True, check=True).stdout.decode()
    return [f for f in out.split("\0") if f and (REPO / f).is_file()]


def copy_repo(dest: Path) -> Path:
    for rel in repo_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)
    return dest


def make_env(path: Path) -> Path:
    """A virtual environment without pip of its own that sees this interpreter's packages -> its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    py = path / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    parents = [p for p in [*site.getsitepackages(), site.getusersitepackages()] if Path(p).is_dir()]
    (Path(purelib) / "_parent_env.pth").write_text("\n".join(parents) + "\n")
    return py


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RANDAR_CHECKPOINTS", "RANDAR_MODEL")}
    return env | {"OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}


def run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=clean_env(), timeout=timeout)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def pip_install(py: Path, *target: str, cwd: Path) -> None:
    run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", "--no-build-isolation",
         "--no-index", *target], cwd=cwd)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_repo(tmp_path_factory.mktemp("clone") / "randar-studio")


def test_regular_install_runs_from_anywhere(source: Path, tmp_path: Path) -> None:
    py = make_env(tmp_path / "venv")
    pip_install(py, str(source), cwd=tmp_path)
    bin_dir = py.parent
    work = tmp_path / "work"
    work.mkdir()

    # the package, its shipped model and its examples come from the environment, not from a checkout
    where = run([str(py), "-c", "import randar, randar_app, randar.registry as r, randar.io.resources as s; "
                 "print(randar.__file__); print(randar_app.__file__); print(r.default_checkpoints_dir()); "
                 "print(s.examples_dir())"], cwd=work).stdout.split()
    site_dir = Path(where[0]).parent.parent
    assert site_dir.is_relative_to(tmp_path / "venv"), where
    assert Path(where[1]).is_relative_to(site_dir) and Path(where[2]) == site_dir / "randar" / "checkpoints"
    assert (Path(where[3]) / "cat.png").is_file() and Path(where[3]).is_relative_to(site_dir)
    assert (Path(where[3]) / "classes.json").is_file()  # the examples' classes (app.class_pick)
    assert not list((Path(where[2])).glob("*.safetensors")), "only the repository's own checkpoints are shipped"
    assert not [name for name in TEST_HELPERS if (site_dir / name).exists() or (site_dir / f"{name}.py").exists()]
    assert not list((site_dir / "randar_app").rglob("testing.py")), "test helpers stay in tests/"

    models = run([str(bin_dir / "randar"), "models"], cwd=work).stdout
    assert "randar-emoji" in models and "ready" in models.split("randar-emoji", 1)[1].splitlines()[0]
    assert run([str(bin_dir / "randar"), "inpaint", "--help"], cwd=work).stdout.startswith("usage: randar inpaint")
    help_text = run([str(bin_dir / "randar-studio"), "--help"], cwd=work).stdout
    assert "--model" in help_text and "--port" in help_text

    shutil.copy(EXAMPLES / "cat.png", work / "cat.png")
    shutil.copy(EXAMPLES / "cat_mask.png", work / "cat_mask.png")
    run([str(bin_dir / "randar"), "inpaint", "cat.png", "cat_mask.png", "--steps", "2", "--seed", "0",
         "--threads", "1", "--out", "out.png"], cwd=work)
    assert (work / "out.png").is_file()
    record = json.loads((work / "out.png.json").read_text())
    assert record["settings"]["task"] == "inpaint" and record["settings"]["params"]["steps"] == 2
    # `python -m randar` is the same program
    assert "randar-emoji" in run([str(py), "-m", "randar", "models"], cwd=work).stdout


def test_editable_install_uses_the_working_copy(source: Path, tmp_path: Path) -> None:
    py = make_env(tmp_path / "venv")
    pip_install(py, "-e", str(source), cwd=tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    where = run([str(py), "-c", "import randar, randar.registry as r; print(randar.__file__); "
                 "print(r.default_checkpoints_dir())"], cwd=work).stdout.split()
    assert Path(where[0]) == source / "randar" / "__init__.py"
    assert Path(where[1]) == source / "checkpoints"
    models = run([str(py.parent / "randar"), "models"], cwd=work).stdout
    assert f"checkpoints directory: {source / 'checkpoints'}" in models
    assert "--port" in run([str(py.parent / "randar-studio"), "--help"], cwd=work).stdout


def test_every_package_of_the_source_tree_is_installed():
    """pyproject.toml lists its packages by name: a new subpackage (e.g. randar/decoding) missing from that list
    would import in a checkout and fail only after `pip install .`."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for root in ("randar", "randar_app")
             for p in (REPO / root).rglob("__init__.py") if "__pycache__" not in p.parts}
    assert found <= listed, f"add to pyproject.toml's packages: {sorted(found - listed)}"


def test_the_wheel_holds_no_test_helpers(source: Path, tmp_path: Path) -> None:
    """The wheel `pip install .` builds holds the two packages and their data only: nothing from tests/ (the
    browser driver tests/app_server.py, fixtures), no module named `testing`, no top-level `app`."""
    import zipfile

    run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
         "--no-build-isolation", "--no-index", "-w", str(tmp_path), str(source)], cwd=tmp_path)
    wheel = next(tmp_path.glob("randar_studio-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert tops == {"randar", "randar_app"}, sorted(tops)
    helpers = [name for name in names if Path(name).stem in TEST_HELPERS or "/tests/" in f"/{name}"]
    assert not helpers, f"test helpers in the wheel: {helpers}"
