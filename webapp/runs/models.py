from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import models

from webapp.flows.models import Flow, FlowVersion


class Run(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        # Parked: every node still running waits for a person; no task holds the run,
        # `state` is all there is of it until an answer resumes it (webapp.runs.approvals).
        WAITING = "waiting"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class Kind(models.TextChoices):
        RUN = "run", "run"
        RERUN = "rerun", "re-run"
        FROM_NODE = "from_node", "re-run from a node"
        RESUME = "resume", "resume"
        SUBFLOW = "subflow", "sub-flow"

    class Trigger(models.TextChoices):
        """Who or what started the run (a re-run's own ``kind`` says which sort)."""

        UNKNOWN = "", "unknown"  # runs made before triggers were recorded
        EDITOR = "editor"
        API = "api", "API"
        WEBHOOK = "webhook"
        SCHEDULE = "schedule"
        CHAT = "chat"
        MCP = "mcp", "MCP"
        RERUN = "rerun", "re-run"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)
    IN_FLIGHT = (Status.QUEUED, Status.RUNNING)
    RESUMABLE = (Status.FAILED, Status.CANCELLED)

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="runs")
    # Pinned at start: later saves of the flow never change what this run ran. Versions are
    # only ever deleted together with their flow, and its runs go with it.
    flow_version = models.ForeignKey(FlowVersion, on_delete=models.CASCADE, related_name="runs")
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True)
    inputs = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    outputs = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    last_seq = models.PositiveIntegerField(default=0)
    # What the run cost at the price table of the time it finished (see webapp.runs.pricing),
    # and what cache hits saved; both in US dollars.
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    saved_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    cache_hits = models.PositiveIntegerField(default=0)
    # What the provider's prompt cache saved (webapp.runs.pricing.cache_saving_usd).
    provider_saved_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    duration_s = models.FloatField(null=True, blank=True)

    # How this run came to be. A re-run, a re-run from a node and a resume link to the run
    # they started from; `from_node` is where a re-run from a node began. A sub-flow run
    # (kind subflow) links to the run whose node `parent_node` ran it (a subflow node, or an
    # agent calling the flow as a tool): webapp.execution.subflows.
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.RUN)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.EDITOR)
    parent = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="children"
    )
    from_node = models.CharField(max_length=200, blank=True)
    parent_node = models.CharField(max_length=200, blank=True)
    # The graph actually run, when it is not flow_version's (a re-run with an edited node).
    graph_override = models.JSONField(null=True, blank=True)
    # Values a re-run-from node gets on its ports instead of what arrives: {node: {port: value}}.
    input_overrides = models.JSONField(default=dict, blank=True)
    ignore_cache = models.BooleanField(default=False)
    # Node ids the run pauses before (graphs.schedule "Breakpoints"): set only by the
    # editor's run form (webapp.runs.breakpoint_views), and applied only to editor runs.
    breakpoints = models.JSONField(default=list, blank=True)
    # The celery driver's scheduling state (graphs.schedule.RunState as JSON), written by
    # each coordinator step under this row's lock; None until the run has begun. On the
    # in-process driver, the state of a run parked waiting (and after it was resumed, so a
    # second answer is refused); None otherwise.
    state = models.JSONField(null=True, blank=True)
    # When the celery driver handed the run to the broker; None while it still has to be.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    # A parked run's earliest approval deadline (its waits' timeout_s), so the timeout sweep
    # (webapp.runs.timeouts) reads one index, not every waiting run's state. Only meaningful
    # while status is waiting: whoever parks the run sets it again.
    wait_deadline = models.DateTimeField(null=True, blank=True)
    # A parked run's next look at the message batches it waits on (webapp.runs.batches), so
    # the batch poller reads one index. Only meaningful while status is waiting.
    batch_poll_at = models.DateTimeField(null=True, blank=True)
    # "batch": every model call of the run goes to the Message Batches API at half price
    # (graphs.llm.batch), the run waiting on each batch holding no worker.
    latency = models.CharField(
        max_length=6, choices=[("stream", "stream"), ("batch", "batch")], default="stream"
    )
    # What the run stores, in bytes, counted as it is written (webapp.runs.limits): its
    # event log, held to settings.MAX_RUN_EVENT_BYTES, and all of it (the log, what it
    # was started with, its outputs), which counts against its user's UserStorage.
    event_bytes = models.PositiveBigIntegerField(default=0)
    stored_bytes = models.PositiveBigIntegerField(default=0)
    # Set when a limit stopped the run: it ends failed with this error, and until it has
    # ended only the events that close its log are stored.
    limit_error = models.CharField(max_length=300, blank=True)
    # The run's cost budget in US dollars (the run form's, else its flow's); None: no
    # budget. ``spent_usd`` is what its model calls cost so far, settled call by call
    # (webapp.runs.budgets), so a raised budget resumes from what was really spent.
    budget_usd = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    spent_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)

    class Meta:
        ordering = ["-created"]
        indexes = [
            models.Index(fields=["flow", "-created"]),
            models.Index(fields=["status", "-created"]),
            models.Index(fields=["started_by", "-created"]),
            models.Index(fields=["-created"]),
            # Counting a user's runs in flight, at every start, reads only these.
            models.Index(
                fields=["started_by"],
                condition=models.Q(status__in=["queued", "running"]),
                name="runs_in_flight_by_user",
            ),
            models.Index(
                fields=["wait_deadline"],
                condition=models.Q(status="waiting", wait_deadline__isnull=False),
                name="runs_waiting_by_deadline",
            ),
            models.Index(
                fields=["batch_poll_at"],
                condition=models.Q(status="waiting", batch_poll_at__isnull=False),
                name="runs_waiting_on_batches",
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.flow_id} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def graph(self) -> dict:
        """The flow document this run executed."""
        if self.graph_override is not None:
            return self.graph_override
        return self.flow_version.graph

    @property
    def usage(self) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}


class IdempotencyKey(models.Model):
    """An ``Idempotency-Key`` a user started a run with: the same key and body again within
    ``IDEMPOTENCY_TTL`` give that run back instead of a new one (webapp.runs.idempotency)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # sha256 of what the request asked for (its flow and body), hex.
    digest = models.CharField(max_length=64)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="one_run_per_idempotency_key")
        ]


class UserStorage(models.Model):
    """What one user's runs store, in bytes: the sum of their Run.stored_bytes.

    Kept by every write (an F() update in the same transaction), so a quota check is one
    row, not a sum over every event. The row is made with the user's first run.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="run_storage",
    )
    stored_bytes = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.stored_bytes} bytes"


class RunEventQuerySet(models.QuerySet):
    def of_node(self, node_id: str) -> RunEventQuerySet:
        """The events that name ``node_id``, through the (run, node, seq) index: a node's
        inspector reads its own events, not all of a long run's."""
        return self.filter(node=node_id)

    def bulk_create(self, objs: Iterable[RunEvent], *args: Any, **kwargs: Any) -> list[RunEvent]:
        objs = list(objs)
        for event in objs:
            event.node = node_of(event.payload)
        return super().bulk_create(objs, *args, **kwargs)


def node_of(payload: Any) -> str:
    """The node an event names, as RunEvent.node keeps it ("" for run-level events)."""
    node = payload.get("node") if isinstance(payload, dict) else None
    return node if isinstance(node, str) else ""


class RunEvent(models.Model):
    """One engine event of a run; `payload` is the event exactly as the engine emitted it.

    `node` repeats the payload's node, kept by every save and bulk_create, so that a
    node's events are an index range of a long log rather than a scan of its JSON.
    """

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=32)
    node = models.CharField(max_length=100, blank=True, default="")
    payload = models.JSONField()

    objects = RunEventQuerySet.as_manager()

    class Meta:
        ordering = ["seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="one_event_per_seq")]
        indexes = [models.Index(fields=["run", "node", "seq"], name="runevent_node")]

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.node = node_of(self.payload)
        super().save(*args, **kwargs)


class CacheEntry(models.Model):
    """A node's successful output, reusable by later runs of the same flow.

    Scoped to one flow: whoever may run that flow may see it, so a hit never shows
    anyone an output from a flow they cannot see.
    """

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="cache_entries")
    key = models.CharField(max_length=64)
    node_type = models.CharField(max_length=32)
    output = models.JSONField()
    # The text the node streamed, replayed on a hit so the canvas shows it as before.
    text = models.TextField(blank=True)
    model = models.CharField(max_length=200, blank=True)
    usage = models.JSONField(default=dict)
    detail = models.JSONField(default=dict)
    run = models.ForeignKey(Run, on_delete=models.SET_NULL, null=True, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    hits = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["flow", "key"], name="one_cache_entry_per_key")
        ]


class NodeTask(models.Model):
    """One node visit of a run on the celery driver, or one item of a map node's list.

    The row is the truth about who executes it: a worker claims a queued row, holds it
    by renewing `lease_until`, and writes only while `epoch` is still the one it claimed.
    A lease that runs out (a worker killed or frozen) is taken over: the epoch goes up
    and the task is queued again, so the old holder's writes are refused when it wakes.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"

    NODE = -1  # `item` of the node's own task; a map item's task has its index

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tasks")
    node = models.CharField(max_length=200)
    iteration = models.PositiveIntegerField()
    item = models.IntegerField(default=NODE)
    # The values on the node's ports (graphs.schedule.Ready.inputs), or a map item's inputs.
    inputs = models.JSONField(default=dict)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    epoch = models.PositiveIntegerField(default=1)
    worker = models.CharField(max_length=200, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    # When it was last handed to the broker; None while it still has to be (broker down).
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The run ended early: its holder stops it at the next heartbeat.
    cancel = models.BooleanField(default=False)
    # A map item's result (status, outputs, error, usage_by_model); None for nodes.
    result = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["run", "node", "iteration", "item"], name="one_task_per_node_visit"
            )
        ]
        indexes = [models.Index(fields=["status", "lease_until"])]

    def __str__(self) -> str:
        item = "" if self.item == self.NODE else f" item {self.item}"
        return f"{self.node}#{self.iteration}{item} of run {self.run_id} ({self.status})"


class Slot(models.Model):
    """A held concurrency slot (webapp.execution.slots): per run, per model provider.

    A slot lives as long as its task's lease in the epoch that took it, so a worker
    that dies holding slots gives them back when its lease runs out.
    """

    scope = models.CharField(max_length=100)
    task = models.ForeignKey(NodeTask, on_delete=models.CASCADE, related_name="slots")
    epoch = models.PositiveIntegerField()
    acquired = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["scope"])]


class BudgetReservation(models.Model):
    """What one model call of a run in flight may cost, held against the run's budget
    until the call ends and its real cost replaces it (webapp.runs.budgets). Rows of a
    run are taken and counted under the run row's lock, so workers anywhere share them."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="reservations")
    node = models.CharField(max_length=200)
    iteration = models.PositiveIntegerField()
    amount_usd = models.DecimalField(max_digits=14, decimal_places=6)
    created = models.DateTimeField(auto_now_add=True)


class RunFile(models.Model):
    """A file a run was started with (webapp.runs.files): its bytes, and what the run's
    input holds instead of them, a reference (graphs.files)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="files")
    input_name = models.CharField(max_length=100)
    # Sanitised: letters, digits, '.', '_' and '-' (webapp.runs.files.safe_name).
    name = models.CharField(max_length=100)
    media_type = models.CharField(max_length=40)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    data = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "input_name"], name="one_file_per_run_input")
        ]
