"""Deterministic chat answers built from the messages sent.

When the prompt carries context (a ``Context:``/``Documents:``/``Knowledge base:`` block, a
``<context>`` element, or a ``tool`` message), the answer quotes, verbatim and in double quotes,
the context sentence(s) most similar to the user's question, each followed by
``(source: NAME)`` when its passage named a source. So a RAG caller can check its citations.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pytest_tria_deploy.standins.lexical import cosine, features, split_sentences, words

NO_ANSWER = "I could not find an answer to that in the provided context."
GREETING = "Hello! How can I help you today?"
_MIN_RELEVANCE = 0.08
_SECOND_RATIO = 0.7
_TAGGED = re.compile(
    r"<(context|documents?|passages?|knowledge|sources?|retrieved[_-]?\w*)\b[^>]*>(.*?)</\1\s*>",
    re.IGNORECASE | re.DOTALL,
)
_MARKER = re.compile(
    r"\b(?:relevant\s+|retrieved\s+|supporting\s+|following\s+)?"
    r"(?:context|passages?|knowledge(?:\s+base)?(?:\s+(?:chunks?|articles?|entries|results))?"
    r"|documents?|excerpts?|snippets?|chunks?|sources?|references?|search\s+results)"
    r"\b[^\n:.?!]{0,40}:",
    re.IGNORECASE,
)
_QUESTION = re.compile(
    r"^\s*(?:\*\*)?(?:the\s+)?(?:(?:user|customer)(?:'s)?\s+)?(?:question|query|message|request)"
    r"(?:\*\*)?\s*:",
    re.IGNORECASE | re.MULTILINE,
)
_ANSWER_CUE = re.compile(r"^\s*answer\s*:", re.IGNORECASE | re.MULTILINE)
_LABEL_LINE = re.compile(
    r"^\s*(?:\[\d+\]\s*)?(?:source|title|document|doc|file|article|from)\s*[:=]\s*(.+?)\s*$",
    re.IGNORECASE,
)
_BRACKET_LINE = re.compile(r"^\s*\[([^\]]+)\]\s*:?\s*$")
_HEADING = re.compile(r"^\s*#{1,6}\s+(.+?)\s*$")
_INLINE_SOURCE = re.compile(r"[\[(]\s*(?:source|doc|file)\s*[:=]\s*([^\])]+?)\s*[\])]", re.I)
_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\[\d+\]|\d+[.)])\s+")
_GREETINGS = frozenset({"hello", "hi", "hey", "greetings", "howdy", "hiya"})


@dataclass(frozen=True)
class Message:
    """One chat message reduced to its role and plain text."""

    role: str
    text: str


@dataclass(frozen=True)
class Sentence:
    """A context sentence and the source its passage named, if any."""

    text: str
    source: str | None


@dataclass(frozen=True)
class Answer:
    """The reply text and the context sentences it quotes."""

    text: str
    quoted: tuple[Sentence, ...]
    query: str


def _regions(text: str) -> tuple[list[str], str]:
    """Context regions of one message and the text left around them."""
    regions = [match.group(2) for match in _TAGGED.finditer(text)]
    rest = _TAGGED.sub("\n", text)
    marker = _MARKER.search(rest)
    if marker is None:
        return regions, rest
    end = len(rest)
    for cue in (_QUESTION, _ANSWER_CUE):
        found = cue.search(rest, marker.end())
        if found is not None:
            end = min(end, found.start())
    regions.append(rest[marker.end() : end])
    return regions, rest[: marker.start()] + "\n" + rest[end:]


def _question(text: str) -> str:
    """The question inside the latest user message, context and template cues removed."""
    found = _QUESTION.search(text)
    if found is not None:
        tail = text[found.end() :]
        cue = _ANSWER_CUE.search(tail)
        tail = tail[: cue.start()] if cue else tail
        question = tail.strip().split("\n\n")[0].strip()
        if question:
            return question
    _, rest = _regions(text)
    return _ANSWER_CUE.sub("", rest).strip() or text.strip()


def _logical_lines(region: str) -> list[tuple[str, str | None]]:
    """Lines with hard-wrapped sentences re-joined, each with the source label above it."""
    lines: list[tuple[str, str | None]] = []
    source: str | None = None
    joinable = False
    for line in region.splitlines():
        label = _LABEL_LINE.match(line) or _BRACKET_LINE.match(line) or _HEADING.match(line)
        if label is not None:
            source, joinable = label.group(1).strip(), False
            continue
        stripped = line.strip()
        if not stripped:
            joinable = False
            continue
        if joinable and not _LIST_ITEM.match(line):
            lines[-1] = (f"{lines[-1][0]} {stripped}", source)
        else:
            lines.append((stripped, source))
        joinable = not lines[-1][0].endswith((".", "!", "?", ":"))
    return lines


def _sentences(region: str) -> list[Sentence]:
    sentences: list[Sentence] = []
    for line, source in _logical_lines(region):
        inline = _INLINE_SOURCE.search(line)
        line_source = inline.group(1).strip() if inline else source
        clean = re.sub(r"\s+(?=[.,;:!?])", "", _INLINE_SOURCE.sub("", line))
        for text in split_sentences(clean):
            if len(words(text)) >= 2:
                sentences.append(Sentence(text, line_source))
    return sentences


@dataclass(frozen=True)
class Conversation:
    """What the answer is built from: the question and any context sentences."""

    query: str
    context: tuple[Sentence, ...]
    has_context: bool
    instructions: str


def read(messages: Sequence[Message]) -> Conversation:
    """Split a chat into the user's question, the context it carries and the instructions."""
    users = [m for m in messages if m.role == "user"]
    latest = users[-1].text if users else (messages[-1].text if messages else "")
    context: list[Sentence] = []
    has_context = False
    for message in messages:
        if message.role == "tool":
            regions = [message.text]
        elif message.role in {"system", "developer", "user"}:
            regions, _ = _regions(message.text)
        else:
            continue
        has_context = has_context or bool(regions)
        for region in regions:
            context.extend(_sentences(region))
    instructions = "\n".join(m.text for m in messages if m.role in {"system", "developer"})
    return Conversation(_question(latest), tuple(context), has_context, instructions)


def compose(conversation: Conversation) -> Answer:
    """The deterministic reply: quoted context when there is context, an echo otherwise."""
    query = conversation.query
    if conversation.has_context:
        quoted = _relevant(query, conversation.context)
        if not quoted:
            return Answer(NO_ANSWER, (), query)
        parts = [f'"{s.text}"' + (f" (source: {s.source})" if s.source else "") for s in quoted]
        return Answer("According to the provided context: " + " ".join(parts), quoted, query)
    if set(words(query)) & _GREETINGS and len(words(query)) <= 4:
        return Answer(GREETING, (), query)
    shown = query if len(query) <= 300 else query[:297] + "..."
    return Answer(f'You said: "{shown}". This is the OpenAI stand-in\'s reply.', (), query)


def _relevant(query: str, context: Sequence[Sentence]) -> tuple[Sentence, ...]:
    """The best sentence, plus the runner-up when it is nearly as relevant."""
    wanted = features(query)
    scored = [(cosine(wanted, features(s.text)), i, s) for i, s in enumerate(context)]
    scored.sort(key=lambda item: (-item[0], item[1]))
    if not scored or scored[0][0] < _MIN_RELEVANCE:
        return ()
    best = [scored[0]]
    if len(scored) > 1 and scored[1][0] >= max(_MIN_RELEVANCE, scored[0][0] * _SECOND_RATIO):
        best.append(scored[1])
    best.sort(key=lambda item: item[1])
    return tuple(item[2] for item in best)
