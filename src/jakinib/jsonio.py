"""Strict JSON in: the one reader for every JSON document jakinib accepts (files, request bodies).

``json.loads`` keeps the last of two duplicate keys, accepts lone surrogates, ``NaN`` and
``Infinity``, and recurses until it overflows the stack. A safety tool must refuse all of these,
so every reader goes through :func:`loads_strict`, which raises one-line ``InputError`` s:

>>> loads_strict('{"labs": {"platelets": 20}}')
{'labs': {'platelets': 20}}
>>> loads_strict('{"labs": {"platelets": 20, "platelets": 300}}')
Traceback (most recent call last):
...
jakinib.errors.InputError: duplicate key 'platelets' in labs
>>> loads_strict('[[[1]]]', max_depth=2)
Traceback (most recent call last):
...
jakinib.errors.InputError: nested deeper than 2 levels

Files are read with :func:`read_limited` (at most ``MAX_INPUT_BYTES``), so ``/dev/zero`` or a
huge upload fails at once instead of filling memory.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from jakinib.errors import InputError

MAX_DEPTH = 64
"""Deepest nesting accepted (a FHIR Bundle from Synthea nests about 10 levels)."""

MAX_INPUT_BYTES = 32 * 1024 * 1024
"""Largest JSON file read (the biggest Synthea bundle we test with is about 2.3 MB)."""

_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNERMOST = re.compile(r"[\[{][\]}]")


class _Duplicate(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


class _MarkedDict(dict):  # type: ignore[type-arg]
    """The second, locating pass: an object that remembers its first duplicate key."""

    duplicate: str | None = None


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Duplicate(key)
            seen.add(key)
    return obj


def _marking_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = _MarkedDict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen and obj.duplicate is None:
                obj.duplicate = key
            seen.add(key)
    return obj


def _refuse_constant(name: str) -> Any:
    raise InputError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InputError(f"number {text[:40]} is out of range")
    return value


def _path(parts: list[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "the top level"


def _find(obj: Any, found: Any, path: list[Any]) -> tuple[list[Any], Any] | None:
    """Depth-first: the path to the first node where ``found(node)`` gives a value."""
    stack: list[tuple[Any, list[Any]]] = [(obj, path)]
    while stack:
        node, where = stack.pop()
        hit = found(node)
        if hit is not None:
            return where, hit
        if isinstance(node, dict):
            stack.extend((v, [*where, k]) for k, v in reversed(list(node.items())))
        elif isinstance(node, list):
            stack.extend((v, [*where, i]) for i, v in reversed(list(enumerate(node))))
    return None


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_depth(text: str, max_depth: int) -> None:
    """Refuse nesting deeper than ``max_depth`` before parsing (C-speed passes; no recursion)."""
    unescaped = text.replace("\\\\", "").replace('\\"', "")
    brackets = _NOT_BRACKET.sub("", "".join(unescaped.split('"')[::2]))  # the parts outside strings
    passes = 0
    while brackets and passes < max_depth:
        shorter = _INNERMOST.sub("", brackets)
        if len(shorter) == len(brackets):
            break  # unbalanced: the parser will say where
        brackets, passes = shorter, passes + 1
    depth = deepest = 0
    for ch in brackets:
        depth += 1 if ch in "[{" else -1
        deepest = max(deepest, depth)
    if passes + deepest > max_depth:
        raise InputError(f"nested deeper than {max_depth} levels")


def decode_text(data: str | bytes) -> str:
    """UTF-8 text from bytes (a BOM is tolerated); binary, UTF-16 or PNG input is one clear error."""
    if isinstance(data, str):
        text = data
    else:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(data) > 1 and (data[0] == 0 or data[1] == 0)):
            raise InputError("not UTF-8 text (it looks like UTF-16): save it as UTF-8")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}): is it a binary file?") from None
    text = text.removeprefix("\ufeff")
    if "\x00" in text:
        raise InputError(f"not JSON text (a NUL byte at offset {text.index(chr(0))}): is it a binary file?")
    if _has_surrogate(text):
        raise InputError("text contains a lone UTF-16 surrogate (invalid Unicode)")
    return text


def loads_strict(text: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse one JSON document, refusing duplicate keys, lone surrogates, NaN/Infinity and deep nesting."""
    text = decode_text(text)
    _check_depth(text, max_depth)
    try:
        value = json.loads(text, object_pairs_hook=_strict_object, parse_constant=_refuse_constant, parse_float=_finite_float)
    except _Duplicate:
        marked = json.loads(text, object_pairs_hook=_marking_object)
        where = _find(marked, lambda n: n.duplicate if isinstance(n, _MarkedDict) else None, [])
        key, path = (where[1], where[0]) if where else ("?", [])
        raise InputError(f"duplicate key {key!r} in {_path(path)}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:  # an integer with more digits than Python converts
        raise InputError(f"malformed JSON: {str(exc).split(';')[0][:120]}") from None
    if "\\u" in text and _has_surrogate(json.dumps(value, ensure_ascii=False)):
        where = _find(value, lambda n: "lone surrogate" if isinstance(n, str) and _has_surrogate(n) else None, [])
        if where is None:
            where = _find(value, lambda n: next((k for k in n if _has_surrogate(k)), None) if isinstance(n, dict) else None, [])
        raise InputError(f"a lone UTF-16 surrogate (\\ud800-\\udfff) in {_path(where[0]) if where else 'a key'}: invalid Unicode")
    return value


def read_limited(path: str | Path, limit: int = MAX_INPUT_BYTES) -> bytes:
    """At most ``limit`` bytes of a file; a larger (or endless) file is an error, not a hang."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise InputError(f"{path}: larger than {limit // (1024 * 1024)} MB, the most jakinib reads (jsonio.MAX_INPUT_BYTES)")
    return data


def read_json(path: str | Path, *, limit: int = MAX_INPUT_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """One JSON file, read with a size limit and parsed strictly; errors name the file."""
    data = read_limited(path, limit)
    try:
        return loads_strict(data, max_depth=max_depth)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
