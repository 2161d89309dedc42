"""Help-centre articles: Markdown files read from a folder and cut into one chunk per section.

An article is ``# Title`` followed by ``## Section`` parts; its source id is the file stem. Text
between the title and the first section becomes an "Overview" chunk, and a section too long for
one chunk is cut at paragraph breaks. The checksum covers the text and the chunking rules, so a
change to either re-ingests the article and nothing else does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

# Bump when the chunking below changes: every article's checksum changes with it.
CHUNKER_VERSION = "1"
MAX_CHUNK_CHARS = 2000
OVERVIEW = "Overview"
NOT_ARTICLES = frozenset({"readme.md"})


@dataclass(frozen=True)
class Chunk:
    """One section (or part of one); ``id`` is ``<source_id>#<n>``, stable across ingestions."""

    id: str
    source_id: str
    title: str
    section: str
    text: str

    def embedding_input(self) -> str:
        """What is embedded: the title and section name carry much of a chunk's meaning."""
        return f"{self.title}: {self.section}\n{self.text}"


@dataclass(frozen=True)
class Article:
    source_id: str
    title: str
    checksum: str
    chunks: tuple[Chunk, ...]


@dataclass(frozen=True)
class Folder:
    """The articles of a folder, and the files left out with the reason why."""

    articles: tuple[Article, ...]
    skipped: tuple[str, ...]


def read_folder(directory: Path) -> Folder:
    """Every ``*.md`` article in ``directory`` (README.md excepted), in name order."""
    articles: list[Article] = []
    skipped: list[str] = []
    for path in sorted(directory.glob("*.md")):
        if path.name.lower() in NOT_ARTICLES or not path.is_file():
            continue
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            skipped.append(f"{path.name}: not UTF-8 text")
            continue
        article = parse_article(path.stem, text)
        if article.chunks:
            articles.append(article)
        else:
            skipped.append(f"{path.name}: no text under its title")
    return Folder(tuple(articles), tuple(skipped))


def parse_article(source_id: str, text: str) -> Article:
    """The article's title, checksum and chunks (line endings normalised first)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    checksum = hashlib.sha256(f"{CHUNKER_VERSION}\n{text}".encode()).hexdigest()
    title = source_id.replace("-", " ").replace("_", " ").capitalize()
    lines = text.split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), len(lines))
    if first < len(lines) and lines[first].startswith("# "):
        title = lines[first][2:].strip() or title
        lines = lines[first + 1 :]
    sections: list[tuple[str, list[str]]] = [(OVERVIEW, [])]
    for line in lines:
        if line.startswith("## "):
            sections.append((line[3:].strip() or OVERVIEW, []))
        else:
            sections[-1][1].append(line)
    chunks: list[Chunk] = []
    for section, lines in sections:
        for part in _parts("\n".join(lines).strip()):
            chunk_id = f"{source_id}#{len(chunks)}"
            chunks.append(Chunk(chunk_id, source_id, title, section, part))
    return Article(source_id, title, checksum, tuple(chunks))


def _parts(body: str) -> list[str]:
    """The section as one part, or cut at paragraph breaks when longer than MAX_CHUNK_CHARS."""
    if not body:
        return []
    if len(body) <= MAX_CHUNK_CHARS:
        return [body]
    parts: list[str] = []
    current = ""
    for paragraph in (p.strip() for p in body.split("\n\n")):
        if current and len(current) + len(paragraph) + 2 > MAX_CHUNK_CHARS:
            parts.append(current)
            current = ""
        current = f"{current}\n\n{paragraph}" if current else paragraph
    if current:
        parts.append(current)
    return [p for p in parts if p]
