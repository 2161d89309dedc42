"""Build a JSON value that is valid against a JSON Schema, filled from the conversation.

Enums (``enum``, or ``anyOf``/``oneOf`` of ``const`` branches) are chosen by lexical similarity
to the latest user message; a number named like "confidence" gets that choice's score; free
strings carry the chat answer; ``$ref``, ``allOf``, ``required`` and bounds are honoured.
``pattern`` is not: a pattern-constrained string gets the same text as any other string.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_tria_deploy.standins.choices import Choice, choose, listed_descriptions, rank
from pytest_tria_deploy.standins.lexical import content_words, similarity

_MAX_DEPTH = 12
_KEYWORD_LIMIT = 5
_OPTIONAL_DEPTH = 4
_SCORE_NAMES = re.compile(r"confidence|score|probability|certainty|likelihood", re.IGNORECASE)
_REASON_NAMES = re.compile(r"reason|explanation|rationale|justification|thought", re.IGNORECASE)
_ID_NAMES = re.compile(r"(?:^|_)(?:id|number|no|code|ref|reference)(?:$|_)", re.IGNORECASE)
_KEYWORD_NAMES = re.compile(r"keyword|tag|topic|entit|term", re.IGNORECASE)
_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "email": "customer@example.com",
    "idn-email": "customer@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "hostname": "example.com",
}


class SchemaError(ValueError):
    """The schema cannot be satisfied or is not a JSON Schema the stand-in understands."""


@dataclass
class FillContext:
    """What a filled value may draw on: the user's words, the answer, option hints."""

    query: str
    answer: str
    hints: str = ""
    last_choice: Choice | None = field(default=None)


def _words_of(name: str) -> str:
    return re.sub(r"[_\-.]+", " ", re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name))


class SchemaFiller:
    """Fills one schema; ``$ref`` pointers resolve against the schema's root."""

    def __init__(self, root: Any, context: FillContext) -> None:
        self.root = root
        self.context = context

    def fill(self) -> Any:
        return self.value(self.root, name="", description="", depth=0)

    def resolve(self, schema: Any, depth: int) -> dict[str, Any]:
        """The schema with ``$ref`` and ``allOf`` folded in, as a plain dict."""
        if schema is True or schema == {}:
            return {}
        if schema is False:
            raise SchemaError("a `false` schema accepts no value")
        if not isinstance(schema, Mapping):
            raise SchemaError(f"expected a schema object, got {type(schema).__name__}")
        merged = dict(schema)
        ref = merged.pop("$ref", None)
        if ref is not None:
            if depth > _MAX_DEPTH * 2:
                raise SchemaError(f"`$ref` {ref!r} recurses too deeply to instantiate")
            merged = {**self.resolve(self._pointer(ref), depth + 1), **merged}
        parts = merged.pop("allOf", None)
        if parts is not None:
            if not isinstance(parts, list):
                raise SchemaError("`allOf` must be a list of schemas")
            for part in parts:
                merged = _merge(merged, self.resolve(part, depth + 1))
        return merged

    def _pointer(self, ref: object) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise SchemaError(f"only local `$ref` pointers (#/...) are supported, got {ref!r}")
        node: Any = self.root
        for raw in ref[1:].split("/")[1:]:
            key = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                raise SchemaError(f"`$ref` {ref!r} points to nothing in the schema")
        return node

    def value(self, raw: Any, *, name: str, description: str, depth: int) -> Any:
        schema = self.resolve(raw, depth)
        description = str(schema.get("description") or description)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self._choose(schema["enum"], {}, name, description)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self._alternatives(
                    schema, key, name=name, description=description, depth=depth
                )
        kind = schema.get("type")
        if isinstance(kind, list):
            kinds = [k for k in kind if k != "null"]
            if not kinds or (depth >= _MAX_DEPTH and "null" in kind):
                return None
            kind = kinds[0]
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else None
        if kind is None or kind == "string":
            return self._string(schema, name, description)
        builders = {
            "object": self._object,
            "array": self._array,
            "number": self._number,
            "integer": self._number,
            "boolean": self._boolean,
        }
        if kind == "null":
            return None
        if kind not in builders:
            raise SchemaError(f"unknown JSON Schema type {kind!r}")
        return builders[kind](schema, name, description, depth)

    def _alternatives(
        self, schema: dict[str, Any], key: str, *, name: str, description: str, depth: int
    ) -> Any:
        branches = schema[key]
        if not isinstance(branches, list) or not branches:
            raise SchemaError(f"`{key}` must be a non-empty list of schemas")
        resolved = [self.resolve(branch, depth + 1) for branch in branches]
        if all("const" in branch for branch in resolved):
            described = {
                str(b["const"]): [str(b["description"])] for b in resolved if b.get("description")
            }
            return self._choose([b["const"] for b in resolved], described, name, description)
        rest = {k: v for k, v in schema.items() if k != key}
        usable = [b for b in resolved if b.get("type") != "null"]
        if not usable or depth >= _MAX_DEPTH:
            return None
        return self.value(_merge(rest, usable[0]), name=name, description="", depth=depth + 1)

    def _choose(
        self, options: object, described: dict[str, list[str]], name: str, description: str
    ) -> object:
        if not isinstance(options, list) or not options:
            raise SchemaError(f"`enum` of {name or 'the root'} must be a non-empty list")
        names = [o for o in options if isinstance(o, str)]
        for text in (description, self.context.hints):
            for option, found in listed_descriptions(names, text).items():
                described.setdefault(option, []).extend(found)
        choice = choose(self.context.query, options, described)
        self.context.last_choice = choice
        return choice.value

    def _object(self, schema: dict[str, Any], name: str, description: str, depth: int) -> Any:
        properties = schema.get("properties") or {}
        required = schema.get("required") or []
        if not isinstance(properties, Mapping) or not isinstance(required, list):
            raise SchemaError(f"`properties`/`required` of {name or 'the root'} are malformed")
        wanted = [key for key in properties if key in required or depth < _OPTIONAL_DEPTH] + [
            key for key in required if key not in properties
        ]
        extra = schema.get("additionalProperties", True)
        # Enum-like properties first, so a "confidence" sibling can carry the chosen score.
        order = sorted(wanted, key=lambda key: 0 if self._is_choice(properties.get(key)) else 1)
        values: dict[str, Any] = {}
        for key in order:
            if key in properties:
                sub = properties[key]
            elif extra is False:
                raise SchemaError(f"required property {key!r} is not allowed by the schema")
            else:
                sub = extra if isinstance(extra, Mapping) else {"type": "string"}
            values[key] = self.value(sub, name=key, description="", depth=depth + 1)
        return {key: values[key] for key in wanted}

    def _is_choice(self, raw: Any) -> bool:
        try:
            schema = self.resolve(raw, 0)
        except SchemaError:
            return False
        if "enum" in schema:
            return True
        branches = schema.get("anyOf") or schema.get("oneOf")
        return isinstance(branches, list) and all(
            isinstance(b, Mapping) and "const" in b for b in branches
        )

    def _array(self, schema: dict[str, Any], name: str, description: str, depth: int) -> Any:
        low = int(schema.get("minItems", 0))
        high = schema.get("maxItems")
        count = max(low, 1 if depth < _MAX_DEPTH else 0)
        if high is not None:
            count = min(count, int(high))
        if count < low:
            raise SchemaError(f"`minItems` of {name or 'the root'} exceeds `maxItems`")
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", {})
        result: list[Any] = [
            self.value(p, name=name, description=description, depth=depth + 1) for p in prefix
        ]
        if items is False:
            return result
        item = self.resolve(items, depth + 1)
        if "enum" in item and schema.get("uniqueItems"):
            ranked = rank(self.context.query, item["enum"], {})
            return result + [c.value for c in ranked[: max(0, count - len(result))]]
        if item.get("type") == "string" and _KEYWORD_NAMES.search(name):
            limit = int(high) if high is not None else _KEYWORD_LIMIT
            result += list(dict.fromkeys(content_words(self.context.query)))[:limit]
        while len(result) < count:
            element = self.value(item, name=name, description=description, depth=depth + 1)
            if isinstance(element, str) and element in result:
                element = f"{element} ({len(result) + 1})"
            result.append(element)
        return result

    def _string(self, schema: Mapping[str, Any], name: str, description: str) -> str:
        fmt = schema.get("format")
        if fmt == "uuid":
            text = str(uuid.uuid5(uuid.NAMESPACE_URL, self.context.query))
        elif isinstance(fmt, str) and fmt in _FORMATS:
            text = _FORMATS[fmt]
        else:
            text = self._named_text(name)
        low = int(schema.get("minLength", 0))
        high = schema.get("maxLength")
        text = text.ljust(low, ".")
        return text[: int(high)] if high is not None else text

    def _named_text(self, name: str) -> str:
        digits = re.findall(r"\d+", self.context.query)
        if _ID_NAMES.search(name) and digits:
            return str(digits[0])
        if _REASON_NAMES.search(name):
            choice = self.context.last_choice
            if choice is not None:
                return (
                    f"Chose {choice.value!r} as the option closest to the message "
                    f"(lexical similarity {choice.score:.2f})."
                )
            return f"Derived from the message: {self.context.query!r}."
        if name.lower() in {"language", "lang", "locale"}:
            return "en"
        return self.context.answer

    def _number(self, schema: dict[str, Any], name: str, description: str, depth: int) -> Any:
        integer = schema.get("type") == "integer" or (
            isinstance(schema.get("type"), list) and "integer" in schema["type"]
        )
        low, high = _bounds(schema, integer)
        value = 0.0
        if _SCORE_NAMES.search(name):
            choice = self.context.last_choice
            score = choice.score if choice is not None else 0.0
            base = low if low is not None else 0.0
            value = base + score * (high - base) if high is not None and high > 1 else score
            value = round(value, 4)
        if low is not None:
            value = max(value, low)
        if high is not None:
            value = min(value, high)
        step = schema.get("multipleOf")
        if isinstance(step, int | float) and step > 0:
            value = math.ceil(value / step) * step
            if high is not None and value > high:
                raise SchemaError(f"no multiple of {step} fits the bounds of {name or 'the root'}")
        if not integer:
            return value
        result = round(value)
        if low is not None and result < low:
            result = math.ceil(low)
        if high is not None and result > high:
            result = math.floor(high)
        if low is not None and result < low:
            raise SchemaError(f"no integer fits the bounds of {name or 'the root'}")
        return result

    def _boolean(self, schema: dict[str, Any], name: str, description: str, depth: int) -> bool:
        return similarity(self.context.query, f"{_words_of(name)} {description}") >= 0.25


def _bounds(schema: Mapping[str, Any], integer: bool) -> tuple[float | None, float | None]:
    low = schema.get("minimum")
    high = schema.get("maximum")
    nudge = 1 if integer else 1e-6
    if isinstance(schema.get("exclusiveMinimum"), int | float):
        low = schema["exclusiveMinimum"] + nudge
    if isinstance(schema.get("exclusiveMaximum"), int | float):
        high = schema["exclusiveMaximum"] - nudge
    for bound in (low, high):
        if bound is not None and not isinstance(bound, int | float):
            raise SchemaError("`minimum`/`maximum` must be numbers")
    if low is not None and high is not None and low > high:
        raise SchemaError("`minimum` is greater than `maximum`")
    return low, high


def _merge(left: Mapping[str, Any], right: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(left)
    for key, value in right.items():
        if key == "properties" and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        elif key == "required" and isinstance(merged.get(key), list):
            merged[key] = list(dict.fromkeys([*merged[key], *value]))
        else:
            merged[key] = value
    return merged


def fill(schema: Any, context: FillContext) -> Any:
    """A value valid against ``schema`` (raises SchemaError when it cannot make one)."""
    try:
        return SchemaFiller(schema, context).fill()
    except SchemaError:
        raise
    except (TypeError, ValueError, AttributeError, RecursionError) as error:
        raise SchemaError(f"malformed schema ({type(error).__name__}: {error})") from None
