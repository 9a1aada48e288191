"""The real model client: one streamed Messages API call through the ``anthropic`` SDK.

The SDK is always built with ``max_retries=0``. The executor owns the single retry layer:
it decides per node how many attempts a call gets, honours ``retry_after``, records each
attempt, and stops retrying when a run is cancelled. If the SDK retried as well, one node
attempt could silently turn into several HTTP calls with their own sleeps (multiplying
cost and latency behind the executor's back, and delaying cancellation), and the recorded
attempts and backoff would be wrong. So every failure surfaces at once as a ``ModelError``
whose ``retryable`` and ``retry_after`` tell the executor what to do.

``ANTHROPIC_API_KEY`` and ``ANTHROPIC_BASE_URL`` are read by the SDK itself, so tests and
local runs can point it at a fake server through the environment alone.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from graphs.credentials import redact
from graphs.errors import ModelError
from graphs.llm.caching import cache_params
from graphs.llm.types import ModelRequest, ModelResponse, Usage

if TYPE_CHECKING:
    import anthropic

__all__ = ["AnthropicClient"]

# Errors the API may send inside an already-200 SSE stream carry only a type; these are
# the statuses the same error has as an HTTP response.
_STATUS_FOR_ERROR_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "timeout_error": 408,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}

# 429s that will not clear by waiting: retrying them only burns the retry budget.
_SPEND_LIMIT_CODES = {"contract_spend_limit_reached", "enforced_spend_limit_reached"}


class _OnTextFailed(Exception):
    """Carries an exception raised by the caller's ``on_text`` past the SDK error mapping."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


class AnthropicClient:
    """``ModelClient`` backed by ``anthropic.AsyncAnthropic``.

    ``timeout_s`` is the SDK's network timeout (connect, and each read while streaming),
    not a deadline for the whole call; overall deadlines are the caller's, by cancelling.
    A client passed in is used through ``with_options(max_retries=0, timeout=timeout_s)``
    so that it shares its connection pool but never retries on its own.

    Without a client, the SDK client is built on the first call rather than here, so that
    missing or broken credentials show up as that call's ``ModelError`` (on the node that
    needed them) instead of crashing whatever constructed this object.
    """

    name = "anthropic"

    def __init__(
        self, client: anthropic.AsyncAnthropic | None = None, *, timeout_s: float = 600
    ) -> None:
        self._timeout_s = timeout_s
        self._client: anthropic.AsyncAnthropic | None = None
        if client is not None:
            self._client = client.with_options(max_retries=0, timeout=timeout_s)

    def warm_up(self) -> None:
        """Build the SDK client now (it loads many modules): a long-lived process calls this
        at start, so no first call stalls its event loop. Raises ModelError without a key."""
        self._sdk()

    def _sdk(self) -> anthropic.AsyncAnthropic:
        if self._client is None:
            # The SDK is imported here, not with this module: it takes longer to load than
            # the rest of the engine, and a process that never calls the model (the command
            # line with a key set, running a flow without model nodes) should not pay for it.
            import anthropic

            try:
                self._client = anthropic.AsyncAnthropic(max_retries=0, timeout=self._timeout_s)
            except anthropic.AnthropicError as exc:
                raise ModelError(
                    f"could not set up the Anthropic client: {exc}; check ANTHROPIC_API_KEY",
                    retryable=False,
                ) from exc
        return self._client

    async def complete(
        self,
        request: ModelRequest,
        on_text: Callable[[str], None],
        *,
        on_thinking: Callable[[str], None] | None = None,
        on_start: Callable[[Usage], None] | None = None,
    ) -> ModelResponse:
        params = _params(request)
        sdk = self._sdk()
        import anthropic  # loaded by _sdk(); bound here for the except clauses below
        import httpx2  # the SDK's HTTP stack; mid-stream transport failures surface as its errors

        streaming = False
        try:
            # Raw events, not the SDK's stream() helper: the helper rebuilds a snapshot of
            # the whole message on every event, which doubled the CPU of each call.
            async with await sdk.messages.create(**params, stream=True) as stream:
                streaming = True
                message = _Accumulator(on_text, on_thinking, on_start)
                async for event in stream:
                    message.apply(event)
                if not message.finished:
                    # Read-until-close framing makes a cut connection look like a clean
                    # end of body; without message_stop the reply may be missing a tail.
                    raise ModelError(
                        "the Anthropic API response stream ended before the message was "
                        "complete; the partial reply was discarded",
                        retryable=True,
                    )
        except _OnTextFailed as failed:
            # The caller's own bug, not a model failure: re-raise it as it was.
            raise failed.error from failed.error.__cause__
        except ModelError:
            raise
        except anthropic.APIStatusError as exc:
            raise self._status_error(exc, request) from exc
        except anthropic.APITimeoutError as exc:
            raise self._timeout_error() from exc
        except anthropic.APIConnectionError as exc:
            detail = f": {_describe(exc.__cause__)}" if exc.__cause__ is not None else ""
            raise ModelError(
                f"could not connect to the Anthropic API at {sdk.base_url}{detail}; "
                "check network access and ANTHROPIC_BASE_URL",
                retryable=True,
            ) from exc
        except anthropic.CredentialsError as exc:
            raise ModelError(
                f"Anthropic credentials could not be loaded: {exc}; check ANTHROPIC_API_KEY",
                retryable=False,
            ) from exc
        except httpx2.TimeoutException as exc:
            raise self._timeout_error() from exc
        except httpx2.TransportError as exc:
            raise ModelError(
                "the connection to the Anthropic API dropped mid-response "
                f"({_describe(exc)}); the partial reply was discarded",
                retryable=True,
            ) from exc
        except Exception as exc:
            # Anything else the SDK raises (a malformed stream it could not parse, ...)
            # still has to reach the executor as a ModelError. Once streaming, such damage
            # is transient; before the request went out it is a bug in the request.
            text = f"unexpected error from the Anthropic SDK: {_describe(exc)}"
            if not streaming and "authentication" in str(exc).lower():
                # The SDK reports "no key anywhere" as a bare TypeError before sending.
                text = f"no Anthropic API key found ({exc}); set ANTHROPIC_API_KEY"
            raise ModelError(text, retryable=streaming) from exc

        return message.response()

    async def count_tokens(self, request: ModelRequest) -> int:
        """The input tokens of ``request`` as the API counts them (``messages.count_tokens``,
        which costs nothing): what a cost estimate prices. Failures raise ModelError."""
        params: dict[str, Any] = {"model": request.model, "messages": request.messages}
        if request.system is not None:
            params["system"] = request.system
        if request.tools:
            params["tools"] = request.tools
        if request.tool_choice is not None:
            params["tool_choice"] = request.tool_choice
        if request.thinking is not None:
            params["thinking"] = request.thinking
        sdk = self._sdk()
        import anthropic

        try:
            counted = await sdk.messages.count_tokens(**params)
        except anthropic.APIStatusError as exc:
            raise self._status_error(exc, request) from exc
        except anthropic.APITimeoutError as exc:
            raise self._timeout_error() from exc
        except anthropic.APIConnectionError as exc:
            raise ModelError(
                f"could not connect to the Anthropic API at {sdk.base_url} to count tokens",
                retryable=True,
            ) from exc
        return int(counted.input_tokens)

    def _without_key(self, text: str) -> str:
        """`text` (the API's words, which a proxy or gateway may fill with the request's
        headers) without the key this client sends: a team's own key is a credential, and
        an error message is kept, logged and shown."""
        if self._client is None:
            return text
        keys = (self._client.api_key, getattr(self._client, "auth_token", None))
        return redact(text, sorted({k for k in keys if k and len(k) >= 4}, key=len, reverse=True))

    # The Message Batches API (graphs.llm.batch): half price, answered within 24 hours.

    async def submit_batch(self, requests: Mapping[str, ModelRequest]) -> str:
        """Send ``requests`` (custom_id -> request) as one Message Batch; its id."""
        items = [{"custom_id": cid, "params": batch_params(r)} for cid, r in requests.items()]
        batch = await self._batch_call("create a message batch", "create", requests=items)
        return str(batch.id)

    async def batch_status(self, batch_id: str) -> str:
        """The batch's ``processing_status``: in_progress, canceling or ended."""
        batch = await self._batch_call("read a message batch", "retrieve", batch_id)
        return str(batch.processing_status)

    async def batch_results(self, batch_id: str) -> dict[str, dict[str, Any] | None]:
        """An ended batch's results: custom_id -> the message (JSON) of each that
        succeeded, None for each that errored, expired or was canceled."""
        decoder = await self._batch_call("read a message batch's results", "results", batch_id)
        found: dict[str, dict[str, Any] | None] = {}
        async for entry in decoder:
            result = entry.result
            message = result.message if result.type == "succeeded" else None  # type: ignore[union-attr]
            found[entry.custom_id] = None if message is None else message.model_dump(mode="json")
        return found

    async def cancel_batch(self, batch_id: str) -> None:
        await self._batch_call("cancel a message batch", "cancel", batch_id)

    async def close(self) -> None:
        """Close the SDK client's connections (a short-lived client's, a batch poll's)."""
        if self._client is not None:
            await self._client.close()

    async def _batch_call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        sdk = self._sdk()
        import anthropic

        try:
            return await getattr(sdk.messages.batches, method)(*args, **kwargs)
        except anthropic.APIStatusError as exc:
            raise ModelError(
                f"could not {what}: the Anthropic API answered {exc.status_code} "
                f"({_body_field(exc.body, 'message') or exc})",
                retryable=exc.status_code in (408, 429) or exc.status_code >= 500,
            ) from exc
        except anthropic.AnthropicError as exc:
            raise ModelError(f"could not {what}: {_describe(exc)}", retryable=True) from exc

    def _timeout_error(self) -> ModelError:
        return ModelError(
            f"the Anthropic API did not respond within {self._timeout_s:g}s", retryable=True
        )

    def _status_error(self, exc: anthropic.APIStatusError, request: ModelRequest) -> ModelError:
        error_type = getattr(exc, "type", None) or _body_field(exc.body, "type")
        api_message = getattr(exc, "api_message", None) or _body_field(exc.body, "message")
        if api_message is None:
            api_message = exc.body if isinstance(exc.body, str) and exc.body else str(exc)
            api_message = api_message[:300]

        in_stream = exc.status_code < 400  # an SSE error event after a 200
        status: int | None = exc.status_code
        if in_stream:
            status = _STATUS_FOR_ERROR_TYPE.get(error_type or "")
        retryable = status is not None and (status in (408, 429) or status >= 500)
        if getattr(exc, "error_code", None) in _SPEND_LIMIT_CODES:
            retryable = False
        retry_after = _retry_after(exc.response.headers) if not in_stream else None

        if in_stream:
            where = f"{error_type or 'error'} in the response stream"
        else:
            where = f"HTTP {exc.status_code} {error_type}" if error_type else f"HTTP {status}"
        text = f"Anthropic API error ({where}): {self._without_key(str(api_message))}"
        hint = _hint(status, request)
        if hint:
            text += f"; {hint}"
        if retry_after is not None:
            text += f" (retry after {retry_after:g}s)"
        request_id = getattr(exc, "request_id", None)
        if request_id:
            text += f" [request id {request_id}]"
        return ModelError(text, status=status, retryable=retryable, retry_after=retry_after)


def _params(request: ModelRequest) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": request.messages,
    }
    if request.system is not None:
        params["system"] = request.system
    if request.tools:
        params["tools"] = request.tools
    params.update(_optional_params(request))
    params.update(cache_params(request))
    return params


def batch_params(request: ModelRequest) -> dict[str, Any]:
    """The request as one item's ``params`` of a Message Batch: the body a streamed call
    sends, without ``stream`` (the SDK's ``extra_body`` settings are inline JSON there)."""
    params = _params(request)
    params.update(params.pop("extra_body", {}))
    return params


def _optional_params(request: ModelRequest) -> dict[str, Any]:
    """The request's optional settings as the API spells them; unset ones are not sent."""
    params: dict[str, Any] = {}
    if request.tool_choice is not None:
        params["tool_choice"] = request.tool_choice
    # SDK 2.12.0 has no temperature, top_p or top_k parameters (nowhere in its types); the
    # Messages API reads them at the top level of the body, which is where extra_body puts
    # them. A model that does not take one answers 400, which names it.
    sampling = {
        name: value
        for name in ("temperature", "top_p", "top_k")
        if (value := getattr(request, name)) is not None
    }
    if sampling:
        params["extra_body"] = sampling
    if request.stop_sequences:
        params["stop_sequences"] = request.stop_sequences
    if request.thinking is not None:
        params["thinking"] = request.thinking
    if request.output_schema is not None:
        try:
            # The API constrains replies to a subset of JSON Schema; the SDK's own helper
            # moves what it cannot enforce (minimum, pattern, ...) into descriptions. The
            # caller still validates the reply against the whole schema.
            import anthropic

            schema = anthropic.transform_schema(request.output_schema)
        except (ValueError, TypeError) as exc:
            raise ModelError(
                f"the output schema cannot be sent to the Anthropic API: {exc}", retryable=False
            ) from exc
        params["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    return params


def _hint(status: int | None, request: ModelRequest) -> str | None:
    if status == 401:
        return "check ANTHROPIC_API_KEY"
    if status == 403:
        return "the API key is not allowed to make this request; check ANTHROPIC_API_KEY"
    if status == 404:
        return f"check the model name {request.model!r} and ANTHROPIC_BASE_URL"
    if status == 413:
        return "the request is too large; shorten the conversation or its inputs"
    return None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _body_field(body: object, name: str) -> str | None:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get(name), str):
            return error[name]
    return None


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(float(ms) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return max(float(email.utils.mktime_tz(parsed) - time.time()), 0.0)


class _Accumulator:
    """Builds the final message from raw stream events, passing text (and thinking) deltas
    on as they come. Thinking blocks keep their text and signature exactly as streamed: a
    tool-use loop sends them back, and the API refuses any that changed."""

    def __init__(
        self,
        on_text: Callable[[str], None],
        on_thinking: Callable[[str], None] | None = None,
        on_start: Callable[[Usage], None] | None = None,
    ):
        self.on_text = on_text
        self.on_thinking = on_thinking
        self.on_start = on_start
        self.cache_creation = 0
        self.cache_creation_1h = 0
        self.cache_read = 0
        self.model = ""
        self.blocks: dict[int, dict[str, Any]] = {}
        self.partial_json: dict[int, list[str]] = {}
        self.stop_reason: str | None = None
        self.stop_sequence: str | None = None
        self.input_tokens = 0
        self.output_tokens = 0
        self.thinking_tokens = 0
        self.finished = False

    def apply(self, event: Any) -> None:
        kind = event.type
        if kind == "content_block_delta":
            delta = event.delta
            if delta.type == "text_delta":
                self.blocks[event.index]["text"] += delta.text
                try:
                    self.on_text(delta.text)
                except Exception as exc:
                    raise _OnTextFailed(exc) from exc
            elif delta.type == "input_json_delta":
                self.partial_json.setdefault(event.index, []).append(delta.partial_json)
            elif delta.type == "thinking_delta":
                self.blocks[event.index]["thinking"] += delta.thinking
                if self.on_thinking is not None:
                    try:
                        self.on_thinking(delta.thinking)
                    except Exception as exc:
                        raise _OnTextFailed(exc) from exc
            elif delta.type == "signature_delta":
                self.blocks[event.index]["signature"] = delta.signature
            elif delta.type == "citations_delta":
                # A text block's sources, when a document was sent with citations on.
                cited = delta.citation.model_dump(mode="json", exclude_none=True)
                self.blocks[event.index].setdefault("citations", []).append(cited)
        elif kind == "content_block_start":
            block = _block_to_dict(event.content_block)
            if block["type"] == "text":
                block["text"] = ""
            elif block["type"] == "thinking":
                block = {"type": "thinking", "thinking": "", "signature": ""}
            self.blocks[event.index] = block
        elif kind == "content_block_stop":
            parts = self.partial_json.pop(event.index, None)
            if parts is not None:
                self.blocks[event.index]["input"] = json.loads("".join(parts) or "{}")
        elif kind == "message_start":
            self.model = event.message.model
            self.input_tokens = event.message.usage.input_tokens or 0
            self.output_tokens = event.message.usage.output_tokens or 0
            self._cache_usage(event.message.usage)
            if self.on_start is not None:
                try:
                    self.on_start(self.usage())
                except Exception as exc:
                    raise _OnTextFailed(exc) from exc
        elif kind == "message_delta":
            self.stop_reason = event.delta.stop_reason
            self.stop_sequence = event.delta.stop_sequence
            self.output_tokens = event.usage.output_tokens or self.output_tokens
            self.input_tokens = getattr(event.usage, "input_tokens", None) or self.input_tokens
            details = getattr(event.usage, "output_tokens_details", None)
            if details is not None:
                self.thinking_tokens = details.thinking_tokens or self.thinking_tokens
            self._cache_usage(event.usage)
        elif kind == "message_stop":
            self.finished = True

    def _cache_usage(self, usage: Any) -> None:
        # message_start reports the cache figures; a message_delta may repeat them.
        self.cache_creation = getattr(usage, "cache_creation_input_tokens", None) or (
            self.cache_creation
        )
        self.cache_read = getattr(usage, "cache_read_input_tokens", None) or self.cache_read
        split = getattr(usage, "cache_creation", None)
        if split is not None:
            hour = getattr(split, "ephemeral_1h_input_tokens", None)
            self.cache_creation_1h = hour or self.cache_creation_1h

    def usage(self) -> Usage:
        return Usage(
            self.input_tokens,
            self.output_tokens,
            self.thinking_tokens,
            self.cache_creation,
            self.cache_read,
            self.cache_creation_1h,
        )

    def response(self) -> ModelResponse:
        return ModelResponse(
            model=self.model,
            content=[self.blocks[index] for index in sorted(self.blocks)],
            stop_reason=self.stop_reason,
            usage=self.usage(),
            stop_sequence=self.stop_sequence,
        )


def _block_to_dict(block: Any) -> dict[str, Any]:
    if block.type == "text":
        return {"type": "text", "text": block.text}
    if block.type == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    # Thinking and server-tool blocks must go back verbatim in a follow-up turn; keep them
    # as the plain JSON the API sent.
    return block.model_dump(mode="json", exclude_none=True)
