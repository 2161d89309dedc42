"""Canary secrets and the scan that looks for them in every byte a run leaves behind.

A canary is a random value planted where a real secret would be. The scan looks for each one in
the forms a leak takes: as it is (in any letter case), percent-encoded, base64 (at each of the
three byte alignments, so an encoded ``user:password`` is found too) and either half alone (a
truncated or partly masked value). A finding names the canary and the place, never the value, so
a failed scan does not leak what it caught.
"""

from __future__ import annotations

import base64
import math
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

# Shorter than this, a half or a base64 fragment could match by chance.
MIN_FRAGMENT = 12


@dataclass(frozen=True)
class Canary:
    """One planted secret: what it stands for, and its value."""

    name: str
    value: str = field(repr=False)

    def forms(self, strict: bool = True) -> dict[str, bytes]:
        """Each byte string whose presence means this canary leaked, by the form's name.

        A form shorter than MIN_FRAGMENT could match by chance: ``strict`` refuses such a
        canary, otherwise those forms are left out (the plain value always stays).
        """
        raw = self.value.encode()
        half = len(raw) // 2
        found = {"plain": raw, "first half": raw[:half], "second half": raw[half:]}
        for label, encoded in (
            ("url-encoded", quote(self.value, safe="")),
            ("form-encoded", quote_plus(self.value)),
        ):
            if encoded != self.value:
                found[label] = encoded.encode()
        for offset in range(3):
            for label, encode in (
                ("base64", base64.b64encode),
                ("base64url", base64.urlsafe_b64encode),
            ):
                found[f"{label} (offset {offset})"] = _stable_base64(encode, raw, offset)
        short = [label for label, form in found.items() if len(form) < MIN_FRAGMENT]
        if short and strict:
            raise ValueError(f"canary {self.name} is too short for: {', '.join(short)}")
        return {
            label: form for label, form in found.items() if label == "plain" or label not in short
        }


def _stable_base64(encode: Callable[[bytes], bytes], raw: bytes, offset: int) -> bytes:
    """The base64 characters that depend on ``raw`` alone when ``offset`` bytes come before it."""
    encoded = encode(b"\0" * offset + raw)
    start = math.ceil(offset * 8 / 6)
    end = ((offset + len(raw)) * 8) // 6
    return encoded[start:end]


def make_canary(name: str, tag: str, special: str = "") -> Canary:
    """A fresh random value: ``tag`` says which canary it is, ``special`` (e.g. ``!``) sits in
    the middle so that its percent-encoded form differs from the plain one."""
    return Canary(name, f"cnry{tag}{secrets.token_hex(12)}{special}{secrets.token_hex(12)}")


@dataclass(frozen=True)
class Finding:
    """Canary ``name`` occurs ``count`` times in ``where``, in ``form``."""

    where: str
    name: str
    form: str
    count: int

    def __str__(self) -> str:
        return f"{self.where}: {self.name} ({self.form}) x{self.count}"


def occurrences(
    data: bytes, where: str, canaries: Iterable[Canary], strict: bool = True
) -> Iterator[Finding]:
    """Every canary form found in ``data``; text forms in any letter case, base64 exactly.
    ``strict``: see ``Canary.forms``."""
    lowered = data.lower()
    for canary in canaries:
        for form, needle in canary.forms(strict).items():
            haystack, wanted = (
                (data, needle) if form.startswith("base64") else (lowered, needle.lower())
            )
            count = haystack.count(wanted)
            if count:
                yield Finding(where, canary.name, form, count)


def assert_no_secret(texts: Mapping[str, str | bytes], secrets: Mapping[str, str]) -> None:
    """Fail when a secret (``secrets``: its name and value) occurs in any of ``texts`` (where
    each comes from, and its text) in any form a canary's leak takes that is long enough not to
    match by chance, saying where and which secret's name only: ``assert value not in text``
    would print the value and the whole text.
    """
    canaries = [Canary(name, value) for name, value in secrets.items()]
    findings = [
        str(finding)
        for where, text in texts.items()
        for finding in occurrences(
            text.encode() if isinstance(text, str) else text, where, canaries, strict=False
        )
    ]
    if findings:
        pytest.fail("secret values found (shown by name):\n" + "\n".join(findings), pytrace=False)


def scan_tree(root: Path, canaries: Iterable[Canary]) -> tuple[list[Finding], list[Path]]:
    """Findings in every file under ``root`` (each named relative to it), and the files read."""
    wanted = list(canaries)
    files = sorted(path for path in root.rglob("*") if path.is_file())
    findings = [
        finding
        for path in files
        for finding in occurrences(path.read_bytes(), str(path.relative_to(root)), wanted)
    ]
    return findings, files


def mask(text: str, canaries: Iterable[Canary]) -> str:
    """``text`` with every canary form replaced by ``<name>``: safe to show when a check fails."""
    for canary in canaries:
        for form, needle in sorted(canary.forms().items(), key=lambda item: -len(item[1])):
            flags = 0 if form.startswith("base64") else re.IGNORECASE
            pattern = re.compile(re.escape(needle.decode()), flags)
            text = pattern.sub(f"<{canary.name}>", text)
    return text
