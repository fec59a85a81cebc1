"""Fail the collection when a test does something slow without the marker that keeps it out of the quick loop.

Why: the tests declare their markers themselves (a file's `pytestmark`, `@pytest.mark.slow` on a test), so a
renamed test keeps its marker and a new test in a slow file inherits the file's. What can still go wrong is a
test or a file that starts something slow and says nothing: a new test on the app-server fixture in a file
of quick tests, a `pytestmark` edited away, a new browser file marked slow but not browser. It would then run
in `python -m pytest -m "not slow and not browser"` (the quick loop) and make it slow without anyone noticing.

So every collection (the quick loop's too, before `-m` deselects anything) looks for signs that cost seconds
each time they are used and stops with the list of tests that lack a marker those signs require:
- a fixture (by name) that starts `python app.py`, torchrun, a headless browser or builds the emoji dataset:
  the test using it needs the marker;
- a name or an exact string constant anywhere in a file's code (imports, helpers, test bodies) that starts
  the app, torchrun or a browser, or drives a page (tests/app_server.py's page helpers): every test of that
  file needs the marker, because such files share the expensive thing through module fixtures and helpers.
And every test file of the suite states its markers at the top, `pytestmark = [...]` (an empty list for a file of
quick tests; single slow tests in it carry `@pytest.mark.slow`): a file's marking deleted or lost in an edit then
stops the collection instead of silently turning a slow file into a quick one.
Loaded by tests/conftest.py; tests/test_marker_check.py checks the check.
"""
from __future__ import annotations

import types
from functools import lru_cache
from pathlib import Path

import pytest

APP = "starts `python app.py`"
BROWSER = ("browser", "slow")
# fixture name -> (markers a test using it needs, what the fixture does)
FIXTURE_SIGNS: dict[str, tuple[tuple[str, ...], str]] = {
    "server": (("slow",), APP),
    "other_servers": (("slow",), APP),
    "one_process": (("slow",), "runs the CLI under torchrun"),
    "built": (("slow",), "builds the emoji dataset"),
    "browser": (BROWSER, "launches headless Chromium"),
    "page": (BROWSER, "opens a page in headless Chromium"),
}
# name or string constant in a file's code -> (markers every test of the file needs, what it does)
CODE_SIGNS: dict[str, tuple[tuple[str, ...], str]] = {
    "AppProcess": (("slow",), APP),
    "AppServer": (("slow",), APP),
    "torch.distributed.run": (("slow",), "launches torchrun"),
    "sync_playwright": (BROWSER, "launches headless Chromium"),
    "launch_chromium": (BROWSER, "launches headless Chromium"),
    **{helper: (BROWSER, "drives a page in headless Chromium")
       for helper in ("upload_to_editor", "paint_mask", "paint_stroke", "wait_text", "wait_images_decoded")},
}


@lru_cache(maxsize=None)
def code_words(path: Path) -> frozenset[str]:
    """Every name (global, attribute, imported) and string constant in the code of the file at `path`, nested
    functions and classes included; comments are not code, and a docstring only counts if it equals a sign."""
    words: set[str] = set()
    pending = [compile(path.read_text(encoding="utf-8"), str(path), "exec")]
    while pending:
        code = pending.pop()
        words.update(code.co_names)
        for const in code.co_consts:
            if isinstance(const, str):
                words.add(const)
            elif isinstance(const, types.CodeType):
                pending.append(const)
    return frozenset(words)


SUITE = Path(__file__).resolve().parent  # the suite's own files must state their markers (`pytestmark`)


def marker_problem(item: pytest.Item) -> str | None:
    """The markers `item` lacks although something it uses requires them, and why, as one line; None if none."""
    module = getattr(item, "module", None)
    if Path(item.path).resolve().parent == SUITE and module is not None and not hasattr(module, "pytestmark"):
        return (f"{item.nodeid}: its file states no markers; put `pytestmark = [...]` at its top (`[]` for quick "
                "tests, `[pytest.mark.slow]` for a slow file)")
    has = {mark.name for mark in item.iter_markers()}
    reasons = [(markers, f"uses the fixture `{name}`, which {why}")
               for name, (markers, why) in FIXTURE_SIGNS.items() if name in getattr(item, "fixturenames", ())]
    words = code_words(Path(item.path))
    reasons += [(markers, f"its file uses `{word}`, which {why}")
                for word, (markers, why) in CODE_SIGNS.items() if word in words]
    lacking = sorted({m for markers, _ in reasons for m in markers} - has)
    if not lacking:
        return None
    why = "; ".join(reason for markers, reason in reasons if set(markers) - has)
    return f"{item.nodeid}: not marked {' and '.join(lacking)}, but it {why}"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: an unmarked slow test is exactly what `-m` would keep
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    problems = [problem for item in items if (problem := marker_problem(item))]
    if problems:
        raise pytest.UsageError(
            "tests without the marker that what they use requires (mark the file with `pytestmark = "
            "[pytest.mark.slow]` or the test with `@pytest.mark.slow`; browser tests with both browser and slow):\n"
            + "\n".join(problems))
