"""Choosing among fixed options (an enum) by lexical similarity to what the user wrote.

Options are described by their name and by any text that lists them, e.g. a schema description
"order_status: where is my order, tracking; billing: charge, refund" or a system prompt line
"- complaint: unacceptable, angry". The best-scoring option wins; its score is its confidence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pytest_tria_deploy.standins.lexical import similarity

MIN_SCORE = 0.05
FALLBACK_NAMES = ("general", "other", "unknown", "none", "fallback", "general_inquiry", "misc")
_SEPARATOR = r"\s*[\"'`*]*\s*(?:[:=(—–]|->|-\s)"
_PHRASE_SPLIT = re.compile(r"[,;/|\n]|\bor\b")


@dataclass(frozen=True)
class Choice:
    """The option chosen and how similar it was to the query (0..1)."""

    value: object
    score: float


def _name_pattern(option: str) -> re.Pattern[str]:
    parts = [re.escape(part) for part in re.split(r"[_\s-]+", option) if part]
    return re.compile(rf"(?<!\w){'[_ -]'.join(parts)}(?!\w){_SEPARATOR}", re.IGNORECASE)


def listed_descriptions(options: Sequence[str], text: str) -> dict[str, list[str]]:
    """Descriptions that ``text`` gives for each option as "option: words" (one per mention)."""
    found: list[tuple[int, int, str]] = []
    for option in options:
        if option:
            found.extend((m.start(), m.end(), option) for m in _name_pattern(option).finditer(text))
    found.sort()
    result: dict[str, list[str]] = {}
    for index, (_, end, option) in enumerate(found):
        stop = found[index + 1][0] if index + 1 < len(found) else len(text)
        segment = text[end:stop]
        first_line, _, rest = segment.partition("\n")
        segment = first_line if first_line.strip() else rest.partition("\n\n")[0]
        segment = segment.strip(" \t\r\n;,.|)-*")
        if segment:
            result.setdefault(option, []).append(segment)
    return result


def option_score(query: str, option: str, descriptions: Iterable[str]) -> float:
    """Similarity of ``query`` to an option: the best of its whole text and each listed phrase."""
    name = re.sub(r"[_-]+", " ", option)
    texts = list(descriptions)
    scores = [similarity(query, " ".join([name, *texts]))]
    for text in texts:
        scores.extend(similarity(query, p) for p in _PHRASE_SPLIT.split(text) if p.strip())
    return max(scores)


def rank(
    query: str, options: Sequence[object], descriptions: Mapping[str, Sequence[str]]
) -> list[Choice]:
    """Options from most to least similar to ``query``; ties keep the schema's order."""
    scored = [
        Choice(option, option_score(query, option, descriptions.get(option, ())))
        if isinstance(option, str)
        else Choice(option, 0.0)
        for option in options
    ]
    return sorted(scored, key=lambda choice: -choice.score)


def choose(
    query: str, options: Sequence[object], descriptions: Mapping[str, Sequence[str]]
) -> Choice:
    """The most similar option; with no real match, a catch-all option ("general", "other")."""
    ranked = rank(query, options, descriptions)
    if ranked[0].score >= MIN_SCORE:
        return ranked[0]
    for name in FALLBACK_NAMES:
        for choice in ranked:
            if isinstance(choice.value, str) and choice.value.lower() == name:
                return choice
    return next(choice for choice in ranked if choice.value is options[0])
