"""The history gallery across page reloads: entries kept in the browser, checked by the server.

Why: the history was a `gr.State`, which lives as long as the page; a reload (or a phone that drops the
tab) lost every result. The entries (server paths of result PNGs and their captions) are now also kept
in the browser's localStorage (`gr.BrowserState`, see ui.py) and given back when the page loads.
Why checked: what comes back from a browser is not trusted. Only files inside this server's run folder
(`RunStore.root`) are shown or used, so a crafted entry cannot make the app serve another file of the
server; entries whose runs were pruned since are dropped quietly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any


class HistoryKeeper:
    """Filters history entries ({"path", "caption"}) to files of the run store under `root`."""

    def __init__(self, root: str | Path, size: int) -> None:
        self.root = Path(root).resolve()
        self.size = size

    def owns(self, path: str) -> bool:
        """Whether `path` lies inside the run store (after resolving links and '..')."""
        try:
            Path(path).resolve().relative_to(self.root)
        except (ValueError, OSError, RuntimeError):
            return False
        return True

    def clean(self, history: Any, existing_only: bool = True) -> list[dict[str, str]]:
        """Well-formed entries inside the store (and still on disk, unless `existing_only` is off), newest
        first as given, at most `size`."""
        out: list[dict[str, str]] = []
        for item in history if isinstance(history, list) else []:
            if not isinstance(item, dict) or not isinstance(item.get("path"), str):
                continue
            path, caption = item["path"], item.get("caption")
            if not self.owns(path) or (existing_only and not Path(path).is_file()):
                continue
            out.append({"path": path, "caption": caption if isinstance(caption, str) else ""})
            if len(out) == self.size:
                break
        return out


__all__ = ["HistoryKeeper"]
