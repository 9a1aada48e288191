"""The provider-wide model-call cap on the celery driver, seen from the model's side: the
fake Messages API counts the calls in flight at once, whichever worker made them. The same
setting caps the in-process driver (tests/webapp/test_provider_cap.py).

This test once saw 4 to 6 calls under a cap of 3: the worker built the model SDK on its
sweeper thread while the first tasks ran, the import held every node of the process for
over a lease (2 s here), and the other worker took tasks over whose calls were still in
flight (their slots died with their leases). Workers now warm up before their first task
(webapp.execution.sweeper.start)."""

from __future__ import annotations

import pytest

from tests.scaleout import flows
from tests.scaleout.conftest import finished, sound_log
from webapp.runs.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


def test_runs_on_two_workers_never_have_more_model_calls_in_flight_than_the_cap(cluster):
    cluster.workers(2, pool="threads", size=6, SWITCHYARD_ANTHROPIC_CONCURRENCY="3")
    # 12 branch calls on 12 threads that could all overlap but for the cap.
    runs = [
        cluster.start(flows.fan_out(branches=4, delay_s=0.6), {"topic": f"t{i}"}) for i in range(3)
    ]
    for run in runs:
        run = finished(run, timeout=120)
        assert run.status == Run.Status.SUCCEEDED, run.error
        sound_log(run)
    assert len(cluster.model_server.message_requests) == 15
    # Held across both workers, and reached: a ceiling, not one call at a time.
    assert cluster.model_server.max_in_flight == 3
