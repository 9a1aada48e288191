"""Creating runs. Starting them is the driver's job (webapp.runs.drivers.start_run)."""

from __future__ import annotations

from typing import Any

from webapp.flows.models import Flow
from webapp.runs import drivers
from webapp.runs.models import Run, RunEvent


def create_run(flow: Flow, user, inputs: dict[str, Any]) -> Run:
    """A queued run of the flow's current version; FlowInvalid (nothing stored) if it cannot run.

    The flow is compiled and the inputs resolved here so that a bad request never
    leaves a run behind that could only fail.
    """
    version = flow.current()
    compiled = drivers.compiled_version(version)
    resolved = compiled.resolve_inputs(inputs)
    return Run.objects.create(flow=flow, flow_version=version, started_by=user, inputs=resolved)


def recorded_events(run: Run, after: int, limit: int) -> list[dict[str, Any]]:
    """The run's events with seq > after, in order, at most `limit` of them."""
    events = RunEvent.objects.filter(run=run, seq__gt=after).order_by("seq")
    return list(events.values_list("payload", flat=True)[:limit])
