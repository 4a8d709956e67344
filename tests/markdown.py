"""Reading the README and the manual in tests: their fenced blocks under their headings, their links."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]


class Block(NamedTuple):
    """A fenced block of a markdown file: the heading line it stands under, its language, its text."""

    path: str
    heading: str
    lang: str
    body: str


def pages() -> list[str]:
    """The README and every page of the manual, as paths relative to the repository."""
    return ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))]


def blocks(path: str) -> list[Block]:
    """Every fenced block of ``path``, in order, each with the nearest heading above it."""
    found: list[Block] = []
    body: list[str] = []
    heading, lang, fenced, indent = "", "", False, 0
    for line in (ROOT / path).read_text().splitlines():
        stripped = line.strip()
        if fenced:
            if stripped == "```":
                found.append(Block(path, heading, lang, "\n".join(body) + "\n"))
                fenced = False
            else:
                body.append(line[indent:] if line[:indent].isspace() else line)
        elif stripped.startswith("```"):
            fenced, lang, body, indent = True, stripped[3:], [], len(line) - len(line.lstrip())
        elif line.startswith("#"):
            heading = line
    return found


def headings(path: str) -> list[str]:
    """The heading lines of ``path`` (none from inside a fenced block)."""
    result, fenced = [], False
    for line in (ROOT / path).read_text().splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            result.append(line)
    return result


def anchor(heading: str) -> str:
    """The anchor of a heading line, as Python-Markdown's toc (mkdocs) and GitHub make it for plain
    headings: lower case, punctuation dropped, spaces as hyphens."""
    text = heading.lstrip("#").strip().replace("`", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def links(path: str) -> list[str]:
    """The targets of the markdown links of ``path`` outside fenced blocks and code spans."""
    text, fenced, kept = (ROOT / path).read_text(), False, []
    for line in text.splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            kept.append(re.sub(r"`[^`]*`", "", line))
    return re.findall(r"\]\(([^)\s]+)\)", "\n".join(kept))
