"""What a node type is: a validated config, its ports, and an async ``run``.

A node type is a stateless object; everything a run needs arrives in the
``NodeContext``. Config keys shared by every type (``CommonConfig``) are the
executor's business; the rest belong to the type.

A type also states the facts people need to use it, so that any host (the web app's
palette and config form, a CLI) can show it without knowing it: a ``label``, a one-line
``description``, a ``category``, the ``default_config`` a new node starts with, and for
each config field its help (``Field(description=...)``), its label where the field name
reads badly (``title``) and, where the annotation alone does not say how the value is
written, a ``widget`` in ``json_schema_extra``:

- ``template``: text in the template language (its variables are the node's ports);
  ``templates()`` says which of these fields a given config uses
- ``code``: a short identifier-like string (no spell checking)
- ``source``: program text, several lines (a ``code`` node's Python)
- ``tools``: names picked from the services' tools (and saved flows, ``flow:ID``)
- ``flow``: a saved flow, picked from those the host offers (``graphs.subflows``)
- ``cache``: yes, no, or unset (then ``cacheable()`` decides)
- ``schema``: a JSON Schema object whose top-level properties a host may show as a table
- ``rows``: a list of small records (a model whose fields are ``str``), edited as a table
  with one column per field, headed by its ``title``, a ``placeholder`` in its own
  ``json_schema_extra``; every value is stored exactly as typed. A column may be a
  ``template``; ``templates()`` then gives the field's values, one per line

with ``rows`` (a number) as a hint of how much text the field usually holds, ``advanced:
True`` for a setting few nodes need (a host may tuck it away with the common keys), and
``when``, ``{"mode": ["llm"]}``, where a field only matters while another field holds one
of the values listed (a host may hide it otherwise). Everything else follows
the annotation: a ``Literal`` is a choice, ``bool`` a switch, numbers a number, ``str``
a line of text, ``list[str]`` one item per line, any other type JSON.

>>> from graphs.nodes import NODE_TYPES
>>> llm = NODE_TYPES["llm"]
>>> llm.label, llm.category, llm.default_config
('LLM call', 'model', {'prompt': ''})
>>> field = llm.Config.model_fields["prompt"]
>>> field.json_schema_extra
{'widget': 'template', 'rows': 8}
>>> llm.Config.model_fields["model"].description
"Empty: the server's default model."

A type's own checks (``problems()``) each name the field they are about:

>>> router = NODE_TYPES["router"]
>>> config = router.Config.model_validate(
...     {"routes": ["yes"], "rules": [{"route": "no", "pattern": "n"}]}
... )
>>> router.problems(config, None)
[FieldProblem(field='rules', message="rule names route 'no', which is not in routes")]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from graphs.budget import NO_BUDGET
from graphs.credentials import NO_CREDENTIALS
from graphs.errors import NodeWaits as NodeWaits  # where node types import it from
from graphs.files import NO_FILES
from graphs.limits import CodeSettings, SandboxSettings
from graphs.llm.types import Usage
from graphs.subflows import NO_FLOWS
from graphs.tools.base import ToolSettings

if TYPE_CHECKING:
    # Named in annotations only: importing them (asyncio, the MCP client, the batch lane)
    # would cost every process that checks a flow, which runs no node.
    from graphs.budget import Budget
    from graphs.credentials import CredentialSource
    from graphs.files import FileSource
    from graphs.llm.batch import BatchLane
    from graphs.llm.types import ModelClient, ModelRequest, ModelResponse
    from graphs.subflows import FlowSource
    from graphs.tools.base import Tool
    from graphs.tools.mcp import McpServer, McpSessions
    from graphs.warm import WarmGate

# What a node type is for, in five kinds a host can tell apart at a glance (the web app
# gives each a colour): the flow's boundary, text work, model calls, the routing of values,
# and nodes that run a whole flow inside.
Category = Literal["io", "text", "model", "control", "container"]
CATEGORIES: tuple[Category, ...] = get_args(Category)

RETRIES_HELP = "Retries after a transient failure, with backoff."


class CommonConfig(BaseModel):
    """Keys every node type accepts, read by the executor rather than the node."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_iterations: int | None = Field(
        default=None, ge=1, le=100_000, description="Required on some node of every loop."
    )
    timeout_s: float | None = Field(
        default=None,
        gt=0,
        le=24 * 3600,
        title="Timeout (s)",
        description="Seconds before the node fails.",
    )
    retries: int = Field(default=0, ge=0, le=10, description=RETRIES_HELP)
    on_error: Literal["fail", "continue"] = Field(
        default="fail", description="continue: the error goes out on the port error."
    )
    # None: the node type decides (NodeType.cacheable); True/False: this node's own choice.
    cache: bool | None = Field(
        default=None,
        description="Reuse this node's output when an identical execution (same type, config, "
        "model and inputs) succeeded before in this flow, instead of running it again.",
        json_schema_extra={"widget": "cache"},
    )


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with a node's config, on the field it is about.

    The message reads on its own (the engine reports it after the node's id); a form
    shows it under ``field``.
    """

    field: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Services:
    """What the outside world lends a run: the model, tools, limits.

    ``sandbox``: the limits templates that are not provably cheap render under (see
    ``graphs.templating`` and ``graphs.sandbox``). ``flows``: the saved flows a
    ``subflow`` node or an agent's ``flow:`` tool may call (``graphs.subflows``); none
    unless the host lends them.

    Built from the environment by ``graphs.settings.services_from_env``; tests and
    the web app build their own.
    """

    model_client: ModelClient
    default_model: str
    tools: Mapping[str, Tool]
    registry: Mapping[str, NodeType]
    tool_settings: ToolSettings = field(default_factory=ToolSettings)
    max_concurrency: int = 64
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    flows: FlowSource = NO_FLOWS
    # The limits of ``code`` nodes (``graphs.codebox``).
    code: CodeSettings = field(default_factory=CodeSettings)
    # The secrets a flow names (the http node's ``auth``): lent per run by the host, never
    # part of the document (``graphs.credentials``).
    credentials: CredentialSource = NO_CREDENTIALS
    # Warm, then fan (graphs.warm): calls sharing a cached prefix wait for the first one's
    # cache write. None: every call goes at once.
    warm: WarmGate | None = None
    # The MCP servers an agent's ``mcp:<server>/<tool>`` tools reach (``graphs.tools.mcp``),
    # lent per run by the host. None: the host lends none (the command line), so a flow's
    # MCP tool names are checked for their shape only, and fail when the agent runs.
    mcp: Mapping[str, McpServer] | None = None
    # What each model call may cost (``graphs.budget``); none unless the host lends one.
    budget: Budget = NO_BUDGET
    # The bytes of the run's file inputs (``graphs.files``), lent per run by the host.
    files: FileSource = NO_FILES
    # The batch lane (graphs.llm.batch): calls answered from a Message Batch, or collected
    # for one. None: calls stream. A ``map`` with ``latency: batch`` lends its items one.
    batch: BatchLane | None = None


@dataclass(frozen=True)
class Ports:
    """A node's ports: ``inputs`` (None: any name, a merge), ``outputs``, and the inputs
    it can do without (``optional``: validation does not ask for an edge into them)."""

    inputs: frozenset[str] | None
    outputs: frozenset[str]
    optional: frozenset[str] = frozenset()


def _ignore(_: str) -> None:
    pass


async def _nothing_prior() -> list[dict[str, Any]]:
    return []


async def _record_nowhere(type_: str, fields: dict[str, Any]) -> None:
    pass


@dataclass
class NodeContext:
    """One execution of one node: what it may read, and how it reports."""

    node_id: str
    iteration: int
    attempt: int
    run_inputs: Mapping[str, Any]
    services: Services
    prepared: Any
    emit_text: Callable[[str], None]
    emit_progress: Callable[[int, int], object]
    run_subflow: Callable[..., Any]
    # A map's items' events, as fields of a ``node_item`` event of this node's visit.
    emit_item: Callable[[dict[str, Any]], object] = field(default=lambda _: None)
    # The model's thinking, streamed apart from its text (node_thinking events).
    emit_thinking: Callable[[str], None] = _ignore
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    usage_by_model: dict[str, Usage] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)
    # The host's ids of the flows this node ran as children (graphs.subflows), in order.
    child_runs: list[int | str] = field(default_factory=list)
    # What this visit recorded before it ran this time (graphs.history): [] on a first run.
    prior: Callable[[], Awaitable[list[dict[str, Any]]]] = _nothing_prior
    # Emits an event of this visit (type, fields) and returns once it is stored for good:
    # a record the node must find again should it run again (an agent's turn).
    record: Callable[[str, dict[str, Any]], Awaitable[None]] = _record_nowhere
    # The run's MCP client sessions (graphs.tools.mcp): None, a session per tool call.
    mcp_sessions: McpSessions | None = None

    async def call_model(self, request: ModelRequest, *, stream: bool = True) -> ModelResponse:
        """One model call; its usage is added to this node's total.

        With a warm gate, a call whose cached prefix others share waits for the first of
        them to write it (graphs.warm).
        """
        from graphs.llm import batch, caching

        lane = self.services.batch
        if lane is not None and batch.supports(self.services.model_client):
            cid = batch.custom_id(request)
            if cid not in lane.results:
                # Before it is sent: a call the budget cannot take even at the batch price
                # parks its node here, and nothing goes out. The answer reserves again.
                priced = batch.priced(request)
                hold = await self.services.budget.reserve(self.node_id, self.iteration, priced)
                await hold.settle(priced.model, Usage())
                raise batch.BatchPending(cid, request)  # sent in its node's batch
            message = lane.results[cid]
            if message is not None:
                return await self._batched(request, message, stream)
            # Its batch item errored or expired: it streams, as off the lane.
        on_text = self.emit_text if stream else _ignore
        kwargs: dict[str, Any] = {}
        if request.thinking is not None:
            kwargs["on_thinking"] = self.emit_thinking if stream else _ignore
        # Before the call: one that would exceed the run's budget parks its node here.
        hold = await self.services.budget.reserve(self.node_id, self.iteration, request)
        try:
            gate = self.services.warm
            key = caching.warm_key(request) if gate is not None else None
            if gate is None or key is None or await gate.enter(key) == "go":
                response = await self.services.model_client.complete(request, on_text, **kwargs)
            else:
                response = await self._lead(gate, key, request, on_text, kwargs)
        except BaseException:
            # A failed call reports no usage: its reservation goes, nothing is counted.
            await hold.settle(request.model, Usage())
            raise
        await hold.settle(response.model, response.usage)
        self.add_usage(response.model, response.usage)
        return response

    async def _batched(
        self, request: ModelRequest, message: dict[str, Any], stream: bool
    ) -> ModelResponse:
        """A reply from a batch: what it said goes out as if streamed, in one piece."""
        from graphs.llm import batch

        response = batch.response_from_message(message)
        # Reserved at what the batch charges (usage under "<model>@batch"), not the full price.
        priced = batch.priced(request)
        hold = await self.services.budget.reserve(self.node_id, self.iteration, priced)
        await hold.settle(response.model, response.usage)
        if stream:
            if request.thinking is not None and response.thinking:
                self.emit_thinking(response.thinking)
            if response.text:
                self.emit_text(response.text)
        self.add_usage(response.model, response.usage)
        return response

    async def _lead(
        self, gate: WarmGate, key: str, request: ModelRequest, on_text: Any, kwargs: dict
    ) -> ModelResponse:
        """The first call of a prefix: the others go once its first event tells of the cache."""
        heard = False

        def on_start(usage: Usage) -> None:
            nonlocal heard
            heard = True
            cached = usage.cache_creation_input_tokens + usage.cache_read_input_tokens
            gate.started(key, wrote_or_read=cached > 0, ttl=request.cache_ttl)

        try:
            return await self.services.model_client.complete(
                request, on_text, on_start=on_start, **kwargs
            )
        finally:
            if not heard:
                gate.failed(key)  # failed or cancelled first: another leads

    def add_usage(self, model: str, usage: Usage) -> None:
        """Count tokens this node spent on ``model`` (directly, or in a map's items)."""
        self.usage = self.usage + usage
        self.usage_by_model[model] = self.usage_by_model.get(model, Usage()) + usage
        self.model = model

    async def render(self, field_name: str, source: str, values: Mapping[str, Any]) -> str:
        """Render a template of this node's config; a problem names the field it is in."""
        from graphs import templating

        try:
            return await templating.render_async(source, values, self.services.sandbox)
        except templating.TemplateProblem as exc:
            raise templating.TemplateProblem(f"{field_name}: {exc}") from None


class NodeType(ABC):
    """Base of every node type.

    Subclasses set ``name``, ``label``, ``description``, ``category``, ``Config`` (and
    ``default_config`` when an empty config is not valid) and ``run``.
    """

    name: ClassVar[str]
    # For people: a short name, and one sentence on what it does (`port` marks a port).
    label: ClassVar[str]
    description: ClassVar[str] = ""
    category: ClassVar[Category]
    Config: ClassVar[type[CommonConfig]] = CommonConfig
    # The config a node of this type starts with when someone adds one: valid, and the
    # smallest useful. Read only; a host copies it.
    default_config: ClassVar[dict[str, Any]] = {}
    # Bump when the same config and inputs would now give a different output: it is part
    # of the cache key, so entries made by the old behaviour stop matching.
    version: ClassVar[int] = 1
    # Containers (map) wait on sub-runs whose own nodes take the run's concurrency slots.
    holds_slot: ClassVar[bool] = True
    # It only reshapes what it is given: no I/O, no wait, no slot, done in microseconds. A
    # distributed driver may run it where it was made ready instead of sending it to a
    # queue, whose round trip would cost more than the node.
    instant: ClassVar[bool] = False
    # Its run calls the model (``ctx.call_model``) and nothing else outside the engine
    # before its first call, so a cost estimate may render that call (graphs.estimate).
    calls_model: ClassVar[bool] = False
    # Its run reaches MCP servers through ``ctx.mcp_sessions`` (an agent's ``mcp:`` tools);
    # other types get None there, and a run of none of them never loads the MCP module.
    uses_mcp: ClassVar[bool] = False

    def input_ports(self, config: Any) -> frozenset[str] | None:
        """The ports this node reads; None means any name (a merge)."""
        return frozenset()

    def output_ports(self, config: Any) -> frozenset[str]:
        return frozenset()

    def ports(self, config: Any, services: Services | None) -> Ports:
        """The node's ports; a type whose ports depend on what the services hold (a
        ``subflow``: the called flow's inputs and outputs) overrides this, not the two
        above, which it cannot answer without them."""
        return Ports(self.input_ports(config), self.output_ports(config))

    def templates(self, config: Any) -> dict[str, str]:
        """Config fields holding templates, by field name; their variables are ports."""
        return {}

    def problems(self, config: Any, services: Services | None) -> list[FieldProblem]:
        """Type-specific checks beyond the pydantic model, each on the field it is about.

        Checks that span fields live here rather than in a pydantic model validator, whose
        errors belong to no field.
        """
        return []

    def cacheable(self, config: Any, services: Services) -> bool:
        """Whether the node cache may serve this node by default (``config.cache`` overrides).

        True only where running again is expensive (a model call) and the output depends on
        nothing but the config and inputs.
        """
        return False

    def prepare(self, config: Any, services: Services) -> Any:
        """Work done once when a flow is compiled; handed to ``run`` as ``ctx.prepared``."""
        return None

    @abstractmethod
    async def run(self, ctx: NodeContext, config: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        """Do the work; return the value emitted on each output port."""


def template_ports(sources: Mapping[str, str | None]) -> frozenset[str]:
    # Here, not at the top: Jinja is for flows with templates, not for every node type.
    from graphs import templating

    ports: set[str] = set()
    for source in sources.values():
        if source:
            ports |= templating.variables(source)
    return frozenset(ports)
