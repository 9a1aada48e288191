"""The ``parse`` node: JSON, XML-ish tags, regex groups and lists read out of model replies."""

from __future__ import annotations

import re

import pytest

from graphs import RunOptions, parsing
from graphs.cache import MemoryCache
from graphs.nodes import NODE_TYPES
from graphs.nodes.base import FieldProblem
from tests.graphs.support import compiled, finished, flow, node, of_type, run, run_with, statuses

PARSE = NODE_TYPES["parse"]


def parser(**config) -> dict:
    return flow(
        node("text", "input", name="text"),
        node("parse", "parse", **config),
        node("out", "output", name="value"),
        edges=[("text", "value", "parse", "text"), ("parse", "value", "out", "value")],
    )


async def parsed(text, **config):
    result, _ = await run(parser(**config), {"text": text})
    assert result.status == "succeeded", result.error
    return result.outputs["value"]


async def failure(text, **config) -> str:
    result, _ = await run(parser(**config), {"text": text})
    assert result.status == "failed" and result.failed_node == "parse"
    return result.error


def problems(config: dict) -> list[str]:
    from graphs.document import load
    from graphs.validation import validate
    from tests.graphs.support import services

    return [str(p) for p in validate(load(parser(**config)), services())]


# ---- json --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"tasks": ["a", "b"], "n": 2}',
        '  \n{"tasks": ["a", "b"], "n": 2}\n',
        'Here is the plan:\n```json\n{"tasks": ["a", "b"], "n": 2}\n```\nGood luck!',
        '```\n{"tasks": ["a", "b"], "n": 2}\n```',
        'Sure. {"tasks": ["a", "b"], "n": 2} Let me know if you need more.',
        'The plan {"tasks": ["a", "b"], "n": 2}\nand an aside {"other": 1}',
    ],
    ids=["alone", "spaces", "fenced", "bare-fence", "prose", "first-of-two"],
)
async def test_json_mode_finds_the_object_whatever_surrounds_it(text):
    assert await parsed(text, mode="json") == {"tasks": ["a", "b"], "n": 2}


async def test_json_mode_reads_a_whole_text_that_is_a_scalar_or_an_array():
    assert await parsed("42", mode="json") == 42
    assert await parsed('"hi"', mode="json") == "hi"
    assert await parsed("[1, 2.5, null, true]", mode="json") == [1, 2.5, None, True]


async def test_json_mode_skips_brackets_that_are_not_json_before_the_value():
    text = 'See [the docs] and {this}: then [{"id": 1}, {"id": 2}]'
    assert await parsed(text, mode="json") == [{"id": 1}, {"id": 2}]


async def test_json_mode_prefers_a_fenced_block_to_brackets_in_the_prose_before_it():
    text = 'Options [a] or [b]:\n```json\n{"pick": "b"}\n```'
    assert await parsed(text, mode="json") == {"pick": "b"}


async def test_json_mode_passes_a_value_that_is_already_json_through():
    doc = flow(
        node("x", "input", name="x", default={"a": [1]}),
        node("parse", "parse", mode="json"),
        node("out", "output", name="value"),
        edges=[("x", "value", "parse", "text"), ("parse", "value", "out", "value")],
    )
    result, _ = await run(doc)
    assert result.outputs == {"value": {"a": [1]}}


async def test_json_mode_says_what_it_expected_and_why_the_nearest_attempt_failed():
    error = await failure("Sorry, I cannot help with that.", mode="json")
    assert error.startswith("node 'parse' failed: no JSON value found: expected an object")
    assert "the text starts 'Sorry, I cannot help with that.'" in error
    error = await failure('```json\n{"a": 1,}\n```', mode="json")
    assert "the ``` block: Expecting property name enclosed in double quotes" in error


async def test_json_mode_refuses_numbers_json_cannot_hold():
    error = await failure('{"score": NaN}', mode="json")
    assert "no JSON value found" in error and "NaN is not a JSON number" in error


@pytest.mark.parametrize("escape", ["\\u0000", "\\ud800"])
async def test_json_mode_refuses_strings_a_stored_value_cannot_hold(escape):
    error = await failure('{"a": "x' + escape + '"}', mode="json")
    assert "a string in it holds NUL (\\u0000) or a lone surrogate" in error
    assert await parsed('["\\ud83d\\ude00"]', mode="json") == ["\U0001f600"]


async def test_json_mode_survives_nesting_deeper_than_the_recursion_limit():
    error = await failure("[" * 100_000, mode="json")
    assert "no JSON value found" in error and "nested too deeply" in error
    assert await parsed("[" * 150 + ' {"ok": true}', mode="json") == {"ok": True}


async def test_json_mode_tries_a_bounded_number_of_places_a_value_could_start():
    # Each place costs up to a scan of the text: the bound keeps the work linear.
    before = "[x] " * (parsing.MAX_JSON_STARTS - 1)
    assert await parsed(before + '{"ok": true}', mode="json") == {"ok": True}
    error = await failure("[x] " + before + '{"ok": true}', mode="json")
    assert "no JSON value found" in error


# ---- xml ---------------------------------------------------------------------------------

# What the Anthropic cookbook's orchestrator asks its model for, as a model writes it.
PLAN = """<analysis>
The task benefits from two styles & one summary.
</analysis>

<tasks>
    <task>
    <type>formal</type>
    <description>Write a precise, technical version</description>
    </task>
    <task>
    <type>conversational</type>
    <description>Write a friendly version that uses a < b loosely</description>
    </task>
</tasks>"""


async def test_xml_mode_reads_every_task_as_an_object_of_its_child_tags():
    assert await parsed(PLAN, mode="xml", tags=["task"], matches="all") == [
        {"type": "formal", "description": "Write a precise, technical version"},
        {
            "type": "conversational",
            "description": "Write a friendly version that uses a < b loosely",
        },
    ]


async def test_xml_mode_reads_the_first_match_and_text_as_written():
    analysis = await parsed(PLAN, mode="xml", tags=["analysis"])
    assert analysis == "The task benefits from two styles & one summary."
    first = await parsed(PLAN, mode="xml", tags=["task"], matches="first")
    assert first == {"type": "formal", "description": "Write a precise, technical version"}


async def test_xml_mode_with_several_tags_gives_an_object_by_tag():
    value = await parsed(PLAN, mode="xml", tags=["analysis", "tasks"])
    assert value["analysis"].startswith("The task benefits")
    assert [t["type"] for t in value["tasks"]["task"]] == ["formal", "conversational"]


async def test_xml_mode_tolerates_what_models_actually_write():
    text = (
        "I'll wrap each one in a <task> tag, as asked.\n"  # mentioned, never closed
        "```xml\n"
        '<task id="1">Research <em>quickly</em></task>\n'  # attributes, mixed content
        "<task>Draft</task></section>\n"  # a stray closing tag
        "<task/>\n"  # self-closing
        "<task>Review"  # cut off
        "\n```"
    )
    assert await parsed(text, mode="xml", tags=["task"], matches="all") == [
        "Research <em>quickly</em>",
        "Draft",
        "",
    ]


async def test_xml_mode_never_expands_entities():
    text = '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]><task>&a;&a;&amp;</task>'
    assert await parsed(text, mode="xml", tags=["task"]) == "&a;&a;&amp;"


async def test_xml_mode_reads_tags_nested_thousands_deep_without_recursing_into_them():
    deep = "<a>" * 5_000 + "<b>x</b>" + "</a>" * 5_000
    assert await parsed(deep, mode="xml", tags=["b"]) == "x"
    value = await parsed(deep, mode="xml", tags=["a"])
    for _ in range(parsing.MAX_XML_DEPTH):
        value = value["a"]
    # Past the depth bound, an element is read as its text: the rest of the nest.
    assert value.count("<a>") == 5_000 - parsing.MAX_XML_DEPTH - 1 and "<b>x</b>" in value


async def test_xml_mode_names_the_missing_tag():
    error = await failure("<tasks></tasks>", mode="xml", tags=["tasks", "task"])
    assert "no <task>...</task> element found; the text starts '<tasks></tasks>'" in error


# ---- regex -------------------------------------------------------------------------------


async def test_regex_mode_turns_named_groups_into_an_object():
    text = "Verdict: PASS (score 8/10)"
    pattern = r"Verdict: (?P<verdict>\w+) \(score (?P<score>\d+)/10\)(?P<note> .+)?"
    assert await parsed(text, mode="regex", pattern=pattern) == {
        "verdict": "PASS",
        "score": "8",
        "note": None,
    }


async def test_regex_mode_all_gives_a_list_and_without_names_the_matched_text():
    text = "Contact ana@example.com or bo@example.org; not @nobody."
    pattern = r"(?P<user>[\w.]+)@(?P<domain>[\w.]+\w)"
    assert await parsed(text, mode="regex", pattern=pattern, matches="all") == [
        {"user": "ana", "domain": "example.com"},
        {"user": "bo", "domain": "example.org"},
    ]
    emails = await parsed(text, mode="regex", pattern=r"\S+@\S+\w", matches="all")
    assert emails == ["ana@example.com", "bo@example.org"]


async def test_regex_mode_keeps_pythons_unicode_classes():
    assert await parsed("naïve café", mode="regex", pattern=r"(?P<w>\w+)$") == {"w": "café"}


async def test_regex_mode_matches_in_linear_time_what_would_backtrack_for_ages():
    text = "a" * 50_000 + "!"
    error = await failure(text, mode="regex", pattern=r"^(a|a)+$")
    assert "no match for the regex '^(a|a)+$'" in error


async def test_regex_mode_says_which_pattern_did_not_match():
    error = await failure("nothing here", mode="regex", pattern=r"(?P<n>\d+)")
    assert error == (
        "node 'parse' failed: no match for the regex '(?P<n>\\\\d+)'; "
        "the text starts 'nothing here'"
    )


def test_a_pattern_re2_cannot_run_is_refused_when_the_flow_is_checked():
    [problem] = problems({"mode": "regex", "pattern": r"(?P<a>x)(?=y)"})
    assert problem.startswith("node 'parse': config.pattern: regex '(?P<a>x)(?=y)' cannot be used")
    assert "lookahead (?=...) is not supported" in problem


# ---- lines -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "- research\n- draft\n- review",
        "Here is the plan:\n\n1. research\n2. draft\n3) review\n\nThat's it.",
        "* research\n+ draft\n• review",
        "(1) research\n(2) draft\n(3) review",
        "research\ndraft\n\n  review  \n",
        "```\nresearch\ndraft\nreview\n```",
    ],
    ids=["dashes", "numbers-in-prose", "bullets", "parenthesised", "plain-lines", "fenced"],
)
async def test_lines_mode_reads_the_list_whatever_marks_it(text):
    assert await parsed(text, mode="lines") == ["research", "draft", "review"]


async def test_lines_mode_joins_wrapped_items_and_keeps_nested_ones():
    text = "1. Research the\n   market\n   - competitors\n2. Draft\n**Bold** is not an item"
    assert await parsed(text, mode="lines") == [
        "Research the market",
        "competitors",
        "Draft",
    ]


async def test_lines_mode_on_an_empty_text_says_what_it_expected():
    error = await failure("  \n\n", mode="lines")
    assert "no list found: expected bullets (- item), numbers (1. item) or lines" in error


# ---- the node ----------------------------------------------------------------------------


async def test_a_failed_parse_goes_down_the_error_port_with_on_error_continue():
    doc = flow(
        node("text", "input", name="text"),
        node("parse", "parse", mode="json", on_error="continue"),
        node("ok", "output", name="value"),
        node("why", "output", name="error"),
        edges=[
            ("text", "value", "parse", "text"),
            ("parse", "value", "ok", "value"),
            ("parse", "error", "why", "value"),
        ],
    )
    result, events = await run(doc, {"text": "no json"})
    assert result.status == "succeeded"
    assert result.outputs["error"].startswith("no JSON value found")
    assert statuses(events)["ok"] == "skipped"


async def test_a_parse_is_cached_by_default():
    flow_ = compiled(parser(mode="lines"))
    cache = MemoryCache(source="earlier")
    await run_with(flow_, {"text": "- a\n- b"}, RunOptions(cache=cache))
    _, events = await run_with(flow_, {"text": "- a\n- b"}, RunOptions(cache=cache))
    [hit] = finished(events, "parse")
    assert hit["cached"]["source"] == "earlier" and hit["output"] == {"value": ["a", "b"]}


async def test_a_long_text_is_read_whole():
    items = [f"item {i}" for i in range(parsing.MAX_MATCHES)]
    text = "\n".join(f"- {item}" for item in items)
    assert await parsed(text, mode="lines") == items


async def test_a_text_past_the_limit_is_refused_naming_the_limit():
    error = await failure("x" * (parsing.MAX_CHARS + 1), mode="lines")
    assert f"at most {parsing.MAX_CHARS:,} are read" in error


async def test_text_mode_refuses_a_value_that_is_not_text():
    doc = flow(
        node("x", "input", name="x", default=[1, 2]),
        node("parse", "parse", mode="lines"),
        node("out", "output", name="value"),
        edges=[("x", "value", "parse", "text"), ("parse", "value", "out", "value")],
    )
    result, _ = await run(doc)
    assert result.error == "node 'parse' failed: port 'text' needs text, got list"


async def test_a_parsed_list_fans_out_in_a_map():
    doc = flow(
        node("text", "input", name="text"),
        node("plan", "parse", mode="lines"),
        node(
            "each",
            "map",
            flow=flow(
                node("item", "input", name="item"),
                node("work", "template", template="done: {{ item }}"),
                node("result", "output", name="result"),
                edges=[("item", "value", "work", "item"), ("work", "text", "result", "value")],
            ),
        ),
        node("out", "output", name="results"),
        edges=[
            ("text", "value", "plan", "text"),
            ("plan", "value", "each", "items"),
            ("each", "results", "out", "value"),
        ],
    )
    result, events = await run(doc, {"text": "1. a\n2. b\n3. c"})
    assert result.outputs == {"results": ["done: a", "done: b", "done: c"]}
    assert [e["done"] for e in of_type(events, "node_progress")][-1] == 3


def test_each_mode_reports_its_missing_setting_on_its_field():
    for config, field, message in [
        ({"mode": "xml"}, "tags", "xml mode needs at least one tag to read"),
        ({"mode": "regex"}, "pattern", "regex mode needs a pattern"),
    ]:
        checked = PARSE.Config.model_validate(config)
        assert PARSE.problems(checked, None) == [FieldProblem(field, message)]
    assert problems({"mode": "xml"}) == ["node 'parse': xml mode needs at least one tag to read"]


@pytest.mark.parametrize(
    ("config", "phrase"),
    [
        ({"mode": "yaml"}, "config.mode: Input should be 'json', 'xml', 'regex' or 'lines'"),
        ({"mode": "xml", "tags": ["a b"]}, "tag 'a b' must be a name such as task"),
        ({"mode": "xml", "tags": ["a", "a"]}, "tags must be unique"),
        ({"mode": "regex", "pattern": "(unclosed"}, "invalid regex '(unclosed'"),
        ({"mode": "json", "matches": "some"}, "config.matches: Input should be 'first' or 'all'"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(config, phrase):
    [problem] = problems(config)
    assert problem.startswith("node 'parse': ") and phrase in problem


def test_its_facts_give_the_form_a_choice_of_mode_and_a_monospace_pattern():
    fields = PARSE.Config.model_fields
    assert PARSE.label == "Parse" and PARSE.category == "text"
    assert PARSE.default_config == {"mode": "json"}
    assert fields["pattern"].json_schema_extra == {"widget": "code"}
    for name in ("mode", "tags", "pattern", "matches"):
        assert re.search(r"\w", fields[name].description or ""), name
