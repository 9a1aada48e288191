"""Router patterns run on RE2: linear time, Python's `re.search` meaning, refusals up front."""

from __future__ import annotations

import re
import sys
import unicodedata

import pytest

from graphs import regex, validate
from graphs.document import load
from tests.graphs.support import compiled, flow, node

# Where Python's syntax and RE2's differ, the translation must keep Python's answer.
SAME_AS_PYTHON = [
    (r"(?i)refund", "I want a REFUND"),
    (r"^200$", "200"),
    (r"^200$", "200\n"),  # Python's $ also matches before a final newline
    (r"^200$", "200\n\n"),
    (r"(?m)^b$", "a\nb\nc"),
    (r"a.c", "a\nc"),
    (r"(?s)a.c", "a\nc"),
    (r"^\d+$", "٣٤٥"),  # Arabic-Indic digits are \d in Python
    (r"^\w+$", "café"),
    (r"^\w+$", "naïve-ish"),
    (r"\W", "日本語"),
    (r"\s", "a\u3000b"),
    (r"\S", " \t\n"),
    (r"[\w.]+@[\w.]+", "jörg@example.de"),
    (r"[^\w]", "abc"),
    (r"[^\d\s]", "1 2"),
    (r"end\Z", "the end"),
    (r"end\Z", "the end\n"),
    (r"caf\u00e9", "café"),
    (r"\U0001F600", "smile \U0001f600"),
    (r"[$]", "costs $5"),
    (r"\$\d", "costs $5"),
    (r"[]x]", "a]"),
    (r"(?P<word>\w+)@", "me@host"),
    (r"colou?r|gr[ae]y", "GREY"),
    (r"(?i)gr[ae]y", "GREY"),
    (r"^(a|a)+$", "aaaa"),
    (r"x{2,3}", "axxb"),
]


@pytest.mark.parametrize(("pattern", "text"), SAME_AS_PYTHON)
def test_a_pattern_means_what_it_means_in_python(pattern, text):
    assert regex.compile(pattern).search(text) is bool(re.search(pattern, text))


def test_class_escapes_match_the_same_characters_as_python():
    # Every assigned character of the Basic Multilingual Plane, at once.
    chars = "".join(
        chr(c)
        for c in range(0x10000)
        if not 0xD800 <= c <= 0xDFFF and unicodedata.category(chr(c)) != "Cn"
    )
    for escape in (r"\d", r"\D", r"\w", r"\W", r"\s", r"\S", r"[\d]", r"[\w]", r"[\s]"):
        ours = regex.compile(escape)._compiled.findall(chars)
        assert ours == re.findall(escape, chars), escape


def test_catastrophic_backtracking_pattern_answers_correctly():
    # Python's re needs time doubling with each 'a' here; RE2 is linear.
    pattern = regex.compile(r"^(a|a)+$")
    assert pattern.search("a" * 5000 + "b") is False
    assert pattern.search("a" * 5000) is True


async def test_router_routes_a_pathological_input_by_re2():
    doc = flow(
        node("q", "input", name="q"),
        node(
            "r",
            "router",
            routes=["all_a", "other"],
            rules=[{"route": "all_a", "pattern": "^(a|a)+$"}],
            default="other",
        ),
        node("out_a", "output", name="a"),
        node("out_o", "output", name="o"),
        edges=[
            ("q", "value", "r", "input"),
            ("r", "all_a", "out_a", "value"),
            ("r", "other", "out_o", "value"),
        ],
    )
    flow_ = compiled(doc)
    text = "a" * 5000 + "b"
    assert (await flow_.run({"q": text})).outputs == {"o": text}
    assert (await flow_.run({"q": "aaaa"})).outputs == {"a": "aaaa"}


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        (r"foo(?=bar)", "lookahead (?=...) is not supported"),
        (r"(?<!un)happy", "lookbehind (?<!...) is not supported"),
        (r"(\w+) \1", r"backreferences (\1, (?P=name)) are not supported"),
        (r"(?P<w>\w+) (?P=w)", r"backreferences (\1, (?P=name)) are not supported"),
        (r"(?>a+)b", "atomic groups (?>...) are not supported"),
        (r"a*+b", "possessive *+ is not supported"),
    ],
)
def test_patterns_re2_cannot_run_are_refused_at_validation(pattern, why):
    doc = flow(
        node("q", "input", name="q"),
        node("r", "router", routes=["a"], rules=[{"route": "a", "pattern": pattern}]),
        node("o", "output", name="o"),
        edges=[("q", "value", "r", "input"), ("r", "a", "o", "value")],
    )
    messages = [str(p) for p in validate(load(doc))]
    assert messages == [
        f"node 'r': config.rules.0.pattern: regex {pattern!r} cannot be used: {why}, "
        "because patterns are matched without backtracking"
    ]


def test_an_invalid_pattern_says_what_is_wrong():
    with pytest.raises(regex.RegexProblem, match=r"^invalid regex '\(': missing \)"):
        regex.compile("(")


def test_unsupported_flags_are_named():
    with pytest.raises(regex.RegexProblem, match=r"\(\?x is not supported \(flags: i, m, s\)"):
        regex.compile("(?x) a b")


def test_refusing_a_pattern_prints_nothing(capfd):
    with pytest.raises(regex.RegexProblem):
        regex.compile("(?=quiet)")
    sys.stderr.flush()
    assert capfd.readouterr().err == ""
