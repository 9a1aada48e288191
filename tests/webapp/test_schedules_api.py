"""``/api/flows/{id}/schedules``: alice owns the team's flow, bob edits it, carol views it
(read only), dave is a stranger (404 for everything)."""

from __future__ import annotations

import pytest

from tests.webapp.test_publish import greeting
from webapp.flows import services
from webapp.schedules.models import Schedule

NEW = {"cron": "30 2 * * *", "timezone": "Europe/Paris", "inputs": {"who": "team"}}


@pytest.fixture
def flow(alice, team):
    return services.create(alice, "Greet", greeting("Hello"), team=team)


def url(flow, *rest) -> str:
    return "/".join([f"/api/flows/{flow.pk}/schedules", *map(str, rest)])


def create(api, flow, who="bob", **fields):
    answer = api(who).post(url(flow), {**NEW, **fields})
    assert answer.status_code == 201, answer.content
    return answer.json()


def test_an_editor_creates_a_schedule_and_sees_its_next_five_fire_times(api, flow, bob):
    made = create(api, flow)
    assert made["cron"] == "30 2 * * *"
    assert (made["timezone"], made["overlap"], made["enabled"]) == ("Europe/Paris", "skip", True)
    assert made["created_by"] == "bob"
    assert len(made["next_fires"]) == 5
    schedule = Schedule.objects.get(pk=made["id"])
    assert (schedule.created_by, schedule.inputs) == (bob, {"who": "team"})


def test_a_viewer_reads_schedules_and_ticks_but_cannot_change_them(api, flow):
    made = create(api, flow)
    carol = api("carol")
    assert carol.get(url(flow)).json()["count"] == 1
    assert carol.get(url(flow, made["id"])).json()["id"] == made["id"]
    assert carol.get(url(flow, made["id"], "ticks")).json()["count"] == 0
    assert carol.post(url(flow), NEW).status_code == 403
    assert carol.patch(url(flow, made["id"]), {"enabled": False}).status_code == 403
    assert carol.delete(url(flow, made["id"])).status_code == 403
    assert Schedule.objects.get(pk=made["id"]).enabled


def test_a_stranger_gets_404_for_everything(api, flow):
    made = create(api, flow)
    dave = api("dave")
    for answer in [
        dave.get(url(flow)),
        dave.get(url(flow, made["id"])),
        dave.get(url(flow, made["id"], "ticks")),
        dave.post(url(flow), NEW),
        dave.patch(url(flow, made["id"]), {"enabled": False}),
        dave.delete(url(flow, made["id"])),
    ]:
        assert answer.status_code == 404
        assert answer["Content-Type"] == "application/problem+json"
    assert Schedule.objects.count() == 1


def test_a_schedule_of_another_flow_is_not_found_through_this_one(api, flow, alice, team):
    other = services.create(alice, "Other", greeting("Yo"), team=team)
    made = create(api, other)
    assert api("alice").get(url(flow, made["id"])).status_code == 404
    assert api("alice").delete(url(flow, made["id"])).status_code == 404


@pytest.mark.parametrize(
    ("fields", "path", "says"),
    [
        ({"cron": "61 * * * *"}, "body.cron", "is not valid"),
        ({"cron": "* * * *"}, "body.cron", "needs 5 fields"),
        ({"timezone": "Mars/Olympus"}, "body.timezone", "not an IANA time zone"),
        ({"inputs": {"whom": "x"}}, "body.inputs", "unknown input 'whom'"),
        ({"inputs": {}}, "body.inputs", "input 'who' is required"),
    ],
)
def test_a_bad_schedule_is_a_400_naming_the_field(api, flow, fields, path, says):
    answer = api("bob").post(url(flow), {**NEW, **fields})
    assert answer.status_code == 400
    problem = answer.json()
    assert problem["code"] == "invalid_schedule"
    assert problem["errors"][0]["path"] == path
    assert says in problem["errors"][0]["message"]
    assert Schedule.objects.count() == 0


def test_an_unknown_overlap_policy_is_refused(api, flow):
    answer = api("bob").post(url(flow), {**NEW, "overlap": "queue"})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["path"] == "body.overlap"


def test_inputs_are_checked_against_the_published_version(api, flow, alice):
    # Version 2 renames the input; version 1 stays published, so "who" is still right.
    graph = greeting("Hi")
    graph["nodes"][0]["config"]["name"] = "name"
    services.save(flow, alice, graph, 1)
    api("alice").put(f"/api/flows/{flow.pk}/published", {"version": 1})
    assert api("bob").post(url(flow), NEW).status_code == 201
    api("alice").delete(f"/api/flows/{flow.pk}/published")
    refused = api("bob").post(url(flow), NEW)
    assert refused.status_code == 400
    assert "unknown input 'who'" in refused.json()["detail"]


def test_patch_disables_enables_and_changes_the_timing(api, flow):
    made = create(api, flow)
    bob = api("bob")
    off = bob.patch(url(flow, made["id"]), {"enabled": False}).json()
    assert (off["enabled"], off["next_fires"]) == (False, [])
    on = bob.patch(url(flow, made["id"]), {"enabled": True, "cron": "0 * * * *"}).json()
    assert (on["enabled"], on["cron"], len(on["next_fires"])) == (True, "0 * * * *", 5)
    assert on["timezone"] == "Europe/Paris"  # not given: unchanged
    bad = bob.patch(url(flow, made["id"]), {"timezone": "Nowhere"})
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["path"] == "body.timezone"
    assert Schedule.objects.get(pk=made["id"]).timezone == "Europe/Paris"


def test_enabling_again_does_not_catch_up_on_the_time_it_was_off(api, flow):
    made = create(api, flow)
    schedule = Schedule.objects.get(pk=made["id"])
    before = schedule.since
    api("bob").patch(url(flow, made["id"]), {"enabled": False})
    api("bob").patch(url(flow, made["id"]), {"enabled": True})
    schedule.refresh_from_db()
    assert schedule.since > before


def test_an_editor_deletes_a_schedule(api, flow):
    made = create(api, flow)
    assert api("bob").delete(url(flow, made["id"])).status_code == 204
    assert api("alice").get(url(flow, made["id"])).status_code == 404
    assert Schedule.objects.count() == 0


def test_the_schedules_api_is_in_the_openapi_schema(client):
    schema = client.get("/api/openapi.json").json()
    paths = schema["paths"]
    base = "/api/flows/{flow_id}/schedules"
    assert set(paths[base]) == {"get", "post"}
    assert set(paths[base + "/{schedule_id}"]) == {"get", "patch", "delete"}
    assert set(paths[base + "/{schedule_id}/ticks"]) == {"get"}
    assert "400" in paths[base]["post"]["responses"]
    assert paths[base]["post"]["operationId"] == "schedule_create"
