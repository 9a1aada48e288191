"""Files as run inputs: a reference in the run's values, its bytes lent by the host.

A run input that is a file holds a small JSON reference, never the bytes, so events, the
cache key and replays stay small and free of the content:
``{"file": <id>, "name": "cat.png", "media_type": "image/png", "size": 1234, "sha256": ...}``.
The host (the web app) stores the bytes and lends a ``FileSource`` on ``Services.files``
that reads them by reference for the run; the command line lends none.

A prompt variable holding a reference becomes a content block where the variable is: an
``image`` block for images, a ``document`` block for PDFs and plain text (with citations
when asked), the rest of the prompt text blocks around it:

>>> import asyncio
>>> ref = {"file": 7, "name": "a.txt", "media_type": "text/plain", "size": 2,
...        "sha256": "ab" * 32}
>>> values, refs = with_markers({"doc": ref, "q": "why?"})
>>> values["q"], len(refs)
('why?', 1)
>>> rendered = "Read " + values["doc"] + " and answer: why?"
>>> readable(rendered, refs)
'Read [file a.txt] and answer: why?'
>>> class Source:
...     async def read(self, ref):
...         return b"hi"
>>> blocks = asyncio.run(content(rendered, refs, Source(), citations=True))
>>> [b["type"] for b in blocks]
['text', 'document', 'text']
>>> blocks[1]["source"], blocks[1]["citations"]
({'type': 'text', 'media_type': 'text/plain', 'data': 'hi'}, {'enabled': True})
>>> cache_form({"doc": ref}) == {"doc": {"file_sha256": "ab" * 32, "media_type": "text/plain"}}
True
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any, Protocol

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
DOCUMENT_TYPES = ("application/pdf", "text/plain")
MEDIA_TYPES = IMAGE_TYPES + DOCUMENT_TYPES
REF_KEYS = frozenset({"file", "name", "media_type", "size", "sha256"})
# Private-use characters: no typed prompt holds them, so a marker is a variable's place.
_MARK = re.compile("\ue000file(\\d+)\ue001")


class FileError(ValueError):
    """A file a prompt names cannot be read; the text names it, never its content."""


class FileSource(Protocol):
    """The bytes of a file a run input refers to (``FileError`` when it cannot)."""

    async def read(self, ref: Mapping[str, Any]) -> bytes: ...


class NoFiles:
    async def read(self, ref: Mapping[str, Any]) -> bytes:
        raise FileError(f"file {ref.get('name')!r}: this host lends no files to runs")


NO_FILES = NoFiles()


def is_ref(value: Any) -> bool:
    """Whether ``value`` is a file reference (exactly its keys, a known media type)."""
    return (
        isinstance(value, dict)
        and set(value) == REF_KEYS
        and value.get("media_type") in MEDIA_TYPES
        and isinstance(value.get("sha256"), str)
    )


def ref(file_id: int | str, name: str, media_type: str, size: int, sha256: str) -> dict:
    return {"file": file_id, "name": name, "media_type": media_type, "size": size, "sha256": sha256}


def with_markers(values: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The values with each file reference replaced by a marker a render keeps in place,
    and the references by marker number."""
    refs: list[dict[str, Any]] = []
    out: dict[str, Any] = {}
    for name, value in values.items():
        if is_ref(value):
            out[name] = f"\ue000file{len(refs)}\ue001"
            refs.append(value)
        else:
            out[name] = value
    return out, refs


def readable(rendered: str, refs: list[dict[str, Any]]) -> str:
    """The rendered prompt as a person reads it (detail, events): ``[file name]`` in place."""
    return _MARK.sub(lambda m: f"[file {refs[int(m.group(1))].get('name')}]", rendered)


def block(ref: Mapping[str, Any], data: bytes, *, citations: bool) -> dict[str, Any]:
    """The Messages API content block of a file."""
    media_type = ref["media_type"]
    if media_type in IMAGE_TYPES:
        encoded = base64.b64encode(data).decode("ascii")
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": encoded},
        }
    if media_type == "text/plain":
        source = {"type": "text", "media_type": "text/plain", "data": data.decode("utf-8")}
    else:
        source = {
            "type": "base64",
            "media_type": media_type,
            "data": base64.b64encode(data).decode("ascii"),
        }
    found: dict[str, Any] = {"type": "document", "source": source, "title": str(ref["name"])}
    if citations:
        found["citations"] = {"enabled": True}
    return found


async def content(
    rendered: str, refs: list[dict[str, Any]], source: FileSource, *, citations: bool
) -> str | list[dict[str, Any]]:
    """The user message's content: the text as it is without files, else blocks in order."""
    if not refs:
        return rendered
    blocks: list[dict[str, Any]] = []
    pos = 0
    for match in _MARK.finditer(rendered):
        if rendered[pos : match.start()].strip():
            blocks.append({"type": "text", "text": rendered[pos : match.start()]})
        found = refs[int(match.group(1))]
        blocks.append(block(found, await source.read(found), citations=citations))
        pos = match.end()
    if rendered[pos:].strip():
        blocks.append({"type": "text", "text": rendered[pos:]})
    if not any(b["type"] == "text" for b in blocks):
        # The API needs something to answer: a prompt of only a file asks about it.
        blocks.append({"type": "text", "text": "(see the file above)"})
    return blocks


def cache_form(value: Any) -> Any:
    """``value`` as the node cache keys it: a file by its content (sha256), not its id."""
    if is_ref(value):
        return {"file_sha256": value["sha256"], "media_type": value["media_type"]}
    if isinstance(value, dict):
        return {k: cache_form(v) for k, v in value.items()}
    if isinstance(value, list):
        return [cache_form(v) for v in value]
    return value


def citations_of(response_content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cited spans of a reply: each text block's citations, with the text citing them."""
    found = []
    for b in response_content:
        for cite in b.get("citations") or [] if b.get("type") == "text" else []:
            found.append({"text": b.get("text", ""), **cite})
    return found
