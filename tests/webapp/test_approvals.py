"""Runs that wait for a person, on the in-process driver: a run reaching an approval is
stored waiting with its schedule state and holds no task; an editor of its flow answers
through the API and the run goes on, numbering its events on; a second answer is refused;
cancel closes a waiting run's log; recover_runs leaves it waiting.

Alice owns the flow (in her team), bob edits it, carol views it, dave is a stranger.
"""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command

from graphs.nodes import approval
from tests.support.wait import wait_for
from webapp import execution
from webapp.flows import services
from webapp.runs import approvals
from webapp.runs.models import Run, RunEvent

pytestmark = pytest.mark.django_db(transaction=True)

FORM = [
    {"name": "note", "label": "Note", "kind": "text", "required": True},
    {"name": "amount", "kind": "number"},
]


def refund_graph(**ask) -> dict:
    """q -> ask (approval) -> approve/reject -> answer; `ask`: more of the approval's
    config (with ``timeout_s``, its timeout port goes to the answer too)."""

    def node(id_: str, type_: str, **config) -> dict:
        return {"id": id_, "type": type_, "config": config, "position": {"x": 0, "y": 0}}

    def edge(source: str, port: str, target: str, target_port: str) -> dict:
        return {
            "source": source,
            "target": target,
            "source_port": port,
            "target_port": target_port,
        }

    graph = {
        "directed": True,
        "multigraph": True,
        "graph": {"name": "Refund"},
        "nodes": [
            node("q", "input", name="q"),
            node("ask", "approval", message="Refund {{ q }}?", fields=FORM, **ask),
            node("yes", "template", template="approved by {{ a.by.user }}: {{ a.note }}"),
            node("no", "template", template="rejected: {{ a.note }}"),
            node("out", "output", name="answer"),
        ],
        "edges": [
            edge("q", "value", "ask", "q"),
            edge("ask", "approve", "yes", "a"),
            edge("ask", "reject", "no", "a"),
            edge("yes", "text", "out", "value"),
            edge("no", "text", "out", "value"),
        ],
    }
    if ask.get("timeout_s") is not None:
        graph["nodes"].append(
            node("late", "template", template="timed out after {{ t.timeout_s }} s")
        )
        graph["edges"] += [
            edge("ask", "timeout", "late", "t"),
            edge("late", "text", "out", "value"),
        ]
    return graph


def idle() -> None:
    async_to_sync(execution.driver().wait_idle)()


@pytest.fixture
def flow(alice, team):
    return services.create(alice, "Refund", refund_graph(), team=team)


@pytest.fixture
def waiting_run(flow, alice) -> Run:
    """A run of the flow, parked at its approval."""
    run = Run.objects.create(
        flow=flow, flow_version=flow.current(), started_by=alice, inputs={"q": "12 EUR"}
    )
    execution.start(run.pk)
    idle()
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING, run.error
    return run


def types(run: Run) -> list[str]:
    return list(RunEvent.objects.filter(run=run).values_list("type", flat=True))


def answer_url(run: Run, node: str = "ask") -> str:
    return f"/api/runs/{run.pk}/approvals/{node}"


def test_a_run_reaching_an_approval_is_stored_waiting_with_its_state_and_no_task(waiting_run):
    assert waiting_run.state["waiting"]["ask"]["message"] == "Refund 12 EUR?"
    assert waiting_run.finished_at is None
    assert types(waiting_run)[-1] == "node_waiting"
    assert "run_finished" not in types(waiting_run)
    driver = execution.driver()
    assert waiting_run.pk not in driver.active and not driver.running


def test_bob_an_editor_approves_and_the_run_finishes_with_his_answer(waiting_run, api):
    response = api("bob").post(
        answer_url(waiting_run), {"action": "approve", "values": {"note": "ok"}}
    )
    assert response.status_code == 202, response.content
    idle()
    waiting_run.refresh_from_db()
    assert waiting_run.status == Run.Status.SUCCEEDED, waiting_run.error
    assert waiting_run.outputs == {"answer": "approved by bob: ok"}
    seqs = list(RunEvent.objects.filter(run=waiting_run).values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)), "the resumed run numbers its events on"
    resumed = RunEvent.objects.get(run=waiting_run, type="node_resumed")
    assert resumed.payload["by"]["user"] == "bob"


def test_a_second_answer_is_refused_with_409(waiting_run, api):
    assert (
        api("bob")
        .post(answer_url(waiting_run), {"action": "reject", "values": {"note": "no"}})
        .status_code
        == 202
    )
    idle()
    again = api("alice").post(
        answer_url(waiting_run), {"action": "approve", "values": {"note": "x"}}
    )
    assert again.status_code == 409
    waiting_run.refresh_from_db()
    assert waiting_run.outputs == {"answer": "rejected: no"}


def test_an_answer_missing_a_required_field_is_a_400_naming_it_and_the_run_still_waits(
    waiting_run, api
):
    response = api("alice").post(answer_url(waiting_run), {"action": "approve", "values": {}})
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "body.values.note"
    bad = api("alice").post(answer_url(waiting_run), {"action": "maybe", "values": {"note": "x"}})
    assert bad.status_code == 400 and "maybe" in bad.json()["detail"]
    waiting_run.refresh_from_db()
    assert waiting_run.status == Run.Status.WAITING


def test_carol_a_viewer_gets_403_and_dave_a_stranger_404(waiting_run, api):
    body = {"action": "approve", "values": {"note": "x"}}
    assert api("carol").post(answer_url(waiting_run), body).status_code == 403
    assert api("dave").post(answer_url(waiting_run), body).status_code == 404
    waiting_run.refresh_from_db()
    assert waiting_run.status == Run.Status.WAITING


def test_a_node_that_does_not_wait_is_a_409(waiting_run, api):
    response = api("alice").post(answer_url(waiting_run, "out"), {"action": "approve"})
    assert response.status_code == 409


def test_the_approval_list_shows_editors_what_waits_and_nobody_else(waiting_run, api):
    for name in ("alice", "bob"):
        listed = api(name).get("/api/approvals").json()["items"]
        assert listed == [
            {
                "run": waiting_run.pk,
                "flow": waiting_run.flow_id,
                "flow_name": "Refund",
                "node": "ask",
                "message": "Refund 12 EUR?",
                "fields": waiting_run.state["waiting"]["ask"]["fields"],
                "actions": ["approve", "reject"],
                # What only an agent's tool call waiting for approval has.
                "kind": "approval",
                "tool": None,
                "input": None,
                "call": None,
            }
        ]
    assert api("carol").get("/api/approvals").json()["items"] == []
    assert api("dave").get("/api/approvals").json()["items"] == []
    api("bob").post(answer_url(waiting_run), {"action": "approve", "values": {"note": "ok"}})
    idle()
    assert api("alice").get("/api/approvals").json()["items"] == []


def test_cancel_on_a_waiting_run_closes_its_log_cancelled(waiting_run, api):
    response = api("alice").post(f"/api/runs/{waiting_run.pk}/cancel")
    assert response.status_code == 202 and response.json() == {"status": "cancelled"}
    waiting_run.refresh_from_db()
    assert waiting_run.status == Run.Status.CANCELLED and waiting_run.finished_at is not None
    last = RunEvent.objects.filter(run=waiting_run).last()
    assert last.type == "run_finished" and last.payload["status"] == "cancelled"
    seqs = list(RunEvent.objects.filter(run=waiting_run).values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    late = api("bob").post(answer_url(waiting_run), {"action": "approve", "values": {"note": "x"}})
    assert late.status_code == 409


def test_recover_runs_leaves_a_waiting_run_waiting_and_it_can_still_be_answered(waiting_run, api):
    call_command("recover_runs")
    waiting_run.refresh_from_db()
    assert waiting_run.status == Run.Status.WAITING
    assert "run_finished" not in types(waiting_run)
    response = api("bob").post(
        answer_url(waiting_run), {"action": "approve", "values": {"note": "ok"}}
    )
    assert response.status_code == 202
    idle()
    wait_for(lambda: Run.objects.get(pk=waiting_run.pk).finished, message="the answered run to end")
    waiting_run.refresh_from_db()
    assert waiting_run.status == Run.Status.SUCCEEDED


# The run page


def test_the_run_page_shows_an_editor_the_form_and_a_viewer_only_the_question(
    waiting_run, client, bob, carol
):
    client.force_login(bob)
    page = client.get(f"/runs/{waiting_run.pk}/").content.decode()
    assert 'data-testid="approval-ask"' in page and "Refund 12 EUR?" in page
    assert 'name="f_note"' in page and 'value="approve"' in page and 'value="reject"' in page
    client.force_login(carol)
    page = client.get(f"/runs/{waiting_run.pk}/").content.decode()
    assert "Refund 12 EUR?" in page
    assert 'name="f_note"' not in page and 'value="approve"' not in page


def test_the_run_page_escapes_the_question(flow, alice, client):
    run = Run.objects.create(
        flow=flow, flow_version=flow.current(), started_by=alice, inputs={"q": "<b>x</b>"}
    )
    execution.start(run.pk)
    idle()
    client.force_login(alice)
    page = client.get(f"/runs/{run.pk}/approvals/").content.decode()
    assert "Refund &lt;b&gt;x&lt;/b&gt;?" in page and "<b>x</b>" not in page


def test_answering_from_the_run_page_resumes_the_run(waiting_run, client, bob):
    client.force_login(bob)
    missing = client.post(f"/runs/{waiting_run.pk}/approvals/ask/", {"action": "approve"})
    assert missing.status_code == 200
    assert "is required" in missing.content.decode()
    waiting_run.refresh_from_db()
    assert waiting_run.status == Run.Status.WAITING
    answered = client.post(
        f"/runs/{waiting_run.pk}/approvals/ask/", {"action": "approve", "f_note": "fine"}
    )
    assert 'data-testid="approval-answered"' in answered.content.decode()
    idle()
    waiting_run.refresh_from_db()
    assert waiting_run.outputs == {"answer": "approved by bob: fine"}


def test_a_viewer_posting_an_answer_is_refused_and_the_run_still_waits(waiting_run, client, carol):
    client.force_login(carol)
    response = client.post(
        f"/runs/{waiting_run.pk}/approvals/ask/", {"action": "approve", "f_note": "x"}
    )
    assert response.status_code == 403
    waiting_run.refresh_from_db()
    assert waiting_run.status == Run.Status.WAITING


# A cancel that arrives while an answer is being claimed (here: from inside the claim)


def test_a_cancel_during_the_claim_of_an_answer_ends_the_resumed_run_cancelled(waiting_run, bob):
    driver = execution.driver()

    def claim() -> approvals.Answer:
        answer = approvals.claim_answer(waiting_run.pk, "ask", "approve", {"note": "x"}, bob)
        assert driver.cancel(waiting_run.pk) is True
        return answer

    driver.resume(waiting_run.pk, claim)
    idle()
    waiting_run.refresh_from_db()
    assert waiting_run.status == Run.Status.CANCELLED
    last = RunEvent.objects.filter(run=waiting_run).last()
    assert last.type == "run_finished" and last.payload["status"] == "cancelled"


def test_a_cancel_during_a_refused_claim_still_cancels_the_waiting_run(waiting_run, bob):
    driver = execution.driver()

    def claim() -> approvals.Answer:
        assert driver.cancel(waiting_run.pk) is True
        return approvals.claim_answer(waiting_run.pk, "ask", "maybe", {}, bob)

    with pytest.raises(approval.AnswerInvalid):
        driver.resume(waiting_run.pk, claim)
    waiting_run.refresh_from_db()
    assert waiting_run.status == Run.Status.CANCELLED
    assert RunEvent.objects.filter(run=waiting_run).last().type == "run_finished"
