"""Cost budgets on the in-process driver, against the fake Anthropic server: a fan-out of
model calls pauses before the call that would exceed the run's budget (``run_paused``,
the run stored waiting, holding nothing), and raising the budget through the API resumes
it with nothing paid twice (the fake server's request log counts the calls).

Alice owns the flow (in her team), bob edits it, carol views it, dave is a stranger.
"""

from __future__ import annotations

import json
import urllib.request
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync

from graphs.llm.types import Usage
from webapp import execution
from webapp.execution import plans
from webapp.flows import services
from webapp.runs.models import BudgetReservation, Run, RunEvent

pytestmark = pytest.mark.django_db(transaction=True)

BRANCHES = 4
MAX_TOKENS = 100
# claude-sonnet-4-6 at $3 / $15 a million tokens: a call reserves its prompt ("Topic N:
# tea", 4 tokens counted conservatively) and max_tokens, $0.001512; the fake server's
# answer ("fake reply: Topic N: tea") costs 3 input and 5 output tokens, $0.000084. So
# with $0.0017 three calls fit one after the other and the fourth does not:
# 3 x 0.000084 + 0.001512 = 0.001764.
BUDGET = "0.0017"


def node(id_: str, type_: str, **config) -> dict:
    return {"id": id_, "type": type_, "config": config, "position": {"x": 0, "y": 0}}


def edge(source: str, port: str, target: str, target_port: str) -> dict:
    return {"source": source, "target": target, "source_port": port, "target_port": target_port}


def fan_out_graph() -> dict:
    asks = [
        node(f"ask{i}", "llm", prompt=f"Topic {i}: {{{{ q }}}}", max_tokens=MAX_TOKENS)
        for i in range(BRANCHES)
    ]
    return {
        "directed": True,
        "multigraph": True,
        "graph": {"name": "Fan-out"},
        "nodes": [
            node("q", "input", name="q"),
            *asks,
            node("all", "merge"),
            node("out", "output", name="answers"),
        ],
        "edges": [
            *[edge("q", "value", f"ask{i}", "q") for i in range(BRANCHES)],
            *[edge(f"ask{i}", "text", "all", f"a{i}") for i in range(BRANCHES)],
            edge("all", "value", "out", "value"),
        ],
    }


def idle() -> None:
    async_to_sync(execution.driver().wait_idle)()


def model_calls(fake) -> list[dict]:
    """The Messages calls the fake server answered, read from its request log."""
    with urllib.request.urlopen(f"{fake.url}/_fake/requests", timeout=10) as response:
        log = json.load(response)
    return [r["body"] for r in log if r["path"].split("?")[0] == "/v1/messages"]


def topics(calls: list[dict]) -> list[str]:
    return sorted(c["messages"][-1]["content"] for c in calls)


@pytest.fixture
def model(anthropic_env):
    plans.engine_services.cache_clear()
    yield anthropic_env
    plans.engine_services.cache_clear()


@pytest.fixture
def flow(alice, team):
    return services.create(alice, "Fan-out", fan_out_graph(), team=team)


@pytest.fixture
def paused_run(model, flow, api) -> Run:
    """A run of the fan-out started through the API with a budget, paused at its fourth call."""
    response = api("alice").post(
        f"/api/flows/{flow.pk}/runs",
        {"inputs": {"q": "tea"}, "budget_usd": float(BUDGET), "version": "current"},
    )
    assert response.status_code == 201, response.content
    idle()
    run = Run.objects.get(pk=response.json()["id"])
    assert run.status == Run.Status.WAITING, run.error
    return run


def payloads(run: Run, type_: str) -> list[dict]:
    return list(RunEvent.objects.filter(run=run, type=type_).values_list("payload", flat=True))


def test_a_fan_out_pauses_before_the_call_that_would_exceed_its_budget(paused_run, model):
    calls = model_calls(model)
    assert len(calls) == 3, topics(calls)
    [paused] = payloads(paused_run, "run_paused")
    node_ = paused["node"]
    assert f"Topic {node_.removeprefix('ask')}: tea" not in topics(calls)
    assert paused["budget_usd"] == pytest.approx(0.0017)
    assert paused["needed_usd"] == pytest.approx(0.001512)
    assert paused["spent_usd"] == pytest.approx(3 * 0.000084)
    assert paused["remaining_usd"] == pytest.approx(0.0017 - 3 * 0.000084)
    assert paused_run.spent_usd == Decimal("0.000252")
    assert paused_run.state["waiting"][node_]["kind"] == "budget"
    # Parked: no task, no reservation left, nothing finished.
    driver = execution.driver()
    assert paused_run.pk not in driver.active and not driver.running
    assert not BudgetReservation.objects.filter(run=paused_run).exists()
    assert not payloads(paused_run, "run_finished")


def test_raising_the_budget_resumes_the_run_and_pays_nothing_twice(paused_run, model, api):
    [paused] = payloads(paused_run, "run_paused")
    response = api("bob").post(f"/api/runs/{paused_run.pk}/budget", {"budget_usd": 1})
    assert response.status_code == 200, response.content
    assert response.json()["resumed"] is True
    idle()
    paused_run.refresh_from_db()
    assert paused_run.status == Run.Status.SUCCEEDED, paused_run.error
    calls = model_calls(model)
    # One call more, the paused one: the three that finished were not made again.
    assert len(calls) == BRANCHES
    assert topics(calls) == sorted(f"Topic {i}: tea" for i in range(BRANCHES))
    [resumed] = payloads(paused_run, "run_resumed")
    assert resumed["by"]["user"] == "bob" and resumed["budget_usd"] == 1
    assert resumed["nodes"] == [paused["node"]]
    assert paused_run.budget_usd == 1
    assert paused_run.spent_usd == Decimal("0.000336")
    seqs = list(RunEvent.objects.filter(run=paused_run).values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(paused_run.outputs["answers"]) == BRANCHES
    again = api("alice").post(f"/api/runs/{paused_run.pk}/budget", {"budget_usd": 2})
    assert again.status_code == 409 and again.json()["code"] == "run_finished"


def test_a_raise_too_small_pauses_again_without_a_call(paused_run, model, api):
    response = api("alice").post(f"/api/runs/{paused_run.pk}/budget", {"budget_usd": 0.00175})
    assert response.status_code == 200 and response.json()["resumed"] is True
    idle()
    paused_run.refresh_from_db()
    assert paused_run.status == Run.Status.WAITING
    assert len(model_calls(model)) == 3
    assert len(payloads(paused_run, "run_paused")) == 2


@pytest.mark.parametrize(
    ("who", "status"), [("alice", 200), ("bob", 200), ("carol", 403), ("dave", 404)]
)
def test_only_editors_may_raise_a_budget(paused_run, api, who, status):
    response = api(who).post(f"/api/runs/{paused_run.pk}/budget", {"budget_usd": 1})
    assert response.status_code == status, response.content
    paused_run.refresh_from_db()
    raised = status == 200
    assert (paused_run.budget_usd == 1) is raised
    idle()


@pytest.mark.parametrize("bad", [0, -1, "lots", 10_000_000])
def test_a_budget_that_cannot_be_is_refused(paused_run, api, bad):
    response = api("alice").post(f"/api/runs/{paused_run.pk}/budget", {"budget_usd": bad})
    assert response.status_code in (400, 422), response.content
    paused_run.refresh_from_db()
    assert paused_run.budget_usd == Decimal(BUDGET) and paused_run.status == Run.Status.WAITING


def test_a_run_takes_its_flows_budget_unless_it_names_its_own(flow, api):
    flow.budget_usd = Decimal("2.5")
    flow.save(update_fields=["budget_usd"])
    own = api("alice").post(
        f"/api/flows/{flow.pk}/runs", {"inputs": {"q": "x"}, "budget_usd": 0.25}
    )
    inherited = api("alice").post(f"/api/flows/{flow.pk}/runs", {"inputs": {"q": "x"}})
    idle()
    assert Run.objects.get(pk=own.json()["id"]).budget_usd == Decimal("0.25")
    assert Run.objects.get(pk=inherited.json()["id"]).budget_usd == Decimal("2.5")
    detail = api("carol").get(f"/api/runs/{own.json()['id']}").json()
    assert detail["budget"]["budget_usd"] == 0.25 and detail["budget"]["paused"] is False


def test_the_run_page_shows_the_pause_and_editors_raise_the_budget_there(
    paused_run, model, client, bob, carol, dave
):
    url = f"/runs/{paused_run.pk}/"
    client.force_login(carol)
    page = client.get(url).content.decode()
    assert 'data-testid="budget-paused"' in page
    assert "$0.000252 spent of $0.0017" in page and "needs up to $0.001512" in page
    assert 'data-testid="budget-raise"' not in page, "a viewer cannot raise it"
    assert client.post(f"{url}budget/", {"budget_usd": "1"}).status_code == 403
    client.force_login(dave)
    assert client.post(f"{url}budget/", {"budget_usd": "1"}).status_code == 404
    client.force_login(bob)
    assert 'data-testid="budget-raise"' in client.get(url).content.decode()
    refused = client.post(f"{url}budget/", {"budget_usd": "nothing"}).content.decode()
    assert 'data-testid="budget-error"' in refused
    section = client.post(f"{url}budget/", {"budget_usd": "1"}).content.decode()
    assert 'data-testid="budget-resumed"' in section
    idle()
    paused_run.refresh_from_db()
    assert paused_run.status == Run.Status.SUCCEEDED and len(model_calls(model)) == BRANCHES


def test_a_paused_run_can_be_cancelled(paused_run, api):
    assert api("bob").post(f"/api/runs/{paused_run.pk}/cancel").status_code == 202
    paused_run.refresh_from_db()
    assert paused_run.status == Run.Status.CANCELLED
    assert payloads(paused_run, "run_finished")[0]["status"] == "cancelled"
    raised = api("alice").post(f"/api/runs/{paused_run.pk}/budget", {"budget_usd": 1})
    assert raised.status_code == 409


def test_reservations_taken_at_once_never_exceed_the_budget(flow, alice):
    """Eight calls reserve at once from threads of their own, as workers would: the budget
    holds three, so three are taken and the others wait (calls in flight) or pause."""
    import threading

    from webapp.runs import budgets

    run = Run.objects.create(
        flow=flow,
        flow_version=flow.current(),
        started_by=alice,
        budget_usd=Decimal("0.3"),
        spent_usd=Decimal("0.05"),
    )
    taken: list[object] = []
    lock = threading.Lock()

    def reserve(index: int) -> None:
        from django.db import connection

        try:
            outcome = budgets.take(run.pk, f"ask{index}", 1, Decimal("0.08"))
        finally:
            connection.close()
        with lock:
            taken.append(outcome)

    threads = [threading.Thread(target=reserve, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [t for t in taken if isinstance(t, int)]
    assert len(ids) == 3 and BudgetReservation.objects.filter(run=run).count() == 3
    assert all(t is budgets._WAIT for t in taken if not isinstance(t, int))
    budgets.settle(run.pk, ids[0], "claude-sonnet-4-6", Usage(1000, 1000))
    run.refresh_from_db()
    assert run.spent_usd == Decimal("0.068") and run.reservations.count() == 2


def test_a_run_started_without_a_budget_cannot_be_given_one(flow, api):
    response = api("alice").post(f"/api/flows/{flow.pk}/runs", {"inputs": {"q": "x"}})
    idle()
    raised = api("alice").post(f"/api/runs/{response.json()['id']}/budget", {"budget_usd": 1})
    assert raised.status_code == 409 and raised.json()["code"] == "no_budget"
    assert Run.objects.get(pk=response.json()["id"]).budget_usd is None
