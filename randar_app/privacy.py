"""Messages for remote users without the server's paths.

Why: error messages of the engine name files by their full path, which is right on a command line (the
user typed it) and wrong in a web app: a remote visitor would learn the server's directory layout, user
names and temporary folders (an upload's `/tmp/gradio/<hash>/photo.png`, a checkpoint's location). Every
message the app shows goes through `without_server_paths`, which keeps only the last component of each
absolute path (`photo.png`), so the message still says which file it is about.
"""
from __future__ import annotations

import re

__all__ = ["without_server_paths"]

# An absolute POSIX path (a "/" not preceded by a word character, a dot, "~", ":" or another "/": so URLs,
# fractions such as 1/2 and "and/or" are left alone), or a Windows drive path; it ends at whitespace,
# quotes, brackets, commas, semicolons or a colon (messages say "PATH: problem").
_PATH = re.compile(r"(?<![\w.~:/\\-])/[^\s'\"`()<>\[\]{},;:|]+|\b[A-Za-z]:\\[^\s'\"`()<>\[\]{},;:|]+")


def _last_part(match: re.Match[str]) -> str:
    parts = [p for p in re.split(r"[\\/]", match.group(0)) if p]
    return parts[-1] if parts else "(a server folder)"


def without_server_paths(text: str) -> str:
    """`text` with every absolute path replaced by its last component (a file or folder name)."""
    return _PATH.sub(_last_part, text)
