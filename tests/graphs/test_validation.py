"""Validation and bad input: every malformed flow gets a clear error naming the node or edge."""

from __future__ import annotations

import json

import pytest

from graphs import document
from graphs.errors import FlowInvalid
from graphs.validation import validate
from tests.graphs.support import flow, node, services
from tests.support.work import calls_made


def problems(doc: dict) -> list[str]:
    try:
        graph = document.load(doc)
    except FlowInvalid as exc:
        return [str(p) for p in exc.problems]
    return [str(p) for p in validate(graph, services())]


def simple(**llm_config) -> dict:
    return flow(
        node("q", "input", name="q"),
        node("ask", "llm", **({"prompt": "Answer {{ q }}"} | llm_config)),
        node("out", "output", name="a"),
        edges=[("q", "value", "ask", "q"), ("ask", "text", "out", "value")],
    )


def test_a_good_flow_has_no_problems():
    assert problems(simple()) == []


def test_unknown_node_type_is_named():
    doc = simple()
    doc["nodes"][1]["type"] = "llmm"
    assert problems(doc)[0].startswith("node 'ask': unknown node type 'llmm' (known types: agent,")


def test_node_type_named_like_a_python_builtin_is_just_unknown():
    doc = simple()
    doc["nodes"][1]["type"] = "__import__"
    assert problems(doc)[0].startswith("node 'ask': unknown node type '__import__'")


def test_bad_config_key_is_refused():
    assert problems(simple(temprature=0.2)) == ["node 'ask': unknown config key 'temprature'"]


def test_missing_and_mistyped_config_values_are_named():
    doc = simple()
    doc["nodes"][1]["config"] = {"max_tokens": "many"}
    found = problems(doc)
    assert "node 'ask': config.prompt is required" in found
    assert any(p.startswith("node 'ask': config.max_tokens:") for p in found)


def test_dangling_edge_is_refused_before_networkx_invents_a_node():
    doc = simple()
    doc["edges"].append(
        {"source": "ask", "target": "ghost", "source_port": "text", "target_port": "value"}
    )
    assert problems(doc) == [
        "edge 'ask' -> 'ghost' (2): dangling edge: target node 'ghost' does not exist"
    ]


def test_duplicate_node_id_is_refused():
    doc = simple()
    doc["nodes"].append(node("ask", "template", template="x"))
    assert problems(doc) == ["node 'ask': duplicate node id"]


@pytest.mark.parametrize(
    "bad", ["../../../teams/4/delete", "a/b", "..", "a b", "2fast", "x" * 101, "é", "<b>", ""]
)
def test_node_ids_must_be_identifiers(bad):
    doc = simple()
    doc["nodes"].append(node(bad, "template", template="x"))
    [problem] = problems(doc)
    assert "must be an identifier" in problem and "letters, digits, _ or -" in problem


@pytest.mark.parametrize("port", ["source_port", "target_port"])
def test_port_names_must_be_identifiers(port):
    doc = simple()
    doc["edges"][0][port] = "value/../x"
    [problem] = problems(doc)
    assert f"'{port}' 'value/../x' must be an identifier" in problem


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_numbers_json_cannot_hold_are_refused(number):
    doc = simple()
    doc["nodes"][0]["config"]["default"] = number
    [problem] = problems(doc)
    assert "not a number JSON can hold" in problem


def test_unguarded_cycle_is_refused_and_a_guarded_one_accepted():
    doc = flow(
        node("a", "template", template="{{ x }}"),
        node("b", "template", template="{{ x }}"),
        edges=[("a", "text", "b", "x"), ("b", "text", "a", "x")],
    )
    assert problems(doc) == [
        "node 'a': unguarded cycle a -> b -> a: set max_iterations on one of its nodes"
    ]
    doc["nodes"][1]["config"]["max_iterations"] = 3
    assert problems(doc) == []


def test_self_loop_needs_a_guard_too():
    doc = flow(node("a", "template", template="{{ x }}"), edges=[("a", "text", "a", "x")])
    assert "unguarded cycle a -> a" in problems(doc)[0]


def test_router_route_with_no_matching_port_is_named():
    doc = flow(
        node("q", "input", name="q"),
        node("r", "router", routes=["yes", "no"], default="no"),
        node("o", "output", name="o"),
        edges=[
            ("q", "value", "r", "input"),
            ("r", "yes", "o", "value"),
            ("r", "maybe", "o", "value"),
        ],
    )
    assert problems(doc) == ["edge 'r' -> 'o' (1): 'r' has no route 'maybe' (it has: no, yes)"]


def test_router_rules_must_name_known_routes():
    doc = flow(
        node("q", "input", name="q"),
        node("r", "router", routes=["a"], rules=[{"route": "b", "pattern": "x"}]),
        edges=[("q", "value", "r", "input")],
    )
    assert problems(doc) == ["node 'r': rule names route 'b', which is not in routes"]


def test_router_regex_must_compile():
    doc = flow(node("r", "router", routes=["a"], rules=[{"route": "a", "pattern": "("}]))
    assert problems(doc)[0].startswith("node 'r': config.rules.0.pattern: invalid regex '('")


def test_template_variable_with_no_port_is_named():
    found = problems(simple(prompt="Answer {{ q }} using {{ context }}"))
    assert found == [
        "node 'ask': template variable {{ context }} has no port: connect an edge into 'context'"
    ]


def test_edge_into_a_port_the_node_does_not_read_is_named():
    doc = simple()
    doc["edges"].append(
        {"source": "q", "target": "ask", "source_port": "value", "target_port": "qq"}
    )
    assert "edge 'q' -> 'ask' (1): 'ask' has no input port 'qq' (it reads: q)" in problems(doc)


def test_agent_tools_must_exist():
    doc = flow(node("a", "agent", prompt="hi", tools=["calculator", "shell"]))
    assert problems(doc) == ["node 'a': unknown tool 'shell' (known: calculator, http_get)"]


def test_inline_map_flow_is_validated_with_its_own_node_names():
    inner = flow(
        node("x", "input", name="x"),
        node("o", "output", name="o"),
        edges=[("x", "value", "o", "value")],
    )
    doc = flow(
        node("items", "input", name="items"),
        node("m", "map", flow=inner),
        edges=[("items", "value", "m", "items")],
    )
    assert problems(doc) == ["node 'm': inline flow needs an input node named 'item'"]


def test_input_names_must_be_unique_and_inputs_take_no_edges():
    doc = flow(
        node("a", "input", name="q"),
        node("b", "input", name="q"),
        edges=[("a", "value", "b", "value")],
    )
    found = problems(doc)
    assert "node 'b': an input node takes no incoming edges" in found
    assert "node 'b': input name 'q' is also used by 'a'" in found


def test_flow_needs_a_name():
    doc = simple()
    doc["graph"] = {}
    assert problems(doc) == ["the flow needs a name (graph.name)"]


@pytest.mark.parametrize(
    ("prompt", "forbidden"),
    [
        ("{{ ''.__class__.__mro__ }}", "__class__"),
        ("{{ cycler.__init__.__globals__ }}", "__init__"),
        ("{{ q['__class__'] }}", "__class__"),
        ("{{ q|attr('__class__') }}", "__class__"),
        ("{{ q|map(attribute='__class__')|list }}", "__class__"),
    ],
)
def test_sandbox_escapes_in_a_prompt_are_refused_naming_the_node(prompt, forbidden):
    found = problems(simple(prompt=prompt))
    assert found and all(p.startswith("node 'ask': ") for p in found)
    assert f"uses '{forbidden}', which the sandbox forbids" in found[0]


async def test_a_dynamic_private_attribute_is_stopped_by_the_sandbox_at_run_time():
    from tests.graphs.support import run

    doc = flow(
        node("q", "input", name="q"),
        node("t", "template", template="{{ q|attr(q) }}"),
        node("o", "output", name="o"),
        edges=[("q", "value", "t", "q"), ("t", "text", "o", "value")],
    )
    result, _ = await run(doc, {"q": "__class__"})
    assert result.status == "failed"
    assert result.outputs == {}
    assert result.error.startswith("node 't' failed: template: sandbox refused the template:")


def refusal(action) -> tuple[int, list[str]]:
    """The function calls it took `action` to raise FlowInvalid, and its problems."""
    found: list[str] = []

    def refused() -> None:
        with pytest.raises(FlowInvalid) as caught:
            action()
        found.extend(str(p) for p in caught.value.problems)

    return calls_made(refused), found


def test_json_nested_100000_deep_is_refused_without_walking_it():
    calls, found = refusal(lambda: document.parse("[" * 100_000 + "]" * 100_000))
    assert found == ["the JSON is nested too deeply"]
    assert calls < 1_000  # about 40: the parser gives up at Python's recursion limit


def test_a_document_nested_deep_inside_config_is_refused():
    deep: list = []
    for _ in range(1000):
        deep = [deep]
    doc = simple()
    doc["nodes"][0]["config"]["default"] = deep
    assert "nested more than 64 levels deep" in problems(doc)[0]


def test_100000_nodes_are_refused_before_any_node_is_checked():
    doc = flow(*(node(f"n{i}", "template", template="x") for i in range(100_000)))
    calls, found = refusal(lambda: document.load(doc))
    assert found == ["100,000 nodes; the limit is 10,000"]
    # One walk over the values (about 36 calls a node); checking each node would add
    # about 70 a node.
    assert calls < 50 * 100_000


def test_a_10_mb_prompt_is_refused_naming_the_node():
    short = calls_made(lambda: problems(simple(prompt="x" * 10)))
    doc = simple(prompt="x" * 10_000_000)
    found: list[str] = []
    # Fewer calls than a short prompt takes: refused before its template is parsed.
    assert calls_made(lambda: found.extend(problems(doc))) < short
    assert found == ["node 'ask': config.prompt: String should have at most 1000000 characters"]


def test_a_lone_surrogate_is_refused():
    text = json.dumps(simple(prompt="bad \ud800 text"))
    assert "\\ud800" in text
    calls, found = refusal(lambda: document.load(document.parse(text)))
    where = "the document['nodes'][1]['config']['prompt']"
    assert found == [f"{where} holds a lone surrogate, which is not valid Unicode text"]
    assert calls < 1_000  # about 150: one look at each value


def test_not_json_and_not_an_object_are_refused():
    assert refusal(lambda: document.parse("{nope"))[1][0].startswith("not valid JSON:")
    assert refusal(lambda: document.parse("[1, 2]"))[1] == ["a flow document is a JSON object"]


def test_document_round_trips_through_node_link_data():
    doc = simple()
    graph = document.load(doc)
    again = document.load(document.dump(graph))
    assert document.dump(again) == document.dump(graph)
    assert graph.nodes["ask"]["config"] == {"prompt": "Answer {{ q }}"}
