"""The Schedules pages: alice owns the team's flow, bob edits it, carol views it, dave is a
stranger."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse

from tests.webapp.test_publish import greeting
from webapp.flows import services
from webapp.schedules import service
from webapp.schedules.models import Schedule, Tick


@pytest.fixture
def flow(alice, team):
    return services.create(alice, "Greet", greeting("Hello"), team=team)


@pytest.fixture
def sched(flow, bob):
    return service.create(
        flow,
        bob,
        cron="30 2 * * *",
        timezone="Europe/Paris",
        inputs={"who": "team"},
        overlap="skip",
        enabled=True,
        now=dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC),
    )


def page(client, user, flow):
    client.force_login(user)
    return client.get(reverse("flow_schedules", args=[flow.pk]))


def test_the_page_lists_each_schedule_with_its_next_five_fire_times(client, carol, flow, sched):
    answer = page(client, carol, flow)
    assert answer.status_code == 200
    html = answer.content.decode()
    assert 'data-testid="cron">30 2 * * *<' in html
    fires = re.search(r'data-testid="next-fires">(.*?)</ol>', html, re.S).group(1)
    assert fires.count("<li>") == 5
    assert "02:30 CE" in fires  # in the schedule's zone: CET or CEST
    assert "{&quot;who&quot;: &quot;team&quot;}" in html


def test_a_viewer_gets_no_forms_and_cannot_post(client, carol, flow, sched):
    html = page(client, carol, flow).content.decode()
    assert 'data-testid="new-schedule"' not in html
    assert 'data-testid="toggle"' not in html
    create = client.post(reverse("flow_schedule_create", args=[flow.pk]), {"cron": "* * * * *"})
    assert create.status_code == 403
    toggle = reverse("flow_schedule_toggle", args=[flow.pk, sched.pk])
    assert client.post(toggle, {"enabled": "0"}).status_code == 403
    delete = reverse("flow_schedule_delete", args=[flow.pk, sched.pk])
    assert client.post(delete).status_code == 403
    assert Schedule.objects.get().enabled


def test_a_stranger_gets_404_on_every_schedules_page(client, dave, flow, sched):
    assert page(client, dave, flow).status_code == 404
    for name, args in [
        ("flow_schedule_ticks", [flow.pk, sched.pk]),
        ("flow_schedule_toggle", [flow.pk, sched.pk]),
        ("flow_schedule_delete", [flow.pk, sched.pk]),
        ("flow_schedule_create", [flow.pk]),
    ]:
        answer = client.post(reverse(name, args=args)) if "ticks" not in name else None
        answer = answer or client.get(reverse(name, args=args))
        assert answer.status_code == 404, name


def test_an_editor_creates_a_schedule_with_the_form(client, bob, flow):
    client.force_login(bob)
    answer = client.post(
        reverse("flow_schedule_create", args=[flow.pk]),
        {
            "cron": "0 9 * * MON-FRI",
            "timezone": "Europe/Paris",
            "inputs": '{"who": "x"}',
            "overlap": "allow",
        },
    )
    assert answer.status_code == 302
    made = Schedule.objects.get()
    assert (made.cron, made.timezone, made.inputs, made.overlap) == (
        "0 9 * * MON-FRI",
        "Europe/Paris",
        {"who": "x"},
        "allow",
    )
    assert made.created_by == bob


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"cron": "0 9 * *"}, "cron", "needs 5 fields"),
        ({"timezone": "Paris"}, "timezone", "not an IANA time zone"),
        ({"inputs": "{who: x}"}, "inputs", "not JSON"),
        ({"inputs": '{"whom": "x"}'}, "inputs", "unknown input"),
    ],
)
def test_a_bad_form_is_shown_again_with_the_error_by_its_field(
    client, bob, flow, fields, field, says
):
    client.force_login(bob)
    good = {"cron": "0 9 * * *", "timezone": "UTC", "inputs": '{"who": "x"}', "overlap": "skip"}
    answer = client.post(reverse("flow_schedule_create", args=[flow.pk]), {**good, **fields})
    assert answer.status_code == 400
    error = re.search(rf'data-testid="error-{field}">(.*?)</p>', answer.content.decode())
    assert error is not None and says in error.group(1)
    assert Schedule.objects.count() == 0


def test_an_editor_disables_enables_and_deletes(client, bob, flow, sched):
    client.force_login(bob)
    toggle = reverse("flow_schedule_toggle", args=[flow.pk, sched.pk])
    assert client.post(toggle, {"enabled": "0"}).status_code == 302
    sched.refresh_from_db()
    assert not sched.enabled
    html = page(client, bob, flow).content.decode()
    assert 'data-testid="disabled"' in html
    assert 'data-testid="next-fires"' not in html
    client.post(toggle, {"enabled": "1"})
    sched.refresh_from_db()
    assert sched.enabled
    client.post(reverse("flow_schedule_delete", args=[flow.pk, sched.pk]))
    assert Schedule.objects.count() == 0


def test_the_history_page_shows_each_tick_with_its_run_link_and_catch_ups(
    client, carol, flow, sched
):
    first = dt.datetime(2026, 1, 2, 1, 30, tzinfo=dt.UTC)
    service.tick(first + dt.timedelta(seconds=5))
    service.tick(first + dt.timedelta(days=3, hours=1))  # three days down
    client.force_login(carol)
    answer = client.get(reverse("flow_schedule_ticks", args=[flow.pk, sched.pk]))
    html = answer.content.decode()
    rows = re.findall(r'data-testid="tick" data-outcome="(\w+)"', html)
    assert rows == ["skipped_overlap", "started"]  # the first run is still queued: skipped
    assert "(after 2 missed ticks)" in html
    Tick.objects.all().delete()
    sched.overlap = "allow"
    sched.save()
    service.tick(first + dt.timedelta(seconds=5))
    service.tick(first + dt.timedelta(days=3, hours=1))
    html = client.get(reverse("flow_schedule_ticks", args=[flow.pk, sched.pk])).content.decode()
    assert re.findall(r'data-outcome="(\w+)"', html) == ["catch_up", "started"]
    assert "for 2 missed ticks" in html
    run_ids = [t.run_id for t in Tick.objects.order_by("-tick")]
    for run_id in run_ids:
        assert f'href="{reverse("run_detail", args=[run_id])}"' in html


def test_the_editor_and_the_history_page_link_to_schedules(client, carol, flow):
    client.force_login(carol)
    target = f'href="{reverse("flow_schedules", args=[flow.pk])}"'
    assert target in client.get(reverse("flow_editor", args=[flow.pk])).content.decode()
    assert target in client.get(reverse("flow_versions", args=[flow.pk])).content.decode()
