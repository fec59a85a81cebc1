"""Class names: the bundled ImageNet-1k list and `class_index`, which turns what a user types (an index, a
name, a synonym, a few words in any order) into a class id, or says which classes it could mean.
"""
from __future__ import annotations

import difflib
import re
from functools import lru_cache
from pathlib import Path
from typing import Sequence


@lru_cache(maxsize=1)
def _imagenet_names() -> tuple[str, ...]:
    path = Path(__file__).resolve().parent.parent / "data" / "imagenet_classes.txt"
    names = tuple(line.rstrip("\n") for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if len(names) != 1000:
        raise RuntimeError(f"{path}: expected 1000 ImageNet class names, found {len(names)}")
    return names


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in label order (WordNet lemmas, e.g. 'tench, Tinca tinca')."""
    return list(_imagenet_names())


def _synonyms(name: str) -> list[str]:
    return [p.strip().casefold() for p in name.split(",") if p.strip()]


def _ambiguous(query: str, hits: list[int], names: Sequence[str], how: str) -> ValueError:
    shown = "; ".join(f"{i}: {names[i]}" for i in hits[:12])
    more = f"; ... ({len(hits)} in all)" if len(hits) > 12 else ""
    return ValueError(f"class {query!r} is ambiguous ({how} {len(hits)} classes): {shown}{more}. "
                      "Give the class index or a longer name.")


def group_members(query: str, class_groups: Sequence[str] | None) -> list[int]:
    """The classes of the group named `query` (case-insensitive; a model card's `class_groups`), else []."""
    if not class_groups or not isinstance(query, str):
        return []
    low = query.strip().casefold()
    return [i for i, g in enumerate(class_groups) if g and g.casefold() == low]


def class_or_group(query: int | str, class_names: Sequence[str], aliases: Sequence[Sequence[str]] | None = None,
                   class_groups: Sequence[str] | None = None) -> list[int]:
    """What a user's class means: [id] for a class (see `class_index`), or every class of a group when `query` is a
    group's name (e.g. an emoji subgroup; the caller picks among them). A class named exactly like the group (or
    known by that alias) wins: "cat-face" is the emoji 🐱, not the subgroup of cat faces."""
    if isinstance(query, str) and class_groups:
        members = group_members(query, class_groups)
        if members:
            low = query.strip().casefold()
            named = any(c.casefold() == low or (aliases and i < len(aliases) and low in (a.casefold() for a in aliases[i]))
                        for i, c in enumerate(class_names))
            if not named:
                return members
    return [class_index(query, class_names, aliases)]


def class_index(name_or_id: int | str, class_names: Sequence[str],
                aliases: Sequence[Sequence[str]] | None = None) -> int:
    """A class id from an int, a numeric string, an exact name (or one of its comma-separated synonyms, or one
    of its `aliases`, e.g. an emoji's code points "1f408" or the emoji itself), a unique case-insensitive
    substring, or words that all occur in one class's name, in any order ("smiling face" -> face-smiling).
    Otherwise ValueError naming the ambiguity or the closest names."""
    n = len(class_names)
    extra = [[a.casefold() for a in (aliases[i] if aliases and i < len(aliases) else [])] for i in range(n)]
    if isinstance(name_or_id, bool):
        raise ValueError(f"class must be an index or a name, not {name_or_id!r}")
    if isinstance(name_or_id, int):
        if not 0 <= name_or_id < n:
            raise ValueError(f"class index {name_or_id} is out of range: this model has classes 0..{n - 1}")
        return name_or_id
    query = str(name_or_id).strip()
    if not query:
        raise ValueError("empty class name")
    low = query.casefold()
    if re.fullmatch(r"[+-]?\d+", query) and not (int(query) >= n and any(low in e for e in extra)):
        return class_index(int(query), class_names)  # an index (digits beyond the classes may be an alias: 2764)
    words = [w for w in re.split(r"[\s_-]+", low) if w]  # "smiling face" finds face-smiling: any order, any separator
    for how, pred in (
        ("named exactly like", lambda i, c: c == query),
        ("named like", lambda i, c: c.casefold() == low),
        ("with the synonym", lambda i, c: low in _synonyms(c)),
        ("also known as", lambda i, c: low in extra[i]),
        ("the text matches", lambda i, c: low in c.casefold()),
        ("every word matches", lambda i, c: all(w in c.casefold() for w in words)),
    ):
        hits = [i for i, c in enumerate(class_names) if pred(i, c)]
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise _ambiguous(query, hits, class_names, how)
    choices: dict[str, int] = {}
    for i, c in enumerate(class_names):
        for s in [c.casefold(), *_synonyms(c)]:
            choices.setdefault(s, i)
    close = difflib.get_close_matches(low, list(choices), n=6, cutoff=0.6)
    hint = "; ".join(f"{i}: {class_names[i]}" for i in dict.fromkeys(choices[c] for c in close))
    raise ValueError(f"no class matches {query!r}" + (f". Close matches: {hint}" if hint else "")
                     + f". Use a name or an index 0..{n - 1}.")
