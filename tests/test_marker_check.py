"""tests/marker_check.py catches a slow test that lost (or never had) its marker, and lets marked ones through.

Each case is a small test file collected by pytester in its own session, the way the real suite's files are:
the check is asked about the collected items, and once through pytest itself to see the collection stop.
(This file's own strings must not equal a sign of the check: it would then want this file marked slow.)
"""
from __future__ import annotations

import pytest

from marker_check import marker_problem

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _lean_inner_sessions(pytester, monkeypatch):
    """The inner sessions need none of the installed plugins (loading them costs about a second each), nor the
    garbage collections that the unraisable-exception plugin runs at their end (seconds, with torch loaded)."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:unraisableexception")


SERVER_FIXTURE = '''
import pytest

@pytest.fixture(scope="module")
def server():
    return "python app.py, about 20 s to start"
'''


def problems(pytester: pytest.Pytester, source: str) -> dict[str, str]:
    """Test name -> the check's line, for each test of `source` that the check finds wanting."""
    found = {item.name: marker_problem(item) for item in pytester.getitems(source)}
    return {name: problem for name, problem in found.items() if problem}


def test_a_test_added_or_renamed_without_a_marker_on_the_app_fixture_is_caught(pytester):
    found = problems(pytester, SERVER_FIXTURE + '''
@pytest.mark.slow
def test_marked(server):
    pass

def test_renamed_and_its_marker_lost(server):
    pass

def test_quick():
    pass
''')
    assert list(found) == ["test_renamed_and_its_marker_lost"]
    assert "not marked slow, but it uses the fixture `server`, which starts `python app.py`" in found[
        "test_renamed_and_its_marker_lost"]


def test_a_slow_file_marks_every_test_added_to_it(pytester):
    assert problems(pytester, SERVER_FIXTURE + '''
pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

def test_one(server):
    pass

def test_added_later(server):
    pass
''') == {}


def test_a_file_that_starts_the_app_inside_one_test_needs_every_test_marked(pytester):
    """test_scaleout.py's case: the import sits in one test, but the file is a slow file."""
    found = problems(pytester, '''
import pytest

def test_cli_only():
    pass

def test_app_with_two_devices():
    from app_server import AppProcess
''')
    assert sorted(found) == ["test_app_with_two_devices", "test_cli_only"]
    assert all("its file uses `AppProcess`, which starts `python app.py`" in line for line in found.values())


def test_a_file_launching_torchrun_needs_the_slow_marker(pytester):
    found = problems(pytester, '''
import subprocess, sys

def run(ranks):
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks)])

def test_two_ranks():
    pass
''')
    assert "launches torchrun" in found["test_two_ranks"]


def test_a_browser_file_marked_slow_only_is_caught(pytester):
    found = problems(pytester, '''
import pytest
from app_server import launch_chromium, paint_mask

pytestmark = pytest.mark.slow

def test_paint():
    pass
''')
    line = found["test_paint"]
    assert "not marked browser, but" in line and "`launch_chromium`" in line and "`paint_mask`" in line


def test_a_browser_file_with_both_markers_passes_and_comments_are_no_signs(pytester):
    assert problems(pytester, '''
import pytest
from app_server import launch_chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow]

def test_page():
    pass
''') == {}
    assert problems(pytester, '''
def test_words():
    # AppProcess, torchrun and launch_chromium in a comment start nothing
    pass
''') == {}


def test_the_hook_stops_the_collection_even_when_markers_deselect(pytester):
    pytester.makepyfile(test_lost=SERVER_FIXTURE + '''
def test_lost_its_marker(server):
    pass
''')
    result = pytester.runpytest_inprocess("-p", "marker_check", "-m", "not slow and not browser")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_lost.py::test_lost_its_marker: not marked slow, but it uses the fixture "
                                 "`server`*"])


def test_a_suite_file_whose_marking_was_deleted_is_caught(pytester, monkeypatch):
    """A file of the suite itself must state its markers: `pytestmark` edited away is an error, not a quick file."""
    import marker_check

    monkeypatch.setattr(marker_check, "SUITE", pytester.path.resolve())
    found = problems(pytester, '''
def test_was_in_a_slow_file():
    pass
''')
    assert "its file states no markers; put `pytestmark = [...]` at its top" in found["test_was_in_a_slow_file"]


def test_a_suite_file_stating_no_markers_is_a_quick_file(pytester, monkeypatch):
    import marker_check

    monkeypatch.setattr(marker_check, "SUITE", pytester.path.resolve())
    assert problems(pytester, '''
import pytest

pytestmark = []

def test_quick():
    pass
''') == {}
