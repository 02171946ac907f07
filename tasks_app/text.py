"""Text Taskdeck can store and show: checked at the door, made safe where task code writes it.

Two kinds of character pass through Python strings but not through the rest of the system:

* a lone UTF-16 surrogate (``"\\ud800"``: a JSON escape, or an undecodable file name Python
  read with ``surrogateescape``) cannot be encoded as UTF-8, so a page showing it fails to
  render, and SQLite's driver refuses to write it to a text column;
* NUL (``"\\u0000"``) is refused by PostgreSQL in text and in jsonb.

Callers (API, admin, command line, definitions file) are refused with the location of the first
such character (``first_unstorable``). What task code writes (progress, activity, output, the
error and the result) is not refused but escaped (``storable``, ``storable_data``): a run must
never fail for printing an odd file name. ``UnstorableTextDecoder`` does the same for JSON read
back from the database, so rows stored before the door was closed still render.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: What a JSON request body may nest (the Run request is three levels deep).
MAX_JSON_DEPTH = 32

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def is_storable(text: str) -> bool:
    """No NUL and no lone surrogate (a valid pair is one character in Python, never matched)."""
    if text.isascii():
        return "\x00" not in text
    return _UNSTORABLE.search(text) is None


def storable(text: str) -> str:
    """``text`` with each unstorable character written as its escape (``\\ud800``, ``\\x00``)."""
    if is_storable(text):
        return text
    return _UNSTORABLE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    character = match.group()
    return "\\x00" if character == "\x00" else character.encode("utf-8", "backslashreplace").decode("ascii")


def storable_data(value: Any) -> Any:
    """A copy of JSON-like data with every string (keys included) made storable."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {storable_data(key): storable_data(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable_data(item) for item in value]
    return value


@dataclass(frozen=True)
class Finding:
    """Where a JSON-like value first breaks the rules, and how."""

    location: str
    message: str
    too_deep: bool = False

    @property
    def clause(self) -> str:
        """The message to follow a name in one line: "field 'title': contains a NUL ..."."""
        return self.message[0].lower() + self.message[1:]


def first_unstorable(value: Any, *, location: str) -> Finding | None:
    """Where JSON-like ``value`` holds a string (or a key) that cannot be stored, or nests deeper
    than ``MAX_JSON_DEPTH``. Walks without recursion, so any nesting the JSON parser produced is
    safe to look at."""
    for path, depth, item in _walk(value, location):
        if depth > MAX_JSON_DEPTH:
            return Finding(path, f"Nested more than {MAX_JSON_DEPTH} levels deep.", too_deep=True)
        if isinstance(item, str) and not is_storable(item):
            return Finding(path, _why(item))
    return None


def _walk(value: Any, location: str) -> Iterator[tuple[str, int, Any]]:
    stack: list[tuple[str, int, Any]] = [(location, 0, value)]
    while stack:
        path, depth, item = stack.pop()
        yield path, depth, item
        if isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                key_path = f"{path}.{storable(str(key))}"
                yield key_path, depth + 1, key
                stack.append((key_path, depth + 1, child))
        elif isinstance(item, list):
            stack.extend((f"{path}[{index}]", depth + 1, child) for index, child in reversed(list(enumerate(item))))


def _why(text: str) -> str:
    bad = _UNSTORABLE.search(text)
    assert bad is not None
    if bad.group() == "\x00":
        return "Contains a NUL character (\\u0000), which cannot be stored."
    return f"Contains a lone surrogate ({storable(bad.group())}), which is not valid Unicode text."


class UnstorableTextDecoder(json.JSONDecoder):
    """Reads JSON columns so that what comes back can always be rendered.

    A column written before the API refused lone surrogates may hold one (SQLite keeps the
    ``\\ud800`` escape as written); it is read as its escape text instead of breaking every list
    and page that shows the row. The common case costs one substring test.
    """

    def decode(self, s: str, *args: Any, **kwargs: Any) -> Any:
        value = super().decode(s, *args, **kwargs)
        if "\\u" in s and (_has_surrogate_escape(s) or "\\u0000" in s):
            return storable_data(value)
        return value


def _has_surrogate_escape(s: str) -> bool:
    lowered = s.lower()
    return any(marker in lowered for marker in ("\\ud8", "\\ud9", "\\uda", "\\udb", "\\udc", "\\udd", "\\ude", "\\udf"))


# --- Output bytes: what a run's log stores (models/logs.py) ---------------------------------------


def output_bytes(text: str) -> bytes:
    """Text task code wrote (print, ``ctx.log``) as the bytes of its run's log: UTF-8, a character
    of an undecodable file name (``surrogateescape``) as the byte it stands for, and, in text
    holding another lone surrogate, every surrogate as its escape. Bytes, unlike a text column,
    take NUL and invalid UTF-8: readers decode with replacement."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return text.encode("utf-8", "backslashreplace")


def incomplete_character(data: bytes | bytearray) -> int:
    """How many bytes at the end of ``data`` begin a UTF-8 character that is not complete yet
    (0 to 3): a reader that stops there and goes on later never shows a character cut in two."""
    for back in range(1, min(4, len(data)) + 1):
        lead = data[-back]
        if lead & 0xC0 == 0x80:
            continue  # a continuation byte: its lead is further back
        if not 0xC2 <= lead <= 0xF4:
            return 0  # ASCII, or a byte no character starts with: nothing to wait for
        length = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
        return back if back < length else 0
    return 0


def whole_characters(data: bytes) -> bytes:
    """``data`` without a UTF-8 character cut in two at its end (the next piece starts with it)."""
    cut = incomplete_character(data)
    return data[:-cut] if cut else data
