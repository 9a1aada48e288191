"""The batch lane: model calls sent to the Message Batches API (half price, answered within
24 hours) instead of being streamed.

A node on the lane (a ``map`` with ``latency: batch``) lends its items' calls a
``BatchLane``. A call whose answer the lane holds returns it as an ordinary reply; one it
does not hold is collected (``BatchPending``, a ``NodeWaits`` of kind ``batch``) instead of
being sent. The node then submits everything collected as one batch, each call under its
``custom_id`` (a digest of the request, so the same call gets the same id on every visit),
and parks with a wait of kind ``batch`` that says ``rerun``. The host polls the batch; once
it has ended, it resumes the wait with the results (``answer``), and the node runs again:
its calls now find their answers in the lane. An item that errored or expired has no
answer (None): that call is streamed as it would be off the lane.

Usage of an answer from a batch counts under the model's name with ``BATCH_SUFFIX``, so
what prices usage (the web app's price table) charges it at ``BATCH_RATE``.

>>> from graphs.llm.types import ModelRequest
>>> request = ModelRequest(model="m", messages=[{"role": "user", "content": "hi"}])
>>> cid = custom_id(request)
>>> cid == custom_id(ModelRequest(model="m", messages=[{"role": "user", "content": "hi"}]))
True
>>> len(cid), cid.isalnum()
(40, True)
>>> base_model("claude-haiku-4-5@batch"), base_model("claude-haiku-4-5")
(('claude-haiku-4-5', True), ('claude-haiku-4-5', False))
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from graphs.errors import NodeWaits
from graphs.history import ELSEWHERE
from graphs.llm.types import ModelRequest, ModelResponse, Usage

# What the Message Batches API charges, of the streamed price.
BATCH_RATE = 0.5
# Usage answered from a batch counts under "<model>@batch".
BATCH_SUFFIX = "@batch"
# The wait's kind, and where the answer holds the results.
KIND = "batch"
RESULTS = "batch_results"
# The event a node records as soon as its batch is sent (graphs.history): run again before
# it could park (its worker died, a takeover), it parks on that batch instead of paying
# for a second one.
SENT = "batch_sent"


class BatchClient(Protocol):
    """What a model client needs for the lane (``graphs.llm.anthropic.AnthropicClient``)."""

    async def submit_batch(self, requests: dict[str, ModelRequest]) -> str: ...
    async def batch_status(self, batch_id: str) -> str: ...
    async def batch_results(self, batch_id: str) -> dict[str, dict[str, Any] | None]: ...
    async def cancel_batch(self, batch_id: str) -> None: ...


def supports(client: Any) -> bool:
    """Whether ``client`` can send batches (the offline model cannot: it streams)."""
    return callable(getattr(client, "submit_batch", None))


@dataclass
class BatchLane:
    """The answers a lane's calls get: custom_id -> the reply's message JSON, or None for
    a call to stream instead (its batch item errored or expired)."""

    results: dict[str, dict[str, Any] | None] = field(default_factory=dict)


class BatchPending(NodeWaits):
    """A call on the lane that has no answer yet: its request, to be sent in a batch."""

    def __init__(self, cid: str, request: ModelRequest):
        super().__init__({"kind": KIND, "requests": {cid: request_json(request)}})
        self.cid = cid
        self.request = request


def custom_id(request: ModelRequest) -> str:
    """The batch item's id of ``request``: 40 hex digits of its digest (the API takes
    1 to 64 letters, digits, ``-`` and ``_``)."""
    body = json.dumps(request_json(request), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:40]


def request_json(request: ModelRequest) -> dict[str, Any]:
    return asdict(request)


def request_from_json(data: dict[str, Any]) -> ModelRequest:
    return ModelRequest(**data)


def base_model(model: str) -> tuple[str, bool]:
    """The model a usage record's name prices, and whether it was answered from a batch."""
    if model.endswith(BATCH_SUFFIX):
        return model[: -len(BATCH_SUFFIX)], True
    return model, False


def priced(request: ModelRequest) -> ModelRequest:
    """``request`` as a budget prices a call sent in a batch: under the batch name, so it
    reserves at ``BATCH_RATE`` of the streamed price (``graphs.budget``).

    >>> priced(ModelRequest(model="m", messages=[])).model
    'm@batch'
    """
    return replace(request, model=f"{request.model}{BATCH_SUFFIX}")


def response_from_message(message: dict[str, Any]) -> ModelResponse:
    """A batch item's message (the API's JSON) as a reply; its usage under the batch name."""
    usage = message.get("usage") or {}
    details = usage.get("output_tokens_details") or {}
    creation = usage.get("cache_creation") or {}
    return ModelResponse(
        model=f"{message.get('model', '')}{BATCH_SUFFIX}",
        content=list(message.get("content") or []),
        stop_reason=message.get("stop_reason"),
        stop_sequence=message.get("stop_sequence"),
        usage=Usage(
            int(usage.get("input_tokens") or 0),
            int(usage.get("output_tokens") or 0),
            int(details.get("thinking_tokens") or 0),
            int(usage.get("cache_creation_input_tokens") or 0),
            int(usage.get("cache_read_input_tokens") or 0),
            int(creation.get("ephemeral_1h_input_tokens") or 0),
        ),
    )


def answered(prior: list[dict[str, Any]]) -> dict[str, dict[str, Any] | None]:
    """The batch results the visit's earlier resumes brought (``node_resumed`` answers),
    the later ones winning: a node whose calls come in rounds keeps every round's."""
    results: dict[str, dict[str, Any] | None] = {}
    for event in prior:
        answer = event.get("answer") if event.get("type") == "node_resumed" else None
        if isinstance(answer, dict) and isinstance(answer.get(RESULTS), dict):
            results.update(answer[RESULTS])
    return results


def sent_before(prior: list[dict[str, Any]], ids: list[str]) -> str | None:
    """The batch this visit recorded sending with exactly the calls ``ids``, not answered
    since; None when it sent none (then they are sent now). Another run's records (a run
    resuming a failed one reads its parent's) do not count: that batch was its parent's.

    >>> sent = {"type": SENT, "batch_id": "b1", "custom_ids": ["x", "y"]}
    >>> sent_before([sent], ["y", "x"]), sent_before([sent], ["x"])
    ('b1', None)
    >>> sent_before([sent, {"type": "node_resumed", "by": {"batch": "b1"}}], ["x", "y"])
    """
    found = None
    for event in prior:
        if event.get("type") == SENT and not event.get(ELSEWHERE):
            if sorted(event.get("custom_ids") or []) == sorted(ids):
                found = event.get("batch_id")
        elif event.get("type") == "node_resumed" and found is not None:
            found = None  # answered: a call asked again after that is a new one
    return str(found) if found else None


def sent(batch_id: str, ids: list[str]) -> dict[str, Any]:
    """The fields of the ``batch_sent`` event a node records once its batch is sent."""
    return {"batch_id": batch_id, "custom_ids": sorted(ids)}


def wait_for(batch_id: str, ids: list[str]) -> dict[str, Any]:
    """The wait of a node whose calls went in batch ``batch_id``."""
    return {
        "kind": KIND,
        "batch_id": batch_id,
        "custom_ids": sorted(ids),
        "message": f"{len(ids)} model call{'s' if len(ids) != 1 else ''} in a message batch",
        "rerun": True,
    }


def answer(results: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    """What resumes a batch wait: the results its node reads when it runs again."""
    return {RESULTS: results}
