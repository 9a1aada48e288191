r"""Reading structure out of what a model wrote: JSON, XML-ish tags, regex groups, lists.

Model replies are loose. JSON arrives inside a code fence or after "Here is the plan:";
XML arrives unescaped, half-closed, wrapped in prose. So each reader here looks for the
structure it was asked for and ignores the rest, and each says plainly what it expected
when it finds nothing (``ParseProblem``).

Every reader does work bounded by its input, which ``MAX_CHARS`` and ``MAX_MATCHES`` cap
(``bench/parse_worst.py`` times the worst texts we know). None of them runs an XML parser
(entity expansion turns a few hundred bytes into gigabytes): tags are found by a linear
scan.

>>> first_json('Sure! ```json\n{"tasks": ["a", "b"]}\n``` Anything else?')
{'tasks': ['a', 'b']}
>>> xml_values("<tasks><task><type>formal</type></task><task>casual</task></tasks>",
...            ["task"], every=True)
[{'type': 'formal'}, 'casual']
>>> regex_values(r"(?P<name>\w+): (?P<score>\d+)", "alice: 7, bob: 9", every=True)
[{'name': 'alice', 'score': '7'}, {'name': 'bob', 'score': '9'}]
>>> list_items("Steps:\n1. Plan\n2. Build\n   and test\n- Ship")
['Plan', 'Build and test', 'Ship']
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from graphs import regex

# The longest text a reader takes (a long model reply is some 200,000 characters).
MAX_CHARS = 1_000_000
# JSON: where a value may start. Each failed start costs at most one scan of the text.
MAX_JSON_STARTS = 200
# The most matches one text gives (the same bound as a map's items).
MAX_MATCHES = 10_000

XML_NAME = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
# Elements nested deeper than this inside a match are read as their text.
MAX_XML_DEPTH = 50


class ParseProblem(ValueError):
    """The text holds nothing of the kind asked for; the message says what was expected."""


def check_size(text: str) -> None:
    if len(text) > MAX_CHARS:
        raise ParseProblem(f"the text is {len(text):,} characters; at most {MAX_CHARS:,} are read")


def excerpt(text: str, length: int = 80) -> str:
    """The start of a text, on one line, for an error message."""
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= length else flat[:length] + "…")


# ---- JSON --------------------------------------------------------------------------------


def _no_constant(name: str) -> Any:
    # Python's json takes NaN and Infinity; a flow's values are JSON, whose numbers are finite.
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)


# What a JSON escape can spell but a stored value cannot hold: PostgreSQL refuses NUL, and a
# lone surrogate has no UTF-8 (the API refuses both in what it is sent, for the same reason).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _loads(text: str, start: int = 0) -> tuple[Any, int]:
    """The JSON value starting at ``start`` and where it ends, or ValueError saying why not."""
    try:
        value, end = _DECODER.raw_decode(text, start)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if _UNSTORABLE.search(text, start, end) or any(map(_UNSTORABLE.search, _strings(value))):
        raise ValueError("a string in it holds NUL (\\u0000) or a lone surrogate")
    return value, end


def _strings(value: Any) -> list[str]:
    """Every string in a JSON value, keys included (no recursion: nesting may be deep)."""
    found, pending = [], [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, list):
            pending += item
        elif isinstance(item, dict):
            found += item
            pending += item.values()
    return found


def fenced_blocks(text: str) -> list[str]:
    r"""The contents of the text's Markdown code fences (```lang ... ```), in order.

    >>> fenced_blocks("a\n```json\n[1]\n```\nb\n```\n2\n```")
    ['[1]', '2']
    """
    blocks: list[str] = []
    opened: list[str] | None = None
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            if opened is None:
                opened = []
            else:
                blocks.append("\n".join(opened).strip())
                opened = None
        elif opened is not None:
            opened.append(line)
    return blocks


def whole_json(text: str) -> Any:
    """The text as one JSON value, nothing but whitespace around it: what a template that
    says it renders JSON must render (no fences or prose are looked past, unlike
    ``first_json``).

    >>> whole_json(' {"n": [1, 2.5, true, null]}\\n')
    {'n': [1, 2.5, True, None]}
    >>> whole_json('{"a": 1} and more')
    Traceback (most recent call last):
    ...
    graphs.parsing.ParseProblem: extra text after the value at line 1 column 10
    """
    check_size(text)
    start = len(text) - len(text.lstrip())
    try:
        value, end = _loads(text, start)
    except json.JSONDecodeError as exc:
        raise ParseProblem(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:
        raise ParseProblem(str(exc)) from None
    rest = text[end:]
    if rest.strip():
        at = end + len(rest) - len(rest.lstrip())
        line = text.count("\n", 0, at) + 1
        column = at - text.rfind("\n", 0, at)
        raise ParseProblem(f"extra text after the value at line {line} column {column}")
    return value


def first_json(text: str) -> Any:
    """The first JSON value in a text: the whole text, else a fenced block, else the first
    object or array that starts somewhere in it (prose before and after is ignored; of the
    places one could start, the first ``MAX_JSON_STARTS`` are tried).

    >>> first_json(' 42 ')
    42
    >>> first_json('The answer: [1, 2] and then {"a": 1}')
    [1, 2]
    >>> first_json('Nothing here.')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    graphs.parsing.ParseProblem: no JSON value found: expected an object {...} or ...
    """
    check_size(text)
    whole = text.strip()
    # Why the likeliest place did not parse: a fenced block, else the first bracket.
    nearest = ""
    for index, candidate in enumerate([whole, *fenced_blocks(text)]):
        try:
            value, end = _loads(candidate)
        except ValueError as exc:
            nearest = nearest or (f"the ``` block: {exc}" if index else "")
            continue
        if not candidate[end:].strip():
            return value
    for count, found in enumerate(re.finditer(r"[\[{]", text)):
        if count >= MAX_JSON_STARTS:
            break
        try:
            return _loads(text, found.start())[0]
        except ValueError as exc:
            nearest = nearest or f"from character {found.start()}: {exc}"
    why = f" ({nearest})" if nearest else ""
    raise ParseProblem(
        "no JSON value found: expected an object {...} or an array [...], alone, in a ``` "
        f"fence or among prose; the text starts {excerpt(text)}{why}"
    )


# ---- XML-ish tags ------------------------------------------------------------------------

# An opening, closing or self-closing tag. `[^<>]*` stops at the next angle bracket, so
# each try scans at most to the next '<' and the whole search stays linear.
_TAG = re.compile(r"<(/?)([A-Za-z_][A-Za-z0-9_.-]*)(?:\s[^<>]*?)?(/?)>")


@dataclass
class _Element:
    name: str
    start: int  # its opening tag's '<'
    open_end: int  # where its content starts
    close_start: int = -1  # where its content ends
    end: int = -1  # just past its closing tag
    children: list[_Element] = field(default_factory=list)


def _elements(text: str) -> list[_Element]:
    """The closed elements of a text, outermost first, each with its closed children.

    A tag that is never closed is text (as is a closing tag that closes nothing open).
    """
    root = _Element("", 0, 0)
    stack = [root]
    # How many elements of each name are open: a closing tag for none is skipped at once,
    # so a run of stray closing tags under deep unclosed ones stays linear.
    open_names: Counter[str] = Counter()
    for count, tag in enumerate(_TAG.finditer(text)):
        if count >= MAX_MATCHES * 10:
            raise ParseProblem(f"more than {MAX_MATCHES * 10:,} tags")
        closing, name, self_closing = tag.group(1), tag.group(2), tag.group(3)
        if closing:
            if not open_names[name]:
                continue
            while stack[-1].name != name:
                _drop(stack, open_names)
            element = stack.pop()
            open_names[name] -= 1
            element.close_start, element.end = tag.start(), tag.end()
            stack[-1].children.append(element)
        elif self_closing:
            stack[-1].children.append(_Element(name, tag.start(), tag.end(), tag.end(), tag.end()))
        else:
            stack.append(_Element(name, tag.start(), tag.end()))
            open_names[name] += 1
    while len(stack) > 1:
        _drop(stack, open_names)
    return root.children


def _drop(stack: list[_Element], open_names: Counter[str]) -> None:
    """An element never closed was text; the elements closed inside it stand."""
    unclosed = stack.pop()
    open_names[unclosed.name] -= 1
    stack[-1].children += unclosed.children


def _value(text: str, element: _Element, depth: int = 0) -> Any:
    """An element holding only elements (and spaces) is an object of them, a name that
    repeats giving a list; any other element is its text, stripped, as written (as is one
    nested deeper than ``MAX_XML_DEPTH``, which bounds the recursion)."""
    content = text[element.open_end : element.close_start]
    if not element.children or depth >= MAX_XML_DEPTH:
        return content.strip()
    position, between = element.open_end, []
    for child in element.children:
        between.append(text[position : child.start])
        position = child.end
    between.append(text[position : element.close_start])
    if "".join(between).strip():
        return content.strip()  # mixed text and tags: the text as written
    values: dict[str, list[Any]] = {}
    for child in element.children:
        values.setdefault(child.name, []).append(_value(text, child, depth + 1))
    return {name: items[0] if len(items) == 1 else items for name, items in values.items()}


def _named(elements: list[_Element], name: str) -> list[_Element]:
    """The elements of that name, in order, not looking inside one that matched."""
    found: list[_Element] = []
    pending = elements[::-1]  # a stack, not recursion: tags may nest thousands deep
    while pending:
        element = pending.pop()
        if element.name == name:
            found.append(element)
        else:
            pending += element.children[::-1]
    return found


def xml_values(text: str, tags: list[str], *, every: bool) -> Any:
    """The content of the first element named each tag (``every``: a list of all of them),
    as ``_value`` reads it. One tag gives its value; several give an object by tag.

    >>> xml_values("Plan: <analysis>two ways</analysis> <task id=1>a</task><task/>",
    ...            ["analysis", "task"], every=True)
    {'analysis': ['two ways'], 'task': ['a', '']}
    >>> xml_values("I will use a <task> tag. <task>real</task>", ["task"], every=False)
    'real'
    """
    check_size(text)
    elements = _elements(text)
    values: dict[str, Any] = {}
    for tag in tags:
        found = _named(elements, tag)
        if not found:
            raise ParseProblem(
                f"no <{tag}>...</{tag}> element found; the text starts {excerpt(text)}"
            )
        if len(found) > MAX_MATCHES:
            raise ParseProblem(f"more than {MAX_MATCHES:,} <{tag}> elements")
        values[tag] = [_value(text, e) for e in found] if every else _value(text, found[0])
    return values[tags[0]] if len(tags) == 1 else values


# ---- Regex -------------------------------------------------------------------------------


def regex_values(pattern: str, text: str, *, every: bool) -> Any:
    r"""The first match of a pattern (``every``: a list of all), each an object of its named
    groups, or the matched text when it names none. Matched by RE2 in linear time.

    >>> regex_values(r"\d+", "a1 b22", every=True)
    ['1', '22']
    """
    check_size(text)
    compiled = regex.compile(pattern)
    named = bool(compiled.group_names)
    found: list[Any] = []
    for match in compiled.finditer(text):
        found.append(match.groups if named else match.text)
        if not every:
            return found[0]
        if len(found) > MAX_MATCHES:
            raise ParseProblem(f"more than {MAX_MATCHES:,} matches of {pattern!r}")
    if not found:
        raise ParseProblem(f"no match for the regex {pattern!r}; the text starts {excerpt(text)}")
    return found


# ---- Lists -------------------------------------------------------------------------------

# "- x", "* x", "+ x", "• x", "1. x", "1) x", "(1) x", at any indent.
_ITEM = re.compile(r"^\s*(?:[-*+•‣◦▪]|\d{1,9}[.)]|\(\d{1,9}\))\s+(\S.*)$")


def list_items(text: str) -> list[str]:
    r"""The items of a bulleted or numbered list, each a string; an indented line right
    after an item continues it. Lines that are not items (a heading, "Here are the
    steps:") are left out. A text with no list item gives each non-empty line instead.

    >>> list_items("first\n\n second \n```")
    ['first', 'second']
    """
    check_size(text)
    items: list[str] = []
    continues = False
    for line in text.splitlines():
        if found := _ITEM.match(line):
            items.append(found.group(1).strip())
            continues = True
        elif continues and line[:1].isspace() and line.strip():
            items[-1] += " " + line.strip()
        else:
            continues = False
    if not items:
        items = [s for line in text.splitlines() if (s := line.strip()) and not s.startswith("```")]
    if not items:
        raise ParseProblem("no list found: expected bullets (- item), numbers (1. item) or lines")
    if len(items) > MAX_MATCHES:
        raise ParseProblem(f"more than {MAX_MATCHES:,} items")
    return items
