r"""Regexes written by users, matched in time linear in the text they search.

Python's ``re`` backtracks: ``^(a|a)+$`` against 26 characters that do not match takes
seconds, and each extra character doubles it. Matching runs inline on the event loop that
serves every user, so a backtracking engine lets one pattern freeze the server. RE2 (the
``google-re2`` bindings) matches in linear time instead; the price is that it has no
backreferences and no lookaround, so patterns using them are refused when the flow is
checked (``RegexProblem`` says which construct and why), not when they first run.

Patterns keep Python's ``re.search`` meaning where RE2's syntax differs, by rewriting them:

- ``\d``, ``\w``, ``\s`` and, outside a set, ``\D``, ``\W``, ``\S`` match Unicode as in
  Python (RE2's are ASCII): ``^\w+$`` still matches "café";
- ``$`` also matches before a newline that ends the text; ``\Z`` is the end of the text;
- ``\uXXXX`` and ``\UXXXXXXXX`` escapes.

What still differs: ``\b`` and ``\B`` are ASCII word boundaries; ``\W`` and ``\S`` inside a
set are ASCII; a ``$`` that a later part of the pattern must follow with the final newline
(``a$\n``) does not match; RE2's own syntax (``\pL``, ``[[:alpha:]]``) is accepted.

>>> compile(r"(?i)^refund\b").search("Refund please")
True
>>> compile(r"^\w+$").search("café\n")
True
>>> compile(r"(\w+) \1")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
graphs.regex.RegexProblem: regex '(\\w+) \\1' cannot be used: backreferences ... not supported, ...
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

# Python's \s for str: what str.isspace() accepts (checked against `re` in the tests).
_SPACE = (
    r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\x{1680}\x{2000}-\x{200a}"
    r"\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
)
_WORD = r"\p{L}\p{N}_"
# Outside a set, each class escape becomes a set of its own.
_OUTSIDE = {
    "d": r"\p{Nd}",
    "D": r"\P{Nd}",
    "w": f"[{_WORD}]",
    "W": f"[^{_WORD}]",
    "s": f"[{_SPACE}]",
    "S": f"[^{_SPACE}]",
    "Z": r"\z",
}
# Inside a set only what a set can hold: a negated class cannot join a union.
_INSIDE = {"d": r"\p{Nd}", "D": r"\P{Nd}", "w": _WORD, "s": _SPACE}
# Python's non-multiline $ matches at the end or before a final newline; (?m)$ already
# matches before any newline, so the extra branch changes nothing there.
_DOLLAR = r"(?:$|\n\z)"

# RE2's error text starts with what it could not parse; say why in the user's terms.
_NO_BACKTRACKING = "because patterns are matched without backtracking"
_REASONS = (
    ("invalid perl operator: (?=", f"lookahead (?=...) is not supported, {_NO_BACKTRACKING}"),
    ("invalid perl operator: (?!", f"lookahead (?!...) is not supported, {_NO_BACKTRACKING}"),
    ("invalid perl operator: (?<=", f"lookbehind (?<=...) is not supported, {_NO_BACKTRACKING}"),
    ("invalid perl operator: (?<!", f"lookbehind (?<!...) is not supported, {_NO_BACKTRACKING}"),
    ("invalid perl operator: (?>", f"atomic groups (?>...) are not supported, {_NO_BACKTRACKING}"),
    ("invalid perl operator: (?(", f"conditionals (?(...)) are not supported, {_NO_BACKTRACKING}"),
    ("invalid perl operator: (?#", "comments (?#...) are not supported"),
    ("bad repetition operator: *+", f"possessive *+ is not supported, {_NO_BACKTRACKING}"),
    ("bad repetition operator: ++", f"possessive ++ is not supported, {_NO_BACKTRACKING}"),
    ("bad repetition operator: ?+", f"possessive ?+ is not supported, {_NO_BACKTRACKING}"),
)
_BACKREFERENCE = f"backreferences (\\1, (?P=name)) are not supported, {_NO_BACKTRACKING}"


class RegexProblem(ValueError):
    """The pattern cannot be used; the message names it and says why."""


class Pattern:
    """A compiled pattern; ``search`` answers whether it occurs anywhere in a text."""

    __slots__ = ("_compiled", "source")

    def __init__(self, source: str, compiled: Any):
        self.source = source
        self._compiled = compiled

    def search(self, text: str | bytes) -> bool:
        """Whether the pattern occurs in ``text``; pass bytes (UTF-8) to search one text
        with many patterns without encoding it again for each."""
        if isinstance(text, str):
            text = encode(text)
        return self._compiled.search(text) is not None

    @property
    def group_names(self) -> tuple[str, ...]:
        """The pattern's named groups, in the order they open."""
        index: dict[str, int] = self._compiled.groupindex
        return tuple(sorted(index, key=index.__getitem__))

    def finditer(self, text: str | bytes) -> Iterator[Match]:
        """Each non-overlapping match, left to right, as ``re.finditer`` finds them.

        >>> [m.groups for m in compile(r"(?P<k>\\w+)=(?P<v>\\d+)?").finditer("a=1 é=")]
        [{'k': 'a', 'v': '1'}, {'k': 'é', 'v': None}]
        """
        if isinstance(text, str):
            text = encode(text)
        index: dict[str, int] = self._compiled.groupindex
        # Looked up once: the bindings' group(name) rebuilds the name table on every call.
        named = [(name, index[name] - 1) for name in self.group_names]
        for found in self._compiled.finditer(text):
            # Matching runs on UTF-8 with Unicode classes, so groups end on whole characters.
            values = found.groups()
            groups = {name: _decode(values[position]) for name, position in named}
            yield Match(_decode(found.group()) or "", groups)

    def __repr__(self) -> str:
        return f"Pattern({self.source!r})"


@dataclass(frozen=True)
class Match:
    """One match: the text it covers, and each named group's text (None: it took no part)."""

    text: str
    groups: dict[str, str | None]


def _decode(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "surrogatepass")


def encode(text: str) -> bytes:
    """The UTF-8 that ``Pattern.search`` takes; a lone surrogate passes through."""
    return text.encode("utf-8", "surrogatepass")


_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print each refused pattern on stderr


@lru_cache(maxsize=1024)
def compile(pattern: str) -> Pattern:
    """Compile a user's pattern, or raise RegexProblem naming it and saying why."""
    try:
        return Pattern(pattern, re2.compile(translate(pattern), options=_OPTIONS))
    except re2.error as exc:
        detail = exc.args[0] if exc.args else ""
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        reason = _unsupported(pattern, str(detail))
        if reason is not None:
            raise RegexProblem(f"regex {pattern!r} cannot be used: {reason}") from None
        raise RegexProblem(f"invalid regex {pattern!r}: {detail}") from None


def _unsupported(pattern: str, detail: str) -> str | None:
    """Why a pattern Python would take is refused, or None when it is simply invalid."""
    if "invalid perl operator: (?P" in detail and "(?P=" in pattern:
        return _BACKREFERENCE
    if detail.startswith("invalid escape sequence: \\") and detail[-1:].isdigit():
        return _BACKREFERENCE
    for start, reason in _REASONS:
        if detail.startswith(start):
            return reason
    if detail.startswith("invalid perl operator: (?"):
        return f"{detail.removeprefix('invalid perl operator: ')} is not supported (flags: i, m, s)"
    return None


def translate(pattern: str) -> str:
    r"""Rewrite Python ``re`` syntax into RE2 syntax with the same meaning.

    >>> translate(r"^\d+$")
    '^\\p{Nd}+(?:$|\\n\\z)'
    >>> translate(r"[\w.-]+@\u00e9\$")
    '[\\p{L}\\p{N}_.-]+@\\x{00e9}\\$'
    """
    out: list[str] = []
    in_set = False
    set_start = 0  # where a ']' would still be a literal member of the set
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\" and i + 1 < n:
            escape = pattern[i + 1]
            if escape in "uU":
                width = 4 if escape == "u" else 8
                digits = pattern[i + 2 : i + 2 + width]
                if len(digits) == width and all(c in "0123456789abcdefABCDEF" for c in digits):
                    out.append(f"\\x{{{digits}}}")
                    i += 2 + width
                    continue
            table = _INSIDE if in_set else _OUTSIDE
            out.append(table.get(escape, pattern[i : i + 2]))
            i += 2
            continue
        if in_set:
            if char == "]" and i > set_start:
                in_set = False
        elif char == "[":
            in_set = True
            set_start = i + 1
            if pattern.startswith("^", set_start):
                set_start += 1
        elif char == "$":
            out.append(_DOLLAR)
            i += 1
            continue
        out.append(char)
        i += 1
    return "".join(out)
