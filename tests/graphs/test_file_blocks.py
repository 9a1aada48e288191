"""Image and document blocks through AnthropicClient and the real SDK, against the fake
Messages API: the fake checks their shape as the API does, counts them in usage, and
answers ``#fake:cite`` with a citation the client keeps on its text block (streamed as a
``citations_delta``). The prompt's blocks come from ``graphs.files``."""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import pytest

from graphs import files
from graphs.errors import ModelError
from graphs.llm.anthropic import AnthropicClient
from graphs.llm.types import ModelRequest
from tests.fakes.anthropic_server import FILE_TOKENS, FakeAnthropic

MODEL = "claude-sonnet-4-6"
PDF = b"%PDF-1.4\n%%EOF\n"


def client_for(server: FakeAnthropic) -> AnthropicClient:
    return AnthropicClient(anthropic.AsyncAnthropic(api_key="test-key", base_url=server.url))


def ask(content: Any) -> ModelRequest:
    return ModelRequest(model=MODEL, messages=[{"role": "user", "content": content}])


class Lent:
    def __init__(self, data: bytes):
        self.data = data

    async def read(self, ref: Any) -> bytes:
        return self.data


def pdf_ref() -> dict:
    return files.ref(3, "a.pdf", "application/pdf", len(PDF), "0" * 64)


async def test_a_document_with_citations_comes_back_cited(fake_anthropic: FakeAnthropic):
    values, refs = files.with_markers({"doc": pdf_ref()})
    content = await files.content(
        values["doc"] + " what does it say? #fake:cite", refs, Lent(PDF), citations=True
    )
    response = await client_for(fake_anthropic).complete(ask(content), lambda _t: None)
    assert response.usage.input_tokens == FILE_TOKENS + 5
    assert response.text == "From the document: fake page text"
    cited = {
        "type": "page_location",
        "cited_text": "fake page text",
        "document_index": 0,
        "document_title": "a.pdf",
        "start_page_number": 1,
        "end_page_number": 2,
    }
    assert response.content[1] == {"type": "text", "text": "fake page text", "citations": [cited]}
    assert files.citations_of(response.content) == [{"text": "fake page text", **cited}]
    [sent] = fake_anthropic.message_requests
    assert sent["messages"][0]["content"][0] == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf",
                   "data": base64.b64encode(PDF).decode()},
        "title": "a.pdf",
        "citations": {"enabled": True},
    }  # fmt: skip


@pytest.mark.parametrize(
    "block, named",
    [
        ({"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "AA=="}},
         "messages.0.content.0.source"),
        ({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "*"}},
         "messages.0.content.0.source.data"),
        ({"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"},
          "citations": True}, "messages.0.content.0.citations"),
        ({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="},
          "citations": {"enabled": True}}, "messages.0.content.0.citations"),
    ],
)  # fmt: skip
async def test_the_fake_refuses_a_malformed_file_block_naming_it(
    fake_anthropic: FakeAnthropic, block: dict, named: str
):
    content = [block, {"type": "text", "text": "what is it?"}]
    with pytest.raises(ModelError) as info:
        await client_for(fake_anthropic).complete(ask(content), lambda _t: None)
    assert named in str(info.value)
