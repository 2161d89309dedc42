"""Lexical features behind every stand-in answer: the same text always gives the same result.

Word stems and character trigrams are weighted so that texts sharing vocabulary (even
in another inflection, "charged" / "charge") score high and unrelated texts score near zero.
Hashing uses BLAKE2b, never Python's salted ``hash()``, so vectors agree across processes.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import defaultdict
from collections.abc import Mapping

Features = Mapping[str, float]

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_TOKEN = re.compile(r"\w+|[^\w\s]")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_TRIGRAM_WEIGHT = 0.9

_STOPWORD_TEXT = """
a an the is am are was were be been being i i'm me my mine myself we our ours you your yours
it it's its this that these those to of in on at for with by from as and or but so if do does
did doing have has had will would can could should shall may might must let please just there
here then than them they their theirs he she his her him us what which who whom whose where
when why how into onto about also any some such very too own same again once only more most
other each both all few can't don't won't i'd i've i'll you're we're they're
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def words(text: str) -> list[str]:
    """Lower-case word tokens (letters, digits, an inner apostrophe)."""
    return _WORD.findall(text.lower())


def content_words(text: str) -> list[str]:
    """Words without stopwords; all words when nothing else is left ("Where is it?")."""
    every = words(text)
    kept = [word for word in every if word not in STOPWORDS]
    return kept or every


def stem(word: str) -> str:
    """A deliberately small suffix stripper: enough to join "crashes"/"crash"."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    for suffix, min_len in (("ing", 6), ("ed", 5), ("es", 5), ("s", 4)):
        if len(word) >= min_len and word.endswith(suffix) and not word.endswith("ss"):
            word = word[: -len(suffix)]
            break
    if len(word) > 4 and word.endswith("e"):
        word = word[:-1]
    return word


def features(text: str) -> dict[str, float]:
    """Sparse weighted features of ``text``: each word's stem and its character trigrams."""
    result: dict[str, float] = defaultdict(float)
    for word in content_words(text):
        result["w:" + stem(word)] += 1.0
        padded = f"<{word}>"
        grams = [padded[i : i + 3] for i in range(len(padded) - 2)]
        weight = _TRIGRAM_WEIGHT / math.sqrt(len(grams))
        for gram in grams:
            result["c:" + gram] += weight
    return dict(result)


def cosine(left: Features, right: Features) -> float:
    """Cosine similarity of two sparse vectors; 0.0 when either is empty."""
    if len(left) > len(right):
        left, right = right, left
    dot = sum(value * right.get(key, 0.0) for key, value in left.items())
    norm = math.sqrt(sum(v * v for v in left.values())) * math.sqrt(
        sum(v * v for v in right.values())
    )
    return dot / norm if norm else 0.0


def similarity(left: str, right: str) -> float:
    """Lexical similarity of two texts in [0, 1]."""
    return max(0.0, min(1.0, cosine(features(left), features(right))))


def _bucket(feature: str, dimensions: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % dimensions, (1.0 if (value >> 63) & 1 else -1.0)


def embed(text: str, dimensions: int) -> list[float]:
    """A signed feature-hashing embedding, L2-normalised (so unrelated texts land near 0)."""
    vector = [0.0] * dimensions
    for feature, weight in features(text).items():
        index, sign = _bucket(feature, dimensions)
        vector[index] += sign * weight
    norm = math.sqrt(sum(v * v for v in vector))
    if not norm:
        vector[0] = 1.0
        return vector
    return [v / norm for v in vector]


def count_tokens(text: str) -> int:
    """A plausible token count: words and punctuation marks."""
    return len(_TOKEN.findall(text))


def truncate_tokens(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut after ``limit`` tokens (spacing kept), and whether anything was cut."""
    for index, match in enumerate(_TOKEN.finditer(text)):
        if index == limit:
            return text[: match.start()].rstrip(), True
    return text, False


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``, one line at most each, stripped of list markers."""
    sentences: list[str] = []
    for line in text.splitlines():
        line = re.sub(r"^\s*(?:[-*•]|\[\d+\]|\d+[.)])\s+", "", line).strip()
        sentences.extend(part.strip() for part in _SENTENCE_END.split(line) if part.strip())
    return sentences
