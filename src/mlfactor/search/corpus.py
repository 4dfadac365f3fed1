"""The corpus the docs-search model ranks: the project's README and docs/ split into passages.

A passage is the text under one Markdown heading (code fences kept as text,
their ``#`` lines never taken for headings), cut at paragraph boundaries into
pieces of at most :data:`MAX_WORDS` words, because the encoder reads only its
first 256 word pieces. Each passage keeps the file it came from (relative to
the project) and its heading path (``Deploying to Kubernetes > Roll forward,
roll back``), which is what a search result shows and what the labelled
queries name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlfactor.errors import ValidationError

MAX_WORDS = 120  # about 160 word pieces: inside the encoder's 256 with the heading in front
DEFAULT_SOURCES = ("README.md", "docs/*.md")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


@dataclass(frozen=True)
class Passage:
    """One searchable piece of a document: where it is and what it says."""

    source: str  # file relative to the project, e.g. "docs/deploy.md"
    heading: str  # heading path, outermost first, joined with " > "
    text: str

    @property
    def section(self) -> str:
        """The innermost heading (what a labelled query names)."""
        return self.heading.rsplit(" > ", 1)[-1]

    def embedding_text(self) -> str:
        """What the encoder reads: the heading path, then the passage."""
        return f"{self.heading}\n{self.text}" if self.heading else self.text

    def to_dict(self) -> dict[str, str]:
        """The passage as JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Passage:
        """Read a passage written by :meth:`to_dict`."""
        return cls(str(data["source"]), str(data["heading"]), str(data["text"]))


def _sections(lines: Iterable[str]) -> Iterable[tuple[list[str], list[str]]]:
    """(heading path, body lines) per heading, in document order."""
    path: list[tuple[int, str]] = []
    body: list[str] = []
    fenced = False
    for line in lines:
        if _FENCE.match(line):
            fenced = not fenced
        found = None if fenced else _HEADING.match(line)
        if found is None:
            body.append(line)
            continue
        yield [title for _, title in path], body
        level = len(found.group(1))
        path = [*[(lvl, title) for lvl, title in path if lvl < level], (level, found.group(2).strip())]
        body = []
    yield [title for _, title in path], body


def _paragraphs(body: Sequence[str]) -> list[str]:
    """Blank-line separated blocks of ``body`` (HTML comments dropped)."""
    text = re.sub(r"<!--.*?-->", "", "\n".join(body), flags=re.DOTALL)
    return [block.strip() for block in re.split(r"\n\s*\n", text) if block.strip()]


def _pieces(paragraphs: Sequence[str], max_words: int) -> list[str]:
    """Join paragraphs into pieces of at most ``max_words`` words (a longer paragraph is cut)."""
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for paragraph in paragraphs:
        words = paragraph.split()
        while len(words) > max_words:
            if current:
                pieces.append("\n\n".join(current))
                current, size = [], 0
            pieces.append(" ".join(words[:max_words]))
            words = words[max_words:]
        if size + len(words) > max_words and current:
            pieces.append("\n\n".join(current))
            current, size = [], 0
        if words:
            current.append(paragraph if len(words) == len(paragraph.split()) else " ".join(words))
            size += len(words)
    if current:
        pieces.append("\n\n".join(current))
    return pieces


def split_markdown(text: str, source: str, *, max_words: int = MAX_WORDS) -> list[Passage]:
    """Passages of one Markdown document named ``source``."""
    passages: list[Passage] = []
    for path, body in _sections(text.splitlines()):
        heading = " > ".join(path)
        passages.extend(Passage(source, heading, piece) for piece in _pieces(_paragraphs(body), max_words))
    return passages


def corpus_files(project_dir: Path, patterns: Sequence[str] = DEFAULT_SOURCES) -> list[Path]:
    """The Markdown files ``patterns`` name under ``project_dir``, sorted; ValidationError when none."""
    files = sorted({path for pattern in patterns for path in project_dir.glob(pattern) if path.is_file()})
    if not files:
        raise ValidationError(
            "search corpus",
            [
                f"no file under {project_dir} matches {', '.join(patterns)}; "
                "pass the project folder (the one holding README.md and docs/) or other patterns"
            ],
        )
    return files


def load_corpus(
    project_dir: Path, patterns: Sequence[str] = DEFAULT_SOURCES, *, max_words: int = MAX_WORDS
) -> list[Passage]:
    """Every passage of the files ``patterns`` name, in file order."""
    passages: list[Passage] = []
    for path in corpus_files(project_dir, patterns):
        source = path.relative_to(project_dir).as_posix()
        passages.extend(split_markdown(path.read_text(encoding="utf-8"), source, max_words=max_words))
    return passages
