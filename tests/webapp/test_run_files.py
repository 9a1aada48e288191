"""Files as run inputs (webapp.runs.files, graphs.files), on the in-process driver against
the fake Anthropic server: a file sent base64 with ``POST /api/flows/{id}/runs`` is stored
under the run, its input becomes a reference, and an ``llm`` prompt variable holding it
reaches the model as an image or document block in its place (the fake server's request
log shows the exact request); citations come back in the node's detail; caps and types are
refused naming the input; the file view answers who may see the run; no byte of a file is
in an event.

Alice owns the flow (in her team), bob edits it, carol views it, dave is a stranger.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import urllib.request
import zlib

import pytest
from asgiref.sync import async_to_sync

from tests.fakes.anthropic_server import FILE_TOKENS
from webapp import execution
from webapp.execution import plans
from webapp.flows import services
from webapp.runs.models import Run, RunEvent, RunFile

pytestmark = pytest.mark.django_db(transaction=True)


def png_bytes() -> bytes:
    """A real 1x1 PNG (a browser shows it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


PNG = png_bytes()
PNG64 = base64.b64encode(PNG).decode()


def node(id_: str, type_: str, **config) -> dict:
    return {"id": id_, "type": type_, "config": config, "position": {"x": 0, "y": 0}}


def edge(source: str, port: str, target: str, target_port: str) -> dict:
    return {"source": source, "target": target, "source_port": port, "target_port": target_port}


def file_graph(prompt: str) -> dict:
    return {
        "directed": True,
        "multigraph": True,
        "graph": {"name": "Look"},
        "nodes": [
            node("pic", "input", name="pic", kind="file"),
            node("q", "input", name="q", default="what is it?"),
            node("ask", "llm", prompt=prompt, max_tokens=100),
            node("out", "output", name="answer"),
        ],
        "edges": [
            edge("pic", "value", "ask", "pic"),
            edge("q", "value", "ask", "q"),
            edge("ask", "text", "out", "value"),
        ],
    }


def idle() -> None:
    async_to_sync(execution.driver().wait_idle)()


def model_calls(fake) -> list[dict]:
    with urllib.request.urlopen(f"{fake.url}/_fake/requests", timeout=10) as response:
        log = json.load(response)
    return [r["body"] for r in log if r["path"].split("?")[0] == "/v1/messages"]


@pytest.fixture
def model(anthropic_env):
    plans.engine_services.cache_clear()
    yield anthropic_env
    plans.engine_services.cache_clear()


@pytest.fixture
def flow(alice, team):
    return services.create(alice, "Look", file_graph("Look: {{ pic }} then {{ q }}"), team=team)


def start(api, flow, files: dict, who: str = "alice", **inputs):
    body = {"inputs": inputs, "files": files, "version": "current"}
    return api(who).post(f"/api/flows/{flow.pk}/runs", body)


def finished(run_id: int) -> Run:
    idle()
    run = Run.objects.get(pk=run_id)
    assert run.status == Run.Status.SUCCEEDED, run.error
    return run


def all_payloads(run: Run) -> str:
    return json.dumps(list(RunEvent.objects.filter(run=run).values_list("payload", flat=True)))


def test_an_image_input_reaches_the_model_as_an_image_block_in_its_place(model, flow, api):
    response = start(api, flow, {"pic": {"name": "../My cat (1).png", "data": PNG64}})
    assert response.status_code == 201, response.content
    run = finished(response.json()["id"])

    [call] = model_calls(model)
    assert call["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look: "},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG64},
                },
                {"type": "text", "text": " then what is it?"},
            ],
        }
    ]
    stored = RunFile.objects.get(run=run)
    assert (stored.input_name, stored.name, stored.media_type) == (
        "pic",
        "My_cat_1_.png",
        "image/png",
    )
    assert bytes(stored.data) == PNG
    assert run.inputs["pic"] == {
        "file": stored.pk,
        "name": "My_cat_1_.png",
        "media_type": "image/png",
        "size": len(PNG),
        "sha256": hashlib.sha256(PNG).hexdigest(),
    }
    assert run.stored_bytes >= len(PNG)
    # The file counts in the usage the fake server reports (a fixed figure per block).
    done = RunEvent.objects.get(run=run, type="node_finished", payload__node="ask").payload
    assert done["usage"]["input_tokens"] == FILE_TOKENS + 5  # Look: then what is it?
    assert done["detail"]["prompt"] == "Look: [file My_cat_1_.png] then what is it?"
    # The reference travels in events; the bytes never do.
    events = all_payloads(run)
    assert PNG64 not in events and PNG64[:40] not in events
    assert '"sha256"' in events


def test_a_text_document_goes_with_citations_and_they_come_back_in_the_detail(
    model, alice, team, api
):
    doc = "The tea harvest of 1901 was the largest on record in Assam."
    made = services.create(alice, "Cite", file_graph("{{ pic }}\n{{ q }} #fake:cite"), team=team)
    response = start(
        api, made, {"pic": {"name": "notes.txt", "data": base64.b64encode(doc.encode()).decode()}}
    )
    assert response.status_code == 201, response.content
    run = finished(response.json()["id"])

    [call] = model_calls(model)
    assert call["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": doc},
            "title": "notes.txt",
            "citations": {"enabled": True},
        },
        {"type": "text", "text": "\nwhat is it? #fake:cite"},
    ]
    done = RunEvent.objects.get(run=run, type="node_finished", payload__node="ask").payload
    assert done["output"]["text"] == "From the document: " + doc[:40]
    assert done["detail"]["citations"] == [
        {
            "text": doc[:40],
            "type": "char_location",
            "cited_text": doc[:40],
            "document_index": 0,
            "document_title": "notes.txt",
            "start_char_index": 0,
            "end_char_index": 40,
        }
    ]


def test_a_document_can_go_without_citations(model, alice, team, api):
    graph = file_graph("{{ pic }} summarise: {{ q }}")
    graph["nodes"][2]["config"]["citations"] = False
    made = services.create(alice, "No cite", graph, team=team)
    pdf = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
    response = start(api, made, {"pic": {"name": "a.pdf", "data": base64.b64encode(pdf).decode()}})
    assert response.status_code == 201, response.content
    finished(response.json()["id"])
    [call] = model_calls(model)
    assert call["messages"][0]["content"][0] == {
        "type": "document",
        "source": {
            "type": "base64",
            "media_type": "application/pdf",
            "data": base64.b64encode(pdf).decode(),
        },
        "title": "a.pdf",
    }


def test_the_same_file_again_is_a_node_cache_hit_by_its_sha256(model, flow, api):
    for _ in range(2):
        response = start(api, flow, {"pic": {"name": "cat.png", "data": PNG64}})
        assert response.status_code == 201, response.content
        second = finished(response.json()["id"])
    # Two runs, two stored files with their own ids, one model call: the key is the content.
    assert RunFile.objects.count() == 2
    assert len(model_calls(model)) == 1
    done = RunEvent.objects.get(run=second, type="node_finished", payload__node="ask").payload
    assert done["cached"]["source"], done


def test_a_file_over_the_cap_is_refused_naming_the_input_and_nothing_is_stored(
    model, flow, api, settings
):
    settings.RUN_FILE_MAX_BYTES = 20
    response = start(api, flow, {"pic": {"name": "cat.png", "data": PNG64}})
    assert response.status_code == 400
    assert response.json()["code"] == "file_refused"
    assert "'pic'" in response.json()["detail"] and "20 bytes" in response.json()["detail"]
    assert not Run.objects.exists() and not RunFile.objects.exists()


def test_files_over_the_run_cap_are_refused(model, alice, team, api, settings):
    graph = file_graph("{{ pic }} {{ q }}")
    graph["nodes"][1]["config"] = {"name": "q", "kind": "file"}
    made = services.create(alice, "Two", graph, team=team)
    settings.RUN_FILES_MAX_BYTES = len(PNG) + 10
    sent = {"name": "a.png", "data": PNG64}
    response = start(api, made, {"pic": sent, "q": sent})
    assert response.status_code == 400
    assert "'q'" in response.json()["detail"]
    assert f"{len(PNG) + 10} bytes" in response.json()["detail"]
    assert not RunFile.objects.exists()


@pytest.mark.parametrize(
    "data, why",
    [
        (b"PK\x03\x04zipped", "not a file a run takes"),
        (b"\x00\x01\x02binary", "not a file a run takes"),
    ],
)
def test_a_file_of_another_type_is_refused_whatever_its_name_says(model, flow, api, data, why):
    sent = {"name": "cat.png", "data": base64.b64encode(data).decode()}
    response = start(api, flow, {"pic": sent})
    assert response.status_code == 400
    assert "'pic'" in response.json()["detail"] and why in response.json()["detail"]
    assert not Run.objects.exists()


def test_bad_base64_and_an_unknown_input_are_refused(model, flow, api):
    response = start(api, flow, {"pic": {"name": "x.png", "data": "not base64!"}})
    assert response.status_code == 400 and "'pic'" in response.json()["detail"]
    response = start(api, flow, {"nope": {"name": "x.png", "data": PNG64}})
    assert response.status_code == 400 and "nope" in json.dumps(response.json())
    assert not RunFile.objects.exists()


@pytest.mark.parametrize(
    "who, status", [("alice", 200), ("bob", 200), ("carol", 200), ("dave", 404)]
)
def test_the_file_view_answers_those_who_may_see_the_run(
    model, flow, api, client, who, status, django_user_model
):
    response = start(api, flow, {"pic": {"name": "cat.png", "data": PNG64}})
    run = finished(response.json()["id"])
    file_id = run.inputs["pic"]["file"]
    client.force_login(django_user_model.objects.get(username=who))
    got = client.get(f"/runs/{run.pk}/files/{file_id}/")
    assert got.status_code == status
    if status == 200:
        assert got.content == PNG
        assert got["Content-Type"] == "image/png"
        assert got["Content-Disposition"] == 'inline; filename="cat.png"'
        assert got["X-Content-Type-Options"] == "nosniff"
        page = client.get(f"/runs/{run.pk}/")
        assert f"/runs/{run.pk}/files/{file_id}/" in page.content.decode()
        assert "cat.png" in page.content.decode()


def test_a_file_of_another_run_is_not_served_nor_read_by_a_typed_reference(
    model, flow, alice, team, api, client
):
    first = finished(start(api, flow, {"pic": {"name": "cat.png", "data": PNG64}}).json()["id"])
    ref = first.inputs["pic"]
    other = services.create(alice, "Other", file_graph("{{ pic }} {{ q }}"), team=team)
    # A value typed to look like a reference to the first flow's file reads nothing.
    response = start(api, other, {}, pic=ref)
    assert response.status_code == 201, response.content
    idle()
    run = Run.objects.get(pk=response.json()["id"])
    assert run.status == Run.Status.FAILED
    assert (
        "not one of this flow's run files" in run.error
        or "not one of this flow's" in all_payloads(run)
    )
    assert not model_calls(model)[1:]
    client.force_login(alice)
    assert client.get(f"/runs/{run.pk}/files/{ref['file'] + 1000}/").status_code == 404


def test_an_agent_sends_the_file_in_its_first_turn_and_records_only_its_name(
    model, alice, team, api
):
    graph = file_graph("Look: {{ pic }} then {{ q }}")
    graph["nodes"][2] = node(
        "ask", "agent", prompt="Look: {{ pic }} then {{ q }}", tools=["calculator"]
    )
    made = services.create(alice, "Agent", graph, team=team)
    response = start(api, made, {"pic": {"name": "cat.png", "data": PNG64}})
    assert response.status_code == 201, response.content
    run = finished(response.json()["id"])
    [call] = model_calls(model)
    assert call["messages"][0]["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG64},
    }
    done = RunEvent.objects.get(run=run, type="node_finished", payload__node="ask").payload
    assert done["detail"]["messages"][0] == {
        "role": "user",
        "content": "Look: [file cat.png] then what is it?",
    }
    assert PNG64[:40] not in all_payloads(run)


def test_the_citations_port_carries_the_fakes_citations_to_an_output(model, alice, team, api):
    doc = "The tea harvest of 1901 was the largest on record in Assam."
    graph = file_graph("{{ pic }}\n{{ q }} #fake:cite")
    graph["nodes"].append(node("cites", "output", name="cites"))
    graph["edges"].append(edge("ask", "citations", "cites", "value"))
    made = services.create(alice, "Cite port", graph, team=team)
    assert made.current().problems == []
    sent = {"pic": {"name": "notes.txt", "data": base64.b64encode(doc.encode()).decode()}}
    response = start(api, made, sent)
    assert response.status_code == 201, response.content
    run = finished(response.json()["id"])
    expected = [
        {
            "text": doc[:40],
            "type": "char_location",
            "cited_text": doc[:40],
            "document_index": 0,
            "document_title": "notes.txt",
            "start_char_index": 0,
            "end_char_index": 40,
        }
    ]
    assert run.outputs["cites"] == expected
    assert run.outputs["answer"] == "From the document: " + doc[:40]
    done = RunEvent.objects.get(run=run, type="node_finished", payload__node="ask").payload
    assert done["output"]["citations"] == expected


def test_without_citations_the_port_is_gone_and_wiring_it_is_a_problem(alice, team):
    graph = file_graph("{{ pic }} {{ q }}")
    graph["nodes"][2]["config"]["citations"] = False
    graph["nodes"].append(node("cites", "output", name="cites"))
    graph["edges"].append(edge("ask", "citations", "cites", "value"))
    made = services.create(alice, "No port", graph, team=team)
    problems = made.current().problems
    assert any("citations" in p["message"] and p.get("edge") for p in problems), problems
