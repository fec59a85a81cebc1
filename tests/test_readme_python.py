"""Every Python example of README.md runs as written (issue 29: the Python API's own example failed), as
tests/test_help_examples.py does for the CLI lines.

Each ```python block is executed unchanged, in a fresh namespace, in a temporary working directory that
holds the repository's `assets/` (the examples name `assets/examples/...`), on the shipped default model.
A block that talks to the web app through `gradio_client` runs against `python app.py` started for this
test (default model, one thread): the only change is the address, README's `http://127.0.0.1:7860/` becoming
the test server's free port.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from app_server import AppProcess
from randar.registry import model_status

REPO = Path(__file__).resolve().parent.parent
README_URL = "http://127.0.0.1:7860/"

pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.slow,  # runs README's Python examples on the shipped model
    pytest.mark.skipif(not model_status("randar-emoji").complete, reason="the shipped default model is missing"),
]


def python_blocks() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def uses_the_app(block: str) -> bool:
    return "gradio_client" in block


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    (tmp_path / "assets").symlink_to(REPO / "assets", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    server = AppProcess(["--threads", "1"], tmp_path_factory.mktemp("readme-app")).wait_ready()
    yield server
    server.stop()


def run_block(block: str, name: str) -> dict:
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(block, name, "exec"), namespace)  # noqa: S102 - the README's own examples
    return namespace


def test_readme_has_python_examples_of_the_api_and_of_the_app():
    blocks = python_blocks()
    assert any(uses_the_app(b) for b in blocks) and any("Studio.load" in b for b in blocks)
    assert all(README_URL in b for b in blocks if uses_the_app(b)), "the address this test replaces"


@pytest.mark.parametrize("index", [i for i, b in enumerate(python_blocks()) if not uses_the_app(b)])
def test_python_api_examples_run_as_written(workdir, index, capsys):
    namespace = run_block(python_blocks()[index], f"README.md python block {index + 1}")
    if "studio" in namespace:  # the Studio example: its files, and the note for steps above the mask's tokens
        assert (workdir / "smile.png").is_file() and (workdir / "cat2.png").is_file()
        assert any("steps asked" in n for n in namespace["job"].result.notices)


@pytest.mark.parametrize("index", [i for i, b in enumerate(python_blocks()) if uses_the_app(b)])
def test_app_api_examples_run_as_written_against_a_running_app(workdir, app_server, index):
    block = python_blocks()[index].replace(README_URL, app_server.url)
    namespace = run_block(block, f"README.md python block {index + 1}")
    if "status" in namespace:
        assert "Done" in namespace["status"], namespace["status"]
