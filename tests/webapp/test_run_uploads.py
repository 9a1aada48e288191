"""Files as parts of a multipart body (webapp.runs.uploads): ``POST /api/flows/{id}/runs``,
its estimate and the editor's run take the JSON as the field ``body`` and each file input as
a file part named by its input, beside the JSON form (base64), on the in-process driver
against the fake Anthropic server. Caps answer 413 before the rest is read: the whole body
by its declared length (webapp.bodylimit, in the ASGI application), each file as its part
is parsed (naming the input); a file of a type a run does not take is a 400 naming it.
"""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from channels.testing import ApplicationCommunicator
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.fakes.anthropic_server import FILE_TOKENS
from tests.webapp.test_body_limit import http_scope, response_of
from tests.webapp.test_run_files import PNG, PNG64, file_graph, finished, model_calls
from webapp.accounts.models import ApiToken
from webapp.flows import services
from webapp.runs.models import Run, RunFile

pytestmark = pytest.mark.django_db(transaction=True)

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@pytest.fixture
def model(anthropic_env):
    from webapp.execution import plans

    plans.engine_services.cache_clear()
    yield anthropic_env
    plans.engine_services.cache_clear()


@pytest.fixture
def flow(alice, team):
    return services.create(alice, "Look", file_graph("Look: {{ pic }} then {{ q }}"), team=team)


@pytest.fixture
def two_files(alice, team):
    graph = file_graph("{{ pic }} and {{ q }}")
    graph["nodes"][1]["config"] = {"name": "q", "kind": "file"}
    return services.create(alice, "Two", graph, team=team)


@pytest.fixture
def token(alice) -> str:
    return ApiToken.issue(alice, "tests")[1]


def upload(client, token, path: str, body: dict | None = None, headers=None, **files):
    """A multipart POST as curl -F sends it: ``body`` as a text field, files as parts."""
    data: dict = {name: SimpleUploadedFile(*sent) for name, sent in files.items()}
    if body is not None:
        data["body"] = json.dumps(body)
    return client.post(path, data, headers={"Authorization": f"Bearer {token}", **(headers or {})})


def runs_of(flow) -> str:
    return f"/api/flows/{flow.pk}/runs"


def test_a_file_sent_as_a_part_is_stored_and_reaches_the_model(model, flow, client, token):
    response = upload(
        client,
        token,
        runs_of(flow),
        {"inputs": {"q": "which cat?"}, "version": "current"},
        pic=("../My cat.png", PNG, "application/octet-stream"),
    )
    assert response.status_code == 201, response.content
    run = finished(response.json()["id"])
    [call] = model_calls(model)
    assert call["messages"][0]["content"] == [
        {"type": "text", "text": "Look: "},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG64}},
        {"type": "text", "text": " then which cat?"},
    ]
    stored = RunFile.objects.get(run=run)
    assert (stored.input_name, stored.name, stored.media_type) == ("pic", "My_cat.png", "image/png")
    assert bytes(stored.data) == PNG
    assert run.inputs["pic"]["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert run.inputs["q"] == "which cat?"


def test_parts_and_base64_files_go_together_and_the_body_field_is_optional(
    model, two_files, client, token
):
    body = {
        "version": "current",
        "files": {"q": {"name": "a.pdf", "data": base64.b64encode(PDF).decode()}},
    }
    response = upload(client, token, runs_of(two_files), body, pic=("cat.png", PNG, "image/png"))
    assert response.status_code == 201, response.content
    run = finished(response.json()["id"])
    assert sorted(RunFile.objects.filter(run=run).values_list("input_name", "media_type")) == [
        ("pic", "image/png"),
        ("q", "application/pdf"),
    ]
    # No body field at all: the published (here the only) version, its defaults.
    response = upload(client, token, runs_of(two_files), None, pic=("c.png", PNG, "image/png"))
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_flow" and "q" in json.dumps(response.json())
    # The same input as a part and base64: refused, naming it.
    body["files"]["pic"] = {"name": "x.png", "data": PNG64}
    response = upload(client, token, runs_of(two_files), body, pic=("c.png", PNG, "image/png"))
    assert response.status_code == 400
    assert response.json()["code"] == "file_refused" and "'pic'" in response.json()["detail"]


def test_a_part_over_the_file_cap_is_a_413_naming_its_input(
    model, two_files, client, token, settings
):
    settings.RUN_FILE_MAX_BYTES = 1000
    big = b"%PDF-1.4\n" + b"x" * 5000
    response = upload(
        client,
        token,
        runs_of(two_files),
        {"version": "current"},
        pic=("cat.png", PNG, "image/png"),
        q=("big.pdf", big, "application/pdf"),
    )
    assert response.status_code == 413
    problem = response.json()
    assert problem["code"] == "file_too_large"
    assert "'q'" in problem["detail"] and "1000 bytes per file" in problem["detail"]
    assert not Run.objects.exists() and not RunFile.objects.exists()


def test_parts_over_the_run_cap_are_a_413_naming_the_input_that_passes_it(
    model, two_files, client, token, settings
):
    settings.RUN_FILES_MAX_BYTES = len(PNG) + 10
    response = upload(
        client,
        token,
        runs_of(two_files),
        {"version": "current"},
        pic=("a.png", PNG, "image/png"),
        q=("b.png", PNG, "image/png"),
    )
    assert response.status_code == 413
    assert "'q'" in response.json()["detail"]
    assert f"past {len(PNG) + 10} bytes" in response.json()["detail"]
    assert not RunFile.objects.exists()


def test_a_part_of_another_type_is_refused_naming_its_input(model, flow, client, token):
    response = upload(
        client,
        token,
        runs_of(flow),
        {"version": "current"},
        pic=("cat.png", b"PK\x03\x04zip", "image/png"),
    )
    assert response.status_code == 400
    assert response.json()["code"] == "file_refused"
    assert (
        "'pic'" in response.json()["detail"]
        and "not a file a run takes" in response.json()["detail"]
    )
    assert not Run.objects.exists()


def test_a_malformed_multipart_body_is_a_400_naming_what_is_wrong(model, flow, client, token):
    auth = {"Authorization": f"Bearer {token}"}
    response = client.post(
        runs_of(flow), {"body": "{not json", "pic": SimpleUploadedFile("a.png", PNG)}, headers=auth
    )
    assert response.status_code == 400 and response.json()["code"] == "malformed_json"
    response = client.post(runs_of(flow), {"body": "[1]"}, headers=auth)
    assert response.status_code == 400 and response.json()["code"] == "body_not_object"
    response = client.post(
        runs_of(flow), {"q": "a field", "pic": SimpleUploadedFile("a.png", PNG)}, headers=auth
    )
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_multipart" and "'q'" in response.json()["detail"]
    response = client.post(
        runs_of(flow),
        b'--x\r\nContent-Disposition: form-data; name="pic"; filename="a"\r\n\r\nno end',
        content_type="multipart/form-data",  # no boundary
        headers=auth,
    )
    assert response.status_code == 400 and response.json()["code"] == "malformed_multipart"
    # Elsewhere in the API a multipart body is still refused as before.
    response = client.post("/api/flows", {"name": "x"}, headers=auth)
    assert response.status_code == 415
    assert not Run.objects.exists()


def test_the_same_idempotency_key_with_another_file_is_refused(model, flow, client, token):
    key = {"Idempotency-Key": "upload-1"}
    body = {"version": "current"}
    first = upload(client, token, runs_of(flow), body, key, pic=("a.png", PNG, "image/png"))
    again = upload(client, token, runs_of(flow), body, key, pic=("a.png", PNG, "image/png"))
    assert first.status_code == 201 and again.status_code == 201
    assert again["Idempotent-Replayed"] == "true" and again.json()["id"] == first.json()["id"]
    other = upload(client, token, runs_of(flow), body, key, pic=("a.png", PNG + b"x", "image/png"))
    assert other.status_code == 409
    assert Run.objects.count() == 1


def test_the_editors_run_takes_parts_too(model, flow, client, alice):
    client.force_login(alice)
    response = client.post(
        f"/flows/{flow.pk}/editor-runs/",
        {"body": json.dumps({"inputs": {"q": "why"}}), "pic": SimpleUploadedFile("c.png", PNG)},
    )
    assert response.status_code == 201, response.content
    run = finished(response.json()["id"])
    assert RunFile.objects.get(run=run).name == "c.png"
    assert model_calls(model)[0]["messages"][0]["content"][1]["type"] == "image"


def test_the_estimate_counts_the_files_in_its_prompts(model, flow, client, token, api):
    # "Look: then what is it?": 5 words, and the image FILE_TOKENS (the fake counts so).
    response = upload(
        client, token, f"/api/flows/{flow.pk}/estimate", {"version": "current"},
        pic=("cat.png", PNG, "image/png"),
    )  # fmt: skip
    assert response.status_code == 200, response.content
    [line] = response.json()["nodes"]
    assert (line["node"], line["source"]) == ("ask", "count_tokens")
    assert line["input_tokens"] == FILE_TOKENS + 5
    [counted] = [c for c in model_calls_any(model) if c["path"] == "/v1/messages/count_tokens"]
    assert counted["body"]["messages"][0]["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG64},
    }
    # A file of another type is refused naming its input; nothing is stored.
    bad = api("alice").post(
        f"/api/flows/{flow.pk}/estimate",
        {
            "version": "current",
            "files": {"pic": {"name": "x", "data": base64.b64encode(b"\x00").decode()}},
        },
    )
    assert bad.status_code == 400 and "'pic'" in bad.json()["detail"]
    assert not RunFile.objects.exists() and not Run.objects.exists()


def test_the_estimate_takes_base64_files_too(model, flow, api):
    # One counted estimate a test: the test client gives each request its own event loop.
    with_json = api("alice").post(
        f"/api/flows/{flow.pk}/estimate",
        {"version": "current", "files": {"pic": {"name": "cat.png", "data": PNG64}}},
    )
    assert with_json.status_code == 200, with_json.content
    assert with_json.json()["nodes"][0]["input_tokens"] == FILE_TOKENS + 5
    # Without the file the first call cannot be counted (the input is missing).
    assert (
        api("alice").post(f"/api/flows/{flow.pk}/estimate", {"version": "current"}).status_code
        == 400
    )


def model_calls_any(fake) -> list[dict]:
    import urllib.request

    with urllib.request.urlopen(f"{fake.url}/_fake/requests", timeout=10) as response:
        return [{**r, "path": r["path"].split("?")[0]} for r in json.load(response)]


# The whole body's cap, in the ASGI application (webapp.bodylimit): multipart run uploads
# may be as long as the JSON cap plus the run's files, nothing else may.


async def test_a_declared_upload_over_its_cap_is_refused_before_any_body_is_read(settings):
    settings.API_MAX_BODY_BYTES, settings.RUN_FILES_MAX_BYTES = 50_000, 200_000
    multipart = (b"content-type", b"multipart/form-data; boundary=x")
    communicator = ApplicationCommunicator(
        application(), http_scope("/api/flows/7/runs", multipart, (b"content-length", b"300000"))
    )
    # Not one byte of the body is sent.
    status, _, body = await response_of(communicator)
    assert status == 413
    problem = json.loads(body)
    assert problem["code"] == "body_too_large"
    assert problem["detail"] == "request body is 300,000 bytes; the limit is 250,000"
    await communicator.wait(timeout=5)


async def test_a_chunked_upload_over_its_cap_is_refused_before_it_ends(settings):
    settings.API_MAX_BODY_BYTES, settings.RUN_FILES_MAX_BYTES = 50_000, 100_000
    multipart = (b"content-type", b"multipart/form-data; boundary=x")
    communicator = ApplicationCommunicator(
        application(), http_scope("/api/flows/7/runs", multipart)
    )
    for _ in range(16):  # 160,000 bytes, and more to come
        await communicator.send_input(
            {"type": "http.request", "body": b" " * 10_000, "more_body": True}
        )
    status, _, body = await response_of(communicator)
    assert status == 413
    assert json.loads(body)["detail"] == "request body is over 150,000 bytes; the limit is 150,000"
    await communicator.wait(timeout=5)


def application():
    from webapp.asgi import application

    return application
