"""A fake Anthropic Messages API on loopback, for tests and local runs without a key.

It speaks the wire format the ``anthropic`` SDK parses (JSON and SSE streaming), so the
real SDK can be pointed at it with ``ANTHROPIC_BASE_URL``. Stdlib only, so any process
that can import ``tests`` can run it.

In-process::

    with FakeAnthropic() as server:
        os.environ["ANTHROPIC_BASE_URL"] = server.url

Standalone (for a web app or workers in other processes)::

    python -m tests.fakes.anthropic_server --port 0
    # first line of stdout: "listening on http://127.0.0.1:PORT"

Behaviour is chosen per request, first by ``enqueue``-d ``FakeResponse`` specs (FIFO),
otherwise by directives written in the text of the LAST user message (string content or
text blocks; tool_result blocks never carry directives). Processes that cannot reach the
server object drive it through the prompt alone:

``#fake:reply=TEXT``           reply exactly TEXT (rest of the line)
``#fake:tool=NAME {json}``     with tools in the request: reply with a tool_use of NAME with
                               that input (rest of the line); several lines give several
                               tool_use blocks; a ``reply`` alongside becomes a leading text block
``#fake:delay=S``              sleep S seconds before answering
``#fake:chunk_delay=S``        sleep S seconds between streamed deltas
``#fake:status=CODE``          fail with that HTTP status and an Anthropic error body
``#fake:retry_after=S``        with ``status``: send ``retry-after: S``
``#fake:retry_after_ms=MS``    with ``status``: send ``retry-after-ms: MS``
``#fake:hang``                 read the request, never answer (until disconnect or stop)
``#fake:break_after=N``        stream N text deltas, then reset the connection
``#fake:truncate_after=N``     stream N text deltas, then close cleanly without message_stop
``#fake:stream_error=TYPE``    stream one text delta, then an SSE ``error`` event of TYPE
                               (e.g. overloaded_error), as the real API does mid-stream
``#fake:redacted_thinking``    with thinking on: a ``redacted_thinking`` block after the thinking
``#fake:batch_item=FATE``      in a message batch: this item ends ``errored`` or ``expired``
``#fake:batch_delay=S``        in a message batch: it ends no sooner than S seconds after
                               its creation (the most of its items' and ``batch_delay``'s)
``#fake:times=N``              apply the failure directives above (status, hang, break_after,
                               truncate_after, stream_error) to the first N requests with the
                               same last user text only; later ones answer normally

The request's optional fields are checked as the API checks them (a 400 names the field):
``temperature`` and ``top_p`` in [0, 1], ``top_k`` a non-negative integer, ``stop_sequences``
strings that are not all whitespace, ``tool_choice`` (``auto``/``any``/``tool``/``none``; a
``tool`` choice must name an offered tool) and ``output_config.format`` (``json_schema`` with
an object ``schema``). A forced tool (``tool_choice`` ``tool``) is always answered with a
tool_use of that tool: a scripted ``tool`` of that name, else a value made up from its
``input_schema``. With ``output_config.format`` and no ``reply``, the reply is JSON made up
from the schema (first ``enum`` option, ``"fake"`` strings, zeros). A ``stop_sequences``
entry found in a reply's text ends it there (``stop_reason: stop_sequence``).

Directive values other than ``reply`` and ``tool`` are one whitespace-free token, so several
can share a line: ``#fake:status=429 #fake:retry_after=2 #fake:times=1``. An unknown
directive is answered with a 400 so that typos show up.

With no reply directive the answer is ``"fake reply: " + <last user text, first 200 chars>``
(verbatim, directives included). When
the last user message holds tool_result blocks the reply is ``"tool results: "`` + their
contents joined by ``"; "``. Usage: input_tokens = words in system + all message text,
output_tokens = words in the reply (text, plus tool inputs as JSON).

Thinking. A request with ``thinking`` (``enabled`` with ``budget_tokens`` of at least 1024
and less than ``max_tokens``, or ``adaptive``) is answered with a ``thinking`` block first,
``"fake thinking about: "`` + the last user text (first 100 chars), signed: its
``signature`` is a digest of its text that only this server makes. Streamed, it arrives as
``thinking_delta`` events, one word each, then a ``signature_delta``. Its words count in
``output_tokens`` and, alone, in ``usage.output_tokens_details.thinking_tokens``. As the
API, it answers tool results without thinking again, and refuses (400) with thinking on:
a ``temperature`` other than 1, any ``top_k``, ``top_p`` below 0.95, a ``tool_choice`` that
forces a tool (``any``, ``tool``), a thinking or redacted block sent back changed (its
signature or data no longer its own), and a tool-use loop whose last assistant turn does
not start with the thinking it came with.

Prompt caching. Blocks marked ``cache_control`` (tools, system blocks, message content
blocks, in that order) are breakpoints, checked as the API checks them (400s naming the
field): at most 4, ``type`` ``ephemeral``, ``ttl`` ``5m`` or ``1h``, and no ``1h`` after a
``5m``. The prompt up to each breakpoint (its blocks without their ``cache_control``, and
the model) is a cache entry that lives for its ttl after its last use. A request whose
prompt starts with a live entry reads it (the longest one, found at a breakpoint or at
any of the 20 blocks before one, as the API looks back): its words up to there are
``cache_read_input_tokens``; the words from there to the last breakpoint are written
(``cache_creation_input_tokens``, split by ttl in ``cache_creation``), and
``input_tokens`` is the rest, as the API counts. Tool definitions count no words, as in
``input_tokens``; there is no minimum length (the client decides what is worth marking).
A request reads what is cached when it arrives; what it writes becomes readable when its
answer starts (its ``message_start``, after its ``delay``), so requests sent together all
miss and all write, as they do at the API.
``GET /_fake/cache`` lists the live entries' words and ttl.

Files. ``image`` blocks (``source``: ``base64`` with ``media_type`` image/png, image/jpeg,
image/gif or image/webp and valid base64 ``data``) and ``document`` blocks (``base64``
application/pdf, or ``text`` text/plain with string ``data``; ``citations``, if sent,
``{"enabled": bool}``) are checked as the API checks them (400 naming the block). Each
counts ``FILE_TOKENS`` input tokens. ``#fake:cite`` answers with a text block citing the
first document sent with citations enabled (``char_location`` of its first 40 characters
for text, ``page_location`` of page 1 for a PDF), streamed as a ``citations_delta``.
``POST /v1/messages/count_tokens`` answers ``{"input_tokens": N}``, N counted as a reply's
usage counts input_tokens (words in system + all message text); it is recorded like a call.

Message batches. ``POST /v1/messages/batches`` checks each item as a Messages call is
checked (a 400 names ``requests.N``), with custom_ids of 1-64 ``[A-Za-z0-9_-]``, unique, and
answers the batch ``in_progress``. ``GET /v1/messages/batches/{id}`` answers it ``ended``
once ``FakeAnthropic.batch_delay`` (or an item's ``#fake:batch_delay``) has passed since its
creation; its results are computed then, each as a Messages call would be answered (the
prompt cache included), and ``GET .../results`` sends them as JSONL. ``POST .../cancel``
makes it ``canceling``; the next look finds it ended, every item ``canceled``. These
requests are recorded (``batch_requests``); ``batches`` lists each batch's status.

A few control endpoints help other processes: ``GET /_fake/requests``,
``POST /_fake/reset``, ``POST /_fake/enqueue`` (body: FakeResponse fields as JSON).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import hashlib
import hmac
import itertools
import json
import re
import select
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeAnthropic", "FakeResponse", "RecordedRequest"]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_ERROR_MESSAGES = {
    "invalid_request_error": "fake invalid request",
    "authentication_error": "invalid x-api-key",
    "permission_error": "your API key does not have permission to use the specified resource",
    "not_found_error": "the requested resource could not be found",
    "rate_limit_error": "number of requests has exceeded your rate limit",
    "overloaded_error": "Overloaded",
    "api_error": "Internal server error",
}
_FAILURE_FIELDS = ("status", "hang", "break_after", "truncate_after", "stream_error")
_VALUE_TO_EOL = {"reply", "tool"}
_KNOWN_DIRECTIVES = {
    "reply",
    "tool",
    "delay",
    "chunk_delay",
    "status",
    "retry_after",
    "retry_after_ms",
    "hang",
    "break_after",
    "truncate_after",
    "stream_error",
    "times",
    "redacted_thinking",
    "cite",
    "batch_item",
    "batch_delay",
}
FILE_TOKENS = 100
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
_BATCH_ITEM_FATES = ("errored", "expired")
_CUSTOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_BATCH_PATH = re.compile(r"/v1/messages/batches/([A-Za-z0-9_]+)(/results|/cancel)?")
_DIRECTIVE = re.compile(r"#fake:([a-z_]+)")


@dataclass
class FakeResponse:
    """What to do with one request; also the shape directives are parsed into.

    ``text`` None means the default reply. ``tool_uses`` items are ``{"name", "input"}``
    dicts or ``(name, input)`` pairs and are used whenever given (even without tools in
    the request, unlike the ``#fake:tool`` directive).
    """

    text: str | None = None
    tool_uses: list[Any] = field(default_factory=list)
    status: int | None = None
    error_message: str | None = None
    retry_after: float | None = None
    retry_after_ms: float | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    hang: bool = False
    break_after: int | None = None
    truncate_after: int | None = None
    stream_error: str | None = None
    redacted_thinking: bool = False
    # Cite the first document with citations enabled (#fake:cite).
    cite: bool = False
    # In a message batch: this item ends "errored" or "expired" instead of succeeding, and
    # the batch ends no sooner than this many seconds after it was created.
    batch_item: str | None = None
    batch_delay: float = 0.0


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or the raw text when it was not JSON
    raw: str = ""  # the body as sent, for tests that hold the SDK's bytes


class DirectiveError(ValueError):
    pass


def _user_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def _tool_results(message: dict[str, Any]) -> list[str]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    results = []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            inner = block.get("content", "")
            if isinstance(inner, list):
                inner = " ".join(
                    b.get("text", "")
                    for b in inner
                    if isinstance(b, dict) and b.get("type") == "text"
                )
            results.append(str(inner))
    return results


def _last_user_message(body: dict[str, Any]) -> dict[str, Any]:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return message
    return {}


def parse_directives(text: str) -> list[tuple[str, str | None]]:
    """``(name, value)`` pairs in order; ``reply`` and ``tool`` take the rest of their line."""
    found: list[tuple[str, str | None]] = []
    for line in text.splitlines():
        pos = 0
        while (match := _DIRECTIVE.search(line, pos)) is not None:
            name = match.group(1)
            if name not in _KNOWN_DIRECTIVES:
                known = ", ".join(sorted(_KNOWN_DIRECTIVES))
                raise DirectiveError(f"unknown directive #fake:{name} (known: {known})")
            rest = line[match.end() :]
            if not rest.startswith("="):
                found.append((name, None))
                pos = match.end()
                continue
            if name in _VALUE_TO_EOL:
                found.append((name, rest[1:].strip()))
                break
            token = rest[1:].split(maxsplit=1)[0] if rest[1:].strip() else ""
            found.append((name, token))
            pos = match.end() + 1 + len(token)
    return found


def _number(name: str, value: str | None, kind: type[float] | type[int] = float) -> Any:
    try:
        return kind(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DirectiveError(f"#fake:{name} needs a number, got {value!r}") from None


def _spec_from_directives(
    directives: list[tuple[str, str | None]],
) -> tuple[FakeResponse, int | None]:
    spec = FakeResponse()
    times: int | None = None
    for name, value in directives:
        if name == "reply":
            spec.text = value or ""
        elif name == "tool":
            tool_name, _, raw_input = (value or "").partition(" ")
            if not tool_name:
                raise DirectiveError("#fake:tool needs a tool name")
            try:
                tool_input = json.loads(raw_input) if raw_input.strip() else {}
            except json.JSONDecodeError as exc:
                raise DirectiveError(f"#fake:tool={tool_name}: input is not JSON ({exc})") from None
            spec.tool_uses.append({"name": tool_name, "input": tool_input})
        elif name == "hang":
            spec.hang = True
        elif name == "redacted_thinking":
            spec.redacted_thinking = True
        elif name == "cite":
            spec.cite = True
        elif name == "stream_error":
            spec.stream_error = value or "overloaded_error"
        elif name == "times":
            times = _number(name, value, int)
        elif name == "batch_item":
            if value not in _BATCH_ITEM_FATES:
                raise DirectiveError(f"#fake:batch_item takes errored or expired, got {value!r}")
            spec.batch_item = value
        elif name in ("status", "break_after", "truncate_after"):
            setattr(spec, name, _number(name, value, int))
        else:  # delay, chunk_delay, retry_after, retry_after_ms
            setattr(spec, name, _number(name, value))
    return spec, times


def _words(text: str) -> int:
    return len(text.split())


def _request_words(body: dict[str, Any]) -> int:
    system = body.get("system")
    if isinstance(system, list):
        system = " ".join(b.get("text", "") for b in system if isinstance(b, dict))
    count = _words(system) if isinstance(system, str) else 0
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            count += _words(_user_text(message))
            count += sum(_words(r) for r in _tool_results(message))
            count += FILE_TOKENS * len(_file_blocks(message))
    return max(count, 1)


def _file_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") in ("image", "document")]


def _invalid_files(body: dict[str, Any]) -> str | None:
    """What the API would refuse in the request's image and document blocks."""
    for m, message in enumerate(body.get("messages") or []):
        if not isinstance(message, dict):
            continue
        for b, block in enumerate(message.get("content") or []):
            if not isinstance(block, dict) or block.get("type") not in ("image", "document"):
                continue
            where = f"messages.{m}.content.{b}"
            source = block.get("source")
            if not isinstance(source, dict):
                return f"{where}.source: Field required"
            kind, media, data = source.get("type"), source.get("media_type"), source.get("data")
            if block["type"] == "image":
                allowed = {("base64", t) for t in _IMAGE_TYPES}
            else:
                allowed = {("base64", "application/pdf"), ("text", "text/plain")}
            if (kind, media) not in allowed:
                return f"{where}.source: {kind!r} {media!r} is not a valid {block['type']} source"
            if not isinstance(data, str) or not data:
                return f"{where}.source.data: Field required"
            if kind == "base64":
                try:
                    base64.b64decode(data, validate=True)
                except ValueError:
                    return f"{where}.source.data: not valid base64"
            cite = block.get("citations")
            if cite is not None and (
                block["type"] != "document"
                or not isinstance(cite, dict)
                or not isinstance(cite.get("enabled"), bool)
            ):
                return f'{where}.citations: must be {{"enabled": true|false}} on a document'
    return None


def _cited(body: dict[str, Any]) -> dict[str, Any] | None:
    """The citation of the first document sent with citations enabled."""
    index = 0
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        for block in _file_blocks(message):
            if block["type"] != "document":
                continue
            if (block.get("citations") or {}).get("enabled"):
                source = block["source"]
                title = block.get("title")
                if source["type"] == "text":
                    quoted = source["data"][:40]
                    return {"type": "char_location", "cited_text": quoted,
                            "document_index": index, "document_title": title,
                            "start_char_index": 0, "end_char_index": len(quoted)}  # fmt: skip
                return {"type": "page_location", "cited_text": "fake page text",
                        "document_index": index, "document_title": title,
                        "start_page_number": 1, "end_page_number": 2}  # fmt: skip
            index += 1
    return None


def _text_chunks(text: str) -> list[str]:
    # One word (with its trailing space) per delta, so any multi-word reply streams in
    # several deltas the way real replies do.
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


def _json_chunks(data: str) -> list[str]:
    # The API opens tool input with an empty partial_json; mirror it.
    third = max(1, len(data) // 3)
    return ["", *[data[i : i + third] for i in range(0, len(data), third)]]


def _iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # so server_close() never joins a thread stuck in a hang
    allow_reuse_address = True

    def __init__(self, fake: FakeAnthropic, port: int):
        self.fake = fake
        super().__init__(("127.0.0.1", port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    # --- plumbing -------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass  # the connection was reset on purpose (break_after) or by stop()
        finally:
            self.server.fake._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.fake.log_requests:
            sys.stderr.write(f"fake-anthropic: {format % args}\n")

    @property
    def _fake(self) -> FakeAnthropic:
        return self.server.fake

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", self._fake._request_id())
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(
        self,
        status: int,
        message: str | None = None,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        error_type = error_type or _ERROR_TYPES.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        message = message or _ERROR_MESSAGES.get(error_type, f"fake error {status}")
        body = {"type": "error", "error": {"type": error_type, "message": message}}
        self._send_json(status, body, headers)

    def _sleep(self, seconds: float) -> bool:
        """Sleeps unless the server stops first; False means stop."""
        return not (seconds > 0 and self._fake._stopping.wait(seconds))

    def _reset_connection(self) -> None:
        # SO_LINGER 0 turns close() into a TCP RST: the client sees a dropped connection,
        # not a clean end of body. The short pause lets it read what was already sent.
        time.sleep(0.05)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()  # makefile() holds a reference that would defer the close
        self.connection.close()
        self.close_connection = True

    def _wait_for_disconnect(self) -> None:
        while not self._fake._stopping.is_set():
            readable, _, _ = select.select([self.connection], [], [], 0.05)
            if not readable:
                continue
            try:
                if not self.connection.recv(1, socket.MSG_PEEK):
                    return
            except OSError:
                return
            time.sleep(0.05)  # pipelined bytes: keep hanging without spinning
        self.close_connection = True

    # --- routes ---------------------------------------------------------------------

    def do_GET(self) -> None:
        if self.path == "/_fake/requests":
            self._send_json(200, [dataclasses.asdict(r) for r in self._fake.requests])
        elif self.path == "/_fake/cache":
            self._send_json(200, self._fake.cache_entries())
        elif (batch := _BATCH_PATH.fullmatch(self.path.split("?")[0])) and batch[2] != "/cancel":
            self._fake._record(
                RecordedRequest(
                    method="GET",
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=None,
                )
            )
            if batch[2] == "/results":
                self._batch_results(batch[1])
            else:
                self._batch_reply(self._fake._batch_now(batch[1]))
        else:
            self._send_error(404, f"fake server: no route GET {self.path}", "not_found_error")

    def do_POST(self) -> None:
        raw = self._read_body()
        if self.path == "/_fake/reset":
            self._fake.reset()
            self._send_json(200, {"ok": True})
            return
        if self.path == "/_fake/enqueue":
            try:
                self._fake.enqueue(FakeResponse(**json.loads(raw or b"{}")))
            except (TypeError, ValueError) as exc:
                self._send_error(400, f"fake server: bad enqueue body: {exc}")
                return
            self._send_json(200, {"ok": True})
            return

        try:
            body: Any = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            body = raw.decode(errors="replace")
        self._fake._record(
            RecordedRequest(
                method="POST",
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                raw=raw.decode(errors="replace"),
            )
        )
        if self.path.split("?")[0] == "/v1/messages/count_tokens":
            self._count_tokens(body)
            return
        if self.path.split("?")[0] == "/v1/messages/batches":
            self._create_batch(body)
            return
        batch = _BATCH_PATH.fullmatch(self.path.split("?")[0])
        if batch and batch[2] == "/cancel":
            self._batch_reply(self._fake._cancel_batch(batch[1]))
            return
        if self.path.split("?")[0] != "/v1/messages":
            self._send_error(404, f"fake server: no route POST {self.path}", "not_found_error")
            return
        if not isinstance(body, dict):
            self._send_error(400, "fake server: request body is not a JSON object")
            return
        missing = [k for k in ("model", "max_tokens", "messages") if k not in body]
        if missing:
            self._send_error(400, f"fake server: missing required field(s): {', '.join(missing)}")
            return
        invalid = _invalid_settings(body) or _invalid_cache_control(body) or _invalid_files(body)
        if invalid is not None:
            self._send_error(400, f"fake server: {invalid}")
            return
        try:
            spec = self._fake._spec_for(body)
        except DirectiveError as exc:
            self._send_error(400, f"fake server: {exc}")
            return
        self._answer(body, spec)

    # --- message batches ------------------------------------------------------------

    def _create_batch(self, body: Any) -> None:
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            self._send_error(400, "fake server: requests: a non-empty list is required")
            return
        seen: set[str] = set()
        items = []
        for i, item in enumerate(requests):
            where = f"requests.{i}"
            custom_id = item.get("custom_id") if isinstance(item, dict) else None
            params = item.get("params") if isinstance(item, dict) else None
            if not isinstance(custom_id, str) or not _CUSTOM_ID.fullmatch(custom_id):
                self._send_error(400, f"fake server: {where}.custom_id: 1-64 of [A-Za-z0-9_-]")
                return
            if custom_id in seen:
                self._send_error(400, f"fake server: {where}.custom_id: {custom_id!r} twice")
                return
            seen.add(custom_id)
            if not isinstance(params, dict):
                self._send_error(400, f"fake server: {where}.params: an object is required")
                return
            missing = [k for k in ("model", "max_tokens", "messages") if k not in params]
            invalid = (
                f"missing required field(s): {', '.join(missing)}"
                if missing
                else "a batch item does not stream"
                if params.get("stream")
                else _invalid_settings(params) or _invalid_cache_control(params)
            )
            if invalid is None:
                try:
                    spec = self._fake._spec_for(params)
                except DirectiveError as exc:
                    invalid = str(exc)
            if invalid is not None:
                self._send_error(400, f"fake server: {where}.params: {invalid}")
                return
            items.append((custom_id, params, spec))
        self._batch_reply(self._fake._create_batch(items))

    def _batch_reply(self, batch: dict[str, Any] | None) -> None:
        if batch is None:
            self._send_error(404, "fake server: no such message batch", "not_found_error")
            return
        self._send_json(200, self._fake._batch_json(batch, self._base_url()))

    def _base_url(self) -> str:
        return f"http://{self.headers.get('Host') or self._fake.url.removeprefix('http://')}"

    def _batch_results(self, batch_id: str) -> None:
        batch = self._fake._batch_now(batch_id)
        if batch is None:
            self._send_error(404, "fake server: no such message batch", "not_found_error")
            return
        if batch["status"] != "ended":
            self._send_error(400, f"fake server: batch {batch_id} has not ended")
            return
        data = "".join(json.dumps(r) + "\n" for r in batch["results"]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/binary")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _count_tokens(self, body: Any) -> None:
        # Counted as a reply's usage counts input_tokens, so an estimate can be checked
        # against what the same prompt then costs.
        if not isinstance(body, dict):
            self._send_error(400, "fake server: request body is not a JSON object")
            return
        missing = [k for k in ("model", "messages") if k not in body]
        if missing:
            self._send_error(400, f"fake server: missing required field(s): {', '.join(missing)}")
            return
        self._send_json(200, {"input_tokens": _request_words(body)})

    def _answer(self, body: dict[str, Any], spec: FakeResponse) -> None:
        # Counted while it "thinks" (its delay), before any byte of the answer: a client
        # that gives its slot back once answered can never overlap the count of the call
        # it just finished.
        lookup = self._fake._cache_lookup(body)
        self._fake._enter()
        try:
            answered = self._sleep(spec.delay)
        finally:
            self._fake._leave()
        if not answered:
            self.close_connection = True
            return
        if spec.hang:
            self._wait_for_disconnect()
            self.close_connection = True
            return
        if spec.status is not None:
            headers = {}
            if spec.retry_after is not None:
                headers["retry-after"] = f"{spec.retry_after:g}"
            if spec.retry_after_ms is not None:
                headers["retry-after-ms"] = f"{spec.retry_after_ms:g}"
            self._send_error(spec.status, spec.error_message, headers=headers)
            return

        message = self._fake._message_for(body, spec, lookup)
        if body.get("stream"):
            self._stream(message, spec)
        elif spec.break_after is not None or spec.truncate_after is not None:
            self._send_partial_json(message, reset=spec.break_after is not None)
        else:
            self._send_json(200, message)

    def _send_partial_json(self, message: dict[str, Any], *, reset: bool) -> None:
        data = json.dumps(message).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        if reset:
            self._reset_connection()
        self.close_connection = True

    def _stream(self, message: dict[str, Any], spec: FakeResponse) -> None:
        damaged = (
            spec.break_after is not None
            or spec.truncate_after is not None
            or spec.stream_error is not None
        )
        if not damaged:
            self._stream_chunked(message, spec)
            return
        # A damaged stream is framed "read until close": no Content-Length, no chunking.
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.send_header("request-id", self._fake._request_id())
        self.end_headers()
        self.close_connection = True

        limit = spec.break_after if spec.break_after is not None else spec.truncate_after
        if spec.stream_error is not None:
            limit = 1
        sent = 0
        try:
            for frame in self._events(message, spec.chunk_delay):
                if frame is None:  # a text delta is about to go out
                    if limit is not None and sent >= limit:
                        break
                    sent += 1
                    continue
                self.wfile.write(frame)
            else:
                return
        except OSError:
            return  # the client went away
        if spec.break_after is not None:
            self._reset_connection()
        elif spec.stream_error is not None:
            error = {
                "type": "error",
                "error": {
                    "type": spec.stream_error,
                    "message": _ERROR_MESSAGES.get(spec.stream_error, spec.stream_error),
                },
            }
            with contextlib.suppress(OSError):
                self.wfile.write(_sse("error", error))

    def _stream_chunked(self, message: dict[str, Any], spec: FakeResponse) -> None:
        # A whole stream is chunked and the connection kept alive, as the real API does, so
        # clients pay for a connection once rather than once per call.
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", self._fake._request_id())
        self.end_headers()
        try:
            for frame in self._events(message, spec.chunk_delay):
                if frame is not None:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True  # the client went away

    def _events(self, message: dict[str, Any], chunk_delay: float) -> Iterator[bytes | None]:
        """SSE frames; yields None just before each text delta so the caller can cut there."""
        start = {**message, "content": [], "stop_reason": None}
        start["usage"] = {**message["usage"], "output_tokens": 0}
        yield _sse("message_start", {"type": "message_start", "message": start})
        yield _sse("ping", {"type": "ping"})
        for index, block in enumerate(message["content"]):
            if block["type"] == "text":
                yield _sse(
                    "content_block_start",
                    {"type": "content_block_start", "index": index,
                     "content_block": {"type": "text", "text": ""}},
                )  # fmt: skip
                for cited in block.get("citations") or []:
                    yield _sse(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index,
                         "delta": {"type": "citations_delta", "citation": cited}},
                    )  # fmt: skip
                for piece in _text_chunks(block["text"]):
                    yield None
                    if not self._sleep(chunk_delay):
                        return
                    yield _sse(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index,
                         "delta": {"type": "text_delta", "text": piece}},
                    )  # fmt: skip
            elif block["type"] == "thinking":
                yield _sse(
                    "content_block_start",
                    {"type": "content_block_start", "index": index,
                     "content_block": {"type": "thinking", "thinking": "", "signature": ""}},
                )  # fmt: skip
                for piece in _text_chunks(block["thinking"]):
                    if not self._sleep(chunk_delay):
                        return
                    yield _sse(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index,
                         "delta": {"type": "thinking_delta", "thinking": piece}},
                    )  # fmt: skip
                yield _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index,
                     "delta": {"type": "signature_delta", "signature": block["signature"]}},
                )  # fmt: skip
            elif block["type"] == "redacted_thinking":
                yield _sse(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": block},
                )
            else:
                yield _sse(
                    "content_block_start",
                    {"type": "content_block_start", "index": index,
                     "content_block": {**block, "input": {}}},
                )  # fmt: skip
                for piece in _json_chunks(json.dumps(block["input"])):
                    if not self._sleep(chunk_delay):
                        return
                    yield _sse(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index,
                         "delta": {"type": "input_json_delta", "partial_json": piece}},
                    )  # fmt: skip
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
        yield _sse(
            "message_delta",
            {"type": "message_delta",
             "delta": {"stop_reason": message["stop_reason"],
                       "stop_sequence": message["stop_sequence"]},
             "usage": {k: v for k, v in message["usage"].items() if k != "input_tokens"}},
        )  # fmt: skip
        yield _sse("message_stop", {"type": "message_stop"})


class FakeAnthropic:
    """The fake server. ``start()``/``stop()`` or use as a context manager."""

    def __init__(self, port: int = 0, *, log_requests: bool = False):
        self.log_requests = log_requests
        self._port = port
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._queue: deque[FakeResponse] = deque()
        self._failures: dict[str, int] = {}
        self._connections: set[socket.socket] = set()
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._in_flight = 0
        self._max_in_flight = 0
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        # Prompt cache: digest of a prefix -> [words, ttl, expires at (monotonic)].
        self._cache: dict[str, list[Any]] = {}
        # Message batches by id (see _create_batch); a batch ends no sooner than this.
        self._batches: dict[str, dict[str, Any]] = {}
        self.batch_delay = 0.0

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> FakeAnthropic:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _Server(self, self._port)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-anthropic",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # wakes delays, chunk delays and hangs
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            # Unblocks handler threads waiting on idle keep-alive connections.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeAnthropic is not running; call start() first")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """Base URL for ANTHROPIC_BASE_URL (the SDK appends /v1/messages)."""
        return f"http://127.0.0.1:{self.port}"

    # --- test API -------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far (a snapshot copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def message_requests(self) -> list[dict[str, Any]]:
        """Bodies of the POST /v1/messages requests, in order."""
        return [r.body for r in self.requests if r.path.split("?")[0] == "/v1/messages"]

    @property
    def max_in_flight(self) -> int:
        """The most Messages calls in their delay at once (``#fake:delay``: from the
        request read to the answer's first byte) since the start or the last ``reset``."""
        with self._lock:
            return self._max_in_flight

    def enqueue(self, *specs: FakeResponse | dict[str, Any]) -> None:
        """Answer the next requests with these specs (FIFO), ignoring their directives."""
        with self._lock:
            for spec in specs:
                self._queue.append(spec if isinstance(spec, FakeResponse) else FakeResponse(**spec))

    @property
    def batch_requests(self) -> list[RecordedRequest]:
        """The Message Batches API requests (create, retrieve, results, cancel), in order."""
        return [r for r in self.requests if r.path.startswith("/v1/messages/batches")]

    @property
    def batches(self) -> dict[str, str]:
        """Each batch's id -> its processing_status, as last looked at."""
        with self._lock:
            return {batch_id: b["status"] for batch_id, b in self._batches.items()}

    def end_batches(self) -> None:
        """Batches still in progress end at their next look, whatever their delay (a test
        that held a run parked on its batch lets it go on)."""
        with self._lock:
            for batch in self._batches.values():
                batch["delay"] = 0.0

    def reset(self) -> None:
        """Forget recorded requests, queued specs and ``#fake:times`` counts."""
        with self._lock:
            self._requests.clear()
            self._queue.clear()
            self._failures.clear()
            self._max_in_flight = self._in_flight
            self._cache.clear()
            self._batches.clear()

    def cache_entries(self) -> list[dict[str, Any]]:
        """The live prompt-cache entries: their words and ttl."""
        now = time.monotonic()
        with self._lock:
            return [
                {"words": words, "ttl": ttl}
                for words, ttl, until in self._cache.values()
                if until > now
            ]

    def _cache_lookup(self, body: dict[str, Any]) -> tuple[dict[str, Any], list[Any]] | None:
        """What a request (checked already) reads from the prompt cache as it arrives: its
        usage figures and the entries it will write; None when it marks no breakpoint."""
        boundaries = _boundaries(body)
        points = [(key, words, ttl) for key, words, ttl in boundaries if ttl]
        if not points:
            return None
        marked = [i for i, (_, _, ttl) in enumerate(boundaries) if ttl]
        looked = sorted(
            {j for i in marked for j in range(max(0, i - _LOOKBACK_BLOCKS), i + 1)},
            reverse=True,
        )
        now = time.monotonic()
        read = 0
        with self._lock:
            for j in looked:
                entry = self._cache.get(boundaries[j][0])
                if entry is not None and entry[2] > now:
                    read = boundaries[j][1]
                    entry[2] = now + _TTL_SECONDS[entry[1]]  # a read refreshes it
                    break
        written = {"5m": 0, "1h": 0}
        writes = []
        last = read
        for key, words, ttl in points:
            if words <= read:
                continue
            written[ttl] += words - last
            last = words
            writes.append((key, words, ttl))
        figures = {
            "cache_creation_input_tokens": written["5m"] + written["1h"],
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": written["5m"],
                "ephemeral_1h_input_tokens": written["1h"],
            },
        }
        return figures, writes

    def _cache_store(self, writes: list[Any]) -> None:
        """The entries a request wrote become readable (as its answer starts)."""
        now = time.monotonic()
        with self._lock:
            for key, words, ttl in writes:
                self._cache[key] = [words, ttl, now + _TTL_SECONDS[ttl]]

    # --- internals used by the handler ------------------------------------------------

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _request_id(self) -> str:
        return f"req_fake_{next(self._ids):06d}"

    def _message_id(self) -> str:
        return f"msg_fake_{next(self._ids):06d}"

    def _message_for(self, body: dict[str, Any], spec: FakeResponse, lookup: Any) -> dict[str, Any]:
        """The reply message to a checked request (streamed, sent whole, or a batch item's);
        ``lookup`` is what it reads of the prompt cache (``_cache_lookup``)."""
        cached = None
        if lookup is not None:
            cached, writes = lookup
            self._cache_store(writes)
        content, stop_reason = self._content_for(body, spec)
        stop_sequence = _apply_stop_sequences(content, body.get("stop_sequences") or [])
        last = _last_user_message(body)
        if _thinking_on(body) and not _tool_results(last):
            content[:0] = _thought(_user_text(last), redacted=spec.redacted_thinking)
        thinking_words = sum(_words(b["thinking"]) for b in content if b["type"] == "thinking")
        message = {
            "id": self._message_id(),
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": content,
            "stop_reason": "stop_sequence" if stop_sequence is not None else stop_reason,
            "stop_sequence": stop_sequence,
            "usage": {
                "input_tokens": _request_words(body),
                "output_tokens": thinking_words
                + sum(
                    _words(b["text"]) if b["type"] == "text" else _words(json.dumps(b["input"]))
                    for b in content
                    if b["type"] in ("text", "tool_use")
                ),
            },
        }
        if thinking_words:
            message["usage"]["output_tokens_details"] = {"thinking_tokens": thinking_words}
        if cached is not None:
            message["usage"].update(cached)
            message["usage"]["input_tokens"] = max(
                message["usage"]["input_tokens"]
                - cached["cache_read_input_tokens"]
                - cached["cache_creation_input_tokens"],
                0,
            )
        return message

    def _create_batch(self, items: list[tuple[str, dict[str, Any], FakeResponse]]) -> dict:
        with self._lock:
            batch_id = f"msgbatch_fake_{next(self._ids):06d}"
            batch = {
                "id": batch_id,
                "items": items,
                "created": time.time(),
                "delay": max([self.batch_delay, *(spec.batch_delay for _, _, spec in items)]),
                "status": "in_progress",
                "cancel_initiated": None,
                "ended": None,
                "results": [],
            }
            self._batches[batch_id] = batch
            return batch

    def _batch_now(self, batch_id: str) -> dict[str, Any] | None:
        """The batch as it is now: it ends (its results made) once its delay has passed,
        or on the first look after a cancel."""
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None or batch["status"] == "ended":
                return batch
            canceling = batch["status"] == "canceling"
            if not canceling and time.time() < batch["created"] + batch["delay"]:
                return batch
        results = [self._batch_result(cid, p, s, canceling) for cid, p, s in batch["items"]]
        with self._lock:
            batch.update(status="ended", ended=time.time(), results=results)
        return batch

    def _batch_result(
        self, custom_id: str, params: dict[str, Any], spec: FakeResponse, canceled: bool
    ) -> dict[str, Any]:
        if canceled:
            return {"custom_id": custom_id, "result": {"type": "canceled"}}
        if spec.batch_item == "expired":
            return {"custom_id": custom_id, "result": {"type": "expired"}}
        if spec.batch_item == "errored" or spec.status is not None:
            error = {"type": "api_error", "message": spec.error_message or "fake item error"}
            result = {"type": "errored", "error": {"type": "error", "error": error}}
            return {"custom_id": custom_id, "result": result}
        lookup = self._cache_lookup(params)
        message = self._message_for(params, spec, lookup)
        return {"custom_id": custom_id, "result": {"type": "succeeded", "message": message}}

    def _cancel_batch(self, batch_id: str) -> dict[str, Any] | None:
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is not None and batch["status"] == "in_progress":
                batch.update(status="canceling", cancel_initiated=time.time())
            return batch

    def _batch_json(self, batch: dict[str, Any], base_url: str) -> dict[str, Any]:
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        if batch["status"] == "ended":
            for result in batch["results"]:
                counts[result["result"]["type"]] += 1
        else:
            counts["processing"] = len(batch["items"])
        ended = batch["status"] == "ended"
        return {
            "id": batch["id"],
            "type": "message_batch",
            "processing_status": batch["status"],
            "request_counts": counts,
            "created_at": _iso(batch["created"]),
            "expires_at": _iso(batch["created"] + 86_400),
            "ended_at": _iso(batch["ended"]) if ended else None,
            "archived_at": None,
            "cancel_initiated_at": _iso(batch["cancel_initiated"])
            if batch["cancel_initiated"]
            else None,
            "results_url": f"{base_url}/v1/messages/batches/{batch['id']}/results"
            if ended
            else None,
        }

    def _spec_for(self, body: dict[str, Any]) -> FakeResponse:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        text = _user_text(_last_user_message(body))
        spec, times = _spec_from_directives(parse_directives(text))
        if times is not None and any(
            getattr(spec, f) not in (None, False) for f in _FAILURE_FIELDS
        ):
            with self._lock:
                seen = self._failures.get(text, 0)
                self._failures[text] = seen + 1
            if seen >= times:
                for name in _FAILURE_FIELDS:
                    setattr(spec, name, False if name == "hang" else None)
        if not body.get("tools"):
            spec.tool_uses = []  # directive tool calls only make sense when tools were offered
        forced = _forced_tool(body)
        if forced is not None:
            # The API always answers a forced tool with that tool, and only that one.
            scripted = [u for u in spec.tool_uses if _use_name(u) == forced["name"]]
            made_up = {"name": forced["name"], "input": _made_up(forced.get("input_schema"))}
            spec.tool_uses = scripted[:1] or [made_up]
        return spec

    def _content_for(
        self, body: dict[str, Any], spec: FakeResponse
    ) -> tuple[list[dict[str, Any]], str]:
        last = _last_user_message(body)
        results = _tool_results(last)
        if results and spec.text is None and not spec.tool_uses:
            return [{"type": "text", "text": "tool results: " + "; ".join(results)}], "end_turn"
        content: list[dict[str, Any]] = []
        if spec.tool_uses:
            if spec.text:
                content.append({"type": "text", "text": spec.text})
            for n, use in enumerate(spec.tool_uses):
                name, tool_input = (
                    (use["name"], use.get("input", {})) if isinstance(use, dict) else use
                )
                content.append(
                    {
                        "type": "tool_use",
                        "id": f"toolu_fake_{next(self._ids):06d}_{n}",
                        "name": name,
                        "input": tool_input,
                    }
                )
            return content, "tool_use"
        text = spec.text if spec.text is not None else "fake reply: " + _user_text(last)[:200]
        output_format = (body.get("output_config") or {}).get("format")
        if spec.text is None and output_format is not None:
            text = json.dumps(_made_up(output_format["schema"]))
        cited = _cited(body) if spec.cite else None
        if cited is not None:
            return [
                {"type": "text", "text": "From the document: "},
                {"type": "text", "text": cited["cited_text"], "citations": [cited]},
            ], "end_turn"
        return [{"type": "text", "text": text}], "end_turn"


def _use_name(use: Any) -> str:
    return use["name"] if isinstance(use, dict) else use[0]


def _forced_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    choice = body.get("tool_choice") or {}
    if choice.get("type") != "tool":
        return None
    return next((t for t in body.get("tools") or [] if t.get("name") == choice.get("name")), None)


def _made_up(schema: Any) -> Any:
    """A value in the shape of a (simple) JSON Schema: enough for tests to script around."""
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return _made_up(schema[key][0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return {name: _made_up(sub) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [_made_up(schema.get("items"))] * max(int(schema.get("minItems", 1)), 0)
    return {"string": "fake", "integer": 0, "number": 0, "boolean": True}.get(kind or "")


def _apply_stop_sequences(content: list[dict[str, Any]], stops: list[str]) -> str | None:
    """Cuts the first text block holding a stop sequence there; returns that sequence."""
    for block in content:
        if block["type"] != "text":
            continue
        found = [(block["text"].find(stop), stop) for stop in stops if stop in block["text"]]
        if found:
            at, stop = min(found)
            block["text"] = block["text"][:at]
            return stop
    return None


_SIGNING_KEY = b"fake-anthropic thinking"


def _signed(text: str) -> str:
    return hmac.new(_SIGNING_KEY, text.encode(), hashlib.sha256).hexdigest()


def _thought(prompt: str, *, redacted: bool) -> list[dict[str, Any]]:
    thinking = "fake thinking about: " + prompt[:100]
    blocks: list[dict[str, Any]] = [
        {"type": "thinking", "thinking": thinking, "signature": _signed(thinking)}
    ]
    if redacted:
        data = base64.b64encode(f"redacted thought on {prompt[:50]}".encode()).decode()
        blocks.append({"type": "redacted_thinking", "data": data + "." + _signed(data)})
    return blocks


def _thinking_on(body: dict[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def _invalid_thinking(body: dict[str, Any]) -> str | None:
    """What the API would refuse about thinking in the request, or None."""
    for number, message in enumerate(body.get("messages") or []):
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for block in content:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "thinking" and block.get("signature") != _signed(str(block.get("thinking"))):
                return f"messages.{number}.content: Invalid `signature` in `thinking` block"
            if kind == "redacted_thinking":
                data, _, signature = str(block.get("data")).rpartition(".")
                if signature != _signed(data):
                    return f"messages.{number}.content: Invalid `data` in `redacted_thinking` block"
    thinking = body.get("thinking")
    if thinking is None:
        return None
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind not in ("enabled", "adaptive", "disabled"):
        return f"thinking.type: must be enabled, adaptive or disabled, got {kind!r}"
    if kind == "disabled":
        return None
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1024:
            return f"thinking.enabled.budget_tokens: Input should be >= 1024, got {budget!r}"
        if budget >= body.get("max_tokens", 0):
            return "`max_tokens` must be greater than `thinking.budget_tokens`"
    temperature = body.get("temperature")
    if temperature is not None and temperature != 1:
        return "`temperature` may only be set to 1 when thinking is enabled"
    if body.get("top_k") is not None:
        return "`top_k` must be unset when thinking is enabled"
    top_p = body.get("top_p")
    if top_p is not None and top_p < 0.95:
        return "`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled"
    choice = body.get("tool_choice") or {}
    if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
        return "Thinking may not be enabled when tool_choice forces tool use."
    messages = body.get("messages") or []
    if len(messages) >= 2 and _tool_results(messages[-1]):
        answered = messages[-2].get("content") if isinstance(messages[-2], dict) else None
        first = answered[0].get("type") if isinstance(answered, list) and answered else None
        if first not in ("thinking", "redacted_thinking"):
            return (
                f"messages.{len(messages) - 2}.content.0.type: Expected `thinking` or "
                f"`redacted_thinking`, but found `{first}`. When `thinking` is enabled, a "
                "final `assistant` message must start with a thinking block"
            )
    return None


def _invalid_settings(body: dict[str, Any]) -> str | None:
    """What the API would refuse in the request's optional settings, or None."""
    if (invalid := _invalid_thinking(body)) is not None:
        return invalid
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and not (_is_number(value) and 0 <= value <= 1):
            return f"{name}: must be a number from 0 to 1, got {value!r}"
    top_k = body.get("top_k")
    if top_k is not None and not (isinstance(top_k, int) and not isinstance(top_k, bool)
                                  and top_k >= 0):  # fmt: skip
        return f"top_k: must be a non-negative integer, got {top_k!r}"
    stops = body.get("stop_sequences")
    if stops is not None and not (
        isinstance(stops, list) and all(isinstance(s, str) and s.strip() for s in stops)
    ):
        return "stop_sequences: each stop sequence must contain non-whitespace"
    choice = body.get("tool_choice")
    if choice is not None:
        kind = choice.get("type") if isinstance(choice, dict) else None
        if kind not in ("auto", "any", "tool", "none"):
            return f"tool_choice.type: must be auto, any, tool or none, got {kind!r}"
        names = [t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)]
        if kind == "tool" and choice.get("name") not in names:
            return f"tool_choice.name: {choice.get('name')!r} is not one of the tools offered"
        if kind == "any" and not names:
            return "tool_choice: any needs tools"
    config = body.get("output_config")
    if config is not None:
        output_format = config.get("format") if isinstance(config, dict) else None
        if not (
            isinstance(output_format, dict)
            and output_format.get("type") == "json_schema"
            and isinstance(output_format.get("schema"), dict)
        ):
            return "output_config.format: must be {type: json_schema, schema: {...}}"
    return None


_TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}


def _prompt_blocks(body: dict[str, Any]) -> Iterator[tuple[str, Any, int]]:
    """The prompt's blocks in the API's order, as ``(field path, block, words)``."""
    for i, tool in enumerate(body.get("tools") or []):
        yield f"tools.{i}", tool, 0
    system = body.get("system")
    if isinstance(system, str):
        yield "system", {"type": "text", "text": system}, _words(system)
    elif isinstance(system, list):
        for i, block in enumerate(system):
            text = block.get("text", "") if isinstance(block, dict) else ""
            yield f"system.{i}", block, _words(text)
    for m, message in enumerate(body.get("messages") or []):
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            yield f"messages.{m}.content", {"type": "text", "text": content}, _words(content)
            continue
        for b, block in enumerate(content or []):
            words = 0
            if isinstance(block, dict) and block.get("type") == "text":
                words = _words(block.get("text", ""))
            elif isinstance(block, dict) and block.get("type") == "tool_result":
                words = sum(_words(r) for r in _tool_results({"content": [block]}))
            elif isinstance(block, dict) and block.get("type") in ("image", "document"):
                words = FILE_TOKENS
            yield f"messages.{m}.content.{b}", block, words


def _breakpoints(body: dict[str, Any]) -> list[tuple[str, int, str]]:
    """``(prefix digest, words up to and including it, ttl)`` for each breakpoint."""
    return [(digest, words, ttl) for digest, words, ttl in _boundaries(body) if ttl]


def _boundaries(body: dict[str, Any]) -> list[tuple[str, int, str | None]]:
    """``(prefix digest, words so far, ttl of its breakpoint or None)`` after each block."""
    running = hashlib.sha256(json.dumps(body.get("model")).encode())
    found = []
    words = 0
    for _, block, count in _prompt_blocks(body):
        words += count
        plain = block
        if isinstance(block, dict):
            plain = {k: v for k, v in block.items() if k != "cache_control"}
        running.update(b"\x00" + json.dumps(plain, sort_keys=True).encode())
        marker = block.get("cache_control") if isinstance(block, dict) else None
        ttl = marker.get("ttl", "5m") if isinstance(marker, dict) else None
        found.append((running.copy().hexdigest(), words, ttl))
    return found


# As the API, a breakpoint finds an entry written at any of the 20 blocks before it.
_LOOKBACK_BLOCKS = 20


def _invalid_cache_control(body: dict[str, Any]) -> str | None:
    """What the API would refuse in the request's cache_control breakpoints, or None."""
    count = 0
    five_minutes_at: str | None = None
    for path, block, _ in _prompt_blocks(body):
        marker = block.get("cache_control") if isinstance(block, dict) else None
        if marker is None:
            continue
        where = f"{path}.cache_control"
        if not isinstance(marker, dict) or marker.get("type") != "ephemeral":
            return f"{where}.type: must be 'ephemeral'"
        ttl = marker.get("ttl", "5m")
        if ttl not in _TTL_SECONDS:
            return f"{where}.ttl: must be '5m' or '1h', got {ttl!r}"
        if ttl == "1h" and five_minutes_at is not None:
            return (
                f"{where}.ttl: a ttl='1h' cache_control block must not come after a "
                f"ttl='5m' one ({five_minutes_at})"
            )
        if ttl == "5m" and five_minutes_at is None:
            five_minutes_at = path
        count += 1
    if count > 4:
        return (
            f"cache_control: a maximum of 4 blocks with cache_control may be provided, "
            f"found {count}"
        )
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake Anthropic Messages API on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--quiet", action="store_true", help="do not log requests to stderr")
    args = parser.parse_args(argv)
    server = FakeAnthropic(args.port, log_requests=not args.quiet).start()
    print(f"listening on {server.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
